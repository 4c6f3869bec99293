//! Stateful nodes: the [`Processor`] lifecycle, its [`ProcessorContext`],
//! and typed [`Store`] handles.
//!
//! A `process` node is made per task by a factory when the task is created,
//! so its fields are the task's own; stateless operators keep their shared
//! closures. The context reads and writes the task's stores through the
//! pending write set (reads see the task's own uncommitted writes; a record
//! that fails drops its writes), forwards records downstream, and exposes
//! the record's timestamp and headers and the task's stream time.

use std::marker::PhantomData;
use std::sync::Arc;

use weir_core::{Codec, Headers, ProcessError, Record, Timestamp};
use weir_state::{Clock, TaskState, Timer, TimerStore};

use crate::graph::{boxed, take, Item};

mod typed_store;
pub use typed_store::TypedStore;

/// A typed handle on a key-value store declared with
/// [`crate::TopologyBuilder::key_value_store`]. Cheap to clone; give it to
/// the `process` nodes that use the store.
pub struct Store<K, V> {
    pub(crate) name: Arc<str>,
    pub(crate) key_codec: Arc<dyn Codec<K>>,
    pub(crate) value_codec: Arc<dyn Codec<V>>,
}

impl<K, V> Clone for Store<K, V> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            key_codec: self.key_codec.clone(),
            value_codec: self.value_codec.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for Store<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.name)
    }
}

impl<K: 'static, V: 'static> Store<K, V> {
    /// Encodes a key with the store's key codec.
    ///
    /// # Errors
    /// The codec's error.
    pub fn encode_key(&self, key: &K) -> Result<Vec<u8>, weir_core::CodecError> {
        self.key_codec.encode(key)
    }

    /// Decodes a stored key.
    ///
    /// # Errors
    /// The codec's error.
    pub fn decode_key(&self, bytes: &[u8]) -> Result<K, weir_core::CodecError> {
        self.key_codec.decode(bytes)
    }

    /// Decodes a stored value.
    ///
    /// # Errors
    /// The codec's error.
    pub fn decode_value(&self, bytes: &[u8]) -> Result<V, weir_core::CodecError> {
        self.value_codec.decode(bytes)
    }
}

