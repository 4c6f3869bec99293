//! [`TaskExecutor`]: runs one task's nodes on one record at a time.

use std::panic::{catch_unwind, AssertUnwindSafe};

use weir_core::{ProcessError, Record, Timestamp};
use weir_state::TaskState;

use crate::graph::{Item, Node, Op, Topology};
use crate::process::{Call, ErasedProcessor, TimerEffects, Trigger};

/// The [`Env`] of a call, borrowing the executor's fields one by one (a
/// macro, so the borrows stay disjoint from other fields in use).
macro_rules! env {
    ($exec:ident, $state:expr, $position:expr) => {
        Env {
            processors: &mut $exec.processors,
            state: $state,
            stream_time: $exec.stream_time,
            wall_clock: $exec.wall_clock,
            timer_nodes: &mut $exec.timer_nodes,
            punctuations: &mut $exec.punctuations,
            position: $position,
            dead_letter_topic: &$exec.dead_letter_topic,
            meters: &mut $exec.meters,
            dead_letters: Vec::new(),
            event_id: None,
            ledger_store: None,
            status: None,
            timer_handled: false,
            source_record: None,
        }
    };
}

mod clock;
mod flow;
mod timers;
use clock::WriterClocks;
use flow::forward;
pub use timers::TimerRun;
use timers::{Punctuation, TimerNode};

/// A source record's key and value, decoded.
type Decoded = (Box<dyn std::any::Any + Send>, Box<dyn std::any::Any + Send>);

/// Runs the nodes of one task — one sub-topology for one partition number —
/// on the records of its source partitions.
///
/// Both the runtime and the `TopologyTestDriver` drive this type, so unit
/// tests and production share one processing path. It holds no Kafka state
/// and no store: positions, transactions and dead-lettering belong to the
/// caller, and the caller passes the task's [`TaskState`] to every call.
///
/// Lifecycle: [`TaskExecutor::new`] makes the task's own instances of its
/// `process` nodes; [`TaskExecutor::init`] runs their `init` once the
/// task's stores are open; [`TaskExecutor::process`] per record;
/// [`TaskExecutor::reset`] after an aborted transaction (fresh instances,
/// stream time back to the last commit); [`TaskExecutor::close`] at the end.
pub struct TaskExecutor {
    topology: Topology,
    subtopology: usize,
    partition: i32,
    stream_time: Option<Timestamp>,
    committed_stream_time: Option<Timestamp>,
    /// The stream time the `on_stream_time` hooks last heard of (stream
    /// time may move ahead of them: see [`TaskExecutor::advance_stream_time`]).
    notified: Option<Timestamp>,
    /// This task's instance of each `process` node, by node index.
    processors: Vec<Option<Box<dyn ErasedProcessor>>>,
    /// The nodes whose processors want to hear of stream time advancing.
    time_nodes: Vec<usize>,
    /// The repartition topics this task reads where markers come (see
    /// [`Topology::uses_stream_time`]).
    repartition_sources: Vec<String>,
    /// The repartition topics it reads that carry no markers (one written
    /// by an older version is skipped).
    unmarked_repartition: Vec<String>,
    /// Their writers' times (see [`clock`]), and as of the last commit.
    clocks: WriterClocks,
    committed_clocks: WriterClocks,
    /// The system clock as last set (see [`TaskExecutor::set_wall_clock`]).
    wall_clock: Timestamp,
    timer_nodes: Vec<TimerNode>,
    punctuations: Vec<Punctuation>,
    initialized: bool,
    /// Where processors' own dead letters go (see
    /// [`TaskExecutor::set_dead_letter_topic`]).
    dead_letter_topic: String,
    /// The status ledger, when this task holds it, and the index of its
    /// node among the timer nodes.
    pub(super) ledger: Option<(crate::ledger::LedgerSpec, Option<usize>)>,
    /// What the nodes counted since the last [`TaskExecutor::take_metrics`].
    pub(super) meters: crate::metrics::Meters,
}

