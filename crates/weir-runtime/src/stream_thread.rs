//! One stream thread: a consumer, a producer, the tasks of the partitions it
//! owns, and the commit loop (DESIGN.md, "Exactly-once commit loop").
//!
//! The thread is an OS thread over rdkafka's poll-driven `BaseConsumer` and
//! `BaseProducer`: every blocking call (flush, send offsets, commit) happens
//! on this thread, never inside an async executor. Rebalance callbacks run
//! inside `poll` on this same thread, so the [`TaskSet`] they commit or
//! close lives behind a mutex that is never held across `poll`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_core::{DeadLetter, ErrorClass, Record};
use weir_dsl::{TaskExecutor, Topology};

use crate::config::{Config, ProcessingGuarantee};
use crate::error::{Error, Result};
use crate::failpoint::Failpoints;
use crate::kafka::{
    classify, consumer_config, is_per_record, producer_config, to_owned_headers, to_record,
};
use crate::stats::RuntimeStats;

/// How long one blocking transactional call may take before it is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Records taken from the consumer between two looks at the clock.
const POLL_BATCH: usize = 512;
/// Retriable failures of one commit step before the transaction is aborted.
const MAX_RETRIES: u32 = 10;

/// Everything a stream thread needs, shared or owned.
pub(crate) struct ThreadSpec {
    pub cfg: Arc<Config>,
    pub topology: Topology,
    pub index: usize,
    pub instance_id: String,
    pub dead_letter_topic: String,
    pub shutdown: Arc<AtomicBool>,
    pub stats: Arc<RuntimeStats>,
    pub failpoints: Arc<Failpoints>,
}

impl ThreadSpec {
    fn eos(&self) -> bool {
        self.cfg.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2
    }

    fn client_id(&self) -> String {
        format!(
            "{}-{}-{}",
            self.cfg.application_id, self.instance_id, self.index
        )
    }
}

/// Runs the thread until shutdown, rejoining with a new producer after a
/// fatal (fenced) error.
pub(crate) fn run(spec: ThreadSpec) -> Result<()> {
    let spec = Arc::new(spec);
    // Inputs whose outputs can never be delivered: remembered across
    // rejoins, so they are dead-lettered rather than retried forever.
    let mut poisoned = HashMap::new();
    loop {
        match run_generation(&spec, &mut poisoned)? {
            Exit::Shutdown => return Ok(()),
            Exit::Rejoin => {
                RuntimeStats::add(&spec.stats.rejoins, 1);
                tracing::warn!(thread = spec.index, "producer fenced or failed fatally: closing tasks and rejoining with a new producer");
            }
        }
    }
}

enum Exit {
    Shutdown,
    Rejoin,
}

fn kafka_err(context: &str) -> impl FnOnce(KafkaError) -> Error + '_ {
    move |source| Error::Kafka {
        context: context.to_string(),
        source,
    }
}

