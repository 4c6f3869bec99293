//! Peak RSS with 1,000,000 keys across 8 tasks' RocksDB stores at the
//! default budget (256 MiB): target ≤ budget + 128 MiB. Values of 200 B, so
//! the data (~200 MiB of values) and RocksDB's default settings would not
//! fit; the shared cache and write-buffer manager keep it bounded.
//! Prints the data size, the peak RSS growth and what is charged to the
//! budget. `WEIR_BENCH_KEYS` changes the key count.

use weir::state::{KeyValueStore, RocksDbBackend, StateBudget, TaskState};

fn kib(field: &str) -> u64 {
    weir_benches::status_kib(std::process::id(), field)
}

fn main() {
    let keys: usize = std::env::var("WEIR_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tasks = 8;
    let budget_mb = 256;
    let dir = tempfile::tempdir().expect("temp dir");
    let budget = StateBudget::from_mb(budget_mb);
    let before = kib("VmRSS:");
    let names = vec!["totals".to_string()];
    let mut states: Vec<TaskState> = (0..tasks)
        .map(|t| {
            let backend = RocksDbBackend::open(&dir.path().join(t.to_string()), &names, &budget)
                .expect("open RocksDB");
            TaskState::new(Box::new(backend), names.clone())
        })
        .collect();
    let value = vec![3u8; 200];
    let start = std::time::Instant::now();
    for i in 0..keys {
        let state = &mut states[i % tasks];
        state
            .store(0)
            .put(format!("customer-{i:09}").as_bytes(), &value)
            .unwrap();
        if i % 80_000 == 79_999 {
            for s in &mut states {
                s.commit(Vec::new()).unwrap();
            }
        }
    }
    for s in &mut states {
        s.commit(Vec::new()).unwrap();
    }
    let write_s = start.elapsed().as_secs_f64();
    // Read every 3rd key back (fills the block cache).
    let mut found = 0;
    for i in (0..keys).step_by(3) {
        let state = &mut states[i % tasks];
        found += state
            .store(0)
            .get(format!("customer-{i:09}").as_bytes())
            .unwrap()
            .is_some() as usize;
    }
    assert_eq!(found, keys.div_ceil(3));
    let peak_mb = kib("VmHWM:").saturating_sub(before) / 1024;
    println!(
        "state_memory: {keys} keys in {tasks} tasks, {:.0} MiB of values, written in {write_s:.1} s ({:.0} puts/s incl. commits)",
        (keys * 200) as f64 / (1 << 20) as f64,
        keys as f64 / write_s
    );
    println!(
        "state_memory: budget {budget_mb} MiB, peak RSS growth {peak_mb} MiB (target <= {} MiB), charged to the budget now {} MiB",
        budget_mb + 128,
        budget.usage() >> 20
    );
}