impl std::fmt::Debug for TaskExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskExecutor")
            .field(
                "subtopology",
                &self.topology.subtopology_name(self.subtopology),
            )
            .field("partition", &self.partition)
            .field("stream_time", &self.stream_time)
            .finish()
    }
}

impl TaskExecutor {
    /// The executor for sub-topology `subtopology`, partition `partition`,
    /// with fresh instances of its `process` nodes (not yet initialised).
    pub fn new(topology: Topology, subtopology: usize, partition: i32) -> Self {
        let processors = make_processors(&topology, subtopology);
        // The repartition topics this task reads; when it acts on stream
        // time they carry markers (its stream time is then its slowest
        // writer's).
        let read: Vec<String> = topology
            .repartition_topics()
            .into_iter()
            .filter(|(t, _)| topology.subtopology_of(t) == Some(subtopology))
            .map(|(t, _)| t)
            .collect();
        let (repartition_sources, unmarked_repartition) = if topology.uses_stream_time(subtopology)
        {
            (read, Vec::new())
        } else {
            (Vec::new(), read)
        };
        let stores = topology.subtopology_stores(subtopology);
        let timer_nodes = topology
            .inner
            .timer_stores
            .iter()
            .filter(|(_, &node)| topology.inner.nodes[node].subtopology == subtopology)
            .filter_map(|(name, &node)| {
                Some(TimerNode {
                    node,
                    store: stores.iter().position(|s| s == name)?,
                    next: [None, None],
                    floor: [None, None],
                })
            })
            .collect();
        let meters = crate::metrics::Meters::new(topology.inner.nodes.len());
        Self {
            time_nodes: nodes_wanting_time(&processors),
            topology,
            subtopology,
            partition,
            stream_time: None,
            committed_stream_time: None,
            notified: None,
            repartition_sources,
            unmarked_repartition,
            clocks: WriterClocks::default(),
            committed_clocks: WriterClocks::default(),
            processors,
            wall_clock: 0,
            timer_nodes,
            punctuations: Vec::new(),
            initialized: false,
            dead_letter_topic: String::new(),
            ledger: None,
            meters,
        }
        .with_ledger()
    }

    /// Finds the status ledger if this task holds it.
    fn with_ledger(mut self) -> Self {
        let inner = &self.topology.inner;
        if let Some(l) = inner.ledger.as_ref() {
            if inner.nodes[l.node].subtopology == self.subtopology {
                let timers = self.timer_nodes.iter().position(|t| t.node == l.node);
                self.ledger = Some((l.clone(), timers));
            }
        }
        self
    }

    /// The ledger's event id of `record`, when the ledger records its topic.
    fn event_id(&self, record: &Record) -> Option<String> {
        let (l, _) = self.ledger.as_ref()?;
        if l.topic != record.topic {
            return None;
        }
        catch_unwind(AssertUnwindSafe(|| (l.id)(record)))
            .ok()
            .flatten()
    }

    /// Writes `update` for event `id` to the ledger, and sets a new
    /// entry's expiry timer.
    fn record_event(
        &mut self,
        state: &mut TaskState,
        id: &str,
        update: &crate::ledger::StatusUpdate,
    ) -> Result<(), ProcessError> {
        let Some((l, timers)) = self.ledger.as_ref() else {
            return Ok(());
        };
        let err = |e: weir_state::StoreError| ProcessError::Store {
            node: self.topology.inner.nodes[l.node].name.clone(),
            store: l.store.clone(),
            message: e.to_string(),
        };
        let store = state.store_id(&l.store).map_err(err)?;
        let new =
            crate::ledger::record_status(state, store, id, update, self.wall_clock).map_err(err)?;
        let (Some(t), true) = (*timers, new) else {
            return Ok(());
        };
        let deadline = self.wall_clock.saturating_add(l.retention_ms);
        let tn = &mut self.timer_nodes[t];
        weir_state::TimerStore::new(state.store(tn.store))
            .schedule(weir_state::Clock::Wall, deadline, id.as_bytes(), &[])
            .map_err(err)?;
        let w = crate::process::clock_index(weir_state::Clock::Wall);
        if let Some(known) = tn.next[w].as_mut() {
            *known = Some(known.map_or(deadline, |k| k.min(deadline)));
        }
        if let Some(f) = tn.floor[w].as_mut() {
            *f = (*f).min(deadline);
        }
        Ok(())
    }

