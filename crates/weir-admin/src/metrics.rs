//! Every metric the endpoint exposes, with its help text, in one place; all
//! read from the instance's registry ([`RuntimeStats`]) at each scrape.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `weir_records_consumed_total` | counter | |
//! | `weir_records_produced_total` | counter | |
//! | `weir_records_dead_lettered_total` | counter | |
//! | `weir_late_records_total` | counter | |
//! | `weir_timers_fired_total` | counter | |
//! | `weir_commits_total` | counter | |
//! | `weir_transaction_aborts_total` | counter | |
//! | `weir_rejoins_total` | counter | |
//! | `weir_commit_seconds_total` | counter | |
//! | `weir_restore_records_total` | counter | |
//! | `weir_restored_records_total` | counter | |
//! | `weir_node_records_in_total` | counter | `node` |
//! | `weir_node_records_out_total` | counter | `node` |
//! | `weir_node_dead_lettered_total` | counter | `node` |
//! | `weir_node_events_total` | counter | `node`, `event` (a processor's counter: `retries`, `retries_exhausted`) |
//! | `weir_node_gauge` | gauge | `node`, `gauge` (`breaker_open`, `pending_waits`) |
//! | `weir_consumer_lag` | gauge | `topic`, `partition` |
//! | `weir_tasks_restoring` | gauge | |
//! | `weir_store_keys_approximate` | gauge | `store` (over the partitions held here; absent while one restores) |

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{Counter, Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use weir_runtime::{LocalStores, RuntimeStats};

/// The registry as Prometheus text.
///
/// # Errors
/// A `prometheus` error (a name or label clash — a bug).
pub fn render(stats: &RuntimeStats, stores: &LocalStores) -> prometheus::Result<String> {
    let r = Registry::new();
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let counters: [(&str, &str, u64); 10] = [
        (
            "weir_records_consumed_total",
            "Input records processed.",
            g(&stats.consumed),
        ),
        (
            "weir_records_produced_total",
            "Output records sent, dead letters included.",
            g(&stats.produced),
        ),
        (
            "weir_records_dead_lettered_total",
            "Input records dead-lettered.",
            g(&stats.dead_lettered),
        ),
        (
            "weir_late_records_total",
            "Records that arrived after their windows closed.",
            g(&stats.late),
        ),
        (
            "weir_timers_fired_total",
            "Timers and punctuations fired.",
            g(&stats.timers_fired),
        ),
        (
            "weir_commits_total",
            "Transactions (or offset commits) committed.",
            g(&stats.commits),
        ),
        (
            "weir_transaction_aborts_total",
            "Transactions aborted.",
            g(&stats.aborts),
        ),
        (
            "weir_rejoins_total",
            "Times a stream thread lost its producer and rejoined.",
            g(&stats.rejoins),
        ),
        (
            "weir_restore_records_total",
            "Changelog records to replay, over every restoration planned.",
            g(&stats.restore_total),
        ),
        (
            "weir_restored_records_total",
            "Changelog records replayed into stores.",
            g(&stats.restored),
        ),
    ];
    for (name, help, v) in counters {
        let c = IntCounter::new(name, help)?;
        c.inc_by(v);
        r.register(Box::new(c))?;
    }
    let commit = Counter::new(
        "weir_commit_seconds_total",
        "Time spent committing, in seconds.",
    )?;
    commit.inc_by(g(&stats.commit_micros) as f64 / 1e6);
    r.register(Box::new(commit))?;

    let nodes = stats.nodes();
    let per_node = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["node"]);
    let rin = per_node(
        "weir_node_records_in_total",
        "Records a topology node received.",
    )?;
    let rout = per_node(
        "weir_node_records_out_total",
        "Records a topology node passed on (a sink: wrote).",
    )?;
    let dead = per_node(
        "weir_node_dead_lettered_total",
        "Records dead-lettered by a failure in a topology node.",
    )?;
    let events = IntCounterVec::new(
        Opts::new(
            "weir_node_events_total",
            "What a topology node's processor counted (retries, retries_exhausted).",
        ),
        &["node", "event"],
    )?;
    for (node, t) in &nodes {
        rin.with_label_values(&[node]).inc_by(t.records_in);
        rout.with_label_values(&[node]).inc_by(t.records_out);
        dead.with_label_values(&[node]).inc_by(t.dead_lettered);
        for (event, n) in &t.counters {
            events.with_label_values(&[node, event]).inc_by(*n);
        }
    }
    for c in [rin, rout, dead, events] {
        r.register(Box::new(c))?;
    }
    let gauges = GaugeVec::new(
        Opts::new(
            "weir_node_gauge",
            "A topology node's gauge, summed over the instance's tasks (breaker_open, pending_waits).",
        ),
        &["node", "gauge"],
    )?;
    for (node, gs) in stats.gauges() {
        for (name, v) in gs {
            gauges.with_label_values(&[&node, &name]).set(v as f64);
        }
    }
    r.register(Box::new(gauges))?;
    let lag = GaugeVec::new(
        Opts::new(
            "weir_consumer_lag",
            "Records between an assigned input partition's end and the consumer's position.",
        ),
        &["topic", "partition"],
    )?;
    for (tp, n) in stats.lag() {
        let (topic, partition) = tp.rsplit_once('/').unwrap_or((tp.as_str(), ""));
        lag.with_label_values(&[topic, partition]).set(n as f64);
    }
    r.register(Box::new(lag))?;
    let restoring = IntGauge::new("weir_tasks_restoring", "Tasks restoring their stores now.")?;
    restoring.set(stats.tasks_restoring() as i64);
    r.register(Box::new(restoring))?;
    let sizes = GaugeVec::new(
        Opts::new(
            "weir_store_keys_approximate",
            "An estimate of a store's keys over the partitions this instance holds.",
        ),
        &["store"],
    )?;
    for store in stores.stores() {
        if let Ok(n) = stores.approximate_len(&store) {
            sizes.with_label_values(&[&store]).set(n as f64);
        }
    }
    r.register(Box::new(sizes))?;

    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&r.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
