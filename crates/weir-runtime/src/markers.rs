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
//!
//! A writer with nothing to do for `max_upstream_idle_ms` sends an idle
//! marker, which takes it out of the downstream tasks' smallest time (a
//! partition that never has a record no longer holds every window), and a
//! plain one before its next output.

use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;

use crate::delivery::{opaque, MARKER_SOURCE};
use crate::rebalance::ThreadContext;
use crate::task::{TaskKey, TaskPhase, WriterState};
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
    /// ones (committed, or sent in the open transaction). Not while it is
    /// idle: its next plain marker is the one [`Self::wake`] sends.
    fn send_markers(&mut self, key: TaskKey) {
        let Some(task) = self.tasks.get(&key) else {
            return;
        };
        if task.writer == WriterState::Idle {
            return;
        }
        let Some(time) = task.executor.stream_time() else {
            return;
        };
        if task.marked.max(task.marking).is_some_and(|m| m >= time) {
            return;
        }
        if self.send_marker(key, time, false) {
            if let Some(task) = self.tasks.get_mut(&key) {
                task.marking = Some(time);
                task.writer = WriterState::Active;
            }
        }
    }

    /// Before the outputs of task `key` (of a record, or of a timer that
    /// writes to a repartition topic): it is active, and when its last
    /// markers said idle (or nothing yet), a plain marker goes first, so
    /// that no downstream task reads its outputs while still leaving it
    /// out. Its time is the task's stream time, or `Timestamp::MIN` while
    /// it has none (the downstream tasks wait for it again). `false` when
    /// that marker could not be sent: the outputs must not go, and the
    /// transaction is rewound.
    #[must_use]
    pub fn wake(&mut self, key: TaskKey) -> bool {
        if self.marker_targets.get(key.0).is_none_or(Vec::is_empty) {
            return true;
        }
        let Some(task) = self.tasks.get_mut(&key) else {
            return true;
        };
        task.active_at = Instant::now();
        if task.writer == WriterState::Active {
            return true;
        }
        self.switch_writer(key, WriterState::Active)
    }

    /// Whether any of `outputs` of task `key` goes to a repartition topic
    /// that carries its markers.
    pub fn writes_marked(&self, key: TaskKey, outputs: &[weir_core::Record]) -> bool {
        self.marker_targets.get(key.0).is_some_and(|targets| {
            outputs
                .iter()
                .any(|o| targets.iter().any(|(topic, _)| *topic == o.topic))
        })
    }

    /// Marks idle, in the open transaction, each running task that writes
    /// repartition topics and has had no record (nor timer output to them)
    /// for `max_upstream_idle_ms` (0: never), with nothing buffered and no
    /// input known to have records still on the broker: the tasks behind
    /// those topics then leave it out of their stream time (see
    /// [`weir_core::StreamTimeMarker`]) until it is back ([`Self::wake`]).
    pub fn note_quiet_writers(&mut self, consumer: &BaseConsumer<ThreadContext>, now: Instant) {
        let after = Duration::from_millis(self.spec.cfg.max_upstream_idle_ms);
        if after.is_zero() || self.marker_targets.iter().all(Vec::is_empty) {
            return;
        }
        let quiet: Vec<TaskKey> = self
            .tasks
            .iter()
            .filter(|(key, t)| {
                t.phase == TaskPhase::Running
                    && t.writer != WriterState::Idle
                    && self
                        .marker_targets
                        .get(key.0)
                        .is_some_and(|m| !m.is_empty())
                    && t.group.head_timestamp().is_none()
                    && now.saturating_duration_since(t.active_at) >= after
            })
            .map(|(key, _)| *key)
            .collect();
        if quiet.is_empty() {
            return;
        }
        let lagging = self.known_lagging(consumer);
        for key in quiet {
            let Some(task) = self.tasks.get(&key) else {
                continue;
            };
            if task.group.partitions().any(|tp| lagging.contains(&tp)) {
                continue;
            }
            // Something goes into the transaction either way: commit it.
            self.dirty = true;
            if !self.switch_writer(key, WriterState::Idle) {
                return;
            }
        }
    }

    /// Sends task `key`'s marker saying `to` (idle or active) at its stream
    /// time, or `Timestamp::MIN` while it has none, and notes it. When it
    /// cannot be sent (some partitions may have it; at least once, they
    /// keep it), the writer does not know what the tasks behind think of
    /// it (`Unknown`) and the transaction is rewound: `false`.
    fn switch_writer(&mut self, key: TaskKey, to: WriterState) -> bool {
        let Some(task) = self.tasks.get(&key) else {
            return true;
        };
        let time = task.executor.stream_time().unwrap_or(i64::MIN);
        let sent = self.send_marker(key, time, to == WriterState::Idle);
        let Some(task) = self.tasks.get_mut(&key) else {
            return sent;
        };
        if !sent {
            task.writer = WriterState::Unknown;
            self.rewind_requested = true;
            return false;
        }
        tracing::debug!(task = %task.id, time, from = ?task.writer, ?to, "writer marked");
        task.writer = to;
        if time > i64::MIN {
            task.marking = task.marking.max(Some(time));
        }
        true
    }

    /// Sends one marker of task `key` (at `time`, idle or not) to every
    /// partition of each repartition topic its sub-topology writes; whether
    /// every one was sent.
    fn send_marker(&mut self, key: TaskKey, time: i64, idle: bool) -> bool {
        let Some(task) = self.tasks.get(&key) else {
            return false;
        };
        let sub = task.executor.subtopology();
        let Some(targets) = self.marker_targets.get(sub).filter(|t| !t.is_empty()) else {
            return false;
        };
        let writer = format!("{sub}.{}", task.executor.partition());
        let mut all_sent = true;
        for (topic, r) in targets {
            let marker = weir_core::StreamTimeMarker {
                time,
                writer: writer.clone(),
                writers: r.writers,
                idle,
            };
            let headers = marker.headers();
            for p in 0..r.partitions {
                let sent = send_raw(
                    &self.producer,
                    Outgoing {
                        topic,
                        partition: Some(p),
                        key: None,
                        value: None,
                        headers: &headers,
                        timestamp: Some(marker.record_timestamp()),
                    },
                    opaque(self.txn, MARKER_SOURCE),
                );
                match sent {
                    Ok(()) => self.produced += 1,
                    Err(e) => {
                        // A plain marker's transaction goes on without it
                        // (the next carries a time at least as late); an
                        // idle one's, or one before outputs, is rewound.
                        all_sent = false;
                        tracing::warn!(%topic, partition = p, error = %e, "stream-time marker not sent");
                    }
                }
            }
        }
        all_sent
    }
}
