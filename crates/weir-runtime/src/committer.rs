//! Committing and aborting a stream thread's transaction, and the input
//! positions both rely on (the README, "How exactly-once works here").
//!
//! Commit: flush; `send_offsets_to_transaction` with every assigned
//! partition's position and fresh group metadata; `commit_transaction`;
//! then each task's pending writes go to its stores in one write batch
//! (nothing reaches a store before Kafka accepted the transaction). Abort:
//! `abort_transaction`; every task drops its pending writes, its processor
//! instances and its buffered records; every partition seeks back to its
//! last committed offset — a partition that cannot be sought back means a
//! rejoin, never a skipped range.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{Producer, PurgeConfig};
use rdkafka::{Offset, TopicPartitionList};
use weir_core::ErrorClass;
use weir_state::StoreId;

use crate::changelog::checkpoint_meta;
use crate::delivery::{lock_vec, same_txn, CHANGELOG_FLAG, MARKER_SOURCE, TIMER_SOURCE};
use crate::error::Error;
use crate::kafka::{classify, flush_quickly, is_per_record};
use crate::rebalance::ThreadContext;
use crate::stats::RuntimeStats;
use crate::stream_thread::{CALL_TIMEOUT, MAX_RETRIES};
use crate::task::{TaskKey, WriterState};
use crate::task_set::TaskSet;

impl TaskSet {
    /// Offsets of every assigned partition whose position is known, each
    /// with its task's stream time in the offset metadata (every
    /// transaction re-sends it, or the commit would erase it).
    fn offsets(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for tp in &self.assigned {
            if let Some(&p) = self.positions.get(tp) {
                let stream_time = self
                    .tasks
                    .get(&self.task_key(*tp))
                    .and_then(|t| t.executor.stream_time());
                let mut e = tpl.add_partition(&self.topics[tp.0], tp.1);
                let _ = e.set_offset(Offset::Offset(p));
                if let Some(t) = stream_time {
                    e.set_metadata(stream_time_metadata(t));
                }
            }
        }
        tpl
    }

