//! [`PartitionGroup`]: the buffered records of one task's input partitions,
//! released smallest timestamp first.
//!
//! A task reads partition p of every input topic of its sub-topology. Each
//! partition's records stay in offset order; across partitions the head
//! with the smallest timestamp goes next (ties: the partition listed first
//! — a table's topic is listed before the streams, so a table update and a
//! stream record of one timestamp meet update first), so a join or merge
//! sees its inputs in time order whatever order the fetcher delivered them
//! in. When some input has nothing buffered, the
//! group waits up to `max_task_idle` for it before releasing records of the
//! others (Kafka Streams' `max.task.idle.ms`; 0 = never wait).
//!
//! Besides, an empty input that still has records on the broker (it is
//! *lagging*: the runtime compares the consumer's position with the
//! partition's end; not known yet counts as lagging) is waited for,
//! up to `lag_wait` ([`LAG_WAIT`] in the runtime) — Kafka Streams' KIP-695
//! behaviour: with `max.task.idle.ms` 0 it does not wait for producers,
//! but does wait to fetch data already written. Without it a table topic
//! written before the stream would be joined half loaded whenever its
//! buffer ran dry between two fetches.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use weir_core::Record;

/// How long a task waits at most for a lagging input (see the module docs).
pub(crate) const LAG_WAIT: Duration = Duration::from_secs(5);

/// One task's input buffers; see the module docs.
#[derive(Debug)]
pub(crate) struct PartitionGroup<P> {
    partitions: Vec<(P, VecDeque<Record>)>,
    /// Per partition: whether records may wait on the broker; see
    /// [`PartitionGroup::set_lagging`].
    lagging: Vec<bool>,
    max_idle: Duration,
    lag_wait: Duration,
    /// Since when a lagging empty input holds the group back.
    lag_since: Option<Instant>,
    /// Since when the group has been waiting for an empty input.
    waiting_since: Option<Instant>,
}

impl<P: Copy + PartialEq> PartitionGroup<P> {
    /// An empty group over `partitions` (in tie-break order).
    pub fn new(partitions: Vec<P>, max_idle: Duration) -> Self {
        Self {
            lagging: vec![true; partitions.len()],
            partitions: partitions
                .into_iter()
                .map(|p| (p, VecDeque::new()))
                .collect(),
            max_idle,
            lag_wait: Duration::ZERO,
            lag_since: None,
            waiting_since: None,
        }
    }

    /// Waits up to `wait` for lagging inputs (see the module docs).
    pub fn with_lag_wait(mut self, wait: Duration) -> Self {
        self.lag_wait = wait;
        self
    }

    /// Adds a partition to the group (another input assigned to the task).
    pub fn add_partition(&mut self, p: P) {
        if !self.partitions.iter().any(|(q, _)| *q == p) {
            self.partitions.push((p, VecDeque::new()));
            self.lagging.push(true);
        }
    }

    /// Adds a partition that wins timestamp ties against those added with
    /// [`PartitionGroup::add_partition`] (a table's topic).
    pub fn add_partition_first(&mut self, p: P) {
        if !self.partitions.iter().any(|(q, _)| *q == p) {
            self.partitions.insert(0, (p, VecDeque::new()));
            self.lagging.insert(0, true);
        }
    }

    /// Whether the group reads several partitions.
    pub fn is_multi(&self) -> bool {
        self.partitions.len() > 1
    }

