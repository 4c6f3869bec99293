//! End-to-end throughput on the test broker (or `WEIR_TEST_BOOTSTRAP`):
//! the same 1,000,000 JSON events of ~200 B on 8 partitions, processed by
//!   (a) a bare rdkafka consume→produce pipe (at least once, no framework),
//!       writing each input to two topics — the event-router's output volume
//!       (one routed copy plus the audit copy) without parsing;
//!   (b) the event-router, at_least_once;
//!   (c) the event-router, exactly_once_v2, commits every 100 ms.
//! Prints records/s and the ratios b/a and c/a (target c/a ≥ 0.9).
//!
//! Each run's clock starts when it owns its partitions (group join time is
//! excluded) and stops when its consumed offsets for all 1,000,000 inputs are
//! committed. The three run interleaved for `WEIR_BENCH_ROUNDS` rounds
//! (default 3) and the medians are compared. `WEIR_BENCH_EVENTS` changes the
//! count.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_testkit::{create_topics, publish, terminate, TestBroker};

const PARTITIONS: i32 = 8;

fn event(i: usize) -> Vec<u8> {
    let kinds = ["order", "payment", "refund", "shipment"];
    let regions = ["eu-west", "us-east", "ap-south"];
    serde_json::json!({
        "id": format!("{i:08}"),
        "type": kinds[i % 4],
        "region": regions[i % 3],
        "amount": 1 + (i % 997),
        "customer": format!("customer-{:05}", i % 10_007),
        "note": "benchmark event with a little padding to reach two hundred bytes in all, like a real one",
    })
    .to_string()
    .into_bytes()
}

fn router_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "event-router"])
        .status()?;
    if !status.success() {
        bail!("building the event-router failed");
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("target dir")?;
    Ok(dir.join("event-router"))
}

/// Sum of committed offsets of `group` on `topic`.
fn committed(bootstrap: &str, group: &str, topic: &str) -> anyhow::Result<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("log_level", "3")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(got
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum())
}

fn bare_pipe(bootstrap: &str, input: &str, n: usize) -> anyhow::Result<f64> {
    let out_a = TestBroker::unique("bench-pipe-routed");
    let out_b = TestBroker::unique("bench-pipe-audit");
    create_topics(bootstrap, &[(&out_a, PARTITIONS), (&out_b, PARTITIONS)])?;
    let group = TestBroker::unique("bench-pipe");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()?;
    consumer.subscribe(&[input])?;
    let mut start = None;
    let mut seen = 0usize;
    let mut last_commit = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < n {
        if Instant::now() > deadline {
            bail!("bare pipe: only {seen} of {n} records in 600 s");
        }
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        start.get_or_insert_with(Instant::now);
        for topic in [&out_a, &out_b] {
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
            if let Some(k) = m.key() {
                rec = rec.key(k);
            }
            if let Some(v) = m.payload() {
                rec = rec.payload(v);
            }
            while let Err((_, back)) = producer.send(rec) {
                rec = back;
                producer.poll(Duration::from_millis(1));
            }
        }
        producer.poll(Duration::ZERO);
        seen += 1;
        if last_commit.elapsed() >= Duration::from_millis(100) {
            producer.flush(Duration::from_secs(60))?;
            consumer.commit_consumer_state(CommitMode::Async)?;
            last_commit = Instant::now();
        }
        consumer.store_offset_from_message(&m)?;
    }
    producer.flush(Duration::from_secs(60))?;
    consumer.commit_consumer_state(CommitMode::Sync)?;
    let secs = start.map_or(f64::NAN, |s| s.elapsed().as_secs_f64());
    Ok(n as f64 / secs)
}

struct Router(Child);

impl Drop for Router {
    fn drop(&mut self) {
        terminate(&mut self.0, Duration::from_secs(30));
    }
}