    /// Records in the status ledger (if it records `record`'s topic) that
    /// `record` was dead-lettered by the caller after `attempts` (a poison
    /// input): status `FAILED`.
    ///
    /// # Errors
    /// A store error (fatal).
    pub fn record_failed(
        &mut self,
        record: &Record,
        state: &mut TaskState,
        attempts: u32,
        error: &str,
    ) -> Result<(), ProcessError> {
        let Some(id) = self.event_id(record) else {
            return Ok(());
        };
        let update = crate::ledger::StatusUpdate {
            status: crate::ledger::EventStatus::Failed,
            attempts,
            error: Some(error.to_string()),
        };
        self.record_event(state, &id, &update)
    }

    /// Sets where processors' own dead letters go
    /// ([`crate::ProcessorContext::dead_letter`]): the runtime's
    /// dead-letter topic.
    pub fn set_dead_letter_topic(&mut self, topic: impl Into<String>) {
        self.dead_letter_topic = topic.into();
    }

    /// The sub-topology this task runs.
    pub fn subtopology(&self) -> usize {
        self.subtopology
    }

    /// The partition number this task owns.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The names of the stores this task's [`TaskState`] must hold, in
    /// store-id order.
    pub fn store_names(&self) -> &[String] {
        self.topology.subtopology_stores(self.subtopology)
    }

    /// The task's stream time: the largest timestamp of the decodable
    /// records it processed (Kafka Streams' stream time), or, behind
    /// repartition topics that carry markers, at least its slowest
    /// writer's (see the `clock` module; records of topics it reads
    /// directly still move it).
    pub fn stream_time(&self) -> Option<Timestamp> {
        self.stream_time
    }

    /// Sets the stream time (a task restarting from a committed one).
    pub fn set_stream_time(&mut self, t: Option<Timestamp>) {
        self.stream_time = t;
        self.committed_stream_time = t;
        self.notified = t;
    }

    /// Moves stream time forward to `time` (never back). The runtime does
    /// this with a record's timestamp before processing it, so that the
    /// stream-time timers due by then fire first
    /// ([`TaskExecutor::fire_timers`]); the `on_stream_time` hooks hear of
    /// the advance with the next record.
    pub fn advance_stream_time(&mut self, time: Timestamp) {
        self.stream_time = Some(self.stream_time.map_or(time, |t| t.max(time)));
    }

    /// Before processing `record`: moves stream time to where processing
    /// it will (so the stream-time timers due by then fire first). A
    /// marker moves it to the slowest writer's time, a record behind a
    /// repartition topic not at all, any other record to its timestamp
    /// when it decodes (one that fails to decode moves nothing).
    pub fn advance_for(&mut self, record: &Record) {
        if self.repartition_sources.contains(&record.topic) {
            if let Some(m) = weir_core::StreamTimeMarker::of(record) {
                self.note_marker(&record.topic, &m);
            }
            return;
        }
        // Only timers care before the record is processed; decoding it
        // twice is the price of not firing them for a record that fails.
        let ahead = self.stream_time.is_none_or(|t| t < record.timestamp);
        if ahead && !(self.timer_nodes.is_empty() && self.punctuations.is_empty()) {
            let decodes = self.decode(record).is_some_and(|r| r.is_ok());
            if decodes {
                self.advance_stream_time(record.timestamp);
            }
        }
    }

    /// Notes a writer's marker read from `topic`; stream time moves to the
    /// slowest writer's once every writer has reported.
    fn note_marker(&mut self, topic: &str, m: &weir_core::StreamTimeMarker) {
        self.clocks.note(topic, m);
        if let Some(t) = self.clocks.time(&self.repartition_sources) {
            self.advance_stream_time(t);
        }
    }

