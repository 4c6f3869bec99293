//! How far behind the broker a stream thread's inputs are: the consumer's
//! position against each partition's end from the consumer's statistics
//! (see [`crate::rebalance::PartitionEnds`]), for the partition groups'
//! wait for lagging inputs and for the wait of tasks that write repartition
//! topics (see [`TaskSet::process_ready`]).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::partition_group::LAG_WAIT;
use crate::rebalance::ThreadContext;
use crate::task::{TaskKey, TaskPhase, Tp};
use crate::task_set::TaskSet;

impl TaskSet {
    /// Tells each running task reading several partitions which of its
    /// empty inputs still have records on the broker, so it waits for them
    /// rather than run ahead of them in time (see
    /// [`crate::partition_group`]): the consumer's position against the
    /// partition's end from the consumer's statistics (the last stable
    /// offset, read_committed). No end reported yet: still lagging as far as
    /// anyone knows.
    pub fn update_lag(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        let mut unsettled: Vec<(TaskKey, Tp)> = Vec::new();
        for (key, task) in &self.tasks {
            if task.phase == TaskPhase::Running && task.group.is_multi() {
                unsettled.extend(task.group.unsettled_partitions().map(|tp| (*key, tp)));
            }
        }
        if unsettled.is_empty() {
            return;
        }
        // The consumer's position steps over transaction markers, which the
        // last fetched offset does not.
        let positions = consumer.position().ok();
        let ends = lock_ends(&self.partition_ends).clone();
        for (key, tp) in unsettled {
            let topic = &self.topics[tp.0];
            let Some(&end) = ends.get(&(topic.clone(), tp.1)) else {
                continue; // still lagging as far as anyone knows
            };
            let position =
                position_in(positions.as_ref(), topic, tp.1).max(self.fetched.get(&tp).copied());
            let lagging = position.is_none_or(|p| end > p);
            if let Some(task) = self.tasks.get_mut(&key) {
                task.group.set_lagging(tp, lagging);
            }
        }
    }

    /// Reports to the registry how far behind its end each input partition
    /// of this thread's tasks is: the end from the consumer's statistics
    /// against the consumer's fetch position (Kafka Streams' records-lag;
    /// records fetched but not yet processed are not lag). Partitions whose
    /// end or position is not known yet are left out.
    pub(crate) fn publish_lag(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        self.spec
            .stats
            .process_latency
            .absorb(&mut self.process_latency);
        let positions = consumer.position().ok();
        let ends = lock_ends(&self.partition_ends).clone();
        let mut lag = Vec::new();
        for task in self.tasks.values() {
            for tp in task.group.partitions() {
                let topic = &self.topics[tp.0];
                let Some(&end) = ends.get(&(topic.clone(), tp.1)) else {
                    continue;
                };
                if let Some(p) = self.read_position(positions.as_ref(), tp, end) {
                    lag.push((topic.clone(), tp.1, (end - p).max(0)));
                }
            }
        }
        self.spec.stats.set_lag(self.spec.index, lag);
    }

    /// The consumer's position and the (statistics') end of every input
    /// partition of a task that writes repartition topics: `None` when
    /// either is not known yet.
    pub(crate) fn upstream_lag_view(
        &self,
        consumer: &BaseConsumer<ThreadContext>,
    ) -> HashMap<Tp, Option<(i64, i64)>> {
        let positions = consumer.position().ok();
        let ends = lock_ends(&self.partition_ends);
        let mut view = HashMap::new();
        for tp in self.upstream_partitions() {
            let topic = &self.topics[tp.0];
            let position = position_in(positions.as_ref(), topic, tp.1)
                .or_else(|| self.positions.get(&tp).copied());
            let end = ends.get(&(topic.clone(), tp.1)).copied();
            view.insert(tp, position.zip(end));
        }
        view
    }

    /// The input partitions of running tasks that write repartition topics
    /// that may still have records on the broker: the statistics' end is
    /// past the consumer's position (or, before any fetch, the next offset
    /// to process or the committed one), or no position is known for a
    /// partition that is not empty. One whose end is not known yet is not
    /// in it. A task with one does not mark itself idle.
    pub(crate) fn known_lagging(&self, consumer: &BaseConsumer<ThreadContext>) -> HashSet<Tp> {
        let positions = consumer.position().ok();
        let ends = lock_ends(&self.partition_ends);
        let mut lagging = HashSet::new();
        for tp in self.upstream_partitions() {
            let Some(&end) = ends.get(&(self.topics[tp.0].clone(), tp.1)) else {
                continue;
            };
            let position = self.read_position(positions.as_ref(), tp, end);
            if position.is_none_or(|p| end > p) {
                lagging.insert(tp);
            }
        }
        lagging
    }

    /// The input partitions of the running tasks that write repartition
    /// topics.
    fn upstream_partitions(&self) -> impl Iterator<Item = Tp> + '_ {
        self.tasks
            .iter()
            .filter(|(key, t)| {
                t.phase == TaskPhase::Running
                    && self
                        .marker_targets
                        .get(key.0)
                        .is_some_and(|m| !m.is_empty())
            })
            .flat_map(|(_, t)| t.group.partitions())
    }

    /// How far partition `tp` (whose end is `end`) has been read: the
    /// consumer's fetch position (it steps over transaction markers) or the
    /// last fetched offset; before any fetch, the next offset to process or
    /// the committed one; an empty partition is caught up.
    fn read_position(
        &self,
        positions: Option<&rdkafka::TopicPartitionList>,
        tp: Tp,
        end: i64,
    ) -> Option<i64> {
        position_in(positions, &self.topics[tp.0], tp.1)
            .max(self.fetched.get(&tp).copied())
            .or_else(|| self.positions.get(&tp).copied())
            .or_else(|| self.committed.get(&tp).copied())
            .or((end == 0).then_some(0))
    }

    /// Whether an empty input of a task that writes repartition topics may
    /// still have records on the broker (its end is past the consumer's
    /// position, or either is not known yet) and has not been waited for
    /// [`LAG_WAIT`] yet in this spell of being empty.
    pub(crate) fn upstream_lagging(
        &mut self,
        view: &HashMap<Tp, Option<(i64, i64)>>,
        now: Instant,
    ) -> bool {
        let mut lagging: Vec<Tp> = Vec::new();
        for (key, t) in &self.tasks {
            if t.phase != TaskPhase::Running
                || self.marker_targets.get(key.0).is_none_or(Vec::is_empty)
            {
                continue;
            }
            lagging.extend(t.group.partitions().filter(|&tp| {
                t.group.buffered(tp) == 0
                    && view
                        .get(&tp)
                        .is_none_or(|pe| pe.is_none_or(|(position, end)| end > position))
            }));
        }
        self.upstream_lag_since.retain(|tp, _| lagging.contains(tp));
        let mut hold = false;
        for tp in lagging {
            let since = *self.upstream_lag_since.entry(tp).or_insert(now);
            hold |= now.duration_since(since) < LAG_WAIT;
        }
        hold
    }
}

/// The offset of `topic`/`partition` in the consumer's `positions`, if valid.
fn position_in(
    positions: Option<&rdkafka::TopicPartitionList>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    match positions?.find_partition(topic, partition)?.offset() {
        rdkafka::Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// The partition ends, even after a panic while they were held.
pub(crate) fn lock_ends(
    ends: &crate::rebalance::PartitionEnds,
) -> std::sync::MutexGuard<'_, HashMap<(String, i32), i64>> {
    ends.lock().unwrap_or_else(|e| e.into_inner())
}