impl<K, V> Store<K, V> {
    /// The store's name (stable: it names the task's column family and,
    /// from the next release on, the changelog topic).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Anything that names a declared store, for `process(name, &[&store], …)`.
pub trait StoreName {
    /// The store's name.
    fn store_name(&self) -> &str;
}

impl<K, V> StoreName for Store<K, V> {
    fn store_name(&self) -> &str {
        &self.name
    }
}

/// A store named by its name only (the DSL's own stateful nodes).
pub(crate) struct StoreRef(pub String);

impl StoreName for StoreRef {
    fn store_name(&self) -> &str {
        &self.0
    }
}

/// A timer store declared with [`crate::TopologyBuilder::timer_store`]:
/// name it among the stores of the one `process` node that sets timers
/// there ([`ProcessorContext::schedule_at`]) and hears them fire
/// ([`Processor::on_timer`]).
#[derive(Clone, Debug)]
pub struct Timers {
    pub(crate) name: Arc<str>,
}

impl Timers {
    /// The store's name (it names the changelog topic too).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl StoreName for Timers {
    fn store_name(&self) -> &str {
        &self.name
    }
}

/// A per-task stateful node: made by a factory when the task is created,
/// then `init`, `process` per record, `close` when the task closes. After an
/// aborted transaction the instance is closed and a fresh one made, so
/// in-memory fields never hold effects of uncommitted records.
pub trait Processor<K, V, K2, V2>: Send + 'static {
    /// Called once before the first record (stores are readable), and for
    /// each fresh instance after an abort or a panic.
    ///
    /// # Errors
    /// A [`ProcessError`] (or a panic) stops the task: the instance exits
    /// with an error naming the node.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, K2, V2>) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Processes one record.
    ///
    /// # Errors
    /// A [`ProcessError`]: the record is dead-lettered and its store writes
    /// and forwards are dropped (a store failure stops the task instead).
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: K,
        value: V,
    ) -> Result<(), ProcessError>;

    /// Whether [`Processor::on_stream_time`] is to be called (asked once
    /// per instance).
    fn wants_stream_time(&self) -> bool {
        false
    }

    /// Called each time the task's stream time advanced — after a record
    /// that moved it, or when an upstream task's stream time reached this
    /// task through a repartition topic — for a processor that
    /// [`Processor::wants_stream_time`]. `ctx.stream_time()` is the new
    /// time; what it forwards goes downstream, best with
    /// [`ProcessorContext::forward_with`] (`forward` uses the timestamp and
    /// headers of the record that moved the time, if any). Runs in the
    /// same transaction as that record.
    ///
    /// # Errors
    /// As [`Processor::process`]: the record that moved the time is
    /// dead-lettered, and the next advance tries again.
    fn on_stream_time(
        &mut self,
        _ctx: &mut ProcessorContext<'_, K2, V2>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// A timer this node set with [`ProcessorContext::schedule_at`] is due:
    /// its deadline passed on its clock. It is removed before the call (set
    /// it again to repeat). `ctx.timestamp()` is the deadline, which
    /// `forward` gives the outputs. Runs in the open transaction: its store
    /// writes, outputs and the timer's removal commit together.
    ///
    /// # Errors
    /// A [`ProcessError`]: the call's writes and outputs are dropped and
    /// the timer is dead-lettered (key and payload, topic = the timer
    /// store's name); a store failure stops the task instead.
    fn on_timer(
        &mut self,
        _ctx: &mut ProcessorContext<'_, K2, V2>,
        _timer: Timer,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// The call of [`Processor::on_timer`] for `timer` failed: its writes
    /// and outputs were dropped (a failure downstream of this node
    /// included), and the timer stays removed. Runs in its own savepoint,
    /// so the node can settle what the timer stood for — dead-letter it,
    /// set the timer again. Return `Ok(true)` when it did; `Ok(false)`
    /// dead-letters the timer itself (key and payload).
    ///
    /// # Errors
    /// As [`Processor::on_timer`] (the timer is then dead-lettered).
    fn on_timer_failed(
        &mut self,
        _ctx: &mut ProcessorContext<'_, K2, V2>,
        _timer: Timer,
        _failure: &TimerFailure,
    ) -> Result<bool, ProcessError> {
        Ok(false)
    }

    /// A punctuation registered with [`ProcessorContext::schedule_every`]
    /// is due: `time` is the clock's time now (stream time or the system
    /// clock), also the timestamp `forward` gives the outputs.
    ///
    /// # Errors
    /// As [`Processor::on_timer`] (nothing is dead-lettered: the error is
    /// logged and the call's writes and outputs are dropped).
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, K2, V2>,
        _clock: Clock,
        _time: Timestamp,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Called when the task closes (revoked, aborted, shut down).
    fn close(&mut self) {}
}

/// A closure as a [`Processor`] (what [`crate::Stream::process`] makes).
pub(crate) struct FnProcessor<F>(pub Arc<F>);

impl<K, V, K2, V2, F> Processor<K, V, K2, V2> for FnProcessor<F>
where
    F: Fn(&mut ProcessorContext<'_, K2, V2>, K, V) -> Result<(), ProcessError>
        + Send
        + Sync
        + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: K,
        value: V,
    ) -> Result<(), ProcessError> {
        (self.0)(ctx, key, value)
    }
}

/// What a processor sees of its task while it runs.
pub struct ProcessorContext<'a, K2, V2> {
    node: &'a str,
    state: &'a mut TaskState,
    stream_time: Option<Timestamp>,
    wall_clock: Timestamp,
    timers: Option<usize>,
    effects: &'a mut TimerEffects,
    position: Option<(&'a str, i32, i64)>,
    dead_letter_topic: &'a str,
    event_id: Option<&'a str>,
    ledger_store: Option<weir_state::StoreId>,
    source_record: Option<&'a Record>,
    timestamp: Timestamp,
    headers: &'a mut Headers,
    forwarded: &'a mut Vec<Item>,
    _out: PhantomData<fn(K2, V2)>,
}

