//! customer-totals end to end on the test broker (or `WEIR_TEST_BOOTSTRAP`):
//! 1,000,000 JSON events on 8 partitions, one per customer (so the store
//! ends with 1,000,000 keys), through the repartition hop into the
//! aggregation. Prints:
//! - records/s of (a) a bare rdkafka pipe writing each input to two topics
//!   (the topology's repartition copy and its update), (b) customer-totals
//!   at_least_once, (c) customer-totals exactly_once_v2 (100 ms commits);
//!   ratios b/a and c/a (target c/a ≥ 0.6); CPU per record; medians over
//!   `WEIR_BENCH_ROUNDS` interleaved rounds (default 3);
//! - peak RSS of the exactly-once instance holding 1,000,000 keys at the
//!   default 256 MiB budget (target ≤ budget + 128 MiB);
//! - restart after kill -9: process start → partitions assigned (the group
//!   rejoin) and partitions assigned → every task running (target < 2 s);
//! - full restore (state dir deleted): records/s, against a bare
//!   read_committed consume of the same changelog (target ≥ 0.8×).
//!
//! Each instance runs one stream thread per core of the machine (override
//! with `WEIR_BENCH_THREADS`; the bare pipe and consume are one thread).
//!
//! A run's clock starts when it owns its partitions and stops when both its
//! input and its repartition topic are consumed and committed.
//! `WEIR_BENCH_EVENTS` changes the count.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use weir_benches::{
    bare_consume, bare_pipe, bench_var, committed, cpu_seconds, end_offsets, median, publish_input,
    release_binary, status_kib, stream_threads, TopologyRun, PARTITIONS,
};
use weir_testkit::{summary_counter, TestBroker};

/// Partitions of the repartition topic (the topology's own setting).
const REPARTITION_PARTITIONS: i32 = 8;
/// Tasks per instance: one per input partition plus one per repartition partition.
const TASKS: usize = (PARTITIONS + REPARTITION_PARTITIONS) as usize;

fn event(i: usize) -> Vec<u8> {
    serde_json::json!({
        "customer": format!("customer-{i:07}"),
        "amount": (i % 997) as i64 - 20,
        "id": format!("{i:08}"),
        "note": "benchmark purchase with some padding to reach about one hundred and sixty bytes",
    })
    .to_string()
    .into_bytes()
}

struct Totals<'a> {
    bin: &'a Path,
    bootstrap: &'a str,
    input: &'a str,
}