fn run_generation(
    spec: &Arc<ThreadSpec>,
    poisoned: &mut HashMap<(Tp, i64), String>,
) -> Result<Exit> {
    let client_id = spec.client_id();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let tx_id = spec.eos().then(|| client_id.clone());
    let producer: BaseProducer<DeliveryContext> =
        producer_config(&spec.cfg, &client_id, tx_id.as_deref())
            .create_with_context(DeliveryContext {
                failures: failures.clone(),
            })
            .map_err(kafka_err("creating the producer"))?;
    if spec.eos() {
        let mut attempt = 0;
        loop {
            match producer.init_transactions(CALL_TIMEOUT) {
                Ok(()) => break,
                Err(e) if classify(&e) == ErrorClass::Retriable && attempt < MAX_RETRIES => {
                    attempt += 1;
                    tracing::warn!(error = %e, "init_transactions timed out; retrying");
                }
                Err(e) => return Err(kafka_err("initialising transactions")(e)),
            }
        }
        clear_stale_offsets(spec, &producer)?;
        producer
            .begin_transaction()
            .map_err(kafka_err("beginning a transaction"))?;
    }
    let state = Arc::new(Mutex::new(TaskSet {
        spec: spec.clone(),
        producer,
        failures,
        topics: spec.topology.source_topics(),
        subtopologies: spec
            .topology
            .source_topics()
            .iter()
            .map(|t| {
                spec.topology
                    .subtopology_of(t)
                    .expect("a source topic has a sub-topology")
            })
            .collect(),
        tasks: BTreeMap::new(),
        assigned: BTreeSet::new(),
        positions: BTreeMap::new(),
        committed: BTreeMap::new(),
        unknown_positions: false,
        dirty: false,
        sources: Vec::new(),
        poisoned: std::mem::take(poisoned),
        first_offset: BTreeMap::new(),
        rewind_requested: false,
        fenced: false,
        out: Vec::new(),
        last_commit: Instant::now(),
        consumed: 0,
        produced: 0,
    }));
    let consumer: BaseConsumer<ThreadContext> = consumer_config(&spec.cfg, &client_id)
        .create_with_context(ThreadContext {
            state: state.clone(),
        })
        .map_err(kafka_err("creating the consumer"))?;
    let topics = spec.topology.source_topics();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(kafka_err("subscribing"))?;
    let interval = Duration::from_millis(spec.cfg.commit_interval_ms);
    loop {
        if spec.shutdown.load(Ordering::SeqCst) {
            lock(&state).finish(&consumer);
            drop(consumer);
            return Ok(Exit::Shutdown);
        }
        let wait = interval
            .saturating_sub(lock(&state).last_commit.elapsed())
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        // Take what is already fetched in one go (up to a batch) before the
        // loop's clock reads and bookkeeping; never hold the lock across a
        // poll, which may run a rebalance callback that needs it.
        let mut next = consumer.poll(wait);
        let mut taken = 0;
        while let Some(polled) = next {
            match polled {
                Ok(m) => lock(&state).process(&m),
                Err(e) => consumer_error(&e),
            }
            taken += 1;
            if taken == POLL_BATCH {
                break; // nothing polled is left unprocessed
            }
            next = consumer.poll(Duration::ZERO);
        }
        let mut s = lock(&state);
        s.producer.poll(Duration::ZERO);
        if s.unknown_positions {
            s.fetch_positions(&consumer);
        }
        if s.rewind_requested && !s.fenced {
            s.abort(&consumer, true);
        }
        // Every transaction carries every assigned partition's position.
        if s.dirty && s.last_commit.elapsed() >= interval && !s.fenced && !s.unknown_positions {
            s.commit(&consumer);
        }
        if s.fenced {
            s.tasks.clear();
            *poisoned = std::mem::take(&mut s.poisoned);
            drop(s);
            drop(consumer);
            return Ok(Exit::Rejoin);
        }
    }
}

/// Aborts a transaction that carries one consumer offset, right after
/// `init_transactions` and before any commit.
///
/// Kafka drops a crashed transaction's consumer offsets when the restarted
/// producer fences it. crabka-broker 0.3.8 (the test broker) does not: it
/// keeps them buffered per producer id and applies them with that producer
/// id's next committed transaction — offsets of partitions this instance may
/// no longer own, which would skip their records. Its `EndTxn(ABORT)` drains
/// that buffer, so this aborted probe clears it. On Kafka it is a harmless
/// aborted transaction (a few milliseconds at start and after a rejoin).
fn clear_stale_offsets(spec: &ThreadSpec, producer: &BaseProducer<DeliveryContext>) -> Result<()> {
    let probe: BaseConsumer = crate::kafka::admin_config(&spec.cfg)
        .set("group.id", &spec.cfg.application_id)
        .create()
        .map_err(kafka_err("creating the offset probe"))?;
    let Some(cgm) = probe.group_metadata() else {
        return Ok(());
    };
    let Some(topic) = spec.topology.source_topics().into_iter().next() else {
        return Ok(());
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(0))
        .map_err(kafka_err("building the offset probe"))?;
    producer
        .begin_transaction()
        .map_err(kafka_err("beginning the offset probe"))?;
    if let Err(e) = producer.send_offsets_to_transaction(&tpl, &cgm, CALL_TIMEOUT) {
        tracing::warn!(error = %e, "offset probe: send_offsets_to_transaction failed");
    }
    producer
        .abort_transaction(CALL_TIMEOUT)
        .map_err(kafka_err("aborting the offset probe"))?;
    Ok(())
}

fn lock(state: &Mutex<TaskSet>) -> MutexGuard<'_, TaskSet> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Consumer-side errors never abort a transaction: the fetcher retries on
/// its own, and positions are only advanced by records actually processed.
fn consumer_error(e: &KafkaError) {
    if is_fetch_noise(&e.to_string()) {
        tracing::debug!(error = %e, "consumer error (ignored)");
    } else {
        tracing::warn!(error = %e, "consumer error (the fetcher retries; nothing is aborted)");
    }
}

