//! End-to-end throughput on the test broker (or `WEIR_TEST_BOOTSTRAP`):
//! the same 1,000,000 JSON events of ~200 B on 8 partitions, processed by
//!   (a) a bare rdkafka consume→produce pipe (at least once, no framework),
//!       writing each input to two topics — the event-router's output volume
//!       (one routed copy plus the audit copy) without parsing;
//!   (b) the event-router, at_least_once;
//!   (c) the event-router, exactly_once_v2, commits every 100 ms.
//! Prints records/s and the ratios b/a and c/a (target c/a ≥ 0.9). The
//! router runs one stream thread per core (`WEIR_BENCH_THREADS` overrides);
//! the bare pipe is one consumer and one producer.
//!
//! Each run's clock starts when it owns its partitions (group join time is
//! excluded) and stops when its consumed offsets for all 1,000,000 inputs are
//! committed. The three run interleaved for `WEIR_BENCH_ROUNDS` rounds
//! (default 3) and the medians are compared. `WEIR_BENCH_EVENTS` changes the
//! count.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use weir_benches::{
    bare_pipe, bench_var, committed, cpu_seconds, median, publish_input, release_binary,
    stream_threads, TopologyRun, PARTITIONS,
};
use weir_testkit::TestBroker;

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

/// Records/s and CPU microseconds per record of one router run.
fn router(
    bin: &Path,
    bootstrap: &str,
    input: &str,
    n: usize,
    guarantee: &str,
) -> anyhow::Result<(f64, f64)> {
    let app = TestBroker::unique(&format!("bench-router-{}", guarantee.replace('_', "-")));
    let dir = tempfile::tempdir()?;
    let threads = stream_threads().to_string();
    let mut env: Vec<(String, String)> = [
        ("WEIR_NUM_STREAM_THREADS", threads.as_str()),
        ("WEIR_APPLICATION_ID", app.as_str()),
        ("WEIR_BOOTSTRAP_SERVERS", bootstrap),
        ("WEIR_STATE_DIR", &dir.path().display().to_string()),
        ("WEIR_PROCESSING_GUARANTEE", guarantee),
        ("WEIR_COMMIT_INTERVAL_MS", "100"),
        ("WEIR_AUTO_CREATE_TOPICS", "true"),
        ("WEIR_AUTO_CREATE_PARTITIONS", &PARTITIONS.to_string()),
        ("WEIR_TOPICS__EVENTS", input),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for t in ["orders", "payments", "other", "audit"] {
        env.push((
            format!("WEIR_TOPICS__{}", t.to_uppercase()),
            format!("{app}-{t}"),
        ));
    }
    let run = TopologyRun::spawn(bin, &env, &dir.path().join("router.log"))?;
    run.wait_for_log("partitions assigned", Duration::from_secs(120))?;
    let start = Instant::now();
    let cpu_start = cpu_seconds(run.pid());
    let deadline = start + Duration::from_secs(600);
    loop {
        if committed(bootstrap, &app, input, PARTITIONS)? >= n as i64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("router ({guarantee}) did not finish in 600 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let cpu_us = (cpu_seconds(run.pid()) - cpu_start) * 1e6 / n as f64;
    Ok((rate, cpu_us))
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; nothing else to parse.
    let n = bench_var("WEIR_BENCH_EVENTS", 1_000_000);
    let bin = release_binary("event-router", "event-router")?;
    let bootstrap = TestBroker::shared().bootstrap().to_string();
    let t = Instant::now();
    let (input, avg) = publish_input(&bootstrap, "bench-events", n, |i| {
        (format!("customer-{:05}", i % 10_007).into_bytes(), event(i))
    })?;
    println!(
        "throughput: {n} events (~{avg} B) on {PARTITIONS} partitions, published in {:.1} s, {} stream thread(s), broker {bootstrap}",
        t.elapsed().as_secs_f64(),
        stream_threads()
    );
    let rounds = bench_var("WEIR_BENCH_ROUNDS", 3);
    // Interleaved rounds, so a noisy moment on this shared machine hits all three.
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_b, mut cpu_c) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        a.push(bare_pipe(&bootstrap, &input, n, 2)?);
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
