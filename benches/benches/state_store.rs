//! The RocksDB key-value store through a task's pending write set: puts/s
//! and gets/s (pending hits and committed hits), and the cost of a commit
//! (one write batch of 10,000 changed keys). Keys ~12 B, values 100 B.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use weir::state::{KeyValueStore, RocksDbBackend, StateBudget, TaskState};

const N: usize = 10_000;

fn open(dir: &std::path::Path, budget: &StateBudget) -> TaskState {
    let names = vec!["s".to_string()];
    let backend = RocksDbBackend::open(dir, &names, budget).expect("open RocksDB");
    TaskState::new(Box::new(backend), names)
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let budget = StateBudget::from_mb(256);
    let mut state = open(dir.path(), &budget);
    let value = vec![7u8; 100];
    // 100,000 committed keys to read.
    for batch in 0..10 {
        for i in 0..N {
            state.store(0).put(&key(batch * N + i), &value).unwrap();
        }
        state.commit(Vec::new()).unwrap();
    }
    let mut g = c.benchmark_group("state_store");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("put_10k_pending", |b| {
        b.iter_batched(
            || (),
            |()| {
                for i in 0..N {
                    state.store(0).put(&key(i), &value).unwrap();
                }
                state.abort();
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("get_10k_committed", |b| {
        b.iter(|| {
            for i in 0..N {
                let k = key((i * 7_919) % (10 * N));
                std::hint::black_box(state.store(0).get(&k).unwrap());
            }
        })
    });
    for i in 0..N {
        state.store(0).put(&key(i), &value).unwrap();
    }
    g.bench_function("get_10k_pending", |b| {
        b.iter(|| {
            for i in 0..N {
                std::hint::black_box(state.store(0).get(&key(i)).unwrap());
            }
        })
    });
    state.abort();
    g.bench_function("commit_10k_changed_keys", |b| {
        // Only the commit (one write batch) is timed, not the puts before it.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for i in 0..N {
                    state.store(0).put(&key(i), &value).unwrap();
                }
                let t = std::time::Instant::now();
                state.commit(Vec::new()).unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
