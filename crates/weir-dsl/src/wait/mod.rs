//! Workflow waits: [`Stream::await_event`] — each record of one stream (an
//! "A") waits for a matching record of another (a "B") until a timeout on
//! stream time, and resolves exactly once as [`Outcome::Matched`] or
//! [`Outcome::TimedOut`].
//!
//! Both streams meet in one task, partitioned by the correlation key (the
//! record key, or — with [`Wait::correlate`] — a key taken from each value,
//! through a repartition topic per stream). The task keeps three stores,
//! all changelogged:
//! - `<name>-waits`: per correlation key, its pending waits (each with its
//!   A's timestamp, source partition and offset — two waits of one key
//!   never overwrite each other; waits made from one input record, say by
//!   a `process` node that forwards two, share the id and its timer, and
//!   each resolves once), queryable by correlation key;
//! - `<name>-early`: per correlation key, the Bs that came before any wait
//!   they match;
//! - `<name>-timers`: a timer per wait and per early B, on stream time.
//!
//! Matching follows timestamps, not processing order: a B matches a wait
//! iff `a.ts <= b.ts <= a.ts + timeout` and the condition holds, even when
//! the wait's deadline is due but has not fired. A B resolves the oldest
//! matching wait (by A's timestamp, then partition and offset), or every
//! one with [`Wait::resolve_all`]. A wait times out once the task's stream
//! time passes `a.ts + timeout + grace`; its outcome is stamped `a.ts +
//! timeout`, a match with the B's timestamp. A B that matches no pending
//! wait is kept until stream time passes `b.ts + timeout + grace` — an A
//! arriving meanwhile with `a.ts <= b.ts <= a.ts + timeout` takes the
//! earliest such B at once — and then dropped, counted in the node's
//! counter `early_dropped` (a B past that time already is dropped at once
//! and counted as late); [`Wait::ignore_early`] drops them without keeping
//! them.

use std::sync::Arc;
use std::time::Duration;

use weir_core::{Codec, Headers, ProcessError, Timestamp};
use weir_state::{Clock, Timer};

use crate::builder::Stream;
use crate::process::{Processor, ProcessorContext, Store, Timers};
mod pending;
pub(crate) use pending::Unavailable;
pub use pending::{Pending, PendingCodec};

/// How a wait resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<A, B> {
    /// A B matched the wait in time.
    Matched(A, B),
    /// No B matched before the timeout (and grace) passed.
    TimedOut(A),
}

/// Another name for [`Outcome`]: `Waited::Matched(a, b)`, `Waited::TimedOut(a)`.
pub type Waited<A, B> = Outcome<A, B>;

type KeyFn<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;
type DurationFn = Arc<dyn Fn() -> Duration + Send + Sync>;
type Condition<A, B> = Arc<dyn Fn(&A, &B) -> bool + Send + Sync>;

/// The settings of an [`Stream::await_event`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use weir_core::{Json, Str};
/// use weir_dsl::{Outcome, TopologyBuilder, Wait};
///
/// let b = TopologyBuilder::new();
/// let orders = b.stream("orders", Str, Json::<f64>::new());
/// let payments = b.stream("payments", Str, Json::<f64>::new());
/// orders
///     .await_event(
///         &payments,
///         Wait::named("payment")
///             .when(|order: &f64, paid: &f64| order == paid)
///             .timeout(Duration::from_secs(900)),
///     )
///     .map_values(|o| match o {
///         Outcome::Matched(..) => "confirmed".to_string(),
///         Outcome::TimedOut(_) => "expired".to_string(),
///     })
///     .with_value_codec(Str)
///     .to("outcomes");
/// let t = b.build().unwrap();
/// assert_eq!(t.stores(), vec!["payment-early", "payment-timers", "payment-waits"]);
/// ```
pub struct Wait<K, A, B> {
    name: String,
    correlate: Option<(KeyFn<A, K>, KeyFn<B, K>)>,
    when: Condition<A, B>,
    timeout: DurationFn,
    grace: DurationFn,
    resolve_all: bool,
    keep_early: bool,
}

