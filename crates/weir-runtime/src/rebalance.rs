//! The consumer's context: rebalance callbacks and librdkafka's logs.
//!
//! Callbacks run inside `poll` on the stream thread. Assignment only makes
//! tasks (Created) and pauses their partitions — stores are opened and
//! restored between polls. Revocation commits (or, when the assignment was
//! lost, aborts) and closes the revoked tasks before returning.

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

use crate::broker_quirks::FetchNoise;
use crate::stream_thread::lock;
use crate::task_set::TaskSet;

/// The consumer's context: runs rebalances against the thread's [`TaskSet`].
pub(crate) struct ThreadContext {
    state: Arc<Mutex<TaskSet>>,
    noise: FetchNoise,
    /// Each partition's end as the consumer's statistics last reported it.
    ends: PartitionEnds,
}

/// The end of each assigned partition (its last stable offset, else its
/// high watermark) from the consumer's periodic statistics: known without
/// a request, at most one statistics interval old (so never above the
/// true end).
pub(crate) type PartitionEnds = Arc<Mutex<std::collections::HashMap<(String, i32), i64>>>;

impl ThreadContext {
    pub fn new(state: Arc<Mutex<TaskSet>>, ends: PartitionEnds) -> Self {
        Self {
            state,
            noise: FetchNoise::default(),
            ends,
        }
    }
}

/// Consumer-side errors never abort a transaction: the fetcher retries on
/// its own, and positions are only advanced by records actually processed.
pub(crate) fn consumer_error(e: &KafkaError) {
    if FetchNoise::matches(&e.to_string()) {
        tracing::debug!(error = %e, "consumer error (test broker's empty fetch; ignored)");
    } else {
        tracing::warn!(error = %e, "consumer error (the fetcher retries; nothing is aborted)");
    }
}

impl ClientContext for ThreadContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka(&self.noise, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        consumer_error(&error);
        tracing::debug!(target: "librdkafka", "{reason}");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        for (name, topic) in statistics.topics {
            for (p, part) in topic.partitions {
                let end = if part.ls_offset >= 0 {
                    part.ls_offset
                } else {
                    part.hi_offset
                };
                if p >= 0 && end >= 0 {
                    ends.insert((name.clone(), p), end);
                }
            }
        }
    }
}

/// Routes a librdkafka log line to `tracing` at its level, the test
/// broker's empty-fetch noise aside.
pub(crate) fn log_librdkafka(noise: &FetchNoise, level: RDKafkaLogLevel, fac: &str, message: &str) {
    if noise.log(message) {
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

impl ConsumerContext for ThreadContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut s = lock(&self.state);
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let lost = consumer.assignment_lost();
                s.on_revoke(consumer, tpl, lost);
            }
            Rebalance::Assign(tpl) => s.on_assign(tpl),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // Inputs wait until their task's stores are open and restored.
            lock(&self.state).pause_new(consumer, tpl);
        }
    }
}
