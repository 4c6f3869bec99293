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
//! | `weir_event_processing_time_seconds` | histogram | (per input record, through the topology: the process latency) |
//! | `weir_commit_latency_seconds` | histogram | |
//! | `weir_event_delivery_success_rate` | gauge | (input records processed without a dead letter, over all processed; 1 before any) |
//! | `weir_queue_depth` | gauge | (records waiting in the assigned input partitions: the lag's sum) |
//! | `weir_dead_letter_queue_size` | gauge | (dead letters in the dead-letter topic, counted by reading it; absent until read to its end once) |
//!
//! The last four are the ones the event-bus design asked for by name.
//!
//! With ingress (`POST /v1/events`): `weir_ingress_requests_total`
//! (counter, `outcome`), `weir_ingress_claims_read_total` (counter) and
//! `weir_ingress_accept_seconds` (histogram).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::proto::{self, Bucket, Metric, MetricFamily, MetricType};
use prometheus::{Counter, Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use weir_runtime::{HistogramSnapshot, LocalStores, RuntimeStats};

use crate::ingress::Ingress;

/// The registry as Prometheus text.
///
/// # Errors
/// A `prometheus` error (a name or label clash — a bug).
pub fn render(
    stats: &RuntimeStats,
    stores: &LocalStores,
    ingress: Option<&Ingress>,
) -> prometheus::Result<String> {
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
            "What a topology node's processor counted (retries, retries_exhausted, early_dropped, late_windows).",
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

    let consumed = g(&stats.consumed);
    let seed_gauges = [
        (
            "weir_event_delivery_success_rate",
            "Input records processed without a dead letter, over all processed (1 before any).",
            Some(if consumed == 0 {
                1.0
            } else {
                consumed.saturating_sub(g(&stats.dead_lettered)) as f64 / consumed as f64
            }),
        ),
        (
            "weir_queue_depth",
            "Records waiting in this instance's assigned input partitions (the sum of their lag).",
            Some(stats.lag().values().map(|&n| n.max(0)).sum::<i64>() as f64),
        ),
        (
            "weir_dead_letter_queue_size",
            "Dead letters in the dead-letter topic (committed records, counted as they arrive).",
            stats.dead_letter_queue_size().map(|n| n as f64),
        ),
    ];
    for (name, help, v) in seed_gauges {
        if let Some(v) = v {
            let gauge = prometheus::Gauge::new(name, help)?;
            gauge.set(v);
            r.register(Box::new(gauge))?;
        }
    }

    let mut families = r.gather();
    families.push(histogram(
        "weir_event_processing_time_seconds",
        "How long each input record took through the topology (decode, operators, encode; not the commit).",
        &stats.process_latency.snapshot(),
    ));
    families.push(histogram(
        "weir_commit_latency_seconds",
        "How long each commit took (changelogs, flush, offsets, commit, store batch).",
        &stats.commit_latency.snapshot(),
    ));
    if let Some(i) = ingress {
        families.extend(ingress_families(i)?);
    }
    encode(families)
}

fn encode(mut families: Vec<MetricFamily>) -> prometheus::Result<String> {
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&families, &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The ingress series: requests by outcome, and the latency of accepted
/// ones.
fn ingress_families(i: &Ingress) -> prometheus::Result<Vec<MetricFamily>> {
    let r = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "weir_ingress_requests_total",
            "POST /v1/events requests by outcome (accepted, duplicate, schema_invalid, unavailable, …).",
        ),
        &["outcome"],
    )?;
    for (outcome, n) in i.counts() {
        requests.with_label_values(&[outcome.label()]).inc_by(n);
    }
    r.register(Box::new(requests))?;
    let claims = IntCounter::new(
        "weir_ingress_claims_read_total",
        "Accepted idempotency keys read from the shared <application_id>-ingress-ids topic (this instance's own included).",
    )?;
    claims.inc_by(i.claims_read());
    r.register(Box::new(claims))?;
    let mut families = r.gather();
    families.push(histogram(
        "weir_ingress_accept_seconds",
        "How long accepted POST /v1/events requests took, to the broker's acknowledgement.",
        &i.latency().snapshot(),
    ));
    Ok(families)
}

/// The metrics of a standalone ingress (`weir ingress`).
///
/// # Errors
/// A `prometheus` error (a name or label clash — a bug).
pub fn render_ingress(i: &Ingress) -> prometheus::Result<String> {
    encode(ingress_families(i)?)
}

/// A histogram family from the runtime's buckets.
fn histogram(name: &str, help: &str, snap: &HistogramSnapshot) -> MetricFamily {
    let buckets = snap
        .buckets
        .iter()
        .map(|&(bound, n)| {
            let mut b = Bucket::default();
            b.set_upper_bound(bound);
            b.set_cumulative_count(n);
            b
        })
        .collect();
    let mut h = proto::Histogram::default();
    h.set_sample_count(snap.count);
    h.set_sample_sum(snap.sum_seconds);
    h.set_bucket(buckets);
    let mut m = Metric::default();
    m.set_histogram(h);
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(MetricType::HISTOGRAM);
    f.set_metric(vec![m]);
    f
}