impl<K2: Send + 'static, V2: Send + 'static> ProcessorContext<'_, K2, V2> {
    /// Sends a record downstream with the current record's timestamp and headers.
    pub fn forward(&mut self, key: K2, value: V2) {
        let (timestamp, headers) = (self.timestamp, self.headers.clone());
        self.forward_with(key, value, timestamp, headers);
    }

    /// Sends a record downstream with its own timestamp and headers.
    pub fn forward_with(&mut self, key: K2, value: V2, timestamp: Timestamp, headers: Headers) {
        self.forwarded.push(Item {
            key: boxed(key),
            value: boxed(value),
            timestamp,
            headers,
        });
    }

    /// The timestamp of the record being processed (0 in `init`).
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The headers of the record being processed; changes are seen by
    /// later `forward` calls.
    pub fn headers(&mut self) -> &mut Headers {
        self.headers
    }

    /// The task's stream time: the largest timestamp of the decodable
    /// records it processed, this record included (as in Kafka Streams;
    /// `None` in `init` before the first record). Behind a repartition
    /// topic, in a task that acts on stream time (windows, sessions, waits,
    /// timers, or a processor whose `wants_stream_time` is true), the
    /// records of that topic do not move it: the upstream tasks' times do,
    /// the smallest of them once each has reported one (see
    /// `weir_core::StreamTimeMarker`).
    pub fn stream_time(&self) -> Option<Timestamp> {
        self.stream_time
    }

    /// The name of this node.
    pub fn node(&self) -> &str {
        self.node
    }

    /// The partition and offset of the input record being processed (of
    /// the topic this task read it from: a repartition topic behind a key
    /// change); `None` outside a record (`init`, timers, punctuations).
    /// Unique per record within a task's inputs of one topic.
    pub fn position(&self) -> Option<(i32, i64)> {
        self.position.map(|(_, p, o)| (p, o))
    }

    /// The topic of the input record being processed (see
    /// [`ProcessorContext::position`]).
    pub fn source_topic(&self) -> Option<&str> {
        self.position.map(|(t, _, _)| t)
    }

    /// The input record being processed, as read from its topic.
    pub(crate) fn source_record(&self) -> Option<&Record> {
        self.source_record
    }

    /// The status ledger's id of the record being processed.
    pub(crate) fn event_id(&self) -> Option<&str> {
        self.event_id
    }

    /// Sets the status ledger's entry of the record being processed (kept
    /// if the record's processing succeeds).
    pub(crate) fn set_event_status(&mut self, update: crate::ledger::StatusUpdate) {
        if self.event_id.is_some() {
            self.effects.status = Some(update);
        }
    }

    /// Writes the status ledger's entry of event `id` (when this task holds
    /// the ledger).
    pub(crate) fn update_event_status(
        &mut self,
        id: &str,
        update: &crate::ledger::StatusUpdate,
    ) -> Result<(), ProcessError> {
        let Some(store) = self.ledger_store else {
            return Ok(());
        };
        crate::ledger::record_status(self.state, store, id, update, self.wall_clock)
            .map(|_| ())
            .map_err(|e| ProcessError::Store {
                node: self.node.to_string(),
                store: "status ledger".into(),
                message: e.to_string(),
            })
    }

    /// Writes a dead letter for `source` (its key, value, headers and
    /// timestamp; its topic, partition and offset go to the `weir.source.*`
    /// headers) to the dead-letter topic, in the open transaction, without
    /// failing this call — for a node that settles records later (a retry
    /// that ran out). Dropped with the call's other effects if the call
    /// fails.
    pub fn dead_letter(&mut self, source: &Record, why: &weir_core::DeadLetter) {
        let r = why.to_record(self.dead_letter_topic, source, self.wall_clock);
        self.effects.dead_letters.push(r);
    }

    /// Adds `n` to this node's counter `name` (a metric: the monitoring
    /// topic shows it under the node; it counts work done, so it is kept
    /// even when the call fails).
    pub fn count(&mut self, name: &'static str, n: u64) {
        self.effects
            .metrics
            .push((name, crate::metrics::MetricUpdate::Count(n)));
    }

    /// Sets this node's gauge `name` in this task to `value` (a metric:
    /// summed over the instance's tasks; it describes the processor's
    /// in-memory state, so it is kept even when the call fails; an abort
    /// brings it back to its value at the last commit; it is forgotten
    /// when the task closes).
    pub fn gauge(&mut self, name: &'static str, value: i64) {
        self.effects
            .metrics
            .push((name, crate::metrics::MetricUpdate::Gauge(value)));
    }

    /// Moves this node's gauge `name` in this task by `delta`, for a gauge
    /// that follows what the node keeps in its stores (pending waits):
    /// applied only if the record or timer being processed succeeds, as
    /// its store writes are. Set the starting value with
    /// [`ProcessorContext::gauge`] in `init` (after an abort the gauge is
    /// back at its value of the last commit, as the stores are, and the
    /// fresh instance's `init` sets it again when the task next runs).
    pub fn gauge_add(&mut self, name: &'static str, delta: i64) {
        self.effects
            .metrics
            .push((name, crate::metrics::MetricUpdate::Add(delta)));
    }

    /// The system clock as the task sees it (milliseconds since the epoch;
    /// the test driver's mock clock under the `TopologyTestDriver`).
    pub fn wall_clock(&self) -> Timestamp {
        self.wall_clock
    }

    /// Sets timer `key` of `clock` to fire at `deadline` with `payload`
    /// (see [`Processor::on_timer`]), replacing that key's timer if set.
    /// The timer is state: it commits with the transaction, survives
    /// crashes and rebalances, and fires once. A stream-time timer fires
    /// once the task's stream time reaches its deadline; a wall-clock one
    /// once the system clock does, inputs idle or not.
    ///
    /// # Errors
    /// [`ProcessError::Store`] when this node names no timer store (see
    /// [`crate::TopologyBuilder::timer_store`]) or the store failed.
    pub fn schedule_at(
        &mut self,
        clock: Clock,
        deadline: Timestamp,
        key: &[u8],
        payload: &[u8],
    ) -> Result<(), ProcessError> {
        let id = self.timer_store()?;
        TimerStore::new(self.state.store(id))
            .schedule(clock, deadline, key, payload)
            .map_err(|e| timer_error(self.node, e))?;
        self.effects.scheduled(clock, deadline);
        Ok(())
    }

    /// Removes timer `key` of `clock`; whether it was set.
    ///
    /// # Errors
    /// As [`ProcessorContext::schedule_at`].
    pub fn cancel_timer(&mut self, clock: Clock, key: &[u8]) -> Result<bool, ProcessError> {
        let id = self.timer_store()?;
        TimerStore::new(self.state.store(id))
            .cancel(clock, key)
            .map_err(|e| timer_error(self.node, e))
    }

    /// The deadline and payload of timer `key` of `clock`, if set.
    ///
    /// # Errors
    /// As [`ProcessorContext::schedule_at`].
    pub fn timer(
        &mut self,
        clock: Clock,
        key: &[u8],
    ) -> Result<Option<(Timestamp, Vec<u8>)>, ProcessError> {
        let id = self.timer_store()?;
        TimerStore::new(self.state.store(id))
            .get(clock, key)
            .map_err(|e| timer_error(self.node, e))
    }

    /// Registers a punctuation: [`Processor::punctuate`] is called each
    /// time `clock` crosses a multiple of `interval_ms` (epoch-aligned),
    /// once however many it crossed. Not state: register it in `init`,
    /// which runs again for every new instance. Intervals below 1 ms are
    /// taken as 1 ms.
    pub fn schedule_every(&mut self, clock: Clock, interval_ms: i64) {
        self.effects.punctuations.push((clock, interval_ms.max(1)));
    }

    fn timer_store(&self) -> Result<usize, ProcessError> {
        self.timers.ok_or_else(|| ProcessError::Store {
            node: self.node.to_string(),
            store: String::new(),
            message: "this node names no timer store (declare one with \
                      TopologyBuilder::timer_store and list it in the node's stores)"
                .into(),
        })
    }

    /// The node's name and the task's state, for typed views other than
    /// key-value (windows).
    pub(crate) fn raw(&mut self) -> (&str, &mut TaskState) {
        (self.node, &mut *self.state)
    }

    /// Typed access to a store this node declared.
    ///
    /// # Errors
    /// [`ProcessError::Store`] when the node did not declare the store.
    pub fn store<'s, K: 'static, V: 'static>(
        &'s mut self,
        store: &'s Store<K, V>,
    ) -> Result<TypedStore<'s, K, V>, ProcessError> {
        let id = self
            .state
            .store_id(&store.name)
            .map_err(|e| ProcessError::Store {
                node: self.node.to_string(),
                store: store.name.to_string(),
                message: e.to_string(),
            })?;
        Ok(TypedStore {
            node: self.node,
            state: &mut *self.state,
            id,
            store,
        })
    }
}

