//! Retries without stalling: [`Stream::with_retries`] runs a fallible
//! operator under a [`RetryPolicy`].
//!
//! A record whose operator fails with [`Failure::Retryable`] is **parked**:
//! kept, with its attempt count, timestamp, headers and source position,
//! in the node's store `<name>-retries`, and a durable wall-clock timer
//! (timer store `<name>-retry-timers`) is set for its next attempt after an
//! exponential backoff with jitter. Nothing sleeps: the task goes on with
//! other records. When the timer fires, the operator runs again on the
//! parked record; its outputs carry the record's own timestamp and headers
//! plus `weir.attempts`. When the attempts are used up, the record is
//! dead-lettered (kind `retries-exhausted`, `weir.attempts` = the tries
//! made); a permanent or validation failure on a later attempt
//! dead-letters it with that kind.
//!
//! **Per-key order** (the default): while a key has a parked record, later
//! records of that key are parked behind it (without trying them) and run
//! in order once it is settled, so a key's outputs keep its input order;
//! other keys flow on. [`RetryPolicy::let_later_records_pass`] lets later
//! records of the key be tried at once instead (each failing one is parked
//! on its own timer).
//!
//! The store and timers are changelogged state: parking, each attempt and
//! its outputs, and the final delivery or dead letter commit in the
//! transactions of the records and timers that caused them, so a record
//! is retried, delivered or dead-lettered exactly once across crashes and
//! rebalances. Parking needs the stream's key and value codecs.

use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use weir_core::{dlq_headers, Codec, DeadLetter, Failure, OpError, ProcessError};
use weir_state::{Clock, KeyValueStore, Timer};

use crate::breaker::{Breaker, CircuitBreaker};
mod parked;

use parked::{entries_of, entry_key, key_prefix, split_entry, store_err, write, Parked};

use crate::builder::Stream;
use crate::graph::BuildError;
use crate::ledger::{EventStatus, StatusUpdate};
use crate::process::{Processor, ProcessorContext, StoreRef, TimerFailure};

/// How a node retries records that fail with [`Failure::Retryable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_ms: i64,
    cap_ms: i64,
    jitter: bool,
    per_key_order: bool,
}

impl RetryPolicy {
    /// At most `max_attempts` tries in all (the first included); backoff
    /// from 100 ms doubling up to 30 s, with jitter; per-key order.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base_ms: 100,
            cap_ms: 30_000,
            jitter: true,
            per_key_order: true,
        }
    }

    /// The delay before the second try (`base`), doubling per try up to
    /// `cap`.
    pub fn backoff(self, base: Duration, cap: Duration) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1);
        Self {
            base_ms: ms(base),
            cap_ms: ms(cap).max(ms(base)),
            ..self
        }
    }

    /// Exact delays (jitter spreads them over their upper half by default,
    /// so records that failed together do not retry together).
    pub fn without_jitter(self) -> Self {
        Self {
            jitter: false,
            ..self
        }
    }

    /// Later records of a key with a parked record are tried at once
    /// instead of waiting behind it (its order is then not kept).
    pub fn let_later_records_pass(self) -> Self {
        Self {
            per_key_order: false,
            ..self
        }
    }

    /// How many tries in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay after try number `tries` (1 = the first), jittered by
    /// `seed`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_dsl::RetryPolicy;
    ///
    /// let p = RetryPolicy::new(10)
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(1))
    ///     .without_jitter();
    /// assert_eq!([1, 2, 3, 4, 5].map(|n| p.delay_ms(n, 0)), [100, 200, 400, 800, 1000]);
    /// ```
    pub fn delay_ms(&self, tries: u32, seed: u64) -> i64 {
        let doubling = tries.saturating_sub(1).min(62);
        let d = self
            .base_ms
            .saturating_mul(1i64 << doubling)
            .min(self.cap_ms);
        if self.jitter {
            let half = d / 2;
            d - half + (seed % (half as u64 + 1)) as i64
        } else {
            d
        }
    }
}

/// The fallible operator of a retrying node, on values.
type TryFn<K, V, K2, V2> = Arc<dyn Fn(K, V) -> Result<Vec<(K2, V2)>, OpError> + Send + Sync>;

