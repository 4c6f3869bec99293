//! order-workflow end to end on the test broker (or `WEIR_TEST_BOOTSTRAP`):
//! 500,000 orders and 450,000 payments (90 % of orders paid, each right
//! after its order) on 8 partitions each. Prints records/s of (a) a bare
//! rdkafka pipe over the orders (one output per input) and (c) order-workflow
//! exactly_once_v2 (orders + payments per second, 100 ms commits), the
//! ratio c/a and CPU per record; medians over `WEIR_BENCH_ROUNDS`
//! interleaved rounds (default 3). A run's clock starts when it owns its
//! partitions and stops when both inputs are consumed and committed.
//! `WEIR_BENCH_EVENTS` changes the order count; each instance runs one
//! stream thread per core (`WEIR_BENCH_THREADS`).

use std::time::{Duration, Instant};

use anyhow::bail;
use weir_benches::{
    bare_pipe, bench_var, committed, cpu_seconds, median, publish_input, release_binary,
    stream_threads, TopologyRun, PARTITIONS,
};
use weir_testkit::{summary_counter, TestBroker};

fn main() -> anyhow::Result<()> {
    let n = bench_var("WEIR_BENCH_EVENTS", 500_000);
    let rounds = bench_var("WEIR_BENCH_ROUNDS", 3);
    let paid = n * 9 / 10;
    let bin = release_binary("order-workflow", "order-workflow")?;
    let bootstrap = TestBroker::shared().bootstrap().to_string();
    let id = |i: usize| format!("order-{i:08}");
    let (orders, avg) = publish_input(&bootstrap, "bench-orders", n, |i| {
        let v =
            serde_json::json!({"id": id(i), "amount": (i % 500) as f64 + 0.5, "customer": i % 977});
        (id(i).into_bytes(), v.to_string().into_bytes())
    })?;
    let (payments, _) = publish_input(&bootstrap, "bench-payments", paid, |i| {
        let v = serde_json::json!({"order_id": id(i), "amount": (i % 500) as f64 + 0.5});
        (id(i).into_bytes(), v.to_string().into_bytes())
    })?;
    let total = n + paid;
    println!(
        "order_workflow: {n} orders (~{avg} B) and {paid} payments on {PARTITIONS} partitions each, {} stream thread(s) per instance, broker {bootstrap}",
        stream_threads()
    );
    let dir = tempfile::tempdir()?;
    let (mut a, mut c, mut cpu_c) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        a.push(bare_pipe(&bootstrap, &orders, n, 1)?);
        let app = TestBroker::unique("bench-workflow-eos");
        let state = dir.path().join(&app);
        let threads = stream_threads().to_string();
        let env: Vec<(String, String)> = [
            ("WEIR_NUM_STREAM_THREADS", threads.as_str()),
            ("WEIR_APPLICATION_ID", app.as_str()),
            ("WEIR_BOOTSTRAP_SERVERS", bootstrap.as_str()),
            ("WEIR_STATE_DIR", &state.display().to_string()),
            ("WEIR_PROCESSING_GUARANTEE", "exactly_once_v2"),
            ("WEIR_COMMIT_INTERVAL_MS", "100"),
            ("WEIR_AUTO_CREATE_TOPICS", "true"),
            ("WEIR_TOPICS__ORDERS", orders.as_str()),
            ("WEIR_TOPICS__PAYMENTS", payments.as_str()),
            ("WEIR_TOPICS__ORDER_OUTCOMES", &format!("{app}-out")),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut run = TopologyRun::spawn(&bin, &env, &state.with_extension("log"))?;
        run.wait_for_log("partitions assigned", Duration::from_secs(120))?;
        let start = Instant::now();
        let cpu_start = cpu_seconds(run.pid());
        let deadline = start + Duration::from_secs(900);
        while committed(&bootstrap, &app, &orders, PARTITIONS)? < n as i64
            || committed(&bootstrap, &app, &payments, PARTITIONS)? < paid as i64
        {
            if Instant::now() > deadline {
                bail!(
                    "order-workflow did not finish in 900 s:\n{}",
                    run.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rate = total as f64 / start.elapsed().as_secs_f64();
        let cpu_us = (cpu_seconds(run.pid()) - cpu_start) * 1e6 / total as f64;
        run.stop();
        println!(
            "  round {round}: a {:.0}  c {rate:.0} records/s; CPU c {cpu_us:.2} us/record; produced by c: {}",
            a[round - 1],
            summary_counter(&run.log_text(), "produced").unwrap_or(0)
        );
        c.push(rate);
        cpu_c.push(cpu_us);
    }
    let (ma, mc) = (median(a), median(c));
    println!("medians over {rounds} rounds:");
    println!("  (a) bare rdkafka pipe (1 output/input)     {ma:>10.0} records/s");
    println!(
        "  (c) order-workflow, exactly_once_v2        {mc:>10.0} records/s (orders + payments)"
    );
    println!(
        "  c/a = {:.2}; CPU per record c {:.2} us",
        mc / ma,
        median(cpu_c)
    );
    Ok(())
}