    /// Decodes `record` with its source's codecs (a panic is an error);
    /// `None` for a topic this task does not read.
    fn decode(&self, record: &Record) -> Option<Result<Decoded, ProcessError>> {
        let inner = &self.topology.inner;
        let &source = inner.sources.get(&record.topic)?;
        let node = &inner.nodes[source];
        let Op::Source { decode, .. } = &node.op else {
            unreachable!("sources map to source nodes");
        };
        CURRENT_NODE.with(|c| c.set(source));
        let r = catch_unwind(AssertUnwindSafe(|| {
            decode(record.key.as_deref(), record.value.as_deref())
        }));
        Some(match r {
            Ok(Ok(kv)) => Ok(kv),
            Ok(Err(e)) => Err(ProcessError::Codec {
                node: node.name.clone(),
                source: e,
            }),
            Err(payload) => Err(panic_error(&inner.nodes, payload)),
        })
    }

    /// Runs every `process` node's `init` (once; later calls do nothing).
    ///
    /// # Errors
    /// [`ProcessError::Init`] (fatal to the task) naming the first node
    /// whose `init` failed or panicked.
    pub fn init(&mut self, state: &mut TaskState) -> Result<(), ProcessError> {
        if self.initialized {
            return Ok(());
        }
        let ids: Vec<usize> = (0..self.processors.len()).collect();
        self.init_nodes(&ids, state)?;
        self.initialized = true;
        Ok(())
    }

