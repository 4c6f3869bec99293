//! `weir demo`: the event-router, the event-enricher (a stream-table join)
//! and customer-totals (queried in process) end to end on a fresh local
//! broker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use rand::{rngs::StdRng, Rng, SeedableRng};
use weir::core::dlq_headers;
use weir_testkit::{
    create_compacted_topics, create_topics, publish, terminate, BrokerProcess, TopicReader,
};

const APP: &str = "event-router-demo";
const TOTALS_APP: &str = "customer-totals-demo";
const ENRICHER_APP: &str = "event-enricher-demo";
const PARTITIONS: i32 = 4;
/// Customers `c-0` … `c-36`; the last ones have no tier in the table.
const CUSTOMERS: usize = 37;
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
const WITH_TIER: usize = 33;

/// Arguments of `weir demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// How many well-formed events to publish.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// The event-router binary (default: next to this one).
    #[arg(long)]
    router: Option<PathBuf>,
    /// The event-enricher binary (default: next to this one).
    #[arg(long)]
    enricher: Option<PathBuf>,
}

/// The tier the demo's `customers` table gives customer number `i`.
fn tier_of(i: usize) -> Option<&'static str> {
    (i < WITH_TIER).then(|| TIERS[i % TIERS.len()])
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
                "amount": amount, "customer": format!("c-{}", i % CUSTOMERS)
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

fn sibling_binary(arg: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    let path = match arg {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("weir has no parent directory")?
            .join(name),
    };
    if !path.exists() {
        bail!(
            "{name} binary not found at {}: build it with `cargo build -p {name}` (make demo does)",
            path.display()
        );
    }
    Ok(path)
}

struct Router(Child);

impl Router {
    fn start(
        bin: &Path,
        app: &str,
        bootstrap: &str,
        state_dir: &Path,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .arg("run")
            .env("WEIR_APPLICATION_ID", app)
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
    let router_bin = sibling_binary(args.router, "event-router")?;
    let enricher_bin = sibling_binary(args.enricher, "event-enricher")?;
    let work = tempfile::Builder::new().prefix("weir-demo-").tempdir()?;
    println!("Weir demo: the event-router, the event-enricher and customer-totals, exactly once, on a local broker");
    let broker = BrokerProcess::start_on_free_loopback(&work.path().join("broker"))
        .context("starting the local test broker (make deps installs it)")?;
    let bootstrap = broker.bootstrap().to_string();
    println!("  broker       {bootstrap} (crabka-broker, fresh data dir)");
    create_topics(&bootstrap, &[(event_router::EVENTS, PARTITIONS)])?;
    create_compacted_topics(&bootstrap, &[(event_enricher::CUSTOMERS, PARTITIONS)])?;
    let tiers: Vec<(String, Vec<u8>)> = (0..CUSTOMERS)
        .filter_map(|i| {
            let tier = tier_of(i)?;
            let value = serde_json::to_vec(&event_enricher::Customer { tier: tier.into() });
            Some((format!("c-{i}"), value.expect("a tier serializes")))
        })
        .collect();
    publish(
        &bootstrap,
        event_enricher::CUSTOMERS,
        tiers
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_slice()))),
    )?;
    println!(
        "  published    {} customers' tiers to '{}' (compacted); {} customers have none",
        tiers.len(),
        event_enricher::CUSTOMERS,
        CUSTOMERS - WITH_TIER
    );

    let log = work.path().join("event-router.log");
    let mut router = Router::start(
        &router_bin,
        APP,
        &bootstrap,
        &work.path().join("state"),
        &log,
    )?;
    let enricher_log = work.path().join("event-enricher.log");
    let mut enricher = Router::start(
        &enricher_bin,
        ENRICHER_APP,
        &bootstrap,
        &work.path().join("enricher-state"),
        &enricher_log,
    )?;
    // customer-totals runs in this process, so its store can be queried.
    let totals_log = work.path().join("customer-totals.log");
    log_to(&totals_log)?;
    let (topology, store) = customer_totals::topology_and_store();
    let totals = weir::App::builder()
        .with_config(totals_config(
            &bootstrap,
            &work.path().join("totals-state"),
        )?)
        .start(topology)
        .context("starting customer-totals in process")?;
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
    if ok {
        println!("\n  every kept event is in its topic and in audit exactly once; every malformed one is in the DLQ.");
    }
    let enriched_ok = show_enriched(&bootstrap, &samples, malformed);
    enricher.stop();
    let totals_ok = show_totals(&bootstrap, &samples, malformed)
        && query_totals(&totals.store(&store), &samples);
    totals.stop();
    let stopped = totals.wait();
    drop(broker);
    if !ok {
        print_tail("event-router", &log);
        bail!("the event-router's outputs do not match the inputs (see above)")
    }
    if !enriched_ok {
        print_tail("event-enricher", &enricher_log);
        bail!("the event-enricher's outputs do not match the inputs (see above)")
    }
    if !totals_ok {
        print_tail("customer-totals", &totals_log);
        bail!("customer-totals does not match a recount (see above)")
    }
    stopped.context("customer-totals stopped with an error")?;
    Ok(())
}

