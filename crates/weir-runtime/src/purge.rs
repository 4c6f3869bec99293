//! Purging repartition topics: records below a committed offset of a
//! repartition topic have been consumed for good (their effects are in the
//! committed transaction), so every `repartition_purge_interval_ms` (30 s
//! by default) a stream thread
//! deletes them with `DeleteRecords` — as Kafka Streams does — where the
//! cluster supports it. A refusal is logged (once as a warning) and the
//! purge is tried again at the next interval; nothing depends on it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::kafka::admin_config;
use crate::task::Tp;

/// Deletes consumed records of the repartition topics a thread reads.
pub(crate) struct Purger {
    /// Topic indexes (among the thread's source topics) of repartition topics.
    topics: Vec<usize>,
    admin: Option<(AdminClient<DefaultClientContext>, tokio::runtime::Runtime)>,
    last: Instant,
    /// What was last purged to, per partition (nothing new: no request).
    purged: BTreeMap<Tp, i64>,
    /// The purge cannot work here (no admin client).
    disabled: bool,
    /// A refusal was logged as a warning already.
    warned: bool,
}

impl std::fmt::Debug for Purger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Purger")
            .field("topics", &self.topics)
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl Purger {
    /// A purger of the source topics (by index in `sources`) that are
    /// repartition topics of the topology.
    pub fn new(sources: &[String], repartition: &[String]) -> Self {
        Self {
            topics: sources
                .iter()
                .enumerate()
                .filter(|(_, t)| repartition.contains(t))
                .map(|(i, _)| i)
                .collect(),
            admin: None,
            last: Instant::now(),
            purged: BTreeMap::new(),
            disabled: false,
            warned: false,
        }
    }

    /// After a commit: if the interval passed, deletes what lies below the
    /// committed offsets of the repartition partitions in `committed`.
    pub fn after_commit(
        &mut self,
        cfg: &Config,
        sources: &[String],
        committed: &BTreeMap<Tp, i64>,
    ) {
        let interval = Duration::from_millis(cfg.repartition_purge_interval_ms);
        if self.disabled || self.topics.is_empty() || self.last.elapsed() < interval {
            return;
        }
        self.last = Instant::now();
        let mut tpl = TopicPartitionList::new();
        let mut wanted = Vec::new();
        for (&tp, &offset) in committed {
            if self.topics.contains(&tp.0) && self.purged.get(&tp).is_none_or(|&p| p < offset) {
                let _ = tpl.add_partition_offset(&sources[tp.0], tp.1, Offset::Offset(offset));
                wanted.push((tp, offset));
            }
        }
        if wanted.is_empty() {
            return;
        }
        if self.admin.is_none() {
            let admin = admin_config(cfg).create::<AdminClient<DefaultClientContext>>();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match (admin, rt) {
                (Ok(a), Ok(r)) => self.admin = Some((a, r)),
                (a, r) => {
                    tracing::warn!(admin = ?a.err(), runtime = ?r.err(), "cannot purge repartition topics");
                    self.disabled = true;
                    return;
                }
            }
        }
        let (admin, rt) = self.admin.as_ref().expect("made above");
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        match rt.block_on(admin.delete_records(&tpl, &opts)) {
            Ok(result) => {
                let failed: Vec<String> = result
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        e.error()
                            .err()
                            .map(|err| format!("{}[{}]: {err}", e.topic(), e.partition()))
                    })
                    .collect();
                if failed.is_empty() {
                    self.purged.extend(wanted);
                    tracing::debug!(partitions = result.count(), "repartition topics purged");
                } else {
                    self.refused(&failed.join(", "));
                }
            }
            Err(e) => self.refused(&e.to_string()),
        }
    }

    fn refused(&mut self, why: &str) {
        if std::mem::replace(&mut self.warned, true) {
            tracing::debug!(error = why, "deleting consumed repartition records failed");
        } else {
            tracing::warn!(error = why, "deleting consumed repartition records failed; trying again at the next interval (further failures at debug level)");
        }
    }
}
