//! Samples the size of the dead-letter topic for the registry
//! ([`RuntimeStats::dead_letter_queue_size`]): every few seconds, the sum
//! over its partitions of end minus start offset. A failed sample keeps the
//! last one and is logged at debug level; sampling never stops processing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::Config;
use crate::restore::RestoreContext;
use crate::stats::RuntimeStats;

/// How often the size is sampled.
const INTERVAL: Duration = Duration::from_secs(5);

/// Starts the sampler thread; it ends once `shutdown` is set.
pub(crate) fn start(
    cfg: &Config,
    instance_id: &str,
    topic: String,
    stats: Arc<RuntimeStats>,
    shutdown: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let consumer: BaseConsumer<RestoreContext> =
        match crate::kafka::reader_config(cfg, &format!("{instance_id}-dlq-size"))
            .create_with_context(RestoreContext::default())
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot sample the dead-letter topic's size");
                return None;
            }
        };
    std::thread::Builder::new()
        .name("weir-dlq-size".into())
        .spawn(move || {
            let mut next = Instant::now();
            while !shutdown.load(Ordering::SeqCst) {
                if Instant::now() >= next {
                    match size(&consumer, &topic) {
                        Ok(n) => stats.set_dead_letter_queue_size(n),
                        Err(e) => tracing::debug!(%topic, error = %e, "dead-letter topic size"),
                    }
                    next = Instant::now() + INTERVAL;
                }
                // Serves the client's events (errors, logs) so none pile up.
                let _ = consumer.poll(Duration::from_millis(100));
            }
        })
        .map_err(|e| tracing::warn!(error = %e, "cannot start the dead-letter size sampler"))
        .ok()
}

fn size(consumer: &BaseConsumer<RestoreContext>, topic: &str) -> rdkafka::error::KafkaResult<u64> {
    let timeout = Duration::from_secs(5);
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut total = 0u64;
    for t in md.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            total += u64::try_from(high.saturating_sub(low)).unwrap_or(0);
        }
    }
    Ok(total)
}