fn print_tail(name: &str, log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    eprintln!("{name} log (last lines):");
    for l in tail.iter().rev() {
        eprintln!("  {l}");
    }
}

/// Sends this process's log lines (customer-totals runs in it) to `path`.
fn log_to(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging to {}: {e}", path.display()))
}

/// customer-totals' configuration: what the other demo apps get from
/// `WEIR_*` variables.
fn totals_config(bootstrap: &str, state_dir: &Path) -> anyhow::Result<weir::Config> {
    let vars = [
        ("WEIR_APPLICATION_ID", TOTALS_APP.to_string()),
        ("WEIR_BOOTSTRAP_SERVERS", bootstrap.to_string()),
        ("WEIR_STATE_DIR", state_dir.display().to_string()),
        ("WEIR_AUTO_CREATE_TOPICS", "true".to_string()),
        ("WEIR_AUTO_CREATE_PARTITIONS", PARTITIONS.to_string()),
        ("WEIR_COMMIT_INTERVAL_MS", "100".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    Ok(weir::Config::load(&BTreeMap::new(), None, vars)?)
}

/// Reads the event-enricher's output (read_committed) until every event
/// with a customer is there; checks each carries its customer's tier, once.
fn show_enriched(bootstrap: &str, samples: &[Sample], malformed: usize) -> bool {
    let mut want: BTreeMap<String, (String, &str)> = BTreeMap::new();
    for s in samples {
        let Ok(e) = serde_json::from_slice::<event_enricher::Event>(&s.value) else {
            continue;
        };
        let i: usize = e.customer[2..].parse().expect("demo customers are c-<n>");
        let tier = tier_of(i).unwrap_or(event_enricher::NO_TIER);
        want.insert(s.key.clone(), (e.customer, tier));
    }
    let dlq = format!("{ENRICHER_APP}-dlq");
    let Ok(mut reader) = TopicReader::new(
        bootstrap,
        &[event_enricher::ENRICHED, dlq.as_str()],
        "read_committed",
    ) else {
        return false;
    };
    let complete = reader.read_until(Duration::from_secs(90), |r| {
        r.len() >= want.len() + malformed
    });
    reader.read_for(Duration::from_secs(1));
    let by_topic = reader.by_topic();
    let enriched = by_topic.get(event_enricher::ENRICHED);
    let mut got: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut repeated = 0;
    for r in enriched.into_iter().flatten() {
        let v: serde_json::Value =
            serde_json::from_slice(r.value.as_deref().unwrap_or_default()).unwrap_or_default();
        let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let tier = v["tier"].as_str().unwrap_or_default().to_string();
        repeated += usize::from(got.insert(id, (key, tier)).is_some());
    }
    let dead = by_topic.get(&dlq).map_or(0, Vec::len);
    println!(
        "\n  event-enricher: {} enriched events in '{}' (read_committed), {dead} dead letters",
        enriched.map_or(0, Vec::len),
        event_enricher::ENRICHED
    );
    if let Some(r) = enriched.and_then(|v| v.first()) {
        println!(
            "    e.g. {}",
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
        );
    }
    let matches = want.len() == got.len()
        && want.iter().all(|(id, (c, t))| {
            got.get(id)
                .is_some_and(|(gc, gt)| gc == c && gt.as_str() == *t)
        });
    let ok = complete && repeated == 0 && matches && dead == malformed;
    if ok {
        println!(
            "  every event is there once, keyed by its customer, with the tier the table gave it."
        );
    }
    ok
}

/// Queries customer-totals' store in the running instance: every
/// customer's committed totals equal a recount (after the outputs did).
fn query_totals(
    query: &weir::StoreQuery<String, customer_totals::Totals>,
    samples: &[Sample],
) -> bool {
    let want = recount(samples);
    let held = query.partitions();
    println!(
        "\n  querying the running customer-totals instance: it holds {} partitions of store '{}' ({} restoring), ~{} keys",
        held.len(),
        customer_totals::STORE,
        held.iter().filter(|p| p.restoring).count(),
        query.approximate_len().unwrap_or(0)
    );
    let mut mismatches = 0;
    for (i, (c, (n, t))) in want.iter().enumerate() {
        match query.get(c) {
            Ok(Some(got)) if got.count == *n && got.total == *t => {
                if i < 3 {
                    println!("    get({c:?}) = count {}, total {}", got.count, got.total);
                }
            }
            other => {
                mismatches += 1;
                eprintln!("    get({c:?}) = {other:?}, a recount says count {n}, total {t}");
            }
        }
    }
    if mismatches == 0 {
        println!("  every customer's queried totals equal the recount.");
    }
    mismatches == 0
}

/// Per customer: events and the sum of their amounts.
fn recount(samples: &[Sample]) -> BTreeMap<String, (u64, f64)> {
    let mut want: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for s in samples {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&s.value) else {
            continue;
        };
        if let (Some(c), Some(a)) = (v["customer"].as_str(), v["amount"].as_f64()) {
            let e = want.entry(c.to_string()).or_default();
            e.0 += 1;
            e.1 += a;
        }
    }
    want
}

/// Reads customer-totals' updates (read_committed) until every customer's
/// last count matches a recount of the samples; prints a few. `true` when
/// everything matches and the malformed events were dead-lettered.
fn show_totals(bootstrap: &str, samples: &[Sample], malformed: usize) -> bool {
    let want = recount(samples);
    let updates: u64 = want.values().map(|(n, _)| n).sum();
    let dlq = format!("{TOTALS_APP}-dlq");
    let Ok(mut reader) = TopicReader::new(
        bootstrap,
        &[customer_totals::TOTALS, dlq.as_str()],
        "read_committed",
    ) else {
        return false;
    };
    let complete = reader.read_until(Duration::from_secs(90), |r| {
        r.len() as u64 >= updates + malformed as u64
    });
    reader.read_for(Duration::from_secs(1));
    let by_topic = reader.by_topic();
    let mut last: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for r in by_topic.get(customer_totals::TOTALS).into_iter().flatten() {
        if let Ok(t) = serde_json::from_slice::<customer_totals::Totals>(
            r.value.as_deref().unwrap_or_default(),
        ) {
            last.insert(t.customer, (t.count, t.total));
        }
    }
    let dead = by_topic.get(&dlq).map_or(0, Vec::len);
    println!(
        "\n  customer-totals: {} updates for {} customers (read_committed), {dead} dead letters",
        by_topic.get(customer_totals::TOTALS).map_or(0, Vec::len),
        last.len()
    );
    for (c, (n, t)) in last.iter().take(5) {
        println!("    {c:<8} count {n:>4}  total {t:>8}");
    }
    let ok = complete && last == want && dead == malformed;
    if ok {
        println!("  every customer's count and total equal a recount of the events.");
    }
    ok
}