impl<K, A, B> Wait<K, A, B> {
    /// A wait named `name` (it names its stores and topics): correlated by
    /// record key, any B matches, timeout zero, grace zero.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            correlate: None,
            when: Arc::new(|_, _| true),
            timeout: Arc::new(|| Duration::ZERO),
            grace: Arc::new(|| Duration::ZERO),
            resolve_all: false,
            keep_early: true,
        }
    }

    /// Correlates by a key taken from each value instead of the record
    /// key: both streams go through a repartition topic
    /// (`<name>-a-repartition`, `<name>-b-repartition`) keyed by it.
    pub fn correlate(
        mut self,
        a: impl Fn(&A) -> K + Send + Sync + 'static,
        b: impl Fn(&B) -> K + Send + Sync + 'static,
    ) -> Self {
        self.correlate = Some((Arc::new(a), Arc::new(b)));
        self
    }

    /// The condition a B must meet to match a wait (besides the key and
    /// the time).
    pub fn when(mut self, f: impl Fn(&A, &B) -> bool + Send + Sync + 'static) -> Self {
        self.when = Arc::new(f);
        self
    }

    /// How long after its A's timestamp a B may come.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Arc::new(move || d);
        self
    }

    /// The timeout, read when a task starts (e.g. from a parameter).
    pub fn timeout_with(mut self, f: impl Fn() -> Duration + Send + Sync + 'static) -> Self {
        self.timeout = Arc::new(f);
        self
    }

    /// How much longer (on stream time) a wait stays open for Bs that are
    /// in time but arrive late — skew between the two inputs.
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = Arc::new(move || d);
        self
    }

    /// The grace, read when a task starts.
    pub fn grace_with(mut self, f: impl Fn() -> Duration + Send + Sync + 'static) -> Self {
        self.grace = Arc::new(f);
        self
    }

    /// A B resolves every wait it matches, not only the oldest.
    pub fn resolve_all(mut self) -> Self {
        self.resolve_all = true;
        self
    }

    /// A B matching no pending wait is dropped, not kept for a later A.
    pub fn ignore_early(mut self) -> Self {
        self.keep_early = false;
        self
    }
}

/// The two inputs of the wait node.
#[derive(Clone)]
enum Side<A, B> {
    A(A),
    B(B),
}

const WAIT: u8 = b'a';
const EARLY: u8 = b'b';

/// A timer's key: kind, the record's timestamp, partition and offset, then
/// the correlation key.
fn timer_key(kind: u8, id: (Timestamp, i32, i64), key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(21 + key.len());
    k.push(kind);
    k.extend_from_slice(&id.0.to_be_bytes());
    k.extend_from_slice(&id.1.to_be_bytes());
    k.extend_from_slice(&id.2.to_be_bytes());
    k.extend_from_slice(key);
    k
}

type TimerId<'a> = (u8, (Timestamp, i32, i64), &'a [u8]);

fn parse_timer_key(k: &[u8]) -> Option<TimerId<'_>> {
    let kind = *k.first()?;
    let ts = i64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
    let p = i32::from_be_bytes(k.get(9..13)?.try_into().ok()?);
    let o = i64::from_be_bytes(k.get(13..21)?.try_into().ok()?);
    Some((kind, (ts, p, o), &k[21..]))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

struct Shared<K, A, B> {
    waits: Store<K, Vec<Pending<A>>>,
    early: Store<K, Vec<Pending<B>>>,
    /// A's codec: a wait whose timeout cannot be delivered is dead-lettered
    /// with A's value.
    a_codec: Arc<dyn Codec<A>>,
    when: Condition<A, B>,
    timeout: DurationFn,
    grace: DurationFn,
    resolve_all: bool,
    keep_early: bool,
}

/// The wait node's counter of kept Bs that no wait took in time.
const EARLY_DROPPED: &str = "early_dropped";

