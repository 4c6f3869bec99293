//! The instance directory: which instance holds which store partition, and
//! where its admin endpoint answers — so any instance can forward a query
//! to the owner of a key.
//!
//! # Design
//! Kafka Streams carries each member's host and port in the group
//! protocol's user data; librdkafka has no custom assignor, so Weir
//! publishes them beside the group instead. Every instance with an admin
//! endpoint writes to the compacted, one-partition topic
//! `<application_id>-instances`, keyed by its instance id, a JSON record
//!
//! ```json
//! {"instance_id": "…", "admin_advertised_url": "http://10.0.0.7:9090",
//!  "partitions": [0, 2], "stores": {"customer-totals": [0, 2]},
//!  "generation": 3, "timestamp": 1764600000000}
//! ```
//!
//! whenever the store partitions it holds change (a task opened, restoring
//! included, or closed) and every 30 s, and a tombstone when it stops
//! cleanly. `generation` counts this instance's changes of holdings
//! (librdkafka does not expose the group's generation id). Every instance
//! reads the topic from the beginning and keeps the latest record of each
//! instance with its offset.
//!
//! **Ownership** of a store partition goes to the instance whose unbroken
//! claim of it *began* last (the offset of the first record of a run of
//! records that all list it): a record is written only after the change it
//! reports, so a newer owner's claim always begins after the old owner's;
//! a killed instance's stale record, or the 30 s refresh of a paused
//! instance that has not yet noticed it lost the partition, loses to its
//! successor's.
//! Between a revoke and the next owner's claim a partition may have no
//! owner, or a stale one; the admin endpoint answers 503 then (a forwarded
//! query the target does not hold is refused, never answered from elsewhere),
//! so an answer is correct or a 503 — never stale data.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::queries::LocalStores;
use crate::restore::RestoreContext;

/// `<application_id>-instances`.
pub fn instances_topic(application_id: &str) -> String {
    format!("{application_id}-instances")
}

/// How often an instance re-publishes unchanged holdings.
const REFRESH: Duration = Duration::from_secs(30);

/// One instance's record in the directory (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// The instance's stable id.
    pub instance_id: String,
    /// Where its admin endpoint answers (`http://host:port`).
    pub admin_advertised_url: Option<String>,
    /// The task partitions it holds (of every store).
    #[serde(default)]
    pub partitions: Vec<i32>,
    /// Store → the partitions of it held (restoring ones included).
    #[serde(default)]
    pub stores: BTreeMap<String, Vec<i32>>,
    /// This instance's count of changes of holdings.
    #[serde(default)]
    pub generation: u64,
    /// When it was written (ms since the epoch).
    #[serde(default)]
    pub timestamp: i64,
}

/// One instance's latest record, and since which offset it has claimed
/// each store partition without a break.
struct Entry {
    info: InstanceInfo,
    since: BTreeMap<(String, i32), i64>,
}

#[derive(Default)]
struct Known {
    /// instance id → its latest record.
    instances: BTreeMap<String, Entry>,
}

impl Known {
    fn apply(&mut self, key: &str, payload: Option<&[u8]>, offset: i64) {
        let Some(bytes) = payload else {
            self.instances.remove(key);
            return;
        };
        match serde_json::from_slice::<InstanceInfo>(bytes) {
            Ok(info) if info.instance_id == key => {
                let before = self
                    .instances
                    .remove(key)
                    .map(|e| e.since)
                    .unwrap_or_default();
                let since = info
                    .stores
                    .iter()
                    .flat_map(|(store, ps)| ps.iter().map(move |&p| (store.clone(), p)))
                    .map(|sp| {
                        let at = before.get(&sp).copied().unwrap_or(offset);
                        (sp, at)
                    })
                    .collect();
                self.instances
                    .insert(key.to_string(), Entry { info, since });
            }
            Ok(info) => tracing::warn!(
                key,
                instance_id = %info.instance_id,
                "an instances record under another instance's key; skipped"
            ),
            Err(e) => tracing::warn!(key, error = %e, "a malformed instances record; skipped"),
        }
    }