/// The test broker answers empty fetches with a message set librdkafka
/// cannot parse; no data is lost (see tools/test-broker).
fn is_fetch_noise(message: &str) -> bool {
    message.contains("MessageSetSize") || message.contains("Protocol parse failure")
}

/// A partition: index of its topic among the topology's sources, and number.
type Tp = (usize, i32);

/// The tasks of one stream thread and the bookkeeping of its open
/// transaction.
struct TaskSet {
    spec: Arc<ThreadSpec>,
    producer: BaseProducer<DeliveryContext>,
    failures: Arc<Mutex<Vec<(usize, RDKafkaErrorCode)>>>,
    /// Source topics by index (the `Tp` topic index).
    topics: Vec<String>,
    /// The sub-topology reading each source topic, by topic index.
    subtopologies: Vec<usize>,
    tasks: BTreeMap<(usize, i32), TaskExecutor>,
    assigned: BTreeSet<Tp>,
    /// Next offset to consume, per partition, as far as this thread knows.
    positions: BTreeMap<Tp, i64>,
    /// The last offsets known committed (by this thread, or fetched).
    committed: BTreeMap<Tp, i64>,
    /// Some assigned partitions have no known position yet.
    unknown_positions: bool,
    /// Records were processed since the last commit.
    dirty: bool,
    /// The source record of each output's delivery opaque, for this transaction.
    sources: Vec<(Tp, i64)>,
    /// Source records whose outputs can never be delivered: dead-lettered on re-processing.
    poisoned: HashMap<(Tp, i64), String>,
    /// The first offset processed per partition since it was assigned: the
    /// restart point of a never-committed partition under
    /// `auto.offset.reset=latest` (where the consumer's own reset put it).
    first_offset: BTreeMap<Tp, i64>,
    /// The open transaction must be aborted (or, at least once, the
    /// partitions rewound) before anything else.
    rewind_requested: bool,
    /// The producer is unusable: close everything and rejoin.
    fenced: bool,
    out: Vec<Record>,
    last_commit: Instant,
    /// Records consumed and produced since the counters were last published.
    consumed: u64,
    produced: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl TaskSet {
    fn eos(&self) -> bool {
        self.spec.eos()
    }

    fn topic_index(&self, topic: &str) -> Option<usize> {
        self.topics.iter().position(|t| t == topic)
    }

    fn process(&mut self, m: &BorrowedMessage<'_>) {
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
        if self.positions.get(&tp).is_some_and(|&p| m.offset() < p) {
            return; // already processed in this transaction
        }
        self.first_offset.entry(tp).or_insert(m.offset());
        let record = to_record(m);
        let spec = &self.spec;
        let sub = self.subtopologies[ti];
        let task = self
            .tasks
            .entry((sub, record.partition))
            .or_insert_with(|| TaskExecutor::new(spec.topology.clone(), sub, record.partition));
        self.out.clear();
        let poisoned = if self.poisoned.is_empty() {
            None
        } else {
            self.poisoned.remove(&(tp, record.offset))
        };
        if let Some(reason) = poisoned {
            let dl = DeadLetter {
                kind: "produce".into(),
                message: reason,
                node: "sink".into(),
                attempts: 2,
            };
            self.out
                .push(dl.to_record(&spec.dead_letter_topic, &record, now_ms()));
            RuntimeStats::add(&spec.stats.dead_lettered, 1);
        } else if let Err(e) = task.process(&record, &mut self.out) {
            tracing::warn!(
                topic = %record.topic,
                partition = record.partition,
                offset = record.offset,
                node = e.node(),
                error = %e,
                "dead-lettering record"
            );
            self.out.push(DeadLetter::from(&e).to_record(
                &spec.dead_letter_topic,
                &record,
                now_ms(),
            ));
            RuntimeStats::add(&spec.stats.dead_lettered, 1);
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
    }

    fn send(&mut self, o: &Record, source: usize, tp: Tp, offset: i64) {
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&o.topic, source).timestamp(o.timestamp);
        if let Some(k) = &o.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &o.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(h) = to_owned_headers(&o.headers) {
            rec = rec.headers(h);
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => {
                    self.produced += 1;
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    let code = e.rdkafka_error_code();
                    if code.is_some_and(is_per_record) {
                        tracing::warn!(topic = %o.topic, error = %e, "an output can never be delivered; its input will be dead-lettered");
                        self.poisoned
                            .insert((tp, offset), format!("output to {}: {e}", o.topic));
                    } else {
                        tracing::warn!(topic = %o.topic, error = %e, "send failed; rewinding to the last commit");
                    }
                    self.rewind_requested = true;
                    return;
                }
            }
        }
    }

