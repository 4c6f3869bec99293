//! The monitoring topic: with `monitoring_enabled`, every instance writes
//! its counters as one JSON record every `monitoring_interval_ms` (and a
//! last one when it stops) to `<application_id>-monitoring`, keyed by its
//! instance id:
//!
//! ```json
//! {"application_id": "router", "instance_id": "…", "timestamp": 1764600000000,
//!  "counters": {"consumed": 1200, "produced": 2400, "dead_lettered": 3, …}}
//! ```
//!
//! The counters are [`RuntimeStats`] — the one registry the shutdown
//! summary reads too (and the Prometheus endpoint will). A failed write is
//! logged and the next interval tries again; monitoring never stops
//! processing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::config::Config;
use crate::kafka::producer_config;
use crate::stats::RuntimeStats;

/// `<application_id>-monitoring`.
pub fn monitoring_topic(application_id: &str) -> String {
    format!("{application_id}-monitoring")
}

/// One report: the instance and its counters now.
pub(crate) fn report(
    application_id: &str,
    instance_id: &str,
    now_ms: i64,
    stats: &RuntimeStats,
) -> serde_json::Value {
    serde_json::json!({
        "application_id": application_id,
        "instance_id": instance_id,
        "timestamp": now_ms,
        "counters": stats.counters(),
    })
}

/// Starts the reporter thread when monitoring is enabled; it ends after a
/// last report once `shutdown` is set.
pub(crate) fn start(
    cfg: Arc<Config>,
    instance_id: String,
    stats: Arc<RuntimeStats>,
    shutdown: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    if !cfg.monitoring_enabled {
        return None;
    }
    let spawned = std::thread::Builder::new()
        .name("weir-monitoring".into())
        .spawn(move || run(&cfg, &instance_id, &stats, &shutdown));
    match spawned {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the monitoring reporter");
            None
        }
    }
}

fn run(cfg: &Config, instance_id: &str, stats: &RuntimeStats, shutdown: &AtomicBool) {
    let producer: BaseProducer =
        match producer_config(cfg, &format!("{instance_id}-monitoring"), None).create() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the monitoring producer; no reports");
                return;
            }
        };
    let topic = monitoring_topic(&cfg.application_id);
    let interval = Duration::from_millis(cfg.monitoring_interval_ms);
    let mut next = Instant::now();
    loop {
        let stopping = shutdown.load(Ordering::SeqCst);
        if stopping || Instant::now() >= next {
            let now_ms = crate::task_set::now_ms();
            let body = report(&cfg.application_id, instance_id, now_ms, stats).to_string();
            let rec = BaseRecord::to(&topic)
                .key(instance_id)
                .payload(&body)
                .timestamp(now_ms);
            if let Err((e, _)) = producer.send(rec) {
                tracing::warn!(%topic, error = %e, "monitoring report not sent");
            }
            let _ = producer.flush(Duration::from_secs(5));
            next += interval;
            if Instant::now() > next {
                next = Instant::now() + interval;
            }
        }
        if stopping {
            return;
        }
        producer.poll(Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_the_instance_and_carries_every_counter() {
        let stats = RuntimeStats::default();
        RuntimeStats::add(&stats.consumed, 7);
        RuntimeStats::add(&stats.dead_lettered, 2);
        let r = report("app", "i-1", 42, &stats);
        assert_eq!(r["application_id"], "app");
        assert_eq!(r["instance_id"], "i-1");
        assert_eq!(r["timestamp"], 42);
        assert_eq!(r["counters"]["consumed"], 7);
        assert_eq!(r["counters"]["dead_lettered"], 2);
        assert_eq!(r["counters"]["aborts"], 0);
        assert_eq!(monitoring_topic("app"), "app-monitoring");
    }
}
