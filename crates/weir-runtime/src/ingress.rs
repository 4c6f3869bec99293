//! The Kafka side of HTTP ingress (`POST /v1/events`, served by
//! `weir-admin`): a producer that writes accepted events and reports where
//! each landed, and the record of accepted idempotency keys that every
//! ingress instance of an application shares.
//!
//! - Events are written by an idempotent producer (`acks=all`, no
//!   duplicates from its own retries); a write the broker has not
//!   acknowledged within `ingress_produce_timeout_ms` is an error, never a
//!   success. After a fatal producer error (an idempotence epoch lost in an
//!   outage) the next write makes a new producer.
//! - Accepted keys go to `<application_id>-ingress-ids` (one partition,
//!   `cleanup.policy=delete`, retention = the idempotency window): key = the
//!   idempotency key, value = the answer given. Each instance reads the
//!   topic from its start and hands every record to its `on_claim`
//!   callback, so a retry that reaches another instance after the first
//!   write's claim was read gets the first answer. Two instances that get
//!   the same key at the same moment may both write it: across instances
//!   ingress is at least once, and the event's `id` is in every record for
//!   consumers to deduplicate by (see the README's "HTTP ingress").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::restore::RestoreContext;

/// The topic of accepted idempotency keys of `application_id`'s ingress.
pub fn ingress_ids_topic(application_id: &str) -> String {
    format!("{application_id}-ingress-ids")
}

/// Where an event was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// Why an event was not written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The broker did not acknowledge it in time, or cannot be reached:
    /// try again later.
    #[error("the broker did not acknowledge the write: {0}")]
    Unavailable(String),
    /// The broker refused the record itself (too large, for one).
    #[error("the broker refused the record: {0}")]
    Rejected(String),
}

/// Writes accepted events and shares accepted idempotency keys; stops its
/// reader when dropped.
pub struct IngressSink {
    cfg: Config,
    producer: RwLock<Arc<FutureProducer>>,
    ids_topic: String,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for IngressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressSink")
            .field("ids_topic", &self.ids_topic)
            .finish()
    }
}

fn producer(cfg: &Config) -> Result<FutureProducer> {
    let mut c =
        crate::kafka::producer_config(cfg, &format!("{}-ingress", cfg.application_id), None);
    c.set(
        "message.timeout.ms",
        cfg.ingress_produce_timeout_ms.to_string(),
    )
    // A request waits for its own write: do not hold it for a batch.
    .set("linger.ms", "1");
    c.create().map_err(|e| Error::Kafka {
        context: "ingress producer".into(),
        message: e.to_string(),
        class: crate::kafka::classify(&e),
    })
}

impl IngressSink {
    /// Connects: checks that every configured event topic exists (creating
    /// missing ones under `auto_create_topics`), creates the ids topic when
    /// missing, and starts reading it into `on_claim(key, value)`.
    ///
    /// # Errors
    /// [`Error::Topic`] for a missing event topic or an unreachable
    /// cluster; [`Error::Kafka`] when a client cannot be made.
    pub fn start(cfg: &Config, on_claim: impl Fn(&str, &[u8]) + Send + 'static) -> Result<Self> {
        let mut topics: Vec<&String> = cfg.ingress_topics.values().collect();
        topics.extend(cfg.ingress_default_topic.as_ref());
        topics.sort();
        topics.dedup();
        for topic in topics {
            if cfg.auto_create_topics {
                crate::topics::ensure_topic(
                    cfg,
                    topic,
                    cfg.auto_create_partitions,
                    &[("cleanup.policy", "delete")],
                )?;
            } else if !crate::topics::topic_exists(cfg, topic)? {
                return Err(crate::topics::TopicError::Missing {
                    topics: vec![topic.clone()],
                    bootstrap: cfg.bootstrap_servers.clone(),
                }
                .into());
            }
        }
        let ids_topic = ingress_ids_topic(&cfg.application_id);
        // Segments as long as the window, so a new instance reads about a
        // window of claims, not a week's (the default segment).
        let retention = cfg.ingress_idempotency_window_ms.max(60_000).to_string();
        crate::topics::ensure_topic(
            cfg,
            &ids_topic,
            1,
            &[
                ("cleanup.policy", "delete"),
                ("retention.ms", &retention),
                ("segment.ms", &retention),
            ],
        )?;
        let consumer: BaseConsumer<RestoreContext> =
            crate::kafka::reader_config(cfg, &format!("{}-ingress-ids", cfg.application_id))
                .create_with_context(RestoreContext::default())
                .map_err(|e| Error::Kafka {
                    context: format!("ingress ids reader {ids_topic}"),
                    message: e.to_string(),
                    class: crate::kafka::classify(&e),
                })?;
        let mut tpl = TopicPartitionList::new();
        let assigned = tpl
            .add_partition_offset(&ids_topic, 0, Offset::Beginning)
            .and_then(|()| consumer.assign(&tpl));
        if let Err(e) = assigned {
            return Err(Error::Kafka {
                context: format!("ingress ids reader {ids_topic}"),
                message: e.to_string(),
                class: crate::kafka::classify(&e),
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("weir-ingress-ids".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match consumer.poll(Duration::from_millis(100)) {
                            Some(Ok(m)) => {
                                if let (Some(key), Some(value)) = (m.key(), m.payload()) {
                                    on_claim(&String::from_utf8_lossy(key), value);
                                }
                            }
                            Some(Err(e)) => tracing::debug!(error = %e, "ingress ids read"),
                            None => {}
                        }
                    }
                })
                .map_err(|e| Error::Usage(format!("cannot start the ingress ids reader: {e}")))?
        };
        Ok(Self {
            cfg: cfg.clone(),
            producer: RwLock::new(Arc::new(producer(cfg)?)),
            ids_topic,
            timeout: Duration::from_millis(cfg.ingress_produce_timeout_ms),
            stop,
            reader: Some(reader),
        })
    }