    /// Runs `step` until it succeeds, retrying retriable errors; returns the
    /// class of the error it finally failed with.
    fn retrying(
        &self,
        what: &'static str,
        mut step: impl FnMut(&Self) -> KafkaResult<()>,
    ) -> Result<(), ErrorClass> {
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result = self.spec.watch.run(what, CALL_TIMEOUT, || step(self));
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let class = classify(&e);
                    tracing::warn!(error = %e, ?class, attempt, elapsed_ms = started.elapsed().as_millis() as u64, "{what} failed");
                    if class != ErrorClass::Retriable {
                        return Err(class);
                    }
                    attempt += 1;
                    if attempt > MAX_RETRIES {
                        // A commit whose outcome is unknown must not be
                        // aborted (the broker may have committed it): treat
                        // it as fatal; the new producer's init completes it.
                        if what == "commit_transaction" {
                            return Err(ErrorClass::Fatal);
                        }
                        return Err(ErrorClass::AbortTransaction);
                    }
                }
            }
        }
    }

    /// Failures reported for the open transaction (reports of earlier,
    /// already aborted transactions are dropped).
    fn take_failures(&mut self) -> Vec<(usize, RDKafkaErrorCode)> {
        let txn = self.txn;
        std::mem::take(&mut *lock_vec(&self.failures))
            .into_iter()
            .filter(|(t, _, _)| same_txn(*t, txn))
            .map(|(_, s, c)| (s, c))
            .collect()
    }

    fn has_failures(&self) -> bool {
        let txn = self.txn;
        lock_vec(&self.failures)
            .iter()
            .any(|(t, _, _)| same_txn(*t, txn))
    }

    /// Commits, unless positions are unknown (a commit could then not carry
    /// every assigned partition): aborts instead.
    pub fn commit_or_abort(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        if self.unknown_positions {
            self.fetch_positions(consumer);
        }
        if self.unknown_positions {
            tracing::warn!(
                "positions of assigned partitions unknown: aborting instead of committing"
            );
            self.abort(consumer, false);
        } else {
            self.commit(consumer);
        }
    }

    /// Commits the open transaction (or, at least once, the offsets of
    /// acknowledged outputs), then applies every task's pending writes.
    pub fn commit(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        let started = Instant::now();
        let _span = tracing::debug_span!("commit", txn = self.txn).entered();
        // An interval's dead-letter summary is printed at the first commit after it.
        self.dead_letter_log.flush(started);
        self.commit_inner(consumer);
        let took = started.elapsed();
        RuntimeStats::add(&self.spec.stats.commit_micros, took.as_micros() as u64);
        self.spec.stats.commit_latency.observe(took);
    }

    fn commit_inner(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        let fp = self.spec.failpoints.clone();
        self.produce_markers();
        self.produce_changelogs();
        if self.has_failed() {
            return; // the thread stops; the open transaction is never committed
        }
        fp.hit("after_changelog_produce");
        fp.hit("before_produce_flush");
        RuntimeStats::add(
            &self.spec.stats.flush_backlog,
            self.producer.in_flight_count().max(0) as u64,
        );
        let mut mark = Instant::now();
        let mut phase = |s: &Self, i: usize| {
            RuntimeStats::add(
                &s.spec.stats.commit_phase_micros[i],
                mark.elapsed().as_micros() as u64,
            );
            mark = Instant::now();
        };
        if let Err(class) = self.retrying("flush", |s| flush_quickly(&s.producer, CALL_TIMEOUT)) {
            return self.fail_class(consumer, class);
        }
        phase(self, 0);
        if self.has_failures() || self.rewind_requested {
            return self.abort(consumer, true);
        }
        let offsets = self.offsets();
        if self.eos() {
            let Some(cgm) = consumer.group_metadata() else {
                tracing::warn!("no group metadata (not in the group): aborting");
                return self.abort(consumer, true);
            };
            if consumer.assignment_lost() {
                tracing::warn!("group membership lost before the commit: aborting");
                return self.abort(consumer, false);
            }
            if let Err(class) = self.retrying("send_offsets_to_transaction", |s| {
                s.producer
                    .send_offsets_to_transaction(&offsets, &cgm, CALL_TIMEOUT)
            }) {
                return self.fail_class(consumer, class);
            }
            fp.hit("after_send_offsets");
            // librdkafka clears the member id (and generation) when it finds
            // the session expired, a moment before it flags the assignment
            // lost. Offsets sent with cleared metadata look like a simple
            // consumer's and are not fenced, by Kafka or by the test broker,
            // so a zombie could commit. The flag is set long before
            // send_offsets returns and stays set until the next poll: if it
            // is set now, the metadata may have been cleared — abort.
            if consumer.assignment_lost() {
                tracing::warn!("group membership lost during the commit: aborting");
                return self.abort(consumer, false);
            }
            fp.hit("before_commit");
            phase(self, 1);
            if let Err(class) = self.retrying("commit_transaction", |s| {
                s.producer.commit_transaction(CALL_TIMEOUT)
            }) {
                return self.fail_class(consumer, class);
            }
            fp.hit("after_commit");
            phase(self, 2);
        } else {
            fp.hit("after_send_offsets");
            fp.hit("before_commit");
            phase(self, 1);
            if offsets.count() > 0 {
                if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                    // At least once: the records will be processed again.
                    tracing::warn!(error = %e, "offset commit failed; records since the last commit may repeat");
                }
            }
            fp.hit("after_commit");
            phase(self, 2);
        }
        for e in offsets.elements() {
            if let (Some(ti), Offset::Offset(o)) = (self.topic_index(e.topic()), e.offset()) {
                self.committed.insert((ti, e.partition()), o);
            }
        }
        // The transaction is in: now, and only now, the stores, each with
        // its checkpoint in the same write batch. Every report was served
        // by the flush above.
        let txn = self.txn;
        let acked: Vec<(usize, i64)> = std::mem::take(&mut *lock_vec(&self.acks))
            .into_iter()
            .filter(|(t, _, _)| same_txn(*t, txn))
            .map(|(_, slot, offset)| (slot, offset))
            .collect();
        let mut checkpoints = self.changelog.checkpoints(acked);
        self.table_checkpoints(&mut checkpoints);
        fp.hit("after_commit_before_checkpoint");
        let mut store_failure = None;
        for (key, task) in self.tasks.iter_mut() {
            if let Some(state) = &mut task.state {
                let meta = checkpoint_meta(
                    state.store_names(),
                    &checkpoints.remove(key).unwrap_or_default(),
                    self.spec.cluster_id.as_deref(),
                );
                if let Err(e) = state.commit(meta) {
                    store_failure.get_or_insert(Error::Task {
                        task: task.id.clone(),
                        message: format!("applying committed writes: {e}"),
                    });
                }
            }
            task.executor.committed();
            self.spec
                .stats
                .absorb(&task.id, task.executor.take_metrics());
            task.marked = task.marking.max(task.marked);
            task.marking = None;
            task.writer_marked = task.writer;
            task.timers_fired = 0;
        }
        phase(self, 3);
        if let Some(e) = store_failure {
            self.fail(e);
        }
        self.purger
            .after_commit(&self.spec.cfg, &self.topics, &self.committed);
        RuntimeStats::add(&self.spec.stats.commits, 1);
        tracing::debug!(
            thread = self.spec.index,
            records = self.sources.len(),
            "committed"
        );
        self.poisoned.committed();
        self.after_transaction();
        if self.eos() {
            if let Err(e) = self.producer.begin_transaction() {
                tracing::error!(error = %e, "begin_transaction failed");
                self.fenced = true;
            }
        }
    }

    fn fail_class(&mut self, consumer: &BaseConsumer<ThreadContext>, class: ErrorClass) {
        if class == ErrorClass::Fatal {
            self.fenced = true;
        } else {
            self.abort(consumer, true);
        }
    }

    fn after_transaction(&mut self) {
        // Counters are published per transaction, not per record.
        RuntimeStats::add(
            &self.spec.stats.consumed,
            std::mem::take(&mut self.consumed),
        );
        RuntimeStats::add(
            &self.spec.stats.produced,
            std::mem::take(&mut self.produced),
        );
        self.dirty = false;
        self.sources.clear();
        lock_vec(&self.failures).clear();
        lock_vec(&self.acks).clear();
        self.changelog.clear();
        self.txn += 1;
        self.last_commit = Instant::now();
    }

    /// Aborts the open transaction (exactly once) or drops the unacknowledged
    /// work (at least once): every task falls back to its last commit; if
    /// `seek`, every assigned partition is rewound to its last committed
    /// offset.
    pub fn abort(&mut self, consumer: &BaseConsumer<ThreadContext>, seek: bool) {
        RuntimeStats::add(&self.spec.stats.aborts, 1);
        if self.eos() {
            // librdkafka's abort waits until every outstanding delivery
            // report has been served, and only polling serves them: purge
            // what is unsent and serve the reports first (this also collects
            // the per-record failures below).
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            let deadline = Instant::now() + CALL_TIMEOUT;
            while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
                self.producer.poll(Duration::from_millis(10));
            }
        } else {
            let _ = self.producer.flush(CALL_TIMEOUT);
        }
        let mut marker_failed = false;
        for (source, code) in self.take_failures() {
            marker_failed |= source == MARKER_SOURCE;
            if source & CHANGELOG_FLAG != 0 {
                if is_per_record(code) {
                    // No source record to dead-letter: retrying would abort
                    // every commit from now on.
                    let store = self.store_of_slot(source & !CHANGELOG_FLAG);
                    self.fail(undeliverable_changelog(store, code));
                }
            } else if source == TIMER_SOURCE {
                if is_per_record(code) {
                    // Fired again after the abort, it would fail again.
                    self.fail(Error::Task {
                        task: "?".into(),
                        message: format!("an output of a timer or punctuation can never be delivered ({code}); a value too large for its topic?"),
                    });
                }
            } else if let Some(&src) = self.sources.get(source) {
                if is_per_record(code) {
                    self.poisoned
                        .suspect(src, format!("output could not be delivered: {code}"));
                }
            }
        }
        self.poisoned.aborted();
        tracing::warn!(
            thread = self.spec.index,
            poisoned = self.poisoned.len(),
            "aborting the transaction and re-processing from the last commit"
        );
        let eos = self.eos();
        for task in self.tasks.values_mut() {
            if !eos {
                // The flush delivered the markers sent, and they stand;
                // after a failed one no task knows what its writers' last
                // marker said downstream.
                task.writer_marked = if marker_failed {
                    WriterState::Unknown
                } else {
                    task.writer
                };
            }
            task.abort();
        }
        if self.eos() {
            if let Err(class) = self.retrying("abort_transaction", |s| {
                s.producer.abort_transaction(CALL_TIMEOUT)
            }) {
                tracing::error!(?class, "abort_transaction failed: rejoining");
                self.fenced = true;
                return;
            }
        }
        self.rewind_requested = false;
        self.after_transaction();
        // Without `seek` the partitions are being revoked (or the
        // assignment was lost): the next owner starts from the last commit.
        if seek {
            self.seek_to_committed(consumer);
        }
        if self.eos() {
            if let Err(e) = self.producer.begin_transaction() {
                tracing::error!(error = %e, "begin_transaction failed");
                self.fenced = true;
            }
        }
    }

    /// Adds the checkpoints of tables read from a topic (their changelog):
    /// the committed offset of the task's partition of that topic, for tasks
    /// with writes in this commit (others keep theirs: too low is harmless).
    fn table_checkpoints(&self, checkpoints: &mut BTreeMap<TaskKey, Vec<(StoreId, i64)>>) {
        for (key, task) in &self.tasks {
            let Some(state) = &task.state else { continue };
            if state.pending().is_empty() {
                continue;
            }
            for (store, name) in state.store_names().iter().enumerate() {
                let Some(topic) = self.spec.topology.table_source(name) else {
                    continue;
                };
                let Some(ti) = self.topic_index(topic) else {
                    continue;
                };
                if let Some(&offset) = self.committed.get(&(ti, key.1)) {
                    checkpoints.entry(*key).or_default().push((store, offset));
                }
            }
        }
    }

    /// Rewinds every assigned partition to its restart point (committed
    /// offset, or where it started if never committed). If those are not
    /// known (the lookup failed), or a seek fails, rejoins: continuing
    /// would skip the aborted range.
    fn seek_to_committed(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        if self.unknown_positions {
            self.fetch_positions(consumer);
        }
        if self.unknown_positions {
            tracing::warn!("committed offsets unknown after an abort: rejoining to rewind");
            self.fenced = true;
            return;
        }
        self.positions.clear();
        self.fetched.clear();
        for tp in self.assigned.clone() {
            // Without a restart point nothing was processed there: no rewind.
            let Some(&o) = self.committed.get(&tp).or(self.first_offset.get(&tp)) else {
                continue;
            };
            self.positions.insert(tp, o);
            self.fetched.insert(tp, o);
            if let Err(e) = consumer.seek(
                &self.topics[tp.0],
                tp.1,
                Offset::Offset(o),
                Duration::from_secs(10),
            ) {
                tracing::warn!(topic = %self.topics[tp.0], partition = tp.1, error = %e, "seek after abort failed: rejoining so the aborted range is re-read");
                self.fenced = true;
                return;
            }
        }
    }

    /// Learns the position of every partition assigned without one: its
    /// committed offset, or, if it never had one, where `auto.offset.reset`
    /// starts it (the log start or end). So every transaction carries the
    /// position of every assigned partition — and its offsets supersede any
    /// stale ones a broker may still hold for this producer (see
    /// [`crate::broker_quirks`]).
    pub fn fetch_positions(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        // Every partition needs a restart point, including those whose first
        // records were processed before this lookup ran: an abort rewinds
        // to it.
        let mut tpl = TopicPartitionList::new();
        for tp in &self.assigned {
            if !self.committed.contains_key(tp) {
                tpl.add_partition(&self.topics[tp.0], tp.1);
            }
        }
        if tpl.count() == 0 {
            self.unknown_positions = false;
            return;
        }
        let committed = match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "fetching committed offsets; will retry");
                return;
            }
        };
        if let Some(e) = committed.elements().iter().find_map(|e| e.error().err()) {
            tracing::debug!(error = %e, "fetching committed offsets; will retry");
            return;
        }
        let reset_to_end = self.reset_to_end();
        for e in committed.elements() {
            let Some(ti) = self.topic_index(e.topic()) else {
                continue;
            };
            let tp = (ti, e.partition());
            let position = match e.offset() {
                Offset::Offset(o) => o,
                // Never committed, starting at the end: the consumer's own
                // reset decides (the last stable offset); the first record
                // processed tells where (see `first_offset`).
                _ if reset_to_end => match self.first_offset.get(&tp) {
                    Some(&first) => first,
                    None => continue,
                },
                _ => match consumer.fetch_watermarks(
                    e.topic(),
                    e.partition(),
                    Duration::from_secs(10),
                ) {
                    Ok((low, _)) => low,
                    Err(err) => {
                        tracing::debug!(error = %err, "fetching watermarks; will retry");
                        return;
                    }
                },
            };
            self.committed.insert(tp, position);
            if let Some(t) = parse_stream_time(e.metadata()) {
                let key = self.task_key(tp);
                if let Some(task) = self.tasks.get_mut(&key) {
                    // A task reading several partitions keeps the largest.
                    if task.executor.stream_time().is_none_or(|s| s < t) {
                        task.executor.set_stream_time(Some(t));
                    }
                    // A new owner tells its downstream tasks its time
                    // again (theirs may have restarted without it), in a
                    // transaction of its own if nothing else comes.
                    if self
                        .marker_targets
                        .get(key.0)
                        .is_some_and(|m| !m.is_empty())
                    {
                        self.dirty = true;
                    }
                }
            }
            tracing::debug!(
                topic = e.topic(),
                partition = e.partition(),
                position,
                "position of assigned partition"
            );
            self.positions.entry(tp).or_insert(position);
        }
        self.unknown_positions = false;
    }

    fn reset_to_end(&self) -> bool {
        matches!(
            self.spec
                .cfg
                .kafka
                .get("auto.offset.reset")
                .map(String::as_str),
            Some("latest" | "end" | "largest")
        )
    }
}