/// The gauge of waits not yet resolved (matched or timed out).
const PENDING_WAITS: &str = "pending_waits";

/// The wait node of one task.
struct WaitNode<K, A, B> {
    shared: Arc<Shared<K, A, B>>,
    timeout: i64,
    grace: i64,
}

/// Inserts `p` into `list`, kept ordered by (timestamp, partition, offset).
fn insert<T>(list: &mut Vec<Pending<T>>, p: Pending<T>) {
    let at = list.partition_point(|q| q.id() <= p.id());
    list.insert(at, p);
}

/// Whether a record of `list` still has id `id`. Records made from one
/// input record (a `process` node that forwards two) share an id, its
/// timestamp and so its deadline, and so one timer: it is cancelled only
/// when the last of them is resolved, and resolves them all when it fires.
fn holds<T>(list: &[Pending<T>], id: (Timestamp, i32, i64)) -> bool {
    list.iter().any(|p| p.id() == id)
}

/// Takes every record of id `id` out of `list`, in order.
fn take_all<T>(list: &mut Vec<Pending<T>>, id: (Timestamp, i32, i64)) -> Vec<Pending<T>> {
    let mut taken = Vec::new();
    let mut i = 0;
    while i < list.len() {
        if list[i].id() == id {
            taken.push(list.remove(i));
        } else {
            i += 1;
        }
    }
    taken
}

impl<K, A, B> WaitNode<K, A, B>
where
    K: Clone + Send + 'static,
    A: Clone + Send + 'static,
    B: Clone + Send + 'static,
{
    fn matches(&self, a: &Pending<A>, b_ts: Timestamp, b: &B) -> bool {
        a.timestamp <= b_ts
            && b_ts <= a.timestamp.saturating_add(self.timeout)
            && (self.shared.when)(&a.value, b)
    }

    fn save<T: 'static>(
        ctx: &mut ProcessorContext<'_, K, Outcome<A, B>>,
        store: &Store<K, Vec<Pending<T>>>,
        key: &K,
        list: &Vec<Pending<T>>,
    ) -> Result<(), ProcessError> {
        let mut s = ctx.store(store)?;
        if list.is_empty() {
            s.delete(key)
        } else {
            s.put(key, list)
        }
    }

    fn on_a(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Outcome<A, B>>,
        key: K,
        ck: &[u8],
        a: Pending<A>,
    ) -> Result<(), ProcessError> {
        let shared = self.shared.clone();
        if shared.keep_early {
            let mut early = ctx.store(&shared.early)?.get(&key)?.unwrap_or_default();
            // The earliest kept B this A matches is taken at once.
            if let Some(i) = early
                .iter()
                .position(|b| self.matches(&a, b.timestamp, &b.value))
            {
                let b = early.remove(i);
                Self::save(ctx, &shared.early, &key, &early)?;
                if !holds(&early, b.id()) {
                    ctx.cancel_timer(Clock::Stream, &timer_key(EARLY, b.id(), ck))?;
                }
                let headers = completed(&a.headers, &b.headers);
                ctx.forward_with(
                    key,
                    Outcome::Matched(a.value, b.value),
                    b.timestamp,
                    headers,
                );
                return Ok(());
            }
        }
        let deadline = a
            .timestamp
            .saturating_add(self.timeout)
            .saturating_add(self.grace)
            .saturating_add(1);
        ctx.schedule_at(Clock::Stream, deadline, &timer_key(WAIT, a.id(), ck), &[])?;
        let mut waits = ctx.store(&shared.waits)?.get(&key)?.unwrap_or_default();
        insert(&mut waits, a);
        ctx.gauge_add(PENDING_WAITS, 1);
        Self::save(ctx, &shared.waits, &key, &waits)
    }

    fn on_b(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Outcome<A, B>>,
        key: K,
        ck: &[u8],
        b: Pending<B>,
    ) -> Result<(), ProcessError> {
        let shared = self.shared.clone();
        let mut waits = ctx.store(&shared.waits)?.get(&key)?.unwrap_or_default();
        let matching: Vec<usize> = waits
            .iter()
            .enumerate()
            .filter(|(_, a)| self.matches(a, b.timestamp, &b.value))
            .map(|(i, _)| i)
            .take(if shared.resolve_all { usize::MAX } else { 1 })
            .collect();
        if matching.is_empty() {
            if !shared.keep_early {
                return Ok(());
            }
            let expiry = b
                .timestamp
                .saturating_add(self.timeout)
                .saturating_add(self.grace);
            if ctx.stream_time().is_some_and(|t| t > expiry) {
                return Err(ProcessError::Late {
                    node: ctx.node().to_string(),
                    message: format!(
                        "no pending wait matches, and stream time passed its keeping time {expiry}"
                    ),
                    dead_letter: false,
                });
            }
            ctx.schedule_at(
                Clock::Stream,
                expiry.saturating_add(1),
                &timer_key(EARLY, b.id(), ck),
                &[],
            )?;
            let mut early = ctx.store(&shared.early)?.get(&key)?.unwrap_or_default();
            insert(&mut early, b);
            return Self::save(ctx, &shared.early, &key, &early);
        }
        let mut resolved = Vec::with_capacity(matching.len());
        for &i in matching.iter().rev() {
            resolved.push(waits.remove(i));
        }
        ctx.gauge_add(PENDING_WAITS, -(resolved.len() as i64));
        Self::save(ctx, &shared.waits, &key, &waits)?;
        for a in resolved.into_iter().rev() {
            if !holds(&waits, a.id()) {
                ctx.cancel_timer(Clock::Stream, &timer_key(WAIT, a.id(), ck))?;
            }
            let headers = completed(&b.headers, &a.headers);
            ctx.forward_with(
                key.clone(),
                Outcome::Matched(a.value, b.value.clone()),
                b.timestamp,
                headers,
            );
        }
        Ok(())
    }
}