/// A stream whose next fallible operator retries; see the module docs.
pub struct Retrying<K, V> {
    stream: Stream<K, V>,
    name: String,
    policy: RetryPolicy,
    breaker: Option<CircuitBreaker>,
}

impl<K, V> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Runs the next fallible operator (`try_map_values`, `try_map`,
    /// `try_filter`, `try_flat_map`) as node `name`, retrying under
    /// `policy` (see the module docs).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_core::{OpError, Str};
    /// use weir_dsl::{RetryPolicy, TopologyBuilder};
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("orders", Str, Str)
    ///     .with_retries("reserve", RetryPolicy::new(5).backoff(Duration::from_millis(200), Duration::from_secs(10)))
    ///     .try_map_values(|order: String| {
    ///         if order.contains("busy") {
    ///             Err(OpError::retryable("inventory service busy"))
    ///         } else {
    ///             Ok(order)
    ///         }
    ///     })
    ///     .to("reserved");
    /// let t = b.build().unwrap();
    /// assert_eq!(t.stores(), vec!["reserve-retries", "reserve-retry-timers"]);
    /// ```
    pub fn with_retries(&self, name: impl Into<String>, policy: RetryPolicy) -> Retrying<K, V> {
        Retrying {
            stream: self.clone(),
            name: name.into(),
            policy,
            breaker: None,
        }
    }
}

impl<K, V> Retrying<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Guards the node's calls with a circuit breaker (see
    /// [`crate::CircuitBreaker`]): while it is open, records wait in their
    /// partitions instead of failing, and parked tries are put off without
    /// being charged — an outage dead-letters nothing.
    pub fn with_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Turns each record into zero or more records, or fails it.
    pub fn try_flat_map<K2, V2, I>(
        &self,
        f: impl Fn(K, V) -> Result<I, OpError> + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.node(Arc::new(move |k, v| Ok(f(k, v)?.into_iter().collect())))
    }

    /// Replaces each record's key and value, or fails it.
    pub fn try_map<K2, V2>(
        &self,
        f: impl Fn(K, V) -> Result<(K2, V2), OpError> + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        self.node(Arc::new(move |k, v| Ok(vec![f(k, v)?])))
    }

    /// Replaces each record's value, or fails it; keeps the key codec.
    pub fn try_map_values<V2>(
        &self,
        f: impl Fn(V) -> Result<V2, OpError> + Send + Sync + 'static,
    ) -> Stream<K, V2>
    where
        V2: Clone + Send + 'static,
    {
        let s: Stream<K, V2> = self.node(Arc::new(move |k, v| Ok(vec![(k, f(v)?)])));
        Stream {
            key_codec: self.stream.key_codec.clone(),
            ..s
        }
    }

    /// Keeps the records for which `predicate` is `Ok(true)`, or fails
    /// them; keeps both codecs.
    pub fn try_filter(
        &self,
        predicate: impl Fn(&K, &V) -> Result<bool, OpError> + Send + Sync + 'static,
    ) -> Stream<K, V> {
        let s: Stream<K, V> = self.node(Arc::new(move |k, v| {
            Ok(if predicate(&k, &v)? {
                vec![(k, v)]
            } else {
                Vec::new()
            })
        }));
        Stream {
            key_codec: self.stream.key_codec.clone(),
            value_codec: self.stream.value_codec.clone(),
            ..s
        }
    }

    fn node<K2, V2>(&self, f: TryFn<K, V, K2, V2>) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        let graph = self.stream.graph.clone();
        let parked = format!("{}-retries", self.name);
        let timers = format!("{}-retry-timers", self.name);
        let codecs = match (&self.stream.key_codec, &self.stream.value_codec) {
            (Some(k), Some(v)) => Some((k.clone(), v.clone())),
            (k, _) => {
                graph.borrow_mut().errors.push(BuildError::MissingCodec {
                    node: self.name.clone(),
                    part: if k.is_none() { "key" } else { "value" },
                });
                None
            }
        };
        {
            let mut g = graph.borrow_mut();
            g.declare_store(&parked);
            g.declare_timer_store(&timers);
        }
        let spec = Arc::new(Spec {
            f,
            codecs,
            policy: self.policy,
            parked: parked.clone(),
            breaker: self.breaker,
        });
        let s: Stream<K2, V2> = self.stream.process_with(
            self.name.clone(),
            &[&StoreRef(parked), &StoreRef(timers)],
            move || RetryNode {
                spec: spec.clone(),
                breaker: spec.breaker.map(Breaker::new),
            },
        );
        s.graph.borrow_mut().nodes[s.node].kind = "retrying";
        s
    }
}

