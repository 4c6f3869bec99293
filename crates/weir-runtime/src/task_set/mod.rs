//! [`TaskSet`]: the tasks of one stream thread and the bookkeeping of its
//! open transaction — buffering, processing, sending. Assignment and
//! revocation are in `assignment`; committing and aborting in
//! [`crate::committer`].

mod assignment;

use crate::dead_letters::{DeadLetterLog, Noted, LOG_INTERVAL};
use crate::poison::PoisonLedger;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Message, TopicPartitionList};
use weir_core::{DeadLetter, ErrorClass, ProcessError, Record};

use crate::changelog::ChangelogWrites;
use crate::delivery::{opaque, Ack, DeliveryContext, Failure};
use crate::error::Error;
use crate::kafka::{is_per_record, to_owned_headers, to_record};
use crate::purge::Purger;
use crate::rebalance::ThreadContext;
use crate::restore::ChangelogRestorer;
use crate::stats::RuntimeStats;
use crate::stream_thread::ThreadSpec;
use crate::task::{Task, TaskKey, TaskPhase, Tp};
use crate::timers::{timers_ready, TIMER_CHUNK};

/// Buffered records of one partition above which it is paused.
const PAUSE_ABOVE: usize = 10_000;
/// Pending state bytes of a thread above which it commits early.
const PENDING_BYTES_LIMIT: usize = 64 << 20;