impl<K, A, B> Processor<K, Side<A, B>, K, Outcome<A, B>> for WaitNode<K, A, B>
where
    K: Clone + Send + 'static,
    A: Clone + Send + 'static,
    B: Clone + Send + 'static,
{
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Outcome<A, B>>,
    ) -> Result<(), ProcessError> {
        self.timeout = ms((self.shared.timeout)());
        self.grace = ms((self.shared.grace)());
        // The `pending_waits` gauge starts from what the store holds (one
        // scan per task start), then follows each change.
        let pending: usize = ctx
            .store(&self.shared.waits)?
            .all()?
            .iter()
            .map(|(_, list)| list.len())
            .sum();
        ctx.gauge(PENDING_WAITS, pending as i64);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Outcome<A, B>>,
        key: K,
        value: Side<A, B>,
    ) -> Result<(), ProcessError> {
        let ck = self
            .shared
            .waits
            .encode_key(&key)
            .map_err(|source| ProcessError::Codec {
                node: ctx.node().to_string(),
                source,
            })?;
        let (partition, offset) = ctx.position().unwrap_or((-1, -1));
        let timestamp = ctx.timestamp();
        match value {
            Side::A(a) => {
                let a = Pending {
                    timestamp,
                    partition,
                    offset,
                    value: a,
                    headers: ctx.headers().clone(),
                };
                self.on_a(ctx, key, &ck, a)
            }
            Side::B(b) => {
                let b = Pending {
                    timestamp,
                    partition,
                    offset,
                    value: b,
                    headers: ctx.headers().clone(),
                };
                self.on_b(ctx, key, &ck, b)
            }
        }
    }

    /// A timeout whose delivery failed downstream: when a node there was
    /// unavailable, it is tried again then (on the wall clock); otherwise
    /// the wait is resolved by dead-lettering A (its value, headers and
    /// timestamp; `weir.source.topic` is the waits store), so it neither
    /// lingers without a timer nor resolves twice.
    fn on_timer_failed(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Outcome<A, B>>,
        timer: Timer,
        failure: &crate::process::TimerFailure,
    ) -> Result<bool, ProcessError> {
        let Some((WAIT, id, ck)) = parse_timer_key(&timer.key) else {
            return Ok(false);
        };
        if let Some(at) = failure.retry_at {
            ctx.schedule_at(Clock::Wall, at, &timer.key, &timer.payload)?;
            return Ok(true);
        }
        let node = ctx.node().to_string();
        let shared = self.shared.clone();
        let key = shared
            .waits
            .decode_key(ck)
            .map_err(|source| ProcessError::Codec {
                node: node.clone(),
                source,
            })?;
        let mut waits = ctx.store(&shared.waits)?.get(&key)?.unwrap_or_default();
        let timed_out = take_all(&mut waits, id);
        if timed_out.is_empty() {
            return Ok(false);
        }
        ctx.gauge_add(PENDING_WAITS, -(timed_out.len() as i64));
        Self::save(ctx, &shared.waits, &key, &waits)?;
        for a in timed_out {
            // A value its codec cannot write is dead-lettered without it
            // (the wait is resolved all the same).
            let value = shared.a_codec.encode(&a.value).ok();
            let mut record = weir_core::Record::new(
                shared.waits.name.to_string(),
                Some(ck.to_vec()),
                value,
                a.timestamp,
            );
            record.partition = a.partition;
            record.offset = a.offset;
            record.headers = a.headers;
            ctx.dead_letter(
                &record,
                &weir_core::DeadLetter {
                    kind: failure.kind.clone(),
                    message: format!("its timeout failed downstream: {}", failure.message),
                    node: node.clone(),
                    attempts: 1,
                    details: None,
                },
            );
        }
        Ok(true)
    }

    fn on_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Outcome<A, B>>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        let node = ctx.node().to_string();
        let Some((kind, id, ck)) = parse_timer_key(&timer.key) else {
            return Err(ProcessError::operator(format!(
                "timer key of {} bytes is not a wait's",
                timer.key.len()
            )));
        };
        let shared = self.shared.clone();
        let key = shared
            .waits
            .decode_key(ck)
            .map_err(|source| ProcessError::Codec { node, source })?;
        if kind == WAIT {
            let mut waits = ctx.store(&shared.waits)?.get(&key)?.unwrap_or_default();
            let timed_out = take_all(&mut waits, id);
            if timed_out.is_empty() {
                return Ok(()); // resolved in this same transaction
            }
            ctx.gauge_add(PENDING_WAITS, -(timed_out.len() as i64));
            Self::save(ctx, &shared.waits, &key, &waits)?;
            for a in timed_out {
                let at = a.timestamp.saturating_add(self.timeout);
                ctx.forward_with(key.clone(), Outcome::TimedOut(a.value), at, a.headers);
            }
        } else {
            let mut early = ctx.store(&shared.early)?.get(&key)?.unwrap_or_default();
            let dropped = take_all(&mut early, id);
            if !dropped.is_empty() {
                Self::save(ctx, &shared.early, &key, &early)?;
                ctx.count(EARLY_DROPPED, dropped.len() as u64);
                tracing::debug!(
                    node = ctx.node(),
                    "a kept B matched no wait in time: dropped"
                );
            }
        }
        Ok(())
    }
}

