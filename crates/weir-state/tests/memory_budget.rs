//! Memory: many keys across 8 tasks' RocksDB stores stay within the state
//! memory budget plus 128 MiB of process RSS (a smaller count and budget
//! than `make bench`'s 1,000,000 keys at 256 MiB, with large values so the
//! data far exceeds the budget). Without the shared budget, RocksDB's
//! defaults (64 MiB memtables per store, a cache per database) would not
//! fit. Runs as its own test binary: RSS is per process.

#![cfg(feature = "rocksdb")]

use weir_state::{KeyValueStore, RocksDbBackend, StateBudget, TaskState};

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("a VmRSS/VmHWM line")
}

#[test]
fn eight_tasks_stay_within_the_budget() {
    const TASKS: usize = 8;
    const KEYS_PER_TASK: usize = 50_000;
    const VALUE: usize = 1_000;
    const BUDGET_MB: u64 = 32;
    let dir = tempfile::tempdir().unwrap();
    let budget = StateBudget::from_mb(BUDGET_MB);
    let before = rss_kib("VmRSS:");
    let names = vec!["store".to_string()];
    let mut tasks: Vec<TaskState> = (0..TASKS)
        .map(|t| {
            let path = dir.path().join(format!("task-{t}"));
            let backend = RocksDbBackend::open(&path, &names, &budget).unwrap();
            TaskState::new(Box::new(backend), names.clone())
        })
        .collect();
    let value = vec![0x5au8; VALUE];
    // Writes in commit-sized batches, as a running task does.
    for batch in 0..KEYS_PER_TASK / 1_000 {
        for (t, state) in tasks.iter_mut().enumerate() {
            for i in 0..1_000 {
                let key = format!("t{t}-k{:08}", batch * 1_000 + i);
                state.store(0).put(key.as_bytes(), &value).unwrap();
            }
            state.commit(Vec::new()).unwrap();
        }
    }
    // Reads all over the key space fill the block cache.
    for (t, state) in tasks.iter_mut().enumerate() {
        for i in (0..KEYS_PER_TASK).step_by(7) {
            let key = format!("t{t}-k{i:08}");
            assert_eq!(
                state.store(0).get(key.as_bytes()).unwrap().map(|v| v.len()),
                Some(VALUE)
            );
        }
    }
    let peak = rss_kib("VmHWM:");
    let grown_mb = (peak.saturating_sub(before)) / 1024;
    let data_mb = (TASKS * KEYS_PER_TASK * VALUE) >> 20;
    eprintln!(
        "data {data_mb} MiB, budget {BUDGET_MB} MiB, peak RSS growth {grown_mb} MiB, charged to budget now {} MiB",
        budget.usage() >> 20
    );
    assert!(
        data_mb as u64 > 2 * (BUDGET_MB + 128),
        "the data must dwarf the limit"
    );
    assert!(
        grown_mb <= BUDGET_MB + 128,
        "peak RSS grew {grown_mb} MiB, over the budget {BUDGET_MB} MiB + 128 MiB"
    );
}