type Codecs<K, V> = (Arc<dyn Codec<K>>, Arc<dyn Codec<V>>);

struct Spec<K, V, K2, V2> {
    f: TryFn<K, V, K2, V2>,
    /// `None` only in a topology that does not build.
    codecs: Option<Codecs<K, V>>,
    policy: RetryPolicy,
    parked: String,
    breaker: Option<CircuitBreaker>,
}

struct RetryNode<K, V, K2, V2> {
    spec: Arc<Spec<K, V, K2, V2>>,
    /// This task's breaker, when the node has one.
    breaker: Option<Breaker>,
}

fn status(status: EventStatus, attempts: u32, error: Option<String>) -> StatusUpdate {
    StatusUpdate {
        status,
        attempts,
        error,
    }
}

/// What one try of the operator came to.
enum Tried<K2, V2> {
    Done(Vec<(K2, V2)>),
    Failed(OpError),
    /// User code panicked: never retried.
    Panicked(String),
}

impl<K, V, K2, V2> RetryNode<K, V, K2, V2>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    K2: Clone + Send + 'static,
    V2: Clone + Send + 'static,
{
    fn codecs(&self, node: &str) -> Result<&Codecs<K, V>, ProcessError> {
        self.spec.codecs.as_ref().ok_or_else(|| ProcessError::Init {
            node: node.to_string(),
            message: "the node has no key or value codec to park records with".into(),
        })
    }

    /// Tries a parked record again (decoding it first).
    fn try_parked(&self, node: &str, p: &Parked) -> Tried<K2, V2> {
        let (kc, vc) = match self.codecs(node) {
            Ok(c) => c,
            Err(e) => return Tried::Panicked(e.to_string()),
        };
        let (k, v) = match (kc.decode(&p.key), vc.decode(&p.value)) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) => {
                return Tried::Failed(OpError::permanent(format!(
                    "a parked record does not decode: {e}"
                )))
            }
        };
        match catch_unwind(AssertUnwindSafe(|| (self.spec.f)(k, v))) {
            Ok(Ok(out)) => Tried::Done(out),
            Ok(Err(e)) => Tried::Failed(e),
            Err(payload) => Tried::Panicked(
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into()),
            ),
        }
    }

    /// Sets the timer of entry `key` for the try after `tries`.
    fn schedule(
        &self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: &[u8],
        tries: u32,
    ) -> Result<(), ProcessError> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (key, tries, ctx.wall_clock()).hash(&mut h);
        let deadline = ctx
            .wall_clock()
            .saturating_add(self.spec.policy.delay_ms(tries, h.finish()));
        ctx.schedule_at(Clock::Wall, deadline, key, &[])
    }

    /// Tries parked entry `key` (`p`), then — in per-key order — the
    /// entries behind it, until one must wait again or none is left.
    fn settle(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: Vec<u8>,
        p: Parked,
    ) -> Result<(), ProcessError> {
        let store = self.spec.parked.clone();
        let mut queue = if self.spec.policy.per_key_order {
            let prefix = split_entry(&key).map(|(pre, _)| pre.to_vec());
            let (node, state) = ctx.raw();
            match prefix {
                Some(pre) => entries_of(state, node, &store, &pre)?
                    .into_iter()
                    .filter(|(k, _)| *k > key)
                    .collect(),
                None => Vec::new(),
            }
        } else {
            Vec::new()
        };
        queue.insert(0, (key, p));
        for (key, mut p) in queue {
            let tries = p.tries + 1;
            let node = ctx.node().to_string();
            let now = ctx.wall_clock();
            if let Some(Err(until)) = self.breaker.as_mut().map(|b| b.admit(now, &node)) {
                // Put off, not charged; the records behind it wait too.
                ctx.schedule_at(Clock::Wall, until, &key, &[])?;
                return Ok(());
            }
            let tried = self.try_parked(&node, &p);
            ctx.count("retries", 1);
            if let Some(b) = self.breaker.as_mut() {
                match &tried {
                    Tried::Failed(e) if e.failure == Failure::Retryable => {
                        if let Some(until) = b.failed(now, &node) {
                            p.error = e.to_string();
                            let (node, state) = ctx.raw();
                            write(state, node, &store, &key, Some(&p))?;
                            ctx.schedule_at(Clock::Wall, until, &key, &[])?;
                            return Ok(());
                        }
                    }
                    // Done, or refused for the record's own sake: the
                    // service answered.
                    Tried::Done(_) | Tried::Failed(_) => b.succeeded(&node),
                    Tried::Panicked(_) => {}
                }
            }
            match tried {
                Tried::Done(out) => {
                    if let Some(id) = &p.event_id {
                        ctx.update_event_status(id, &status(EventStatus::Completed, tries, None))?;
                    }
                    let mut headers = p.headers();
                    headers.set(dlq_headers::ATTEMPTS, tries.to_string());
                    for (k, v) in out {
                        ctx.forward_with(k, v, p.timestamp, headers.clone());
                    }
                    let (node, state) = ctx.raw();
                    write(state, node, &store, &key, None)?;
                }
                Tried::Failed(e)
                    if e.failure == Failure::Retryable && tries < self.spec.policy.max_attempts =>
                {
                    tracing::debug!(node = %node, tries, error = %e, "retrying later");
                    p.tries = tries;
                    p.error = e.to_string();
                    if let Some(id) = &p.event_id {
                        ctx.update_event_status(
                            id,
                            &status(EventStatus::Retry, tries, Some(p.error.clone())),
                        )?;
                    }
                    let (node, state) = ctx.raw();
                    write(state, node, &store, &key, Some(&p))?;
                    self.schedule(ctx, &key, tries)?;
                    // Later records of the key wait behind it.
                    return Ok(());
                }
                failed => {
                    let (kind, message) = match failed {
                        Tried::Failed(e) if e.failure == Failure::Retryable => (
                            "retries-exhausted",
                            format!("node {node}: {tries} tries: {e}"),
                        ),
                        Tried::Failed(e) => {
                            let kind = ProcessError::from(e.clone()).kind();
                            (kind, format!("node {node}: {e}"))
                        }
                        _ => {
                            let Tried::Panicked(m) = failed else {
                                unreachable!("the other outcomes are matched above")
                            };
                            ("panic", format!("node {node}: operator panicked: {m}"))
                        }
                    };
                    if kind == "retries-exhausted" {
                        ctx.count("retries_exhausted", 1);
                    }
                    if let Some(id) = &p.event_id {
                        ctx.update_event_status(
                            id,
                            &status(EventStatus::Failed, tries, Some(message.clone())),
                        )?;
                    }
                    ctx.dead_letter(
                        &p.source(),
                        &DeadLetter {
                            kind: kind.into(),
                            message,
                            node: node.clone(),
                            attempts: tries,
                            details: None,
                        },
                    );
                    let (node, state) = ctx.raw();
                    write(state, node, &store, &key, None)?;
                }
            }
        }
        Ok(())
    }
}

