//! windowed-metrics end to end on the test broker (or `WEIR_TEST_BOOTSTRAP`):
//! 1,000,000 JSON events (12 types × 8 regions, timestamps in publish
//! order) on 8 partitions, through the repartition hop into the windowed
//! aggregation with emit-final (1 s windows, 1 s grace: windows close all
//! along the run). Prints records/s of (a) a bare rdkafka pipe writing each
//! input to one topic (the topology's repartition copy) and (c)
//! windowed-metrics exactly_once_v2 (100 ms commits); the ratio c/a
//! (target ≥ 0.6) and CPU per record; medians over `WEIR_BENCH_ROUNDS`
//! interleaved rounds (default 3). A run's clock starts when it owns its
//! partitions and stops when its input and repartition topic are consumed
//! and committed. `WEIR_BENCH_EVENTS` changes the count; each instance runs
//! one stream thread per core (`WEIR_BENCH_THREADS`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use weir_benches::{
    bare_pipe, bench_var, committed, cpu_seconds, end_offsets, median, publish_input,
    release_binary, stream_threads, TopologyRun, PARTITIONS,
};
use weir_testkit::{summary_counter, TestBroker};

fn event(i: usize) -> Vec<u8> {
    serde_json::json!({
        "type": format!("type-{}", i % 12),
        "region": format!("region-{}", (i / 12) % 8),
        "amount": (i % 991) as f64 / 10.0 - 5.0,
        "id": format!("{i:08}"),
        "note": "benchmark event with some padding to reach about one hundred bytes",
    })
    .to_string()
    .into_bytes()
}

/// Runs windowed-metrics over the whole input: (records/s, CPU µs/record,
/// finals written).
fn run(
    bin: &Path,
    bootstrap: &str,
    input: &str,
    app: &str,
    dir: &Path,
    n: usize,
) -> anyhow::Result<(f64, f64, u64)> {
    let threads = stream_threads().to_string();
    let state = dir.join(app);
    let env: Vec<(String, String)> = [
        ("WEIR_NUM_STREAM_THREADS", threads.as_str()),
        ("WEIR_APPLICATION_ID", app),
        ("WEIR_BOOTSTRAP_SERVERS", bootstrap),
        ("WEIR_STATE_DIR", &state.display().to_string()),
        ("WEIR_PROCESSING_GUARANTEE", "exactly_once_v2"),
        ("WEIR_COMMIT_INTERVAL_MS", "100"),
        ("WEIR_AUTO_CREATE_TOPICS", "true"),
        ("WEIR_AUTO_CREATE_PARTITIONS", &PARTITIONS.to_string()),
        ("WEIR_TOPICS__EVENTS", input),
        ("WEIR_TOPICS__EVENT_METRICS", &format!("{app}-out")),
        ("WEIR_PARAMS__WINDOW_MS", "1000"),
        ("WEIR_PARAMS__GRACE_MS", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut run = TopologyRun::spawn(bin, &env, &state.with_extension("log"))?;
    run.wait_for_log("partitions assigned", Duration::from_secs(120))?;
    let start = Instant::now();
    let cpu_start = cpu_seconds(run.pid());
    let repartition = format!("{app}-metrics-repartition");
    let deadline = start + Duration::from_secs(900);
    loop {
        if committed(bootstrap, app, input, PARTITIONS)? >= n as i64 {
            let end = end_offsets(bootstrap, &repartition, PARTITIONS)?;
            let done = committed(bootstrap, app, &repartition, PARTITIONS)?;
            // Markers and commit markers: the end is beyond n; a partition
            // may end with a commit marker no consumed position passes.
            if end >= n as i64 && done >= end - i64::from(PARTITIONS) {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!(
                "windowed-metrics did not finish in 900 s:\n{}",
                run.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let cpu_us = (cpu_seconds(run.pid()) - cpu_start) * 1e6 / n as f64;
    run.stop();
    let produced = summary_counter(&run.log_text(), "produced").unwrap_or(0);
    Ok((rate, cpu_us, produced))
}

fn main() -> anyhow::Result<()> {
    let n = bench_var("WEIR_BENCH_EVENTS", 1_000_000);
    let rounds = bench_var("WEIR_BENCH_ROUNDS", 3);
    let bin = release_binary("windowed-metrics", "windowed-metrics")?;
    let bootstrap = TestBroker::shared().bootstrap().to_string();
    let (input, avg) = publish_input(&bootstrap, "bench-events", n, |i| {
        (format!("e{}", i % 9_973).into_bytes(), event(i))
    })?;
    println!(
        "windowed_metrics: {n} events (~{avg} B, 96 groups) on {PARTITIONS} partitions, {} stream thread(s) per instance, broker {bootstrap}",
        stream_threads()
    );
    let dir = tempfile::tempdir()?;
    let (mut a, mut c, mut cpu_c) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        a.push(bare_pipe(&bootstrap, &input, n, 1)?);
        let app = TestBroker::unique("bench-metrics-eos");
        let (rc, uc, produced) = run(&bin, &bootstrap, &input, &app, dir.path(), n)?;
        println!(
            "  round {round}: a {:.0}  c {rc:.0} records/s; CPU c {uc:.2} us/record; records produced by c (repartition copies, markers, finals, changelog): {produced}",
            a[round - 1]
        );
        c.push(rc);
        cpu_c.push(uc);
    }
    let (ma, mc) = (median(a), median(c));
    println!("medians over {rounds} rounds:");
    println!("  (a) bare rdkafka pipe (1 output/input)     {ma:>10.0} records/s");
    println!("  (c) windowed-metrics, exactly_once_v2      {mc:>10.0} records/s");
    println!(
        "  c/a = {:.2}   (target >= 0.6); CPU per record c {:.2} us",
        mc / ma,
        median(cpu_c)
    );
    Ok(())
}