impl Totals<'_> {
    fn spawn(
        &self,
        app: &str,
        state: &Path,
        guarantee: &str,
        log: &Path,
    ) -> anyhow::Result<TopologyRun> {
        let threads = stream_threads().to_string();
        let env: Vec<(String, String)> = [
            ("WEIR_NUM_STREAM_THREADS", threads.as_str()),
            ("WEIR_APPLICATION_ID", app),
            ("WEIR_BOOTSTRAP_SERVERS", self.bootstrap),
            ("WEIR_STATE_DIR", &state.display().to_string()),
            ("WEIR_PROCESSING_GUARANTEE", guarantee),
            ("WEIR_COMMIT_INTERVAL_MS", "100"),
            ("WEIR_AUTO_CREATE_TOPICS", "true"),
            ("WEIR_AUTO_CREATE_PARTITIONS", &PARTITIONS.to_string()),
            ("WEIR_TOPICS__EVENTS", self.input),
            ("WEIR_TOPICS__CUSTOMER_TOTALS", &format!("{app}-out")),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        TopologyRun::spawn(self.bin, &env, log)
    }

    /// Runs the topology over the whole input: (records/s, CPU µs/record,
    /// the still running process).
    fn run(
        &self,
        app: &str,
        state: &Path,
        guarantee: &str,
        n: usize,
    ) -> anyhow::Result<(f64, f64, TopologyRun)> {
        let run = self.spawn(app, state, guarantee, &state.with_extension("log"))?;
        run.wait_for_log("partitions assigned", Duration::from_secs(120))?;
        let start = Instant::now();
        let cpu_start = cpu_seconds(run.pid());
        let repartition = format!("{app}-customer-totals-repartition");
        let deadline = start + Duration::from_secs(900);
        loop {
            let inputs_done = committed(self.bootstrap, app, self.input, PARTITIONS)? >= n as i64;
            if inputs_done {
                let end = end_offsets(self.bootstrap, &repartition, REPARTITION_PARTITIONS)?;
                let done = committed(self.bootstrap, app, &repartition, REPARTITION_PARTITIONS)?;
                // Under exactly-once a partition may end with a commit marker
                // that no consumed position passes.
                if end >= n as i64 && done >= end - i64::from(REPARTITION_PARTITIONS) {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "customer-totals ({guarantee}) did not finish in 900 s:\n{}",
                    run.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        let cpu_us = (cpu_seconds(run.pid()) - cpu_start) * 1e6 / n as f64;
        Ok((rate, cpu_us, run))
    }
}

/// The test broker's process id, when it runs on this machine.
fn broker_pid() -> Option<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", "crabka-broker"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Seconds since midnight of a log line's timestamp (`…THH:MM:SS.ffffffZ`).
fn log_time(line: &str) -> Option<f64> {
    let t = line.split('T').nth(1)?;
    let t = t.split('Z').next()?;
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// From spawn: (seconds until the assignment that started the last tasks —
/// the group rejoin, which on this broker waits for the killed member's
/// session to expire —, seconds from that assignment until every task runs).
fn time_to_running(run: &TopologyRun, spawned: Instant) -> anyhow::Result<(f64, f64)> {
    let deadline = Instant::now() + Duration::from_secs(900);
    while run.log_text().matches("task running").count() < TASKS {
        if Instant::now() > deadline {
            bail!("tasks not running after 900 s:\n{}", run.log_text());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let running = spawned.elapsed().as_secs_f64();
    let log = run.log_text();
    let lines: Vec<&str> = log.lines().collect();
    let last_running = lines
        .iter()
        .rposition(|l| l.contains("task running"))
        .expect("counted above");
    let assigned = lines[..last_running]
        .iter()
        .rev()
        .find(|l| l.contains("partitions assigned"))
        .and_then(|l| log_time(l));
    let restore = match (assigned, log_time(lines[last_running])) {
        (Some(a), Some(r)) => r - a,
        _ => bail!("no timestamps in the log"),
    };
    // Where the restart's time goes: opening the stores and listing the
    // changelogs (until the last "restoring" line), then replaying.
    if let (Some(a), Some(planned)) = (
        assigned,
        lines[..last_running]
            .iter()
            .rev()
            .find(|l| l.contains("restoring"))
            .and_then(|l| log_time(l)),
    ) {
        println!(
            "  (open stores + list changelogs {:.2} s, replay + persist {:.2} s)",
            planned - a,
            restore - (planned - a)
        );
    }
    Ok((running - restore, restore))
}

fn main() -> anyhow::Result<()> {
    let n = bench_var("WEIR_BENCH_EVENTS", 1_000_000);
    let rounds = bench_var("WEIR_BENCH_ROUNDS", 3);
    let bin = release_binary("customer-totals", "customer-totals")?;
    let bootstrap = TestBroker::shared().bootstrap().to_string();
    let (input, avg) = publish_input(&bootstrap, "bench-purchases", n, |i| {
        (format!("k{}", i % 9_973).into_bytes(), event(i))
    })?;
    println!(
        "customer_totals: {n} events (~{avg} B, {n} customers) on {PARTITIONS} partitions, {} stream thread(s) per instance (WEIR_BENCH_THREADS), broker {bootstrap}",
        stream_threads()
    );
    let totals = Totals {
        bin: &bin,
        bootstrap: &bootstrap,
        input: &input,
    };
    let dir = tempfile::tempdir()?;
    let (mut a, mut b, mut c, mut cpu_b, mut cpu_c) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last_eos = None;
    let broker_cpu = || broker_pid().map_or(f64::NAN, cpu_seconds);
    for round in 1..=rounds {
        let cpu0 = broker_cpu();
        a.push(bare_pipe(&bootstrap, &input, n, 2)?);
        let broker_a = (broker_cpu() - cpu0) * 1e6 / n as f64;
        let app_b = TestBroker::unique("bench-totals-alo");
        let (rb, ub, mut run_b) =
            totals.run(&app_b, &dir.path().join(&app_b), "at_least_once", n)?;
        run_b.stop();
        let commit_b = summary_counter(&run_b.log_text(), "commit_ms").unwrap_or(0) as f64 / 1e3;
        let phases = run_b
            .log_text()
            .split_whitespace()
            .rev()
            .find_map(|t| t.strip_prefix("commit_phases_ms="))
            .unwrap_or("?")
            .to_string();
        println!(
            "  round {round}: customer-totals at_least_once spent {commit_b:.1} s committing of {:.1} s (flush/offsets/commit/stores ms: {phases}; outputs unacknowledged when flushes began: {})",
            n as f64 / rb,
            summary_counter(&run_b.log_text(), "flush_backlog").unwrap_or(0)
        );
        let app_c = TestBroker::unique("bench-totals-eos");
        let cpu0 = broker_cpu();
        let (rc, uc, run_c) = totals.run(&app_c, &dir.path().join(&app_c), "exactly_once_v2", n)?;
        let broker_c = (broker_cpu() - cpu0) * 1e6 / n as f64;
        let rss_mib = status_kib(run_c.pid(), "VmHWM:") as f64 / 1024.0;
        println!(
            "  round {round}: a {:.0}  b {rb:.0}  c {rc:.0} records/s; CPU b {ub:.2}  c {uc:.2} us/record; broker CPU a {broker_a:.2}  c {broker_c:.2} us/record; peak RSS (c) {rss_mib:.0} MiB",
            a[round - 1]
        );
        b.push(rb);
        c.push(rc);
        cpu_b.push(ub);
        cpu_c.push(uc);
        last_eos = Some((app_c, run_c, rss_mib));
    }
    let (ma, mb, mc) = (median(a), median(b), median(c));
    println!("medians over {rounds} rounds:");
    println!("  (a) bare rdkafka pipe (2 outputs/input)   {ma:>10.0} records/s");
    println!("  (b) customer-totals, at_least_once        {mb:>10.0} records/s");
    println!("  (c) customer-totals, exactly_once_v2      {mc:>10.0} records/s");
    println!(
        "  b/a = {:.2}   c/a = {:.2}   (target c/a >= 0.6); CPU per record b {:.2} us, c {:.2} us",
        mb / ma,
        mc / ma,
        median(cpu_b),
        median(cpu_c)
    );

    let (app, mut run, rss_mib) = last_eos.expect("at least one round");
    println!("  peak RSS holding {n} keys at the default 256 MiB budget: {rss_mib:.0} MiB (target <= 384)");
    let state = dir.path().join(&app);
    // Restart after kill -9: only the tail is replayed.
    run.kill9();
    let spawned = Instant::now();
    let mut run = totals.spawn(
        &app,
        &state,
        "exactly_once_v2",
        &dir.path().join("restart.log"),
    )?;
    let (join_s, restore_s) = time_to_running(&run, spawned)?;
    run.stop();
    println!(
        "restart after kill -9 holding {n} keys: start → the final assignment {join_s:.2} s (group rejoin), that assignment → all {TASKS} tasks running {restore_s:.2} s (target < 2 s); replayed {} records",
        summary_counter(&run.log_text(), "restored").unwrap_or(0)
    );
    // Full restore: the state dir deleted.
    std::fs::remove_dir_all(&state)?;
    let spawned = Instant::now();
    let mut run = totals.spawn(
        &app,
        &state,
        "exactly_once_v2",
        &dir.path().join("full.log"),
    )?;
    let (_, full_s) = time_to_running(&run, spawned)?;
    run.stop();
    let restored = summary_counter(&run.log_text(), "restored").unwrap_or(0);
    let changelog = format!("{app}-customer-totals-changelog");
    let (records, bare) = bare_consume(&bootstrap, &changelog, REPARTITION_PARTITIONS)?;
    let rate = restored as f64 / full_s;
    println!(
        "full restore: {restored} records in {full_s:.2} s = {rate:.0} records/s; bare read_committed consume of the changelog: {records} records, {bare:.0} records/s; ratio {:.2} (target >= 0.8)",
        rate / bare
    );
    Ok(())
}