/// User + system CPU seconds of process `pid` so far (Linux, 100 ticks/s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Records/s and CPU microseconds per record of one router run.
fn router(
    bin: &PathBuf,
    bootstrap: &str,
    input: &str,
    n: usize,
    guarantee: &str,
) -> anyhow::Result<(f64, f64)> {
    let app = TestBroker::unique(&format!("bench-router-{}", guarantee.replace('_', "-")));
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("router.log");
    let mut cmd = Command::new(bin);
    // Only the configuration below: the bench's own WEIR_BENCH_* are not config.
    for (k, _) in std::env::vars() {
        if k.starts_with("WEIR_") && !k.starts_with("WEIR_TEST_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("run")
        .env("WEIR_APPLICATION_ID", &app)
        .env("WEIR_BOOTSTRAP_SERVERS", bootstrap)
        .env("WEIR_STATE_DIR", dir.path())
        .env("WEIR_PROCESSING_GUARANTEE", guarantee)
        .env("WEIR_COMMIT_INTERVAL_MS", "100")
        .env("WEIR_AUTO_CREATE_TOPICS", "true")
        .env("WEIR_AUTO_CREATE_PARTITIONS", PARTITIONS.to_string())
        .env("WEIR_TOPICS__EVENTS", input)
        .env("RUST_LOG", "info");
    for t in ["orders", "payments", "other", "audit"] {
        cmd.env(
            format!("WEIR_TOPICS__{}", t.to_uppercase()),
            format!("{app}-{t}"),
        );
    }
    let file = std::fs::File::create(&log)?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()?;
    let pid = child.id();
    let _router = Router(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log)?.contains("partitions assigned") {
        if Instant::now() > deadline {
            bail!(
                "router never got partitions:\n{}",
                std::fs::read_to_string(&log)?
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    let cpu_start = cpu_seconds(pid);
    let deadline = start + Duration::from_secs(600);
    loop {
        if committed(bootstrap, &app, input)? >= n as i64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("router ({guarantee}) did not finish in 600 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let cpu_us = (cpu_seconds(pid) - cpu_start) * 1e6 / n as f64;
    Ok((rate, cpu_us))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; nothing else to parse.
    let n: usize = std::env::var("WEIR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let bin = router_binary()?;
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let input = TestBroker::unique("bench-events");
    create_topics(&bootstrap, &[(&input, PARTITIONS)])?;
    let values: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| (format!("customer-{:05}", i % 10_007).into_bytes(), event(i)))
        .collect();
    let avg = values.iter().map(|(_, v)| v.len()).sum::<usize>() / n.max(1);
    let t = Instant::now();
    publish(
        &bootstrap,
        &input,
        values
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice()))),
    )?;
    println!(
        "throughput: {n} events (~{avg} B) on {PARTITIONS} partitions, published in {:.1} s, broker {bootstrap}",
        t.elapsed().as_secs_f64()
    );
    let rounds: usize = std::env::var("WEIR_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Interleaved rounds, so a noisy moment on this shared machine hits all three.
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_b, mut cpu_c) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        a.push(bare_pipe(&bootstrap, &input, n)?);
        let (rb, ub) = router(&bin, &bootstrap, &input, n, "at_least_once")?;
        let (rc, uc) = router(&bin, &bootstrap, &input, n, "exactly_once_v2")?;
        b.push(rb);
        c.push(rc);
        cpu_b.push(ub);
        cpu_c.push(uc);
        println!(
            "  round {round}: a {:.0}  b {rb:.0}  c {rc:.0} records/s; router CPU b {ub:.2}  c {uc:.2} us/record",
            a[round - 1],
        );
    }
    let (a, b, c) = (median(a), median(b), median(c));
    let (cpu_b, cpu_c) = (median(cpu_b), median(cpu_c));
    println!("medians over {rounds} rounds:");
    println!("  (a) bare rdkafka pipe, at least once     {a:>10.0} records/s");
    println!("  (b) event-router, at_least_once          {b:>10.0} records/s");
    println!("  (c) event-router, exactly_once_v2/100ms  {c:>10.0} records/s");
    println!(
        "  b/a = {:.2}   c/a = {:.2}   (target c/a >= 0.9)",
        b / a,
        c / a
    );
    println!("  router CPU (user+sys) per record: b {cpu_b:.2} us, c {cpu_c:.2} us");
    Ok(())
}