/// The error that stops a thread whose changelog record can never be
/// delivered (`store`: the task and store it belongs to, when known).
pub(crate) fn undeliverable_changelog(
    store: Option<(String, String)>,
    code: impl std::fmt::Display,
) -> Error {
    let (task, store) = store.unwrap_or_else(|| ("?".into(), "?".into()));
    Error::Task {
        task,
        message: format!(
            "a changelog record of store {store} can never be delivered ({code}); a value too large for the topic? Raise the changelog's max.message.bytes or store smaller values"
        ),
    }
}

/// The offset-commit metadata carrying a task's stream time.
pub(crate) fn stream_time_metadata(t: i64) -> String {
    format!("weir:stream_time={t}")
}

/// The stream time in offset-commit metadata written by
/// [`stream_time_metadata`]; `None` for anything else (another client's
/// metadata, or none).
pub(crate) fn parse_stream_time(metadata: &str) -> Option<i64> {
    metadata.strip_prefix("weir:stream_time=")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_time_metadata_round_trips_and_foreign_metadata_is_ignored() {
        assert_eq!(parse_stream_time(&stream_time_metadata(-5)), Some(-5));
        assert_eq!(
            parse_stream_time(&stream_time_metadata(1_700_000_000_000)),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_stream_time(""), None);
        assert_eq!(parse_stream_time("weir:stream_time=x"), None);
        assert_eq!(parse_stream_time("something else"), None);
    }
}
