//! Per-record overhead of the DSL: a 5-operator chain (filter → map_values →
//! map → flat_map → peek, then a sink) driven through the
//! TopologyTestDriver, i.e. the production TaskExecutor plus the driver's
//! bookkeeping. Small values (string key, bincode u64), so the figure is the
//! DSL's cost, not a codec's. Target: ≥ 2 M records/s on one core.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use weir::{Bincode, Codec, Str, Topology};
use weir_core::Record;
use weir_testkit::TopologyTestDriver;

const BATCH: usize = 10_000;

fn chain() -> Topology {
    let b = Topology::builder();
    b.stream("in", Str, Bincode::<u64>::new())
        .filter(|_, v| v % 16 != 15)
        .map_values(|v: u64| v.wrapping_mul(3))
        .map(|k: String, v: u64| (k, v + 1))
        .flat_map(|k: String, v: u64| std::iter::once((k, v)))
        .peek(|_, v| {
            std::hint::black_box(v);
        })
        .to("out");
    b.build().expect("valid topology")
}

fn bench(c: &mut Criterion) {
    let driver = TopologyTestDriver::new(chain());
    let inputs: Vec<Record> = (0..BATCH as u64)
        .map(|i| {
            Record::new(
                "in",
                Some(format!("key-{}", i % 1000).into_bytes()),
                Some(Bincode::<u64>::new().encode(&i).expect("encodes")),
                i as i64,
            )
        })
        .collect();
    let mut g = c.benchmark_group("dsl");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("five_operator_chain", |b| {
        // Building the owned input records is the caller's work: untimed.
        b.iter_batched(
            || inputs.clone(),
            |batch| {
                for r in batch {
                    driver.pipe_raw(r);
                }
                std::hint::black_box(driver.read_raw("out").len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
