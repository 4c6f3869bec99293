//! Changelogs and checkpoints (the README, "Changelogs, checkpoints and restore").
//!
//! Each store has a compacted changelog topic `<application_id>-<store>-changelog`
//! with one partition per task. At each commit, before the offsets are
//! sent, every key a task changed since its last commit is produced once —
//! its latest value or a tombstone — to the task's own partition of the
//! store's changelog, inside the transaction. A dead-lettered record's
//! writes were rolled back by its savepoint and never get there.
//!
//! After `commit_transaction` succeeds, the task's pending writes and its
//! **checkpoint** go to its RocksDB in one write batch: per store, the
//! changelog offset after the last record this commit wrote, taken from the
//! delivery reports (a store whose report is missing keeps its old
//! checkpoint: replaying from too low an offset rewrites absolute values,
//! harmless; too high would lose state), and the cluster id. Restoration
//! ([`crate::restore`]) replays each changelog from its checkpoint.

use std::collections::BTreeMap;

use weir_state::StoreId;

use crate::delivery::{opaque, CHANGELOG_FLAG};
use crate::kafka::is_per_record;
use crate::task::TaskKey;
use crate::task_set::{send_raw, Outgoing, TaskSet};

/// Metadata key of the cluster id the checkpoints were taken on.
pub(crate) const CLUSTER_KEY: &str = "weir.cluster_id";

/// The changelog topic of `store`.
pub(crate) fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// Metadata key of `store`'s checkpoint: the next changelog offset to replay.
pub(crate) fn checkpoint_key(store: &str) -> String {
    format!("weir.checkpoint.{store}")
}

/// Parses a checkpoint (or any decimal offset) written by this module.
pub(crate) fn parse_offset(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The metadata that records `checkpoints` (store id → next changelog
/// offset) of a task whose stores are `names`, with the cluster id; nothing
/// when there is no checkpoint to record.
pub(crate) fn checkpoint_meta(
    names: &[String],
    checkpoints: &[(StoreId, i64)],
    cluster: Option<&str>,
) -> Vec<(String, Option<Vec<u8>>)> {
    let mut meta: Vec<(String, Option<Vec<u8>>)> = checkpoints
        .iter()
        .map(|&(store, offset)| {
            (
                checkpoint_key(&names[store]),
                Some(offset.to_string().into_bytes()),
            )
        })
        .collect();
    if let (false, Some(id)) = (meta.is_empty(), cluster) {
        meta.push((CLUSTER_KEY.to_string(), Some(id.as_bytes().to_vec())));
    }
    meta
}

/// The changelog partitions written in the open transaction, numbered in
/// the order of their first write (the number travels in each record's
/// delivery opaque), and the highest offset acknowledged for each.
#[derive(Debug, Default)]
pub(crate) struct ChangelogWrites {
    slots: Vec<(TaskKey, StoreId)>,
    index: BTreeMap<(TaskKey, StoreId), usize>,
}

impl ChangelogWrites {
    /// The slot of `task`'s store `store`, made on first use.
    pub fn slot(&mut self, task: TaskKey, store: StoreId) -> usize {
        let next = self.slots.len();
        *self.index.entry((task, store)).or_insert_with(|| {
            self.slots.push((task, store));
            next
        })
    }

    /// Checkpoint entries per task from the acknowledged offsets of this
    /// transaction's changelog records (`(slot, offset)`): the offset after
    /// the highest one of each slot. Slots without a report get none.
    pub fn checkpoints(
        &self,
        acked: impl IntoIterator<Item = (usize, i64)>,
    ) -> BTreeMap<TaskKey, Vec<(StoreId, i64)>> {
        let mut highest: BTreeMap<usize, i64> = BTreeMap::new();
        for (slot, offset) in acked {
            let h = highest.entry(slot).or_insert(offset);
            *h = (*h).max(offset);
        }
        let mut out: BTreeMap<TaskKey, Vec<(StoreId, i64)>> = BTreeMap::new();
        for (slot, offset) in highest {
            if let Some(&(task, store)) = self.slots.get(slot) {
                out.entry(task).or_default().push((store, offset + 1));
            }
        }
        out
    }

    /// The task and store of `slot`.
    pub fn slot_of(&self, slot: usize) -> Option<(TaskKey, StoreId)> {
        self.slots.get(slot).copied()
    }

    /// Forgets the transaction's slots.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.index.clear();
    }
}

impl TaskSet {
    /// Produces every key each task changed since its last commit — its
    /// latest value or a tombstone, once however often it changed — to the
    /// task's own partition of the store's changelog, in the open
    /// transaction (see [`crate::changelog`]). Called at commit.
    pub fn produce_changelogs(&mut self) {
        let app = &self.spec.cfg.application_id;
        let empty = weir_core::Headers::default();
        let mut undeliverable = None;
        'tasks: for (&key, task) in &self.tasks {
            let Some(state) = &task.state else { continue };
            if state.pending().is_empty() {
                continue;
            }
            // A table read from a topic has that topic as its changelog.
            let topics: Vec<Option<String>> = state
                .store_names()
                .iter()
                .map(|s| {
                    let from_topic = self.spec.topology.table_source(s).is_some();
                    (!from_topic).then(|| changelog_topic(app, s))
                })
                .collect();
            // Pending entries come in (store, key) order: one slot per store run.
            let mut slot = None;
            for (store, k, v) in state.pending().iter() {
                let Some(topic) = &topics[store] else {
                    continue;
                };
                let slot = match slot {
                    Some((s, n)) if s == store => n,
                    _ => {
                        let n = self.changelog.slot(key, store);
                        slot = Some((store, n));
                        n
                    }
                };
                let result = send_raw(
                    &self.producer,
                    Outgoing {
                        topic,
                        partition: Some(key.1),
                        key: Some(k),
                        value: v,
                        headers: &empty,
                        timestamp: None,
                    },
                    opaque(self.txn, CHANGELOG_FLAG | slot),
                );
                if let Err(e) = result {
                    if e.rdkafka_error_code().is_some_and(is_per_record) {
                        let name = state.store_names()[store].clone();
                        undeliverable = Some(crate::committer::undeliverable_changelog(
                            Some((task.id.clone(), name)),
                            &e,
                        ));
                        break 'tasks;
                    }
                    tracing::warn!(%topic, error = %e, "changelog send failed; rewinding to the last commit");
                    self.rewind_requested = true;
                    return;
                }
                self.produced += 1;
            }
        }
        if let Some(e) = undeliverable {
            self.fail(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_one_past_the_highest_acknowledged_offset_per_slot() {
        let mut w = ChangelogWrites::default();
        let a = w.slot((0, 1), 0);
        let b = w.slot((0, 2), 0);
        assert_eq!(w.slot((0, 1), 0), a);
        let c = w.slot((0, 1), 1); // never acknowledged
        let cps = w.checkpoints([(a, 5), (b, 9), (a, 7), (a, 6)]);
        assert_eq!(cps[&(0, 1)], vec![(0, 8)]);
        assert_eq!(cps[&(0, 2)], vec![(0, 10)]);
        assert!(!cps[&(0, 1)].iter().any(|(s, _)| *s == 1), "slot {c}");
    }

    #[test]
    fn offsets_round_trip_and_garbage_is_none() {
        assert_eq!(parse_offset(b"42"), Some(42));
        assert_eq!(parse_offset(b"x"), None);
        assert_eq!(parse_offset(&[0xff]), None);
    }
}