    fn current(&self) -> Arc<FutureProducer> {
        self.producer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes one record and waits for the broker's acknowledgement.
    ///
    /// # Errors
    /// [`SinkError::Unavailable`] when it was not acknowledged in time (the
    /// record may or may not have been written: an idempotent producer
    /// gave up on it); [`SinkError::Rejected`] when the broker refused it.
    pub async fn send(
        &self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        headers: &[(&str, &[u8])],
        timestamp: i64,
    ) -> std::result::Result<Written, SinkError> {
        let producer = self.current();
        let mut h = OwnedHeaders::new_with_capacity(headers.len());
        for (name, v) in headers {
            h = h.insert(Header {
                key: name,
                value: Some(*v),
            });
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(value)
            .headers(h)
            .timestamp(timestamp);
        match producer.send(record, Timeout::After(self.timeout)).await {
            Ok(d) => Ok(Written {
                topic: topic.to_string(),
                partition: d.partition,
                offset: d.offset,
            }),
            Err((e, _)) => {
                self.renew_if_fatal(&producer);
                let rejected = matches!(
                    e.rdkafka_error_code(),
                    Some(
                        rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge
                            | rdkafka::types::RDKafkaErrorCode::InvalidRecord
                            | rdkafka::types::RDKafkaErrorCode::InvalidMessage
                            | rdkafka::types::RDKafkaErrorCode::InvalidTimestamp
                            | rdkafka::types::RDKafkaErrorCode::MessageBatchTooLarge
                    )
                );
                if rejected {
                    Err(SinkError::Rejected(e.to_string()))
                } else {
                    Err(SinkError::Unavailable(e.to_string()))
                }
            }
        }
    }

    /// After a fatal error, the next writes go to a new producer.
    fn renew_if_fatal(&self, failed: &Arc<FutureProducer>) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        let mut current = self.producer.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current, failed) {
            return; // renewed by another request already
        }
        tracing::warn!(?code, %reason, "the ingress producer failed fatally; making a new one");
        match producer(&self.cfg) {
            Ok(p) => *current = Arc::new(p),
            Err(e) => tracing::error!(error = %e, "cannot make a new ingress producer"),
        }
    }

    /// Shares an accepted key with every ingress instance (written in the
    /// background: the answer is already given; a lost claim only narrows
    /// deduplication across instances).
    pub fn claim(&self, key: &str, value: &[u8]) {
        let producer = self.current();
        let record = FutureRecord::to(&self.ids_topic).key(key).payload(value);
        match producer.send_result(record) {
            Ok(delivery) => {
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    return; // written all the same; nobody to log a failure
                };
                let key = key.to_string();
                rt.spawn(async move {
                    if let Ok(Err((e, _))) = delivery.await {
                        tracing::warn!(%key, error = %e, "an accepted idempotency key was not shared");
                    }
                });
            }
            Err((e, _)) => {
                tracing::warn!(%key, error = %e, "an accepted idempotency key was not shared")
            }
        }
    }

    /// Waits up to `timeout` for queued writes (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.current().flush(timeout);
    }
}

impl Drop for IngressSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}