    /// The instance whose unbroken claim of the partition began last: a
    /// refresh of an old claim (a paused instance that has not noticed it
    /// lost the partition) never takes it from a newer owner.
    fn owner(&self, store: &str, partition: i32) -> Option<&InstanceInfo> {
        let sp = (store.to_string(), partition);
        self.instances
            .values()
            .filter_map(|e| e.since.get(&sp).map(|&at| (at, &e.info)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, info)| info)
    }
}

/// The directory of a running instance: publishes its holdings and reads
/// everyone's (see the module docs). Stops — with a tombstone — when
/// dropped.
pub struct Directory {
    topic: String,
    known: Arc<Mutex<Known>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("topic", &self.topic)
            .finish()
    }
}

impl Directory {
    /// Starts publishing `instance_id`'s holdings (read from `stores`)
    /// with `admin_url`, and reading the others'.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the clients cannot be created or the topic
    /// cannot be assigned.
    pub fn start(
        cfg: &Config,
        instance_id: &str,
        admin_url: Option<String>,
        stores: Arc<LocalStores>,
    ) -> Result<Self> {
        let topic = instances_topic(&cfg.application_id);
        let kafka = |what: &str, e: rdkafka::error::KafkaError| Error::Kafka {
            context: format!("instance directory {topic}: {what}"),
            message: e.to_string(),
            class: crate::kafka::classify(&e),
        };
        let producer: BaseProducer =
            crate::kafka::producer_config(cfg, &format!("{instance_id}-directory"), None)
                .create()
                .map_err(|e| kafka("producer", e))?;
        let consumer: BaseConsumer<RestoreContext> =
            crate::kafka::reader_config(cfg, &format!("{instance_id}-directory"))
                .create_with_context(RestoreContext::default())
                .map_err(|e| kafka("consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .map_err(|e| kafka("assign", e))?;
        consumer.assign(&tpl).map_err(|e| kafka("assign", e))?;
        let known = Arc::new(Mutex::new(Known::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut me = Publisher {
            topic: topic.clone(),
            info: InstanceInfo {
                instance_id: instance_id.to_string(),
                admin_advertised_url: admin_url,
                partitions: Vec::new(),
                stores: BTreeMap::new(),
                generation: 0,
                timestamp: 0,
            },
            producer,
            published: None,
        };
        let thread = {
            let (known, stop) = (known.clone(), stop.clone());
            std::thread::Builder::new()
                .name("weir-directory".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        me.publish_if_changed(&stores);
                        for _ in 0..64 {
                            match consumer.poll(Duration::from_millis(20)) {
                                Some(Ok(m)) => {
                                    let key = m.key().map(String::from_utf8_lossy);
                                    if let Some(key) = key {
                                        lock(&known).apply(&key, m.payload(), m.offset());
                                    }
                                }
                                Some(Err(e)) => {
                                    tracing::debug!(error = %e, "instance directory read")
                                }
                                None => break,
                            }
                        }
                        me.producer.poll(Duration::ZERO);
                    }
                    me.withdraw();
                })
                .map_err(|e| Error::Usage(format!("cannot start the directory thread: {e}")))?
        };
        Ok(Self {
            topic,
            known,
            stop,
            thread: Some(thread),
        })
    }

    /// The instance that holds `store`'s `partition` (the latest claim).
    pub fn owner(&self, store: &str, partition: i32) -> Option<InstanceInfo> {
        lock(&self.known).owner(store, partition).cloned()
    }

    /// Every instance known, by id.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        lock(&self.known)
            .instances
            .values()
            .map(|e| e.info.clone())
            .collect()
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(k: &Mutex<Known>) -> std::sync::MutexGuard<'_, Known> {
    k.lock().unwrap_or_else(|e| e.into_inner())
}

struct Publisher {
    topic: String,
    info: InstanceInfo,
    producer: BaseProducer,
    /// What was last published, and when.
    published: Option<(BTreeMap<String, Vec<i32>>, Instant)>,
}

impl Publisher {
    fn publish_if_changed(&mut self, stores: &LocalStores) {
        let mut held: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for p in stores.partitions() {
            held.entry(p.store).or_default().push(p.partition);
        }
        let due = match &self.published {
            None => true,
            Some((last, at)) => *last != held || at.elapsed() >= REFRESH,
        };
        if !due {
            return;
        }
        // Counted once the record is acknowledged.
        let previous = self.info.generation;
        if self
            .published
            .as_ref()
            .is_none_or(|(last, _)| *last != held)
        {
            self.info.generation += 1;
        }
        let mut partitions: Vec<i32> = held.values().flatten().copied().collect();
        partitions.sort_unstable();
        partitions.dedup();
        self.info.partitions = partitions;
        self.info.stores = held.clone();
        self.info.timestamp = crate::task_set::now_ms();
        let body = match serde_json::to_vec(&self.info) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode this instance's directory record");
                return;
            }
        };
        let rec = BaseRecord::to(&self.topic)
            .key(&self.info.instance_id)
            .payload(&body);
        match self.producer.send(rec) {
            Ok(()) => {
                if let Err(e) = crate::kafka::flush_quickly(&self.producer, Duration::from_secs(5))
                {
                    tracing::warn!(error = %e, topic = %self.topic, "directory record not acknowledged; retrying");
                    self.info.generation = previous;
                    return;
                }
                tracing::debug!(stores = ?held, generation = self.info.generation, "published this instance's holdings");
                self.published = Some((held, Instant::now()));
            }
            Err((e, _)) => {
                tracing::warn!(error = %e, topic = %self.topic, "directory record not sent; retrying");
                self.info.generation = previous;
            }
        }
    }