impl<K, V, K2, V2> RetryNode<K, V, K2, V2>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    K2: Clone + Send + 'static,
    V2: Clone + Send + 'static,
{
    /// The parked record stored under `key`, as bytes.
    fn parked_raw(
        &self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, ProcessError> {
        let store = &self.spec.parked;
        let (node, state) = ctx.raw();
        let id = state
            .store_id(store)
            .map_err(|e| store_err(node, store, e))?;
        state
            .store(id)
            .get(key)
            .map_err(|e| store_err(node, store, e))
    }

    /// Sets the `breaker_open` gauge (1 while open or probing).
    fn report_breaker(&self, ctx: &mut ProcessorContext<'_, K2, V2>) {
        if let Some(b) = &self.breaker {
            ctx.gauge("breaker_open", i64::from(b.is_open()));
        }
    }

    fn process_record(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: K,
        value: V,
    ) -> Result<(), ProcessError> {
        let (kc, vc) = self.codecs(ctx.node())?.clone();
        let codec_err = |node: &str, source| ProcessError::Codec {
            node: node.to_string(),
            source,
        };
        let kb = kc.encode(&key).map_err(|e| codec_err(ctx.node(), e))?;
        let prefix = key_prefix(&kb);
        let store = self.spec.parked.clone();
        let queued = {
            let (node, state) = ctx.raw();
            entries_of(state, node, &store, &prefix)?
        };
        let behind = self.spec.policy.per_key_order && !queued.is_empty();
        let now = ctx.wall_clock();
        let unavailable = |node: &str, until| ProcessError::Unavailable {
            node: node.to_string(),
            message: "circuit breaker open".into(),
            retry_at: until,
        };
        if !behind {
            if let Some(Err(until)) = self.breaker.as_mut().map(|b| b.admit(now, ctx.node())) {
                return Err(unavailable(ctx.node(), until));
            }
        }
        let tried = if behind {
            None
        } else {
            Some((self.spec.f)(key.clone(), value.clone()))
        };
        if let (Some(b), Some(t)) = (self.breaker.as_mut(), &tried) {
            match t {
                Ok(_) => b.succeeded(ctx.node()),
                Err(e) if e.failure == Failure::Retryable => {
                    if let Some(until) = b.failed(now, ctx.node()) {
                        // Not charged: the record waits for the probe.
                        return Err(unavailable(ctx.node(), until));
                    }
                }
                // The service answered: the record is at fault, not it.
                Err(_) => b.succeeded(ctx.node()),
            }
        }
        let error = match tried {
            Some(Ok(out)) => {
                for (k, v) in out {
                    ctx.forward(k, v);
                }
                return Ok(());
            }
            Some(Err(e))
                if e.failure != Failure::Retryable || self.spec.policy.max_attempts <= 1 =>
            {
                return Err(e.into());
            }
            Some(Err(e)) => e.to_string(),
            None => String::new(),
        };
        // Park it: behind its key's records, or on a timer of its own.
        let seq = queued
            .last()
            .and_then(|(k, _)| split_entry(k))
            .map_or(0, |(_, s)| s + 1);
        let entry = entry_key(&prefix, seq);
        let (topic, partition, offset) = match (ctx.source_topic(), ctx.position()) {
            (Some(t), Some((p, o))) => (t.to_string(), p, o),
            _ => (String::new(), -1, -1),
        };
        let parked = Parked {
            tries: u32::from(!behind),
            timestamp: ctx.timestamp(),
            topic,
            partition,
            offset,
            headers: ctx
                .headers()
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
            key: kb,
            value: vc.encode(&value).map_err(|e| codec_err(ctx.node(), e))?,
            event_id: ctx.event_id().map(str::to_string),
            raw: None,
            error,
        };
        let parked = Parked {
            raw: ctx.source_record().and_then(|r| {
                let same = r.key.as_deref() == Some(parked.key.as_slice())
                    && r.value.as_deref() == Some(parked.value.as_slice());
                (!same).then(|| (r.key.clone(), r.value.clone()))
            }),
            ..parked
        };
        ctx.set_event_status(if behind {
            status(EventStatus::Unprocessed, 0, None)
        } else {
            status(EventStatus::Retry, 1, Some(parked.error.clone()))
        });
        {
            let (node, state) = ctx.raw();
            write(state, node, &store, &entry, Some(&parked))?;
        }
        if !behind {
            return self.schedule(ctx, &entry, 1);
        }
        // The head waits on a timer; one lost with a failed timer call is
        // set again, so the key cannot stall.
        let head = &queued[0].0;
        if ctx.timer(Clock::Wall, head)?.is_none() {
            let now = ctx.wall_clock();
            ctx.schedule_at(Clock::Wall, now, head, &[])?;
        }
        Ok(())
    }

    /// A retry's call failed downstream of this node (or panicked): the
    /// parked record is dead-lettered with that failure (or, when a node
    /// downstream was unavailable, tried again then), and the record
    /// behind it gets its turn — no key is left without a timer.
    fn settle_failed_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        timer: Timer,
        failure: &TimerFailure,
    ) -> Result<bool, ProcessError> {
        let store = self.spec.parked.clone();
        let parked = self.parked_raw(ctx, &timer.key)?;
        let Some(p) = parked.as_deref().and_then(Parked::decode) else {
            return Ok(false);
        };
        if let Some(at) = failure.retry_at {
            ctx.schedule_at(Clock::Wall, at, &timer.key, &[])?;
            return Ok(true);
        }
        let tries = p.tries + 1;
        if let Some(id) = &p.event_id {
            ctx.update_event_status(
                id,
                &status(EventStatus::Failed, tries, Some(failure.message.clone())),
            )?;
        }
        ctx.dead_letter(
            &p.source(),
            &DeadLetter {
                kind: failure.kind.clone(),
                message: failure.message.clone(),
                node: ctx.node().to_string(),
                attempts: tries,
                details: None,
            },
        );
        {
            let (node, state) = ctx.raw();
            write(state, node, &store, &timer.key, None)?;
        }
        if self.spec.policy.per_key_order {
            if let Some((pre, _)) = split_entry(&timer.key) {
                let next = {
                    let (node, state) = ctx.raw();
                    entries_of(state, node, &store, pre)?
                        .into_iter()
                        .find(|(k, _)| *k > timer.key)
                };
                if let Some((k, _)) = next {
                    let now = ctx.wall_clock();
                    ctx.schedule_at(Clock::Wall, now, &k, &[])?;
                }
            }
        }
        Ok(true)
    }

    fn on_timer_record(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        let store = self.spec.parked.clone();
        let parked = self.parked_raw(ctx, &timer.key)?;
        // Settled already (a timer set again for a head that then went).
        let Some(bytes) = parked else {
            return Ok(());
        };
        let p = Parked::decode(&bytes)
            .ok_or_else(|| store_err(ctx.node(), &store, "a parked record does not decode"))?;
        self.settle(ctx, timer.key, p)
    }
}