    /// Learns the position of every partition assigned without one: its
    /// committed offset, or, if it never had one, where `auto.offset.reset`
    /// starts it (the log start or end). So every transaction carries the
    /// position of every assigned partition — and its offsets supersede any
    /// stale ones a broker may still hold for this producer (crabka 0.3.8
    /// keeps a crashed transaction's offsets buffered and applies them with
    /// the next commit of the same producer id).
    fn fetch_positions(&mut self, consumer: &BaseConsumer<ThreadContext>) {
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

    /// Offsets of every assigned partition whose position is known.
    fn offsets(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for tp in &self.assigned {
            if let Some(&p) = self.positions.get(tp) {
                let _ = tpl.add_partition_offset(&self.topics[tp.0], tp.1, Offset::Offset(p));
            }
        }
        tpl
    }

    /// Runs `step` until it succeeds, retrying retriable errors; returns the
    /// class of the error it finally failed with.
    fn retrying(
        &self,
        what: &str,
        mut step: impl FnMut(&Self) -> KafkaResult<()>,
    ) -> Result<(), ErrorClass> {
        let mut attempt = 0;
        loop {
            match step(self) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let class = classify(&e);
                    tracing::warn!(error = %e, ?class, attempt, "{what} failed");
                    if class != ErrorClass::Retriable {
                        return Err(class);
                    }
                    attempt += 1;
                    if attempt > MAX_RETRIES {
                        return Err(ErrorClass::AbortTransaction);
                    }
                }
            }
        }
    }

    /// Commits the open transaction (or, at least once, the offsets of
    /// acknowledged outputs).
    fn commit(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        let fp = self.spec.failpoints.clone();
        fp.hit("before_produce_flush");
        if let Err(class) = self.retrying("flush", |s| s.producer.flush(CALL_TIMEOUT)) {
            return self.fail(consumer, class);
        }
        if !lock_vec(&self.failures).is_empty() || self.rewind_requested {
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
                return self.fail(consumer, class);
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
            if let Err(class) = self.retrying("commit_transaction", |s| {
                s.producer.commit_transaction(CALL_TIMEOUT)
            }) {
                return self.fail(consumer, class);
            }
            fp.hit("after_commit");
        } else {
            fp.hit("after_send_offsets");
            fp.hit("before_commit");
            if offsets.count() > 0 {
                if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                    // At least once: the records will be processed again.
                    tracing::warn!(error = %e, "offset commit failed; records since the last commit may repeat");
                }
            }
            fp.hit("after_commit");
        }
        for e in offsets.elements() {
            if let (Some(ti), Offset::Offset(o)) = (self.topic_index(e.topic()), e.offset()) {
                self.committed.insert((ti, e.partition()), o);
            }
        }
        RuntimeStats::add(&self.spec.stats.commits, 1);
        tracing::debug!(
            thread = self.spec.index,
            records = self.sources.len(),
            "committed"
        );
        self.after_transaction();
        if self.eos() {
            if let Err(e) = self.producer.begin_transaction() {
                tracing::error!(error = %e, "begin_transaction failed");
                self.fenced = true;
            }
        }
    }

    fn fail(&mut self, consumer: &BaseConsumer<ThreadContext>, class: ErrorClass) {
        if class == ErrorClass::Fatal {
            self.fenced = true;
            self.tasks.clear();
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
        self.last_commit = Instant::now();
    }

    /// Aborts the open transaction (exactly once) or drops the unacknowledged
    /// work (at least once), and, if `seek`, rewinds every assigned partition
    /// to its last committed offset.
    fn abort(&mut self, consumer: &BaseConsumer<ThreadContext>, seek: bool) {
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
        let failed: Vec<(usize, RDKafkaErrorCode)> = std::mem::take(&mut *lock_vec(&self.failures));
        for (source, code) in failed {
            if let Some(&src) = self.sources.get(source) {
                if is_per_record(code) {
                    self.poisoned
                        .insert(src, format!("output could not be delivered: {code}"));
                }
            }
        }
        tracing::warn!(
            thread = self.spec.index,
            poisoned = self.poisoned.len(),
            "aborting the transaction and re-processing from the last commit"
        );
        if self.eos() {
            if let Err(class) = self.retrying("abort_transaction", |s| {
                s.producer.abort_transaction(CALL_TIMEOUT)
            }) {
                tracing::error!(?class, "abort_transaction failed: rejoining");
                self.fenced = true;
                self.tasks.clear();
                return;
            }
        }
        // Stateless tasks: nothing to rebuild but stream time.
        self.tasks.clear();
        self.rewind_requested = false;
        self.after_transaction();
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

    /// Rewinds every assigned partition to its restart point (committed
    /// offset, or where it started if never committed). If those are not
    /// known (the lookup failed), rejoins instead of guessing.
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
        for tp in self.assigned.clone() {
            // Without a restart point nothing was processed there: no rewind.
            let Some(&o) = self.committed.get(&tp).or(self.first_offset.get(&tp)) else {
                continue;
            };
            self.positions.insert(tp, o);
            if let Err(e) = consumer.seek(
                &self.topics[tp.0],
                tp.1,
                Offset::Offset(o),
                Duration::from_secs(10),
            ) {
                tracing::warn!(topic = %self.topics[tp.0], partition = tp.1, error = %e, "seek after abort failed");
            }
        }
    }

    fn on_assign(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            if let Some(ti) = self.topic_index(e.topic()) {
                let tp = (ti, e.partition());
                self.assigned.insert(tp);
                // The committed offset may have moved while others owned it.
                self.positions.remove(&tp);
                self.committed.remove(&tp);
                self.first_offset.remove(&tp);
            }
        }
        self.unknown_positions = true;
        tracing::info!(thread = self.spec.index, partitions = %describe(tpl), "partitions assigned");
    }

    fn on_revoke(
        &mut self,
        consumer: &BaseConsumer<ThreadContext>,
        tpl: &TopicPartitionList,
        lost: bool,
    ) {
        if !self.fenced && self.dirty {
            if lost {
                tracing::warn!("assignment lost: aborting the open transaction");
                self.abort(consumer, false);
            } else {
                self.commit(consumer);
            }
        }
        for e in tpl.elements() {
            if let Some(ti) = self.topic_index(e.topic()) {
                let tp = (ti, e.partition());
                self.assigned.remove(&tp);
                self.positions.remove(&tp);
                self.committed.remove(&tp);
                self.first_offset.remove(&tp);
                let sub = self.subtopologies[ti];
                self.tasks.remove(&(sub, e.partition()));
            }
        }
        tracing::info!(thread = self.spec.index, lost, partitions = %describe(tpl), "partitions revoked");
    }

    /// At shutdown: commit what was processed (or abort if that fails).
    fn finish(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        if self.dirty && !self.fenced {
            self.commit(consumer);
        }
        if self.eos() && !self.fenced {
            let _ = self.producer.abort_transaction(CALL_TIMEOUT);
        }
    }
}

fn lock_vec<T>(m: &Mutex<Vec<T>>) -> MutexGuard<'_, Vec<T>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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

/// The consumer's context: runs rebalances against the thread's [`TaskSet`].
pub(crate) struct ThreadContext {
    state: Arc<Mutex<TaskSet>>,
}

impl ClientContext for ThreadContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if is_fetch_noise(log_message) {
            tracing::debug!(target: "librdkafka", fac, "{log_message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        consumer_error(&error);
        tracing::debug!(target: "librdkafka", "{reason}");
    }
}

impl ConsumerContext for ThreadContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut s = lock(&self.state);
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let lost = consumer.assignment_lost();
                s.on_revoke(consumer, tpl, lost);
            }
            Rebalance::Assign(tpl) => s.on_assign(tpl),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// The producer's context: records outputs that failed, by source record.
pub(crate) struct DeliveryContext {
    failures: Arc<Mutex<Vec<(usize, RDKafkaErrorCode)>>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, source: usize) {
        if let Err((e, m)) = result {
            let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
            tracing::warn!(topic = m.topic(), error = %e, "output delivery failed");
            lock_vec(&self.failures).push((source, code));
        }
    }
}