/// The tasks of one stream thread and the bookkeeping of its open
/// transaction.
pub(crate) struct TaskSet {
    pub spec: Arc<ThreadSpec>,
    /// The thread has its assignment (possibly empty) from the group: set
    /// on assignment, cleared on revocation (a rebalance in progress).
    pub joined: bool,
    /// What [`TaskSet::publish_readiness`] last told the registry.
    published_readiness: Option<(bool, usize)>,
    pub producer: BaseProducer<DeliveryContext>,
    pub failures: Arc<Mutex<Vec<Failure>>>,
    /// Acknowledged changelog records (all transactions; filtered by number).
    pub acks: Arc<Mutex<Vec<Ack>>>,
    /// The changelog partitions written in the open transaction.
    pub changelog: ChangelogWrites,
    /// Sequence number of the open transaction (tags delivery reports).
    pub txn: u64,
    /// Source topics by index (the `Tp` topic index).
    pub topics: Vec<String>,
    /// The sub-topology reading each source topic, by topic index.
    subtopologies: Vec<usize>,
    pub tasks: BTreeMap<TaskKey, Task>,
    pub assigned: BTreeSet<Tp>,
    /// Partitions paused for backpressure (not for restoration).
    throttled: BTreeSet<Tp>,
    /// Throttled partitions not yet paused (pausing needs the consumer).
    pending_pauses: Vec<Tp>,
    /// Next offset to process, per partition, as far as this thread knows.
    pub positions: BTreeMap<Tp, i64>,
    /// Next offset expected from the fetcher, per partition (records below
    /// it were fetched before a seek and are skipped).
    pub fetched: BTreeMap<Tp, i64>,
    /// The last offsets known committed (by this thread, or fetched).
    pub committed: BTreeMap<Tp, i64>,
    /// Some assigned partitions have no known position yet.
    pub unknown_positions: bool,
    /// Records were processed since the last commit.
    pub dirty: bool,
    /// The source record of each output's delivery opaque, for this transaction.
    pub sources: Vec<(Tp, i64)>,
    /// Source records that aborted transactions: dead-lettered (kind
    /// `poison`) after `max_aborts_per_record` in a row.
    pub poisoned: PoisonLedger,
    /// Rate-limited log lines for dead letters.
    pub dead_letter_log: DeadLetterLog,
    /// The first offset processed per partition since it was assigned: the
    /// restart point of a never-committed partition under
    /// `auto.offset.reset=latest` (where the consumer's own reset put it).
    pub first_offset: BTreeMap<Tp, i64>,
    /// The open transaction must be aborted (or, at least once, the
    /// partitions rewound) before anything else.
    pub rewind_requested: bool,
    /// The producer is unusable or positions cannot be restored: close
    /// everything and rejoin.
    pub fenced: bool,
    /// The thread cannot go on (a store failed): stop it with this error.
    failure: Option<Error>,
    restorer: ChangelogRestorer,
    /// Deletes consumed records of repartition topics after commits.
    pub purger: Purger,
    /// Partition ends from the consumer's statistics (see
    /// [`crate::rebalance::PartitionEnds`]).
    pub partition_ends: crate::rebalance::PartitionEnds,
    /// Since when each empty, lagging input of a task writing repartition
    /// topics has been waited for (see [`TaskSet::process_ready`]).
    pub(crate) upstream_lag_since: HashMap<Tp, Instant>,
    /// Per-record processing times since the last lag publication (folded
    /// into the registry's histogram there).
    pub(crate) process_latency: crate::histogram::LocalHistogram,
    /// Span ids for the outputs' `traceparent` (see [`crate::trace`]).
    span_ids: crate::trace::SpanIds,
    /// `process_ready` stopped to wait for a lagging input.
    pub held_for_lag: bool,
    /// Per sub-topology: the repartition topics it writes (where its
    /// tasks send stream-time markers, see [`crate::markers`]).
    pub marker_targets: Vec<Vec<(String, crate::topics::RepartitionTopic)>>,
    pub(crate) out: Vec<Record>,
    /// A task has more due timers than its chunk of this transaction:
    /// commit now, so they fire in the next one.
    pub timer_backlog: bool,
    pub last_commit: Instant,
    /// Records consumed and produced since the counters were last published.
    pub consumed: u64,
    pub produced: u64,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl TaskSet {
    pub fn new(
        spec: Arc<ThreadSpec>,
        producer: BaseProducer<DeliveryContext>,
        failures: Arc<Mutex<Vec<Failure>>>,
        acks: Arc<Mutex<Vec<Ack>>>,
        poisoned: PoisonLedger,
    ) -> Self {
        let topics = spec.topology.source_topics();
        let repartition: Vec<String> = spec
            .topology
            .repartition_topics()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let purger = Purger::new(&topics, &repartition);
        let marker_targets = (0..spec.topology.subtopology_count())
            .map(|sub| {
                spec.repartition_partitions
                    .iter()
                    .filter(|(t, _)| spec.topology.writers_of(t).contains(&sub))
                    .filter(|(t, _)| spec.topology.carries_markers(t))
                    .map(|(t, r)| (t.clone(), *r))
                    .collect()
            })
            .collect();
        let subtopologies = topics
            .iter()
            .map(|t| {
                spec.topology
                    .subtopology_of(t)
                    .expect("a source topic has a sub-topology")
            })
            .collect();
        Self {
            partition_ends: Default::default(),
            upstream_lag_since: HashMap::new(),
            held_for_lag: false,
            marker_targets,
            spec,
            producer,
            failures,
            acks,
            changelog: ChangelogWrites::default(),
            txn: 0,
            topics,
            subtopologies,
            tasks: BTreeMap::new(),
            assigned: BTreeSet::new(),
            throttled: BTreeSet::new(),
            pending_pauses: Vec::new(),
            positions: BTreeMap::new(),
            fetched: BTreeMap::new(),
            committed: BTreeMap::new(),
            unknown_positions: false,
            dirty: false,
            sources: Vec::new(),
            poisoned,
            dead_letter_log: DeadLetterLog::new(LOG_INTERVAL),
            process_latency: Default::default(),
            span_ids: Default::default(),
            first_offset: BTreeMap::new(),
            joined: false,
            published_readiness: None,
            rewind_requested: false,
            fenced: false,
            failure: None,
            restorer: ChangelogRestorer::default(),
            purger,
            out: Vec::new(),
            timer_backlog: false,
            last_commit: Instant::now(),
            consumed: 0,
            produced: 0,
        }
    }

    pub fn eos(&self) -> bool {
        self.spec.eos()
    }

    pub fn topic_index(&self, topic: &str) -> Option<usize> {
        self.topics.iter().position(|t| t == topic)
    }

    /// The task id and store name behind changelog slot `slot` of the open
    /// transaction.
    pub fn store_of_slot(&self, slot: usize) -> Option<(String, String)> {
        let (key, store) = self.changelog.slot_of(slot)?;
        let task = self.tasks.get(&key)?;
        let name = task.executor.store_names().get(store)?.clone();
        Some((task.id.clone(), name))
    }

    pub fn task_key(&self, tp: Tp) -> TaskKey {
        (self.subtopologies[tp.0], tp.1)
    }

    /// Stops the thread with `e` at the end of this turn.
    pub fn fail(&mut self, e: Error) {
        tracing::error!(thread = self.spec.index, error = %e, "stream thread cannot go on");
        self.failure.get_or_insert(e);
    }

    /// Whether the thread must stop (see [`TaskSet::fail`]).
    pub fn has_failed(&self) -> bool {
        self.failure.is_some()
    }

    pub fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    /// Takes a fetched record into its task's partition group.
    pub fn buffer(&mut self, m: &BorrowedMessage<'_>) {
        let Some(ti) = self.topic_index(m.topic()) else {
            tracing::warn!(
                topic = m.topic(),
                "record from a topic no source reads; skipped"
            );
            return;
        };
        let tp = (ti, m.partition());
        if !self.assigned.contains(&tp) {
            return; // fetched before a revoke; the new owner processes it
        }
        if self.fetched.get(&tp).is_some_and(|&f| m.offset() < f) {
            return; // fetched before a seek; re-read from the new position
        }
        let key = self.task_key(tp);
        let Some(task) = self.tasks.get_mut(&key) else {
            return;
        };
        self.fetched.insert(tp, m.offset() + 1);
        // The restart point of a never-committed partition under
        // `auto.offset.reset=latest` is its first fetched record, whether
        // or not it was processed before an abort.
        self.first_offset.entry(tp).or_insert(m.offset());
        task.group.push(tp, to_record(m));
        if task.group.buffered(tp) > PAUSE_ABOVE && self.throttled.insert(tp) {
            tracing::debug!(topic = m.topic(), partition = tp.1, "buffer full: pausing");
            // Resumed by `process_ready` once the buffer drains.
            self.pending_pauses.push(tp);
        }
    }

    /// Whether some running task has a record it would release now (not
    /// while waiting for a lagging input: the next poll brings it).
    pub fn has_ready_work(&self, now: Instant) -> bool {
        let timers = self
            .tasks
            .values()
            .any(|t| t.phase == TaskPhase::Running && timers_ready(t));
        if timers {
            return true;
        }
        if self.held_for_lag {
            return false;
        }
        let wall = now_ms();
        self.tasks.values().any(|t| {
            t.phase == TaskPhase::Running
                && t.blocked_until.is_none_or(|b| b <= wall)
                && t.group.ready(now)
        })
    }

    /// Whether some task is opening or restoring its stores.
    pub fn restoring(&self) -> bool {
        self.tasks
            .values()
            .any(|t| matches!(t.phase, TaskPhase::Created | TaskPhase::Restoring))
    }

    /// Whether the pending state is large enough to commit before the interval.
    pub fn buffers_full(&self) -> bool {
        let bytes: usize = self
            .tasks
            .values()
            .filter_map(|t| t.state.as_ref())
            .map(|s| s.pending().bytes())
            .sum();
        bytes > PENDING_BYTES_LIMIT
    }

    /// Processes what the running tasks' partition groups release, across
    /// tasks in timestamp order: the thread's tasks advance together in
    /// event time, so a task behind a repartition topic sees its upstream
    /// tasks' records interleaved by time, not one partition's backlog
    /// ahead of the others (which would make in-order records late for
    /// its windows).
    ///
    /// Tasks that write repartition topics also wait (up to [`LAG_WAIT`])
    /// while an input of one of them is empty but has records on the broker:
    /// a fetch lands one partition's records before another's, and running
    /// ahead on one would write records of later times to the repartition
    /// topic before earlier ones of the others.
    pub fn process_ready(&mut self, now: Instant, consumer: &BaseConsumer<ThreadContext>) {
        let interval = Duration::from_millis(self.spec.cfg.commit_interval_ms);
        let mut processed = 0usize;
        // Timers first: those due on the wall clock (inputs idle or not),
        // and stream-time ones left over from the last transaction's chunk.
        let wall = now_ms();
        self.timer_backlog = false;
        let due: Vec<TaskKey> = self
            .tasks
            .iter_mut()
            .filter_map(|(k, t)| {
                t.executor.set_wall_clock(wall);
                (t.phase == TaskPhase::Running && t.executor.has_due_timers()).then_some(*k)
            })
            .collect();
        for key in due {
            self.fire_timers(key);
        }
        let upstream = self.marker_targets.iter().any(|m| !m.is_empty());
        let view = if upstream {
            self.upstream_lag_view(consumer)
        } else {
            HashMap::new()
        };
        self.held_for_lag = false;
        loop {
            if self.rewind_requested || self.failure.is_some() {
                return;
            }
            // Bounded work per turn: commits stay on time however large
            // the backlog (a transaction must not outlive its timeout).
            processed += 1;
            if processed.is_multiple_of(1024)
                && self.dirty
                && self.last_commit.elapsed() >= interval
            {
                return;
            }
            let hold_upstream = upstream && self.upstream_lagging(&view, now);
            let mut earliest: Option<(i64, TaskKey)> = None;
            for (key, t) in self.tasks.iter_mut() {
                if t.phase != TaskPhase::Running {
                    continue;
                }
                // A node it calls is unavailable: its records wait.
                if t.blocked_until.is_some_and(|b| b > wall) {
                    continue;
                }
                t.blocked_until = None;
                if hold_upstream
                    && self
                        .marker_targets
                        .get(key.0)
                        .is_some_and(|m| !m.is_empty())
                {
                    self.held_for_lag = true;
                    continue;
                }
                // Due timers fire before the task's next record: one
                // whose chunk is spent waits for the commit.
                if t.timers_fired >= TIMER_CHUNK && t.executor.has_due_timers() {
                    continue;
                }
                let Some(ts) = t.group.head_timestamp() else {
                    continue;
                };
                if earliest.is_none_or(|(e, _)| ts < e) && t.group.ready_now(now) {
                    earliest = Some((ts, *key));
                }
            }
            let Some((_, key)) = earliest else {
                return;
            };
            let Some((tp, record)) = self.tasks.get_mut(&key).and_then(|t| t.group.next(now))
            else {
                return;
            };
            // The stream-time timers due by the record's time fire before
            // it; if its chunk is spent first, the record waits for the
            // commit.
            if let Some(t) = self.tasks.get_mut(&key) {
                t.executor.advance_for(&record);
            }
            self.fire_timers(key);
            if let Some(t) = self.tasks.get_mut(&key) {
                if t.timers_fired >= TIMER_CHUNK && t.executor.has_due_timers() {
                    t.group.unread(tp, record);
                    continue;
                }
            }
            self.process_record(key, tp, record);
            // Timers it set in the past fire at once.
            self.fire_timers(key);
        }
    }

    fn process_record(&mut self, key: TaskKey, tp: Tp, record: Record) {
        self.out.clear();
        let poisoned = self.poisoned.verdict((tp, record.offset));
        let spec = &self.spec;
        let task = self.tasks.get_mut(&key).expect("a running task");
        // The exported span of this record, when it joined a trace.
        let mut span_id = None;
        if let Some((aborts, reason)) = poisoned {
            let dl = DeadLetter {
                kind: "poison".into(),
                message: format!("aborted {aborts} transaction(s) in a row: {reason}"),
                node: "sink".into(),
                attempts: aborts,
                details: None,
            };
            self.out
                .push(dl.to_record(&spec.dead_letter_topic, &record, now_ms()));
            RuntimeStats::add(&spec.stats.dead_lettered, 1);
            let state = task
                .state
                .as_mut()
                .expect("a running task has its stores open");
            if let Err(e) = task
                .executor
                .record_failed(&record, state, aborts, &dl.message)
            {
                let task_id = task.id.clone();
                self.fail(Error::Task {
                    task: task_id,
                    message: e.to_string(),
                });
                return;
            }
        } else {
            let state = task
                .state
                .as_mut()
                .expect("a running task has its stores open");
            let started = Instant::now();
            let (_entered, id) = crate::trace::record_span(&record);
            span_id = id;
            let processed = task.executor.process(&record, &mut self.out, state);
            self.process_latency.observe(started.elapsed());
            if let Err(e) = processed {
                if let ProcessError::Unavailable { retry_at, .. } = e {
                    // Not processed: back to the head of its partition,
                    // and the task waits (its position does not move).
                    task.blocked_until = Some(retry_at);
                    task.group.unread(tp, record);
                    return;
                }
                if e.is_late() {
                    RuntimeStats::add(&spec.stats.late, 1);
                }
                if e.is_dropped_late() {
                    tracing::debug!(
                        topic = %record.topic,
                        partition = record.partition,
                        offset = record.offset,
                        error = %e,
                        "dropping a late record"
                    );
                } else if e.class() == ErrorClass::Fatal {
                    let task_id = task.id.clone();
                    self.fail(Error::Task {
                        task: task_id,
                        message: e.to_string(),
                    });
                    return;
                } else {
                    self.dead_letter_log.note(
                        &Noted {
                            kind: e.kind(),
                            topic: &record.topic,
                            partition: record.partition,
                            offset: record.offset,
                            node: e.node(),
                            error: &e,
                        },
                        Instant::now(),
                    );
                    self.out.push(DeadLetter::from(&e).to_record(
                        &spec.dead_letter_topic,
                        &record,
                        now_ms(),
                    ));
                    RuntimeStats::add(&spec.stats.dead_lettered, 1);
                }
            }
        }
        crate::trace::continue_trace(&record, &mut self.out, &mut self.span_ids, span_id);
        if !self.wake(key) {
            return; // rewound: processed again after the abort
        }
        let source = self.sources.len();
        self.sources.push((tp, record.offset));
        let mut out = std::mem::take(&mut self.out);
        for o in out.drain(..) {
            self.send(&o, source, tp, record.offset);
        }
        self.out = out;
        self.positions.insert(tp, record.offset + 1);
        self.dirty = true;
        self.consumed += 1;
        self.markers_after_record(key);
    }

    /// Sends output `o` in the open transaction, tagged with `source`.
    pub(crate) fn send_output(&mut self, o: &Record, source: usize) -> Result<(), KafkaError> {
        send_raw(
            &self.producer,
            Outgoing {
                topic: &o.topic,
                partition: None,
                key: o.key.as_deref(),
                value: o.value.as_deref(),
                headers: &o.headers,
                timestamp: Some(o.timestamp),
            },
            opaque(self.txn, source),
        )?;
        self.produced += 1;
        Ok(())
    }

    fn send(&mut self, o: &Record, source: usize, tp: Tp, offset: i64) {
        match self.send_output(o, source) {
            Ok(()) => {}
            Err(e) => {
                let code = e.rdkafka_error_code();
                if code.is_some_and(is_per_record) {
                    tracing::warn!(topic = %o.topic, error = %e, "an output can never be delivered; its input will be dead-lettered");
                    self.poisoned
                        .suspect((tp, offset), format!("output to {}: {e}", o.topic));
                } else {
                    tracing::warn!(topic = %o.topic, error = %e, "send failed; rewinding to the last commit");
                }
                self.rewind_requested = true;
            }
        }
    }

    /// Opens and restores new tasks, a bounded step each, and resumes the
    /// inputs of those that are ready; pauses or resumes partitions for
    /// backpressure.
    pub fn advance_tasks(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        // The common turn: every task running, nothing throttled.
        if self.throttled.is_empty()
            && self.pending_pauses.is_empty()
            && self.tasks.values().all(|t| t.phase == TaskPhase::Running)
        {
            return;
        }
        let keys: Vec<TaskKey> = self.tasks.keys().copied().collect();
        for &key in &keys {
            let task = self.tasks.get_mut(&key).expect("listed");
            if task.phase == TaskPhase::Created {
                if let Err(e) = task.open(&self.spec.budget) {
                    let id = task.id.clone();
                    self.fail(Error::Task {
                        task: id,
                        message: e.to_string(),
                    });
                    return;
                }
            }
        }
        // A restoration is planned once the task's committed input offsets
        // are known (the changelog's end is listed after them). A task
        // starts from its partitions' committed positions: known first,
        // then sought to after the resume. librdkafka resumes a partition
        // paused right after its assignment from its own fetch position,
        // not the committed offset (librdkafka issues 1802, 2190) — after
        // a rebalance that is past records this thread buffered but never
        // processed, which would be skipped.
        let unplanned = keys
            .iter()
            .any(|k| self.tasks[k].phase == TaskPhase::Restoring && !self.restorer.is_planned(*k));
        if unplanned && self.unknown_positions {
            self.fetch_positions(consumer);
        }
        if self.unknown_positions {
            self.resume_drained(consumer);
            return; // tried again next turn; the tasks stay Restoring
        }
        let (topics, positions) = (&self.topics, &self.committed);
        let committed = |topic: &str, partition: i32| {
            let ti = topics.iter().position(|t| t == topic)?;
            positions.get(&(ti, partition)).copied()
        };
        let mut failure = None;
        for &key in &keys {
            let task = self.tasks.get_mut(&key).expect("listed");
            if task.phase == TaskPhase::Restoring && !self.restorer.is_planned(key) {
                if let Err(e) = self.restorer.plan(key, task, &self.spec, &committed) {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none() {
            if let Err(e) = self.restorer.step(&mut self.tasks, &self.spec, &committed) {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            self.fail(e);
            return;
        }
        let mut ready: Vec<TaskKey> = Vec::new();
        for &key in &keys {
            let task = self.tasks.get_mut(&key).expect("listed");
            if task.phase == TaskPhase::Restoring && self.restorer.is_done(key) {
                let state = task
                    .state
                    .as_mut()
                    .expect("a restoring task has its stores open");
                // Restored writes skipped the WAL: durable before any logged one.
                if let Err(e) = state.persist() {
                    let id = task.id.clone();
                    self.fail(Error::Task {
                        task: id,
                        message: format!("persisting restored state: {e}"),
                    });
                    return;
                }
                if let Err(e) = task.executor.init(state) {
                    let id = task.id.clone();
                    self.fail(Error::Task {
                        task: id,
                        message: e.to_string(),
                    });
                    return;
                }
                ready.push(key);
            }
        }
        if ready.is_empty() {
            self.resume_drained(consumer);
            return;
        }
        let mut resume = TopicPartitionList::new();
        let mut seeks = Vec::new();
        for key in &ready {
            let task = self.tasks.get_mut(key).expect("listed");
            task.set_running();
            tracing::info!(thread = self.spec.index, task = %task.id, "task running");
            if !std::mem::take(&mut task.paused) {
                continue;
            }
            // Anything fetched before the seek is fetched again after it.
            task.group.clear();
            for tp in task.group.partitions() {
                if !self.throttled.contains(&tp) {
                    let _ = resume.add_partition(&self.topics[tp.0], tp.1);
                }
                if let Some(&p) = self.positions.get(&tp) {
                    seeks.push((tp, p));
                }
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                tracing::warn!(error = %e, "resuming partitions failed; rejoining");
                self.fenced = true;
                return;
            }
        }
        for (tp, p) in seeks {
            self.fetched.insert(tp, p);
            if let Err(e) = consumer.seek(
                &self.topics[tp.0],
                tp.1,
                rdkafka::Offset::Offset(p),
                Duration::from_secs(10),
            ) {
                tracing::warn!(topic = %self.topics[tp.0], partition = tp.1, error = %e, "seek to the committed position failed; rejoining");
                self.fenced = true;
                return;
            }
        }
        self.resume_drained(consumer);
    }

    /// Backpressure: resumes throttled partitions whose buffers drained, and
    /// pauses those newly throttled.
    fn resume_drained(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        let mut resume = TopicPartitionList::new();
        // Backpressure: resume throttled partitions whose buffers drained.
        let drained: Vec<Tp> = self
            .throttled
            .iter()
            .copied()
            .filter(|tp| {
                self.tasks
                    .get(&self.task_key(*tp))
                    .is_none_or(|t| t.group.buffered(*tp) < PAUSE_ABOVE / 10)
            })
            .collect();
        for tp in drained {
            self.throttled.remove(&tp);
            let running = self
                .tasks
                .get(&self.task_key(tp))
                .is_some_and(|t| t.phase == TaskPhase::Running);
            if running && self.assigned.contains(&tp) {
                let _ = resume.add_partition(&self.topics[tp.0], tp.1);
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                tracing::warn!(error = %e, "resuming partitions failed; rejoining");
                self.fenced = true;
            }
        }
        let mut pause = TopicPartitionList::new();
        for tp in std::mem::take(&mut self.pending_pauses) {
            // Revoked (and perhaps re-assigned) since: not ours to pause.
            if self.throttled.contains(&tp) && self.assigned.contains(&tp) {
                let _ = pause.add_partition(&self.topics[tp.0], tp.1);
            }
        }
        if pause.count() > 0 {
            if let Err(e) = consumer.pause(&pause) {
                tracing::warn!(error = %e, "pausing partitions failed");
            }
        }
    }
}

/// One record to produce.
pub(crate) struct Outgoing<'a> {
    pub topic: &'a str,
    /// `None`: the partitioner's choice (murmur2 of the key).
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a weir_core::Headers,
    pub timestamp: Option<i64>,
}

/// Hands `o` to the producer, waiting (serving reports) while its queue is full.
pub(crate) fn send_raw(
    producer: &BaseProducer<DeliveryContext>,
    o: Outgoing<'_>,
    opaque: usize,
) -> Result<(), KafkaError> {
    let mut rec: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(o.topic, opaque);
    if let Some(p) = o.partition {
        rec = rec.partition(p);
    }
    if let Some(t) = o.timestamp {
        rec = rec.timestamp(t);
    }
    if let Some(k) = o.key {
        rec = rec.key(k);
    }
    if let Some(v) = o.value {
        rec = rec.payload(v);
    }
    if let Some(h) = to_owned_headers(o.headers) {
        rec = rec.headers(h);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}