/// What a processor call needs of its task, besides the record.
pub(crate) struct Call<'a> {
    pub node: &'a str,
    pub state: &'a mut TaskState,
    pub stream_time: Option<Timestamp>,
    pub wall_clock: Timestamp,
    /// The node's timer store, if it names one.
    pub timers: Option<usize>,
    pub effects: &'a mut TimerEffects,
    /// The input record's topic, partition and offset, when a record is
    /// processed.
    pub position: Option<(&'a str, i32, i64)>,
    /// Where the node's own dead letters go.
    pub dead_letter_topic: &'a str,
    /// The status ledger's id of the record being processed.
    pub event_id: Option<&'a str>,
    /// The task's status ledger store, if it holds it.
    pub ledger_store: Option<weir_state::StoreId>,
    /// The input record being processed, as read.
    pub source_record: Option<&'a Record>,
}

/// What a call did to timers that the executor keeps in memory.
#[derive(Debug, Default)]
pub(crate) struct TimerEffects {
    /// The earliest deadline scheduled, per clock (stream, wall).
    pub earliest: [Option<Timestamp>; 2],
    /// Punctuations registered: clock and interval.
    pub punctuations: Vec<(Clock, i64)>,
    /// Dead letters the node wrote ([`ProcessorContext::dead_letter`]).
    pub dead_letters: Vec<Record>,
    /// A status the node set for the record being processed.
    pub status: Option<crate::ledger::StatusUpdate>,
    /// `on_timer_failed` settled the timer itself.
    pub timer_handled: bool,
    /// Counters added and gauges set ([`ProcessorContext::count`],
    /// [`ProcessorContext::gauge`]).
    pub metrics: Vec<(&'static str, crate::metrics::MetricUpdate)>,
}

impl TimerEffects {
    fn scheduled(&mut self, clock: Clock, deadline: Timestamp) {
        let slot = &mut self.earliest[clock_index(clock)];
        *slot = Some(slot.map_or(deadline, |d| d.min(deadline)));
    }
}

/// The slot of `clock` in per-clock arrays.
pub(crate) fn clock_index(clock: Clock) -> usize {
    match clock {
        Clock::Stream => 0,
        Clock::Wall => 1,
    }
}

fn timer_error(node: &str, e: weir_state::StoreError) -> ProcessError {
    ProcessError::Store {
        node: node.to_string(),
        store: String::new(),
        message: format!("timer store: {e}"),
    }
}

/// What a call is about: a record, a timer, a punctuation, or nothing.
pub(crate) enum Trigger {
    Init,
    Record(Item),
    StreamTime(Timestamp),
    Timer(Timer),
    /// A call for the timer failed (see `Processor::on_timer_failed`).
    TimerFailed(Timer, TimerFailure),
    Punctuate(Clock, Timestamp),
}

/// Why a timer's call failed; see [`Processor::on_timer_failed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerFailure {
    /// The error's `weir.error.kind`.
    pub kind: String,
    /// The error, for a person.
    pub message: String,
    /// When a node downstream was unavailable: when to try again.
    pub retry_at: Option<Timestamp>,
}

