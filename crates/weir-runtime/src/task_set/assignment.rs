//! A [`TaskSet`]'s side of rebalancing and shutdown: tasks made on
//! assignment (no I/O: stores open between polls), new stateful partitions
//! paused until restored, commit-then-close on revocation, and the
//! readiness the thread reports.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::TopicPartitionList;

use super::TaskSet;
use crate::rebalance::ThreadContext;
use crate::task::{Task, TaskPhase};

impl TaskSet {
    /// Assignment: creates the tasks of the new partitions (Created). No
    /// I/O here: stores are opened between polls.
    pub fn on_assign(&mut self, tpl: &TopicPartitionList) {
        self.joined = true;
        let max_idle = Duration::from_millis(self.spec.cfg.max_task_idle_ms);
        for e in tpl.elements() {
            if let Some(ti) = self.topic_index(e.topic()) {
                let tp = (ti, e.partition());
                self.assigned.insert(tp);
                // The committed offset may have moved while others owned it.
                self.positions.remove(&tp);
                self.fetched.remove(&tp);
                self.committed.remove(&tp);
                self.first_offset.remove(&tp);
                let key = self.task_key(tp);
                let spec = &self.spec;
                let task = self.tasks.entry(key).or_insert_with(|| {
                    let mut task = Task::new(
                        &spec.topology,
                        key.0,
                        key.1,
                        &spec.tasks_dir,
                        max_idle,
                        spec.queries.clone(),
                    );
                    task.executor
                        .set_dead_letter_topic(spec.dead_letter_topic.as_str());
                    task
                });
                // A table's updates go before stream records of their
                // timestamp (the record sees the value current then).
                if spec.topology.is_table_topic(e.topic()) {
                    task.group.add_partition_first(tp);
                } else {
                    task.group.add_partition(tp);
                }
            }
        }
        self.unknown_positions = true;
        tracing::info!(thread = self.spec.index, partitions = %describe(tpl), "partitions assigned");
    }

    /// After assignment: pauses the new partitions of tasks with stores
    /// until those tasks are restored and run.
    pub fn pause_new(&mut self, consumer: &BaseConsumer<ThreadContext>, tpl: &TopicPartitionList) {
        let mut pause = TopicPartitionList::new();
        for e in tpl.elements() {
            if let Some(ti) = self.topic_index(e.topic()) {
                // Only a task with stores has something to restore; a
                // stateless task runs at once from where librdkafka's
                // assignment starts it (pausing costs a fetch restart).
                let key = self.task_key((ti, e.partition()));
                if let Some(t) = self.tasks.get_mut(&key) {
                    if t.phase != TaskPhase::Running && !t.executor.store_names().is_empty() {
                        t.paused = true;
                        let _ = pause.add_partition(e.topic(), e.partition());
                    }
                }
            }
        }
        if pause.count() > 0 {
            if let Err(e) = consumer.pause(&pause) {
                tracing::warn!(error = %e, "pausing new partitions failed; rejoining");
                self.fenced = true;
            }
        }
    }

    /// Revocation: commits what was processed (or aborts when the assignment
    /// was lost or positions are unknown), then closes the revoked tasks.
    pub fn on_revoke(
        &mut self,
        consumer: &BaseConsumer<ThreadContext>,
        tpl: &TopicPartitionList,
        lost: bool,
    ) {
        // Rebalancing: not ready until the next assignment.
        self.joined = false;
        if !self.fenced && self.dirty {
            if lost {
                tracing::warn!("assignment lost: aborting the open transaction");
                self.abort(consumer, false);
            } else {
                self.commit_or_abort(consumer);
            }
        }
        for e in tpl.elements() {
            if let Some(ti) = self.topic_index(e.topic()) {
                let tp = (ti, e.partition());
                self.assigned.remove(&tp);
                self.positions.remove(&tp);
                self.fetched.remove(&tp);
                self.committed.remove(&tp);
                self.first_offset.remove(&tp);
                self.throttled.remove(&tp);
                let key = self.task_key(tp);
                let still_assigned = self.assigned.iter().any(|t| self.task_key(*t) == key);
                if !still_assigned {
                    self.restorer.forget(key);
                    if let Some(task) = self.tasks.remove(&key) {
                        self.close_task(task);
                    }
                }
            }
        }
        tracing::info!(thread = self.spec.index, lost, partitions = %describe(tpl), "partitions revoked");
    }

    /// At shutdown: commit what was processed (or abort if that cannot be
    /// done safely), then close every task.
    pub fn finish(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        if self.dirty && !self.fenced {
            self.commit_or_abort(consumer);
        }
        if self.eos() && !self.fenced {
            let _ = self
                .producer
                .abort_transaction(crate::stream_thread::CALL_TIMEOUT);
        }
        self.close_all_dirty();
    }

    /// Closes every task without applying its pending writes.
    pub fn close_all_dirty(&mut self) {
        self.restorer.clear();
        for (_, task) in std::mem::take(&mut self.tasks) {
            self.close_task(task);
        }
        self.spec.stats.set_lag(self.spec.index, Vec::new());
    }

    /// Tells the registry whether this thread is ready: it has had an
    /// assignment and none of its tasks is restoring.
    /// Called every loop: the registry's lock is taken only on a change.
    pub fn publish_readiness(&mut self) {
        let restoring = self
            .tasks
            .values()
            .filter(|t| t.phase == TaskPhase::Restoring)
            .count();
        let now = (self.joined, restoring);
        if self.published_readiness != Some(now) {
            self.published_readiness = Some(now);
            self.spec
                .stats
                .set_thread_readiness(self.spec.index, now.0, now.1);
        }
    }

    /// Closes `task`, handing its last counts to the registry.
    fn close_task(&self, mut task: Task) {
        self.spec
            .stats
            .task_closed(&task.id, task.executor.take_metrics());
        task.close();
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for e in tpl.elements() {
        by_topic
            .entry(e.topic().to_string())
            .or_default()
            .push(e.partition());
    }
    by_topic
        .iter()
        .map(|(t, ps)| format!("{t}{ps:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}
