//! Durable timers on RocksDB: 1,000,000 pending stream-time timers set by
//! a `process` node (one per record, deadlines in shuffled order, a commit
//! every 10,000 records), then 100,000 of them made due and fired in the
//! runtime's chunks (10,000 per transaction, each chunk committed). Prints
//! the registering cost (µs per timer, record processing included), the
//! firing rate (timers/s, each forwarding one output), and the peak RSS
//! growth. `WEIR_BENCH_TIMERS` and `WEIR_BENCH_DUE` change the counts.

use std::time::Instant;

use weir::core::{Headers, ProcessError, Record};
use weir::dsl::TaskExecutor;
use weir::prelude::*;
use weir::state::{RocksDbBackend, StateBudget, TaskState};

struct SetTimer;

impl Processor<String, i64, String, i64> for SetTimer {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        key: String,
        deadline: i64,
    ) -> Result<(), ProcessError> {
        ctx.schedule_at(Clock::Stream, deadline, key.as_bytes(), b"payload")
    }

    fn on_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        ctx.forward(
            String::from_utf8_lossy(&timer.key).into_owned(),
            timer.deadline,
        );
        Ok(())
    }
}

fn kib(field: &str) -> u64 {
    weir_benches::status_kib(std::process::id(), field)
}

fn main() {
    let n = weir_benches::bench_var("WEIR_BENCH_TIMERS", 1_000_000);
    let due = weir_benches::bench_var("WEIR_BENCH_DUE", 100_000).min(n);
    let b = Topology::builder();
    let timers = b.timer_store("bench-timers");
    b.stream("in", Str, Json::<i64>::new())
        .process_with("set", &[&timers], || SetTimer)
        .with_codecs(Str, Json::<i64>::new())
        .to("fired");
    let topology = b.build().expect("valid topology");
    let dir = tempfile::tempdir().expect("temp dir");
    let budget = StateBudget::from_mb(256);
    let before = kib("VmRSS:");
    let mut exec = TaskExecutor::new(topology, 0, 0);
    let names = exec.store_names().to_vec();
    let backend = RocksDbBackend::open(dir.path(), &names, &budget).expect("open RocksDB");
    let mut state = TaskState::new(Box::new(backend), names);
    let base = 1_000_000_000_000i64;
    let mut out = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        // A bijection of 0..n when n's only prime factors are 2 and 5.
        let offset = ((i as u64 * 7_919) % n as u64) as i64;
        let record = Record {
            topic: "in".into(),
            partition: 0,
            offset: i as i64,
            key: Some(format!("timer-{i:09}").into_bytes()),
            value: Some((base + 1_000 + offset).to_string().into_bytes()),
            headers: Headers::new(),
            timestamp: base,
        };
        exec.process(&record, &mut out, &mut state)
            .expect("schedules");
        if i % 10_000 == 9_999 {
            state.commit(Vec::new()).expect("commit");
            exec.committed();
        }
    }
    state.commit(Vec::new()).expect("commit");
    exec.committed();
    let register_s = started.elapsed().as_secs_f64();
    // `due` timers fall due: deadlines base+1000 .. base+1000+due-1.
    exec.advance_stream_time(base + 1_000 + due as i64 - 1);
    let started = Instant::now();
    let (mut fired, mut outputs, mut chunks) = (0, 0, 0);
    while exec.has_due_timers() {
        let run = exec
            .fire_timers(&mut out, &mut state, 10_000)
            .expect("fires");
        assert!(run.failed.is_empty());
        if run.fired == 0 {
            break;
        }
        fired += run.fired;
        outputs += out.len();
        out.clear();
        state.commit(Vec::new()).expect("commit");
        exec.committed();
        chunks += 1;
    }
    let fire_s = started.elapsed().as_secs_f64();
    assert_eq!(fired, due, "exactly the due timers fire");
    assert_eq!(outputs, due);
    let peak_mb = kib("VmHWM:").saturating_sub(before) / 1024;
    println!(
        "timers: {n} pending set in {register_s:.1} s: {:.2} µs per timer ({:.0} timers/s, processing and commits included)",
        register_s * 1e6 / n as f64,
        n as f64 / register_s
    );
    println!(
        "timers: {due} due fired in {fire_s:.2} s in {chunks} chunks: {:.0} timers/s (one output each)",
        due as f64 / fire_s
    );
    println!("timers: peak RSS growth {peak_mb} MiB (RocksDB budget 256 MiB)");
}