/// The trait's calls, each followed by a report of the breaker's state.
impl<K, V, K2, V2> Processor<K, V, K2, V2> for RetryNode<K, V, K2, V2>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    K2: Clone + Send + 'static,
    V2: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: K,
        value: V,
    ) -> Result<(), ProcessError> {
        let r = self.process_record(ctx, key, value);
        self.report_breaker(ctx);
        r
    }

    fn on_timer_failed(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        timer: Timer,
        failure: &TimerFailure,
    ) -> Result<bool, ProcessError> {
        let r = self.settle_failed_timer(ctx, timer, failure);
        self.report_breaker(ctx);
        r
    }

    fn on_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        let r = self.on_timer_record(ctx, timer);
        self.report_breaker(ctx);
        r
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Parked records round-trip, and a cut one does not decode.
        #[test]
        fn parked_records_round_trip(
            tries in any::<u32>(), timestamp in any::<i64>(), partition in any::<i32>(),
            offset in any::<i64>(), topic in ".*", key in any::<Vec<u8>>(),
            value in any::<Vec<u8>>(), error in ".*",
            headers in proptest::collection::vec((".*", proptest::option::of(any::<Vec<u8>>())), 0..4),
            event_id in proptest::option::of(".*"),
            raw in proptest::option::of((proptest::option::of(any::<Vec<u8>>()), proptest::option::of(any::<Vec<u8>>()))),
        ) {
            let p = Parked { tries, timestamp, topic, partition, offset, headers, key, value, error, event_id, raw };
            let b = p.encode();
            prop_assert_eq!(Parked::decode(&b), Some(p));
            prop_assert_eq!(Parked::decode(&b[..b.len() - 1]), None);
        }

        /// Delays double from the base up to the cap; jitter keeps them in
        /// their upper half.
        #[test]
        fn delays_double_up_to_the_cap(tries in 1u32..100, seed in any::<u64>()) {
            let p = RetryPolicy::new(100).backoff(Duration::from_millis(50), Duration::from_secs(5));
            let exact = p.without_jitter().delay_ms(tries, seed);
            prop_assert_eq!(exact, (50i64 << (tries - 1).min(20)).min(5_000));
            let jittered = p.delay_ms(tries, seed);
            prop_assert!(jittered <= exact && jittered >= exact - exact / 2);
        }
    }

    #[test]
    fn entry_keys_split_into_their_key_and_sequence() {
        let prefix = key_prefix(b"order-1");
        let k = entry_key(&prefix, 7);
        assert_eq!(split_entry(&k), Some((prefix.as_slice(), 7)));
        assert!(entry_key(&prefix, 7) < entry_key(&prefix, 8));
    }
}
