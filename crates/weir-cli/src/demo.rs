//! `weir demo`: the event-router end to end on a fresh local broker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use rand::{rngs::StdRng, Rng, SeedableRng};
use weir::core::dlq_headers;
use weir_testkit::{create_topics, publish, terminate, BrokerProcess, TopicReader};

const APP: &str = "event-router-demo";
const PARTITIONS: i32 = 4;

/// Arguments of `weir demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// How many well-formed events to publish.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// The event-router binary (default: next to this one).
    #[arg(long)]
    router: Option<PathBuf>,
}

struct Sample {
    key: String,
    value: Vec<u8>,
    /// The topic it should be routed to, if it is kept.
    route: Option<&'static str>,
}

fn samples(n: usize) -> (Vec<Sample>, usize) {
    let mut rng = StdRng::seed_from_u64(42);
    let kinds = ["order", "payment", "refund", "shipment"];
    let regions = ["eu-west", "us-east", "ap-south"];
    let mut out: Vec<Sample> = (0..n)
        .map(|i| {
            let kind = kinds[rng.gen_range(0..kinds.len())];
            let amount: i64 = rng.gen_range(-20..200);
            let id = format!("e-{i:05}");
            let value = serde_json::json!({
                "id": id, "type": kind, "region": regions[i % regions.len()],
                "amount": amount, "customer": format!("c-{}", i % 37)
            });
            Sample {
                key: id,
                value: value.to_string().into_bytes(),
                route: (amount > 0).then(|| event_router::route(kind)),
            }
        })
        .collect();
    let malformed: [&[u8]; 5] = [
        b"{\"id\": \"m-1\", \"type\": \"order\"",
        b"not json at all",
        b"{\"id\": \"m-3\", \"amount\": 10}",
        b"{\"id\": \"m-4\", \"type\": \"order\", \"amount\": \"ten\"}",
        b"[1, 2, 3]",
    ];
    for (i, m) in malformed.iter().enumerate() {
        out.insert(
            (i + 1) * n / 6,
            Sample {
                key: format!("m-{}", i + 1),
                value: m.to_vec(),
                route: None,
            },
        );
    }
    (out, malformed.len())
}

fn router_binary(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match arg {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("weir has no parent directory")?
            .join("event-router"),
    };
    if !path.exists() {
        bail!(
            "event-router binary not found at {}: build it with `cargo build -p event-router` (make demo does)",
            path.display()
        );
    }
    Ok(path)
}

struct Router(Child);

impl Router {
    fn start(bin: &Path, bootstrap: &str, state_dir: &Path, log: &Path) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .arg("run")
            .env("WEIR_APPLICATION_ID", APP)
            .env("WEIR_BOOTSTRAP_SERVERS", bootstrap)
            .env("WEIR_STATE_DIR", state_dir)
            .env("WEIR_AUTO_CREATE_TOPICS", "true")
            .env("WEIR_AUTO_CREATE_PARTITIONS", PARTITIONS.to_string())
            .env("WEIR_COMMIT_INTERVAL_MS", "100")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Router(child))
    }

    fn stop(&mut self) {
        terminate(&mut self.0, Duration::from_secs(15));
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the demo; fails if any output is missing or repeated.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let router_bin = router_binary(args.router)?;
    let work = tempfile::Builder::new().prefix("weir-demo-").tempdir()?;
    println!("Weir demo: the event-router, exactly once, on a local broker");
    let broker = BrokerProcess::start_on_free_loopback(&work.path().join("broker"))
        .context("starting the local test broker (make deps installs it)")?;
    let bootstrap = broker.bootstrap().to_string();
    println!("  broker       {bootstrap} (crabka-broker, fresh data dir)");
    create_topics(&bootstrap, &[(event_router::EVENTS, PARTITIONS)])?;

    let log = work.path().join("event-router.log");
    let mut router = Router::start(&router_bin, &bootstrap, &work.path().join("state"), &log)?;
    let (samples, malformed) = samples(args.events);
    let published = publish(
        &bootstrap,
        event_router::EVENTS,
        samples
            .iter()
            .map(|s| (Some(s.key.as_bytes()), Some(s.value.as_slice()))),
    )?;
    println!(
        "  published    {published} events to '{}' ({PARTITIONS} partitions), {malformed} of them malformed",
        event_router::EVENTS
    );

    let mut expected: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for s in &samples {
        if let Some(route) = s.route {
            *expected
                .entry(route)
                .or_default()
                .entry(s.key.clone())
                .or_default() += 1;
            *expected
                .entry(event_router::AUDIT)
                .or_default()
                .entry(s.key.clone())
                .or_default() += 1;
        }
    }
    let dlq = format!("{APP}-dlq");
    let outputs = [
        event_router::ORDERS,
        event_router::PAYMENTS,
        event_router::OTHER,
        event_router::AUDIT,
        dlq.as_str(),
    ];
    let want_total: usize = expected.values().map(|m| m.len()).sum::<usize>() + malformed;
    let mut reader = TopicReader::new(&bootstrap, &outputs, "read_committed")?;
    let complete = reader.read_until(Duration::from_secs(90), |r| r.len() >= want_total);
    // Anything extra (a duplicate) would show up now.
    reader.read_for(Duration::from_secs(1));
    router.stop();

    let by_topic = reader.by_topic();
    println!(
        "\n  {:<22} {:>8} {:>9}",
        "topic (read_committed)", "records", "expected"
    );
    let mut ok = complete;
    for t in &outputs {
        let got = by_topic.get(*t).map_or(0, Vec::len);
        let want = if *t == dlq {
            malformed
        } else {
            expected.get(t).map_or(0, BTreeMap::len)
        };
        ok &= got == want;
        println!("  {t:<22} {got:>8} {want:>9}");
    }
    for (t, want) in &expected {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for r in by_topic.get(*t).into_iter().flatten() {
            let k = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            *seen.entry(k).or_default() += 1;
        }
        ok &= &seen == want;
    }
    let dropped = samples.iter().filter(|s| s.route.is_none()).count() - malformed;
    println!("  (dropped: {dropped} events with amount <= 0)");
    if let Some(r) = by_topic.get(event_router::ORDERS).and_then(|v| v.first()) {
        println!(
            "\n  a routed order: {}",
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
        );
    }
    println!("\n  dead letters ({dlq}):");
    for r in by_topic.get(&dlq).into_iter().flatten() {
        let h = |k| r.headers.get_str(k).unwrap_or("?").to_string();
        println!(
            "    {}/{}@{}  {}: {}",
            h(dlq_headers::SOURCE_TOPIC),
            h(dlq_headers::SOURCE_PARTITION),
            h(dlq_headers::SOURCE_OFFSET),
            h(dlq_headers::ERROR_KIND),
            h(dlq_headers::ERROR_MESSAGE)
        );
    }
    drop(broker);
    if ok {
        println!("\n  every kept event is in its topic and in audit exactly once; every malformed one is in the DLQ.");
        Ok(())
    } else {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(30).collect();
        eprintln!("event-router log (last lines):");
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
        bail!("the outputs do not match the inputs (see above)")
    }
}