/// The headers of a match: those of the record that completed it, then
/// those of the other record under keys it lacks (an order's
/// `correlation-id` survives a payment without one).
fn completed(current: &Headers, other: &Headers) -> Headers {
    let mut out = current.clone();
    for h in other.iter() {
        if !current.iter().any(|c| c.key == h.key) {
            out.push(h.key.clone(), h.value.clone());
        }
    }
    out
}

impl<K, A> Stream<K, A>
where
    K: Clone + Send + 'static,
    A: Clone + Send + 'static,
{
    /// Each record of this stream waits for a matching record of `other`
    /// (see [`Wait`] and the module docs): the result has one
    /// [`Outcome`] per record of this stream, keyed by the correlation
    /// key, exactly once. Needs both streams' codecs (their records are
    /// kept in stores). Without [`Wait::correlate`] records meet by their
    /// key; a stream whose key changed (`map`, `flat_map`, …) is
    /// repartitioned first (`<name>-a-repartition`, `<name>-b-`).
    pub fn await_event<B>(
        &self,
        other: &Stream<K, B>,
        wait: Wait<K, A, B>,
    ) -> Stream<K, Outcome<A, B>>
    where
        B: Clone + Send + 'static,
    {
        let name = wait.name.clone();
        let (a, b) = match &wait.correlate {
            // Keyed as read, or repartitioned after a key change.
            None => (
                self.partitioned_by_key(&format!("{name}-a")),
                other.partitioned_by_key(&format!("{name}-b")),
            ),
            Some((fa, fb)) => {
                let (fa, fb) = (fa.clone(), fb.clone());
                let kc = self.key_codec.clone().or_else(|| other.key_codec.clone());
                let mut a = self.map(move |_, v: A| (fa(&v), v));
                a.key_codec = kc.clone();
                a.value_codec = self.value_codec.clone();
                let mut b = other.map(move |_, v: B| (fb(&v), v));
                b.key_codec = kc;
                b.value_codec = other.value_codec.clone();
                (
                    a.repartition(format!("{name}-a")),
                    b.repartition(format!("{name}-b")),
                )
            }
        };
        let (kc, ac): (Arc<dyn Codec<K>>, Arc<dyn Codec<A>>) = a
            .codecs_for(&name)
            .unwrap_or_else(|| (Arc::new(Unavailable), Arc::new(Unavailable)));
        let bc: Arc<dyn Codec<B>> = b
            .codecs_for(&name)
            .map_or_else(|| Arc::new(Unavailable) as Arc<dyn Codec<B>>, |(_, c)| c);
        let (waits_name, early_name, timers_name) = (
            format!("{name}-waits"),
            format!("{name}-early"),
            format!("{name}-timers"),
        );
        let timers: Timers = {
            let mut g = self.graph.borrow_mut();
            // Queryable: the admin endpoint's /waits/{wait}/{key}.
            let waits_codec: Arc<dyn Codec<Vec<Pending<A>>>> =
                Arc::new(PendingCodec::new(ac.clone()));
            let early_codec: Arc<dyn Codec<Vec<Pending<B>>>> =
                Arc::new(PendingCodec::new(bc.clone()));
            g.declare_viewed_store(&waits_name, crate::StoreView::key_value(&kc, &waits_codec));
            g.declare_viewed_store(&early_name, crate::StoreView::key_value(&kc, &early_codec));
            g.declare_timer_store(&timers_name);
            Timers {
                name: timers_name.into(),
            }
        };
        let waits = Store {
            name: waits_name.into(),
            key_codec: kc.clone(),
            value_codec: Arc::new(PendingCodec::new(ac.clone())),
        };
        let early = Store {
            name: early_name.into(),
            key_codec: kc.clone(),
            value_codec: Arc::new(PendingCodec::new(bc)),
        };
        let shared = Arc::new(Shared {
            waits: waits.clone(),
            early: early.clone(),
            a_codec: ac,
            when: wait.when,
            timeout: wait.timeout,
            grace: wait.grace,
            resolve_all: wait.resolve_all,
            keep_early: wait.keep_early,
        });
        let mut sa = a.map_values(Side::<A, B>::A);
        sa.key_codec = Some(kc.clone());
        let sb = b.map_values(Side::<A, B>::B);
        let merged = sa.merge(&sb);
        let mut out = merged.process_with(name, &[&waits, &early, &timers], move || WaitNode {
            shared: shared.clone(),
            timeout: 0,
            grace: 0,
        });
        out.key_codec = Some(kc);
        out.value_codec = None;
        out
    }
}