    /// A tombstone: this instance holds nothing any more.
    fn withdraw(&self) {
        let rec: BaseRecord<'_, str, [u8]> =
            BaseRecord::to(&self.topic).key(self.info.instance_id.as_str());
        if self.producer.send(rec).is_ok() {
            let _ = self.producer.flush(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, store: &str, partitions: &[i32]) -> Vec<u8> {
        serde_json::to_vec(&InstanceInfo {
            instance_id: id.into(),
            admin_advertised_url: Some(format!("http://{id}")),
            partitions: partitions.to_vec(),
            stores: [(store.to_string(), partitions.to_vec())].into(),
            generation: 1,
            timestamp: 0,
        })
        .unwrap()
    }

    #[test]
    fn the_latest_claim_of_a_partition_owns_it() {
        let mut k = Known::default();
        k.apply("a", Some(&record("a", "totals", &[0, 1])), 0);
        k.apply("b", Some(&record("b", "totals", &[])), 1);
        assert_eq!(k.owner("totals", 1).unwrap().instance_id, "a");
        // b takes partition 1 (a was killed and could not withdraw it).
        k.apply("b", Some(&record("b", "totals", &[1])), 2);
        assert_eq!(k.owner("totals", 1).unwrap().instance_id, "b");
        assert_eq!(k.owner("totals", 0).unwrap().instance_id, "a");
        assert!(k.owner("other", 0).is_none());
        assert!(k.owner("totals", 7).is_none());
        // a, paused, refreshes its old claim of 1: b keeps it.
        k.apply("a", Some(&record("a", "totals", &[0, 1])), 3);
        assert_eq!(k.owner("totals", 1).unwrap().instance_id, "b");
        // b loses 1 and a gets it back: a owns it again.
        k.apply("b", Some(&record("b", "totals", &[])), 4);
        assert_eq!(k.owner("totals", 1).unwrap().instance_id, "a");
        k.apply("b", Some(&record("b", "totals", &[1])), 5);
        k.apply("a", Some(&record("a", "totals", &[0])), 6);
        k.apply("a", Some(&record("a", "totals", &[0, 1])), 7);
        assert_eq!(
            k.owner("totals", 1).unwrap().instance_id,
            "a",
            "a's new claim began last"
        );
        k.apply("a", None, 8);
        assert!(k.owner("totals", 0).is_none());
    }

    #[test]
    fn malformed_or_misfiled_records_are_skipped() {
        let mut k = Known::default();
        k.apply("a", Some(b"{not json"), 0);
        k.apply("a", Some(&record("b", "totals", &[0])), 1);
        assert!(k.instances.is_empty());
        assert_eq!(instances_topic("app"), "app-instances");
    }
}