    /// Runs `init` of the `process` nodes among `ids`.
    fn init_nodes(&mut self, ids: &[usize], state: &mut TaskState) -> Result<(), ProcessError> {
        let nodes = &self.topology.inner.nodes;
        let mut env = env!(self, state, None);
        for &id in ids {
            if env.processors[id].is_none() {
                continue;
            }
            let name = &nodes[id].name;
            let r = catch_unwind(AssertUnwindSafe(|| {
                // What init forwards goes nowhere (no record is being processed).
                call_node(nodes, id, Trigger::Init, &mut Vec::new(), &mut env)
            }));
            let message = match r {
                Ok(Ok(())) => {
                    env.meters.commit_staged();
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(payload) => panic_error(nodes, payload).to_string(),
            };
            return Err(ProcessError::Init {
                node: name.clone(),
                message,
            });
        }
        Ok(())
    }

    /// The transaction that carried this task's work committed: its stream
    /// time is now the one to fall back to.
    pub fn committed(&mut self) {
        self.committed_stream_time = self.stream_time;
        if !self.repartition_sources.is_empty() {
            self.committed_clocks = self.clocks.clone();
        }
        self.meters.gauges_committed();
    }

    /// The open transaction was aborted: closes the `process` node
    /// instances and makes fresh ones (their fields may hold effects of
    /// aborted records), and moves stream time back to the last commit.
    /// The caller drops the task's pending writes.
    pub fn reset(&mut self) {
        self.close();
        self.processors = make_processors(&self.topology, self.subtopology);
        self.time_nodes = nodes_wanting_time(&self.processors);
        self.stream_time = self.committed_stream_time;
        self.notified = self.committed_stream_time;
        self.clocks = self.committed_clocks.clone();
        // Timers are read again from the (rolled back) stores; punctuations
        // are registered again by the fresh instances' `init`.
        for t in &mut self.timer_nodes {
            t.next = [None, None];
            t.floor = [None, None];
        }
        self.punctuations.clear();
        self.meters.gauges_rolled_back();
    }

    /// What the task's nodes counted since the last call (see
    /// [`crate::TaskMetrics`]); the runtime drains it into its registry at
    /// each commit.
    pub fn take_metrics(&mut self) -> crate::TaskMetrics {
        self.meters.take(&self.topology.inner.nodes)
    }

    /// Runs every `process` node's `close`.
    pub fn close(&mut self) {
        for p in self.processors.iter_mut().flatten() {
            p.close();
        }
        self.initialized = false;
    }

    /// Processes `record` and appends its outputs to `out`; store writes go
    /// to `state`'s pending set.
    ///
    /// # Errors
    /// A [`ProcessError`] when the record cannot be processed (it did not
    /// decode, an output did not encode, an operator panicked or refused
    /// it, a store failed, or no source reads its topic). `out` and the
    /// pending writes are then left exactly as they were: the caller
    /// dead-letters the record and moves on (or, for a store failure, stops
    /// the task).
    pub fn process(
        &mut self,
        record: &Record,
        out: &mut Vec<Record>,
        state: &mut TaskState,
    ) -> Result<(), ProcessError> {
        let inner = &self.topology.inner;
        let Some(&source) = inner.sources.get(&record.topic) else {
            return Err(ProcessError::UnknownTopic {
                topic: record.topic.clone(),
            });
        };
        if !self.initialized {
            self.init(state)?;
        }
        let before = self.notified;
        // A marker where none are sent now (written by an older version):
        // no record.
        if self.unmarked_repartition.contains(&record.topic)
            && weir_core::StreamTimeMarker::of(record).is_some()
        {
            return Ok(());
        }
        let repartitioned = self.repartition_sources.contains(&record.topic);
        // A stream-time marker from an upstream task (behind a repartition
        // topic) carries only its writer's time: stream time there is the
        // slowest writer's (see the `clock` module).
        let marker = repartitioned.then(|| weir_core::StreamTimeMarker::of(record));
        let marker = marker.flatten();
        let decoded = match &marker {
            Some(m) => {
                self.note_marker(&record.topic, m);
                None
            }
            None => {
                let decoded = self.decode(record).expect("a source topic");
                // Stream time includes the record being processed (as in
                // Kafka Streams), when it decodes.
                if decoded.is_ok() && !repartitioned {
                    self.advance_stream_time(record.timestamp);
                }
                Some(decoded)
            }
        };
        let marker = marker.is_some();
        let inner = &self.topology.inner;
        let node = &inner.nodes[source];
        let advanced = self.stream_time != before;
        self.notified = self.stream_time;
        // A marker that wakes no processor is done.
        if marker && (!advanced || self.time_nodes.is_empty()) {
            return Ok(());
        }
        let time_nodes: Vec<usize> = if advanced {
            self.time_nodes.clone()
        } else {
            Vec::new()
        };
        let mark = out.len();
        let nodes = &inner.nodes;
        let stateful = !self
            .topology
            .subtopology_stores(self.subtopology)
            .is_empty();
        if stateful {
            state.savepoint();
        }
        let event_id = if marker { None } else { self.event_id(record) };
        let ledger_store = self
            .ledger
            .as_ref()
            .and_then(|(l, _)| state.store_id(&l.store).ok());
        let mut env = env!(
            self,
            state,
            Some((record.topic.as_str(), record.partition, record.offset))
        );
        env.event_id = event_id.as_deref();
        env.ledger_store = ledger_store;
        env.source_record = Some(record);
        // User code includes codecs: a panic while decoding is dead-lettered too.
        let result = catch_unwind(AssertUnwindSafe(|| {
            if let Some(decoded) = decoded {
                CURRENT_NODE.with(|c| c.set(source));
                env.meters.counts[source].records_in += 1;
                let (key, value) = decoded?;
                let item = Item {
                    key,
                    value,
                    timestamp: record.timestamp,
                    headers: record.headers.clone(),
                };
                forward(nodes, node, item, out, &mut env)?;
            }
            stream_time_advanced(nodes, &time_nodes, record.timestamp, out, &mut env)
        }));
        let result = match result {
            Ok(r) => r,
            Err(payload) => Err(panic_error(nodes, payload)),
        };
        if result.is_err() {
            out.truncate(mark);
            env.meters.drop_staged();
            if stateful {
                env.state.rollback_to_savepoint();
            }
        } else {
            env.meters.commit_staged();
            env.meters.dead_letters(nodes, &env.dead_letters);
            out.append(&mut env.dead_letters);
            if stateful {
                env.state.release_savepoint();
            }
        }
        let status = env.status.take();
        if let Err(e) = &result {
            if e.class() == weir_core::ErrorClass::DeadLetter && !e.is_dropped_late() {
                self.meters.dead_lettered(nodes, e.node());
            }
        }
        if matches!(result, Err(ProcessError::Unavailable { .. })) {
            // It comes again: its advance of stream time is heard then.
            self.notified = before;
        }
        if matches!(result, Err(ProcessError::Panic { .. })) {
            self.replace_panicked(state)?;
        }
        if let Some(id) = event_id {
            use crate::ledger::{EventStatus, StatusUpdate};
            let update = match &result {
                Ok(()) => Some(status.unwrap_or(StatusUpdate {
                    status: EventStatus::Completed,
                    attempts: 1,
                    error: None,
                })),
                // Not processed: it comes again.
                Err(ProcessError::Unavailable { .. }) => None,
                Err(e) => Some(StatusUpdate {
                    status: EventStatus::Error,
                    attempts: 1,
                    error: Some(e.to_string()),
                }),
            };
            if let Some(u) = update {
                self.record_event(state, &id, &u)?;
            }
        }
        result
    }

    /// A processor whose call panicked was taken out of its slot (only a
    /// panic leaves a slot empty): makes and initialises a fresh one (the
    /// old one's fields may be half-updated).
    fn replace_panicked(&mut self, state: &mut TaskState) -> Result<(), ProcessError> {
        let inner = &self.topology.inner;
        let emptied: Vec<usize> = self
            .processors
            .iter()
            .zip(&inner.nodes)
            .enumerate()
            .filter(|(_, (p, n))| {
                p.is_none()
                    && matches!(n.op, Op::Process { .. })
                    && n.subtopology == self.subtopology
            })
            .map(|(id, _)| id)
            .collect();
        if !emptied.is_empty() {
            let fresh = make_processors(&self.topology, self.subtopology);
            for (id, new) in fresh.into_iter().enumerate() {
                if emptied.contains(&id) {
                    self.processors[id] = new;
                }
            }
            self.time_nodes = nodes_wanting_time(&self.processors);
            // Only the replaced instances are initialised again.
            self.init_nodes(&emptied, state)?;
        }
        Ok(())
    }
}

/// Fresh instances of the `process` nodes of `sub`, by node index.
fn make_processors(topology: &Topology, sub: usize) -> Vec<Option<Box<dyn ErasedProcessor>>> {
    topology
        .inner
        .nodes
        .iter()
        .map(|n| match &n.op {
            Op::Process { factory, .. } if n.subtopology == sub => Some(factory()),
            _ => None,
        })
        .collect()
}

/// The `process` nodes (by index) whose instances want stream-time calls.
fn nodes_wanting_time(processors: &[Option<Box<dyn ErasedProcessor>>]) -> Vec<usize> {
    processors
        .iter()
        .enumerate()
        .filter(|(_, p)| p.as_ref().is_some_and(|p| p.wants_stream_time()))
        .map(|(id, _)| id)
        .collect()
}

/// Tells the processors of `ids` that stream time advanced, and forwards
/// what they emit.
fn stream_time_advanced(
    nodes: &[Node],
    ids: &[usize],
    timestamp: Timestamp,
    out: &mut Vec<Record>,
    env: &mut Env<'_>,
) -> Result<(), ProcessError> {
    for &id in ids {
        let mut forwarded = Vec::new();
        call_node(
            nodes,
            id,
            Trigger::StreamTime(timestamp),
            &mut forwarded,
            env,
        )?;
        for it in forwarded {
            forward(nodes, &nodes[id], it, out, env)?;
        }
    }
    Ok(())
}

/// Calls `process` node `id` for `trigger`, collecting what it forwards,
/// and keeps what it did to timers.
fn call_node(
    nodes: &[Node],
    id: usize,
    trigger: Trigger,
    forwarded: &mut Vec<Item>,
    env: &mut Env<'_>,
) -> Result<(), ProcessError> {
    CURRENT_NODE.with(|c| c.set(id));
    // Taken out of its slot while it runs, so what it forwards can reach
    // other processors of the task; put back afterwards (not after a panic).
    let mut p = env.processors[id]
        .take()
        .expect("a task has an instance of each of its process nodes");
    let timer = env.timer_nodes.iter().position(|t| t.node == id);
    let mut effects = TimerEffects::default();
    let call = Call {
        node: &nodes[id].name,
        state: env.state,
        stream_time: env.stream_time,
        wall_clock: env.wall_clock,
        timers: timer.map(|t| env.timer_nodes[t].store),
        effects: &mut effects,
        position: env.position,
        dead_letter_topic: env.dead_letter_topic,
        event_id: env.event_id,
        ledger_store: env.ledger_store,
        source_record: env.source_record,
    };
    let r = p.call(call, trigger, forwarded);
    env.processors[id] = Some(p);
    // Metrics count work done and describe in-memory state: kept whether
    // or not the call succeeded.
    env.meters.apply(id, std::mem::take(&mut effects.metrics));
    if r.is_ok() {
        env.dead_letters.append(&mut effects.dead_letters);
        if effects.status.is_some() {
            env.status = effects.status.take();
        }
        env.timer_handled |= effects.timer_handled;
    }
    if let Some(t) = timer {
        let t = &mut env.timer_nodes[t];
        for (c, scheduled) in effects.earliest.into_iter().enumerate() {
            let Some(d) = scheduled else {
                continue;
            };
            if let Some(known) = t.next[c].as_mut() {
                *known = Some(known.map_or(d, |k| k.min(d)));
            }
            if let Some(f) = t.floor[c].as_mut() {
                *f = (*f).min(d);
            }
        }
    }
    for (clock, interval) in effects.punctuations {
        env.punctuations
            .retain(|p| !(p.node == id && p.clock == clock));
        env.punctuations.push(Punctuation {
            node: id,
            clock,
            interval,
            next: None,
        });
    }
    r
}

/// What processing one record needs besides the graph.
struct Env<'a> {
    processors: &'a mut Vec<Option<Box<dyn ErasedProcessor>>>,
    state: &'a mut TaskState,
    stream_time: Option<Timestamp>,
    wall_clock: Timestamp,
    timer_nodes: &'a mut [TimerNode],
    punctuations: &'a mut Vec<Punctuation>,
    /// The input record's topic, partition and offset, while one is
    /// processed.
    position: Option<(&'a str, i32, i64)>,
    /// Where a processor's own dead letters go.
    dead_letter_topic: &'a str,
    /// The task's per-node counts.
    meters: &'a mut crate::metrics::Meters,
    /// Dead letters of the calls that succeeded, for the output once the
    /// whole record (or timer) has.
    dead_letters: Vec<Record>,
    /// The status ledger's id of the record being processed, if recorded.
    event_id: Option<&'a str>,
    /// The status ledger's store in this task, if it has it.
    ledger_store: Option<weir_state::StoreId>,
    /// A status a node set for the record being processed.
    status: Option<crate::ledger::StatusUpdate>,
    /// An `on_timer_failed` call settled its timer.
    timer_handled: bool,
    /// The input record being processed, as read.
    source_record: Option<&'a Record>,
}

thread_local! {
    /// The node whose user code is running, so a panic can name it.
    static CURRENT_NODE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

fn panic_error(nodes: &[Node], payload: Box<dyn std::any::Any + Send>) -> ProcessError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_string());
    let node = CURRENT_NODE.with(|c| c.get());
    ProcessError::Panic {
        node: nodes.get(node).map(|n| n.name.clone()).unwrap_or_default(),
        message,
    }
}