/// A processor instance behind `Any` types, as a task holds it.
pub(crate) trait ErasedProcessor: Send {
    /// Runs the call `trigger` names; what the processor forwards is
    /// appended to `forwarded`.
    fn call(
        &mut self,
        env: Call<'_>,
        trigger: Trigger,
        forwarded: &mut Vec<Item>,
    ) -> Result<(), ProcessError>;
    fn wants_stream_time(&self) -> bool;
    fn close(&mut self);
}

/// Makes a task's instance of a `process` node.
pub(crate) type ProcessorFactory = Arc<dyn Fn() -> Box<dyn ErasedProcessor> + Send + Sync>;

pub(crate) struct Erased<P, K, V, K2, V2> {
    pub processor: P,
    pub _types: PhantomData<fn(K, V, K2, V2)>,
}

impl<P, K, V, K2, V2> ErasedProcessor for Erased<P, K, V, K2, V2>
where
    P: Processor<K, V, K2, V2>,
    K: Send + 'static,
    V: Send + 'static,
    K2: Send + 'static,
    V2: Send + 'static,
{
    fn call(
        &mut self,
        env: Call<'_>,
        trigger: Trigger,
        forwarded: &mut Vec<Item>,
    ) -> Result<(), ProcessError> {
        let node = env.node;
        let mut headers = Headers::new();
        let timestamp = match &trigger {
            Trigger::Init => 0,
            Trigger::Record(it) => it.timestamp,
            Trigger::StreamTime(t) | Trigger::Punctuate(_, t) => *t,
            Trigger::Timer(t) | Trigger::TimerFailed(t, _) => t.deadline,
        };
        let mut ctx = ProcessorContext {
            node,
            state: env.state,
            stream_time: env.stream_time,
            wall_clock: env.wall_clock,
            timers: env.timers,
            effects: env.effects,
            position: env.position,
            dead_letter_topic: env.dead_letter_topic,
            event_id: env.event_id,
            ledger_store: env.ledger_store,
            source_record: env.source_record,
            timestamp,
            headers: &mut headers,
            forwarded,
            _out: PhantomData,
        };
        let p = &mut self.processor;
        let r = match trigger {
            Trigger::Init => p.init(&mut ctx),
            Trigger::Record(mut item) => {
                let key = take::<K>(&mut item.key);
                let value = take::<V>(&mut item.value);
                *ctx.headers = item.headers;
                p.process(&mut ctx, key, value)
            }
            Trigger::StreamTime(_) => p.on_stream_time(&mut ctx),
            Trigger::Timer(timer) => p.on_timer(&mut ctx, timer),
            Trigger::TimerFailed(timer, failure) => p
                .on_timer_failed(&mut ctx, timer, &failure)
                .map(|handled| ctx.effects.timer_handled = handled),
            Trigger::Punctuate(clock, time) => p.punctuate(&mut ctx, clock, time),
        };
        r.map_err(|e| name_node(e, node))
    }

    fn wants_stream_time(&self) -> bool {
        self.processor.wants_stream_time()
    }

    fn close(&mut self) {
        self.processor.close();
    }
}

/// Fills in the node of an operator error returned without one.
pub(crate) fn name_node(e: ProcessError, node: &str) -> ProcessError {
    match e {
        ProcessError::Operator { node: n, message } if n.is_empty() => ProcessError::Operator {
            node: node.to_string(),
            message,
        },
        ProcessError::Failed { node: n, error } if n.is_empty() => ProcessError::Failed {
            node: node.to_string(),
            error,
        },
        ProcessError::Codec { node: n, source } if n.is_empty() => ProcessError::Codec {
            node: node.to_string(),
            source,
        },
        other => other,
    }
}