    /// The empty partitions not known to be caught up (whose lag the
    /// runtime should find out).
    pub fn unsettled_partitions(&self) -> impl Iterator<Item = P> + '_ {
        self.partitions
            .iter()
            .zip(&self.lagging)
            .filter(|((_, q), lagging)| q.is_empty() && **lagging)
            .map(|((p, _), _)| *p)
    }

    /// Whether partition `p` has records on the broker not fetched yet (or
    /// that is not known).
    pub fn set_lagging(&mut self, p: P, lagging: bool) {
        if let Some(i) = self.partitions.iter().position(|(q, _)| *q == p) {
            self.lagging[i] = lagging;
        }
    }

    /// Whether an empty input with records still to fetch holds the group.
    fn held_by_lag(&self) -> bool {
        !self.lag_wait.is_zero()
            && self
                .partitions
                .iter()
                .zip(&self.lagging)
                .any(|((_, q), lagging)| q.is_empty() && *lagging)
    }

    /// The partitions of the group.
    pub fn partitions(&self) -> impl Iterator<Item = P> + '_ {
        self.partitions.iter().map(|(p, _)| *p)
    }

    /// Buffers a fetched record of partition `p` (ignored if `p` is not in
    /// the group).
    pub fn push(&mut self, p: P, record: Record) {
        if let Some(i) = self.partitions.iter().position(|(q, _)| *q == p) {
            self.partitions[i].1.push_back(record);
            // Caught up once; whether it is again when drained is not known.
            self.lagging[i] = true;
        }
    }

    /// Puts back a record [`PartitionGroup::next`] gave out, at the head of
    /// its partition (it was not processed).
    pub fn unread(&mut self, p: P, record: Record) {
        if let Some(i) = self.partitions.iter().position(|(q, _)| *q == p) {
            self.partitions[i].1.push_front(record);
        }
    }

    /// Records buffered for partition `p`.
    pub fn buffered(&self, p: P) -> usize {
        self.partitions
            .iter()
            .find(|(q, _)| *q == p)
            .map_or(0, |(_, q)| q.len())
    }

    /// The next record to process, or `None` when nothing is buffered or
    /// the group is waiting for an empty input.
    pub fn next(&mut self, now: Instant) -> Option<(P, Record)> {
        let mut best: Option<usize> = None;
        let mut some_empty = false;
        for (i, (_, q)) in self.partitions.iter().enumerate() {
            match q.front() {
                None => some_empty = true,
                Some(r) => {
                    let better = best.is_none_or(|b| {
                        r.timestamp
                            < self.partitions[b]
                                .1
                                .front()
                                .map_or(i64::MAX, |h| h.timestamp)
                    });
                    if better {
                        best = Some(i);
                    }
                }
            }
        }
        // Nothing buffered: the wait (if any) goes on — it ends only when
        // every input has data, as in Kafka Streams, so an input that stays
        // empty is waited for once, not before every record of the others.
        let i = best?;
        if self.held(now, some_empty) {
            return None;
        }
        let (p, q) = &mut self.partitions[i];
        q.pop_front().map(|r| (*p, r))
    }

    /// Whether the group, with records buffered, holds them back at `now`
    /// for an empty input; starts (or ends) the waits' clocks.
    fn held(&mut self, now: Instant, some_empty: bool) -> bool {
        if self.held_by_lag() {
            let since = *self.lag_since.get_or_insert(now);
            if now.duration_since(since) < self.lag_wait {
                return true;
            }
        } else {
            self.lag_since = None;
        }
        if some_empty && !self.max_idle.is_zero() {
            let since = *self.waiting_since.get_or_insert(now);
            if now.duration_since(since) < self.max_idle {
                return true;
            }
        } else {
            self.waiting_since = None;
        }
        false
    }

    /// Like [`PartitionGroup::ready`], and starts the clocks of the waits
    /// that hold the group (as [`PartitionGroup::next`] would), so a group
    /// that is asked but not taken from still stops waiting in time.
    pub fn ready_now(&mut self, now: Instant) -> bool {
        let some_empty = self.partitions.iter().any(|(_, q)| q.is_empty());
        self.head_timestamp().is_some() && !self.held(now, some_empty)
    }

    /// The timestamp of the record [`PartitionGroup::next`] would release
    /// (when it releases one): the smallest buffered head.
    pub fn head_timestamp(&self) -> Option<i64> {
        self.partitions
            .iter()
            .filter_map(|(_, q)| q.front().map(|r| r.timestamp))
            .min()
    }

    /// Whether [`PartitionGroup::next`] would release a record at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        let mut any = false;
        let mut some_empty = false;
        for (_, q) in &self.partitions {
            if q.is_empty() {
                some_empty = true;
            } else {
                any = true;
            }
        }
        if !any {
            return false;
        }
        if self.held_by_lag()
            && self
                .lag_since
                .is_none_or(|since| now.duration_since(since) < self.lag_wait)
        {
            return false;
        }
        if !some_empty || self.max_idle.is_zero() {
            return true;
        }
        self.waiting_since
            .is_some_and(|since| now.duration_since(since) >= self.max_idle)
    }

    /// Drops every buffered record (after an abort the partitions are
    /// re-read from the last commit).
    pub fn clear(&mut self) {
        for (_, q) in &mut self.partitions {
            q.clear();
        }
        self.lagging.iter_mut().for_each(|l| *l = true);
        self.lag_since = None;
        self.waiting_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weir_core::Headers;

    fn rec(p: usize, offset: i64, ts: i64) -> Record {
        Record {
            topic: format!("t{p}"),
            partition: 0,
            offset,
            key: None,
            value: None,
            headers: Headers::new(),
            timestamp: ts,
        }
    }

    /// Drains a group that has everything buffered: the reference order.
    fn merge(parts: &[Vec<i64>]) -> Vec<(usize, i64)> {
        let mut idx = vec![0usize; parts.len()];
        let mut out = Vec::new();
        loop {
            let mut best: Option<usize> = None;
            for (p, ts) in parts.iter().enumerate() {
                if let Some(&t) = ts.get(idx[p]) {
                    if best.is_none_or(|b| t < parts[b][idx[b]]) {
                        best = Some(p);
                    }
                }
            }
            let Some(b) = best else { return out };
            out.push((b, idx[b] as i64));
            idx[b] += 1;
        }
    }

    proptest! {
        /// Whatever order the fetcher delivers the partitions' records in,
        /// once all are buffered the group releases them in the same order:
        /// per partition by offset, across partitions by head timestamp.
        #[test]
        fn release_order_does_not_depend_on_fetch_order(
            parts in prop::collection::vec(prop::collection::vec(0i64..50, 0..12), 1..4),
            fetch in prop::collection::vec(0usize..4, 0..60),
        ) {
            let mut g = PartitionGroup::new((0..parts.len()).collect(), Duration::ZERO);
            let mut next = vec![0usize; parts.len()];
            // Fetch in the given interleaving, then whatever is left.
            let order = fetch.into_iter().map(|p| p % parts.len())
                .chain((0..parts.len()).flat_map(|p| std::iter::repeat_n(p, 12)));
            for p in order {
                if let Some(&ts) = parts[p].get(next[p]) {
                    g.push(p, rec(p, next[p] as i64, ts));
                    next[p] += 1;
                }
            }
            let now = Instant::now();
            let mut got = Vec::new();
            while let Some((p, r)) = g.next(now) {
                got.push((p, r.offset));
            }
            prop_assert_eq!(got, merge(&parts));
        }

        /// With records arriving while the group drains (max idle 0), each
        /// partition's records still come out in offset order, and every
        /// release picks the smallest head among the non-empty partitions.
        #[test]
        fn interleaved_fetches_keep_offset_order_and_pick_the_smallest_head(
            steps in prop::collection::vec((0usize..3, 0i64..50, any::<bool>()), 0..80),
        ) {
            let mut g = PartitionGroup::new(vec![0, 1, 2], Duration::ZERO);
            let mut offsets = [0i64; 3];
            let mut last = [-1i64; 3];
            let now = Instant::now();
            for (p, ts, take) in steps {
                g.push(p, rec(p, offsets[p], ts));
                offsets[p] += 1;
                if take {
                    let heads: Vec<i64> = g.partitions.iter().filter_map(|(_, q)| q.front().map(|r| r.timestamp)).collect();
                    let (q, r) = g.next(now).unwrap();
                    prop_assert_eq!(Some(&r.timestamp), heads.iter().min());
                    prop_assert!(r.offset > last[q]);
                    last[q] = r.offset;
                }
            }
        }
    }

    #[test]
    fn a_partition_added_first_wins_ties() {
        let mut g = PartitionGroup::new(vec![0], Duration::ZERO);
        g.add_partition_first(1);
        g.push(0, rec(0, 0, 10));
        g.push(1, rec(1, 0, 10));
        g.set_lagging(0, false);
        g.set_lagging(1, false);
        let now = Instant::now();
        assert_eq!(g.next(now).unwrap().0, 1, "the table's update first");
        assert_eq!(g.next(now).unwrap().0, 0);
    }

    #[test]
    fn an_empty_input_with_records_on_the_broker_is_waited_for() {
        let mut g = PartitionGroup::new(vec![0, 1], Duration::ZERO)
            .with_lag_wait(Duration::from_millis(100));
        g.push(0, rec(0, 0, 10));
        let t0 = Instant::now();
        assert!(g.next(t0).is_none(), "partition 1's lag is not known yet");
        assert!(!g.ready(t0 + Duration::from_millis(99)));
        // Its records arrive: released in timestamp order.
        g.push(1, rec(1, 0, 5));
        assert_eq!(g.next(t0 + Duration::from_millis(10)).unwrap().0, 1);
        // Drained: not known to be caught up, so waited for again.
        assert!(g.next(t0 + Duration::from_millis(11)).is_none());
        assert_eq!(g.unsettled_partitions().collect::<Vec<_>>(), vec![1]);
        g.set_lagging(1, false);
        assert_eq!(g.unsettled_partitions().count(), 0);
        assert!(g.ready(t0 + Duration::from_millis(12)));
        assert_eq!(g.next(t0 + Duration::from_millis(12)).unwrap().0, 0);
        // Caught up: an empty spell is not waited for (idle 0).
        g.push(0, rec(0, 1, 20));
        assert!(g.next(t0 + Duration::from_millis(13)).is_some());
        // A partition that stays lagging holds the group only up to the wait.
        g.set_lagging(1, true);
        g.push(0, rec(0, 2, 30));
        let t1 = t0 + Duration::from_millis(200);
        assert!(g.next(t1).is_none());
        assert!(g.ready(t1 + Duration::from_millis(100)));
        assert!(g.next(t1 + Duration::from_millis(100)).is_some());
    }

    #[test]
    fn an_empty_input_is_waited_for_up_to_the_idle_time() {
        let mut g = PartitionGroup::new(vec![0, 1], Duration::from_millis(50));
        g.push(0, rec(0, 0, 10));
        let t0 = Instant::now();
        assert!(g.next(t0).is_none(), "waits for partition 1");
        assert!(g.next(t0 + Duration::from_millis(49)).is_none());
        assert!(!g.ready(t0 + Duration::from_millis(49)));
        assert!(g.ready(t0 + Duration::from_millis(50)));
        assert_eq!(g.next(t0 + Duration::from_millis(50)).unwrap().1.offset, 0);
        // Partition 1 stays empty: it was waited for once, not again.
        g.push(0, rec(0, 5, 40));
        assert!(g.next(t0 + Duration::from_millis(60)).is_some());
        // Once both had data, a new empty spell is waited for again.
        g.push(0, rec(0, 6, 50));
        g.push(1, rec(1, 9, 5));
        assert_eq!(g.next(t0 + Duration::from_millis(61)).unwrap().0, 1);
        let t1 = t0 + Duration::from_millis(62);
        assert!(g.next(t1).is_none());
        assert!(g.next(t1 + Duration::from_millis(50)).is_some());
        // Both buffered: no waiting, smallest timestamp first.
        g.push(0, rec(0, 1, 30));
        g.push(1, rec(1, 0, 20));
        assert_eq!(g.next(t0).unwrap().0, 1);
    }
}
