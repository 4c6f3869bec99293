//! Stream-time markers across repartition topics.
//!
//! A task's stream time moves only with the records it reads. Behind a
//! repartition topic that would leave a task waiting for records of its
//! own keys before its windows close, however far the upstream tasks got.
//! So a task that writes to repartition topics and whose stream time moved
//! since its last markers writes one marker ([`weir_core::StreamTimeMarker`])
//! to every partition of each of them — after its first record of each
//! transaction (so a downstream task knows every upstream task's time
//! early) and at each commit. A downstream task's stream time is the
//! smallest of its writers' latest marker times. Markers are written in
//! the transaction: an aborted one's are never read, and are sent again.

use crate::delivery::{opaque, MARKER_SOURCE};
use crate::task::TaskKey;
use crate::task_set::{send_raw, Outgoing, TaskSet};

impl TaskSet {
    /// Sends the stream-time markers of every task whose stream time moved
    /// since its last ones (see the module docs). Called at commit, in the
    /// open transaction.
    pub fn produce_markers(&mut self) {
        if self.marker_targets.iter().all(Vec::is_empty) {
            return;
        }
        let keys: Vec<TaskKey> = self.tasks.keys().copied().collect();
        for key in keys {
            self.send_markers(key);
        }
    }

    /// After a record of task `key`: its first markers of the transaction.
    pub fn markers_after_record(&mut self, key: TaskKey) {
        if self.marker_targets.get(key.0).is_none_or(Vec::is_empty) {
            return;
        }
        if self.tasks.get(&key).is_some_and(|t| t.marking.is_none()) {
            self.send_markers(key);
        }
    }

    /// Sends task `key`'s markers when its stream time moved since its last
    /// ones (committed, or sent in the open transaction).
    fn send_markers(&mut self, key: TaskKey) {
        let Some(task) = self.tasks.get_mut(&key) else {
            return;
        };
        let Some(time) = task.executor.stream_time() else {
            return;
        };
        if task.marked.max(task.marking).is_some_and(|m| m >= time) {
            return;
        }
        let sub = task.executor.subtopology();
        let Some(targets) = self.marker_targets.get(sub).filter(|t| !t.is_empty()) else {
            return;
        };
        let writer = format!("{sub}.{}", task.executor.partition());
        let mut all_sent = true;
        for (topic, r) in targets {
            let headers = weir_core::StreamTimeMarker {
                time,
                writer: writer.clone(),
                writers: r.writers,
            }
            .headers();
            for p in 0..r.partitions {
                let sent = send_raw(
                    &self.producer,
                    Outgoing {
                        topic,
                        partition: Some(p),
                        key: None,
                        value: None,
                        headers: &headers,
                        timestamp: Some(time),
                    },
                    opaque(self.txn, MARKER_SOURCE),
                );
                match sent {
                    Ok(()) => self.produced += 1,
                    Err(e) => {
                        // The transaction goes on without it: the next
                        // markers carry a time at least as late.
                        all_sent = false;
                        tracing::warn!(%topic, partition = p, error = %e, "stream-time marker not sent");
                    }
                }
            }
        }
        if all_sent {
            task.marking = Some(time);
        }
    }
}
