//! Workflow waits on RocksDB: 1,000,000 pending waits registered by
//! `await_event` (one A record each, a commit every 10,000), then 100,000 of
//! them matched by B records, then 100,000 others timed out (fired in the
//! runtime's chunks of 10,000 per transaction, each committed). Prints the
//! cost of registering one (record processing included), the matching rate,
//! the timeout rate and the peak RSS growth. `WEIR_BENCH_WAITS` and
//! `WEIR_BENCH_DUE` change the counts.

use std::time::{Duration, Instant};

use weir::core::{Headers, Record};
use weir::dsl::{Outcome, TaskExecutor, Wait};
use weir::prelude::*;
use weir::state::{RocksDbBackend, StateBudget, TaskState};

/// Effectively no timeout while matching: waits time out only when the
/// benchmark moves stream time past it.
const TIMEOUT_MS: i64 = 1_000_000_000;

fn record(topic: &str, i: usize, ts: i64) -> Record {
    Record {
        topic: topic.into(),
        partition: 0,
        offset: i as i64,
        key: Some(format!("order-{i:09}").into_bytes()),
        value: Some((i % 1_000).to_string().into_bytes()),
        headers: Headers::new(),
        timestamp: ts,
    }
}

fn main() {
    let n = weir_benches::bench_var("WEIR_BENCH_WAITS", 1_000_000);
    let due = weir_benches::bench_var("WEIR_BENCH_DUE", 100_000).min(n / 2);
    let b = Topology::builder();
    let orders = b.stream("a", Str, Json::<i64>::new());
    let payments = b.stream("b", Str, Json::<i64>::new());
    orders
        .await_event(
            &payments,
            Wait::named("bench")
                .when(|a: &i64, b: &i64| a == b)
                .timeout(Duration::from_millis(TIMEOUT_MS as u64)),
        )
        .map_values(|o| matches!(o, Outcome::Matched(..)).to_string())
        .with_value_codec(Str)
        .to("outcomes");
    let topology = b.build().expect("valid topology");
    let dir = tempfile::tempdir().expect("temp dir");
    let budget = StateBudget::from_mb(256);
    let before = weir_benches::status_kib(std::process::id(), "VmRSS:");
    let mut exec = TaskExecutor::new(topology, 0, 0);
    let names = exec.store_names().to_vec();
    let backend = RocksDbBackend::open(dir.path(), &names, &budget).expect("open RocksDB");
    let mut state = TaskState::new(Box::new(backend), names);
    let base = 1_000_000_000_000i64;
    let mut out = Vec::new();
    let commit = |exec: &mut TaskExecutor, state: &mut TaskState| {
        state.commit(Vec::new()).expect("commit");
        exec.committed();
    };
    let started = Instant::now();
    for i in 0..n {
        exec.process(&record("a", i, base + i as i64), &mut out, &mut state)
            .expect("registers");
        if i % 10_000 == 9_999 {
            commit(&mut exec, &mut state);
        }
    }
    commit(&mut exec, &mut state);
    let register_s = started.elapsed().as_secs_f64();
    assert!(out.is_empty());
    // The newest `due` waits are matched.
    let started = Instant::now();
    for i in n - due..n {
        exec.process(&record("b", i, base + i as i64), &mut out, &mut state)
            .expect("matches");
        if i % 10_000 == 9_999 {
            commit(&mut exec, &mut state);
        }
    }
    commit(&mut exec, &mut state);
    let match_s = started.elapsed().as_secs_f64();
    assert_eq!(out.len(), due, "each B matched its wait");
    out.clear();
    // The oldest `due` waits time out.
    exec.advance_stream_time(base + TIMEOUT_MS + due as i64);
    let started = Instant::now();
    let mut fired = 0;
    while exec.has_due_timers() {
        let run = exec
            .fire_timers(&mut out, &mut state, 10_000)
            .expect("fires");
        if run.fired == 0 {
            break;
        }
        fired += run.fired;
        commit(&mut exec, &mut state);
    }
    let fire_s = started.elapsed().as_secs_f64();
    assert_eq!(fired, due, "exactly the waits past their timeout");
    assert_eq!(out.len(), due);
    let peak_mb =
        weir_benches::status_kib(std::process::id(), "VmHWM:").saturating_sub(before) / 1024;
    println!(
        "waits: {n} pending registered in {register_s:.1} s: {:.2} µs per wait ({:.0}/s, processing and commits included)",
        register_s * 1e6 / n as f64,
        n as f64 / register_s
    );
    println!(
        "waits: {due} matched in {match_s:.2} s: {:.0} matches/s",
        due as f64 / match_s
    );
    println!(
        "waits: {due} timed out in {fire_s:.2} s: {:.0} timeouts/s",
        due as f64 / fire_s
    );
    println!("waits: peak RSS growth {peak_mb} MiB (RocksDB budget 256 MiB)");
}
