//! Windowed stream-stream joins: [`Stream::join`], [`Stream::left_join`]
//! and [`Stream::outer_join`] with `(&other, name, windows)`.
//!
//! Records of the two streams with the same key join when their timestamps
//! are close: a left record at `l` joins every right record at
//! `r ∈ [l - before, l + after]` ([`JoinWindows`]), whichever comes first.
//! Both streams must be co-partitioned (same key, same partition count).
//! A record is late — dropped and counted (`late=`), never joined — when
//! it arrives after its own window closed: stream time past `l + after +
//! grace` (a left record) or `r + before + grace` (a right one). One task
//! keeps each side's records in a changelogged store (`<name>-left`,
//! `<name>-right`, key = record key, then timestamp, partition, offset) for
//! as long as a record of the other side that is not late may still pair
//! with them — until stream time passes `ts + before + after + grace` — and
//! removes them then with a timer each (`<name>-timers`), so expiry reads
//! only what expires. So every pair of records that are not late and are
//! within the window joins exactly once, whatever the processing order.
//!
//! A joined result is emitted when its second record arrives, stamped with
//! the later of the two timestamps. A left (outer) join also emits each
//! left (and right) record that joined nothing, once, when it expires —
//! stamped with its own timestamp — when no record can join it any more:
//! never a "no match" that a later record would contradict.

use std::sync::Arc;
use std::time::Duration;

use weir_core::{Codec, CodecError, Headers, ProcessError, Timestamp};
use weir_state::{from_time_key, time_key as ord, Clock, KeyValueStore as _, Timer};

use crate::wait::Unavailable;

use crate::builder::Stream;
use crate::process::{Processor, ProcessorContext, Timers};
use crate::wire::{put_headers, Reader};

/// How close in time two records must be to join, and how long after that
/// (on stream time) records may still arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinWindows {
    /// How far a right record may be before a left one, ms.
    pub before: i64,
    /// How far a right record may be after a left one, ms.
    pub after: i64,
    /// How long after a window ends records may still arrive, ms.
    pub grace: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl JoinWindows {
    /// Right records up to `d` before or after a left one, no grace.
    pub fn of(d: Duration) -> Self {
        Self::before_after(d, d)
    }

    /// Right records up to `before` before and `after` after a left one,
    /// no grace.
    pub fn before_after(before: Duration, after: Duration) -> Self {
        Self {
            before: ms(before),
            after: ms(after),
            grace: 0,
        }
    }

    /// Records may arrive up to `d` of stream time after their window
    /// ended and still join.
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = ms(d);
        self
    }
}

/// Which results a join emits besides matched pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

/// A joiner as the join node calls it; `None` emits nothing.
type Joiner<L, R, VR> = Arc<dyn Fn(Option<&L>, Option<&R>) -> Option<VR> + Send + Sync>;

/// A side's record as stored: whether it joined, its headers (kept only
/// when it may be emitted unjoined), then its value.
struct Kept<T> {
    joined: bool,
    headers: Headers,
    value: T,
}

/// Flag bits of a stored record: it joined; headers follow the flag.
const JOINED: u8 = 1;
const WITH_HEADERS: u8 = 2;

/// A stored record's flag, headers and value bytes: `flag (1) | headers,
/// when flagged (see [`crate::wire`]) | value`.
fn kept_parts(bytes: &[u8]) -> Result<(u8, Headers, &[u8]), CodecError> {
    let bad = |message: &str| CodecError::Decode {
        codec: "join-record",
        message: message.into(),
    };
    let mut r = Reader(bytes);
    let flag = r.u8().ok_or_else(|| bad("empty"))?;
    let headers = if flag & WITH_HEADERS != 0 {
        r.headers().ok_or_else(|| bad("truncated headers"))?
    } else {
        Headers::new()
    };
    Ok((flag, headers, r.0))
}

struct KeptCodec<T>(Arc<dyn Codec<T>>);

impl<T: 'static> Codec<Kept<T>> for KeptCodec<T> {
    fn name(&self) -> &'static str {
        "join-record"
    }

    fn encode(&self, k: &Kept<T>) -> Result<Vec<u8>, CodecError> {
        let mut flag = if k.joined { JOINED } else { 0 };
        if !k.headers.is_empty() {
            flag |= WITH_HEADERS;
        }
        let mut out = vec![flag];
        if !k.headers.is_empty() {
            put_headers(&mut out, &k.headers);
        }
        out.extend(self.0.encode(&k.value)?);
        Ok(out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Kept<T>, CodecError> {
        let (flag, headers, value) = kept_parts(bytes)?;
        Ok(Kept {
            joined: flag & JOINED != 0,
            headers,
            value: self.0.decode(value)?,
        })
    }
}

const LEFT: u8 = b'l';
const RIGHT: u8 = b'r';

/// A stored record's key: key length, key, timestamp, partition, offset —
/// a key's records in time order.
fn store_key(key: &[u8], id: (Timestamp, i32, i64)) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len() + 20);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&ord(id.0));
    k.extend_from_slice(&id.1.to_be_bytes());
    k.extend_from_slice(&id.2.to_be_bytes());
    k
}

fn time_prefix(key: &[u8], t: Timestamp) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len() + 8);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&ord(t));
    k
}

struct Shared<K, L, R, VR> {
    names: [String; 2],
    key: Arc<dyn Codec<K>>,
    left: Arc<dyn Codec<L>>,
    right: Arc<dyn Codec<R>>,
    joiner: Joiner<L, R, VR>,
    windows: JoinWindows,
    kind: Kind,
}

impl<K, L, R, VR> Shared<K, L, R, VR> {
    /// Whether a record of this side that joined nothing is emitted.
    fn emits_unjoined(&self, left: bool) -> bool {
        match self.kind {
            Kind::Inner => false,
            Kind::Left => left,
            Kind::Outer => true,
        }
    }
}

struct JoinNode<K, L, R, VR> {
    shared: Arc<Shared<K, L, R, VR>>,
}

#[derive(Clone)]
enum Side<L, R> {
    L(L),
    R(R),
}

fn codec_err(node: &str, source: CodecError) -> ProcessError {
    ProcessError::Codec {
        node: node.to_string(),
        source,
    }
}

fn store_err(node: &str, store: &str, e: weir_state::StoreError) -> ProcessError {
    ProcessError::Store {
        node: node.to_string(),
        store: store.to_string(),
        message: e.to_string(),
    }
}

fn store_id(state: &weir_state::TaskState, node: &str, name: &str) -> Result<usize, ProcessError> {
    state.store_id(name).map_err(|e| store_err(node, name, e))
}

impl<K, L, R, VR> Processor<K, Side<L, R>, K, VR> for JoinNode<K, L, R, VR>
where
    K: Clone + Send + 'static,
    L: Clone + Send + 'static,
    R: Clone + Send + 'static,
    VR: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        key: K,
        value: Side<L, R>,
    ) -> Result<(), ProcessError> {
        let s = self.shared.clone();
        let w = s.windows;
        let node = ctx.node().to_string();
        let ts = ctx.timestamp();
        let (partition, offset) = ctx.position().unwrap_or((-1, -1));
        let is_left = matches!(value, Side::L(_));
        // When its own window closes (later, it is late), and where the
        // other side's candidates are.
        let (keep, from, to) = if is_left {
            (
                w.after,
                ts.saturating_sub(w.before),
                ts.saturating_add(w.after),
            )
        } else {
            (
                w.before,
                ts.saturating_sub(w.after),
                ts.saturating_add(w.before),
            )
        };
        let closes = ts.saturating_add(keep).saturating_add(w.grace);
        if ctx.stream_time().is_some_and(|t| t > closes) {
            return Err(ProcessError::Late {
                node,
                message: format!("its join window closed at {closes} of stream time"),
                dead_letter: false,
            });
        }
        // Kept while a record of the other side that is not late itself
        // may still pair with it.
        let expiry = ts
            .saturating_add(w.before)
            .saturating_add(w.after)
            .saturating_add(w.grace);
        let kb = s.key.encode(&key).map_err(|e| codec_err(&node, e))?;
        let (mine, other) = if is_left { (0, 1) } else { (1, 0) };
        // The other side's records in the window, in time order.
        let range = weir_state::KeyRange::between(
            &time_prefix(&kb, from),
            &time_prefix(&kb, to.saturating_add(1)),
        );
        let (_, state) = ctx.raw();
        let ids = [
            store_id(state, &node, &s.names[0])?,
            store_id(state, &node, &s.names[1])?,
        ];
        let found: Vec<(Vec<u8>, Vec<u8>)> = state
            .range(ids[other], range)
            .map_err(|e| store_err(&node, &s.names[other], e))?
            .collect::<Result<_, _>>()
            .map_err(|e| store_err(&node, &s.names[other], e))?;
        let mut outputs = Vec::with_capacity(found.len());
        for (k, v) in &found {
            let at = 4 + kb.len();
            let other_ts = k.get(at..at + 8).and_then(from_time_key).unwrap_or(ts);
            let (flag, _, stored) = kept_parts(v).map_err(|e| codec_err(&node, e))?;
            let out = match &value {
                Side::L(l) => {
                    let r = s.right.decode(stored).map_err(|e| codec_err(&node, e))?;
                    (s.joiner)(Some(l), Some(&r))
                }
                Side::R(r) => {
                    let l = s.left.decode(stored).map_err(|e| codec_err(&node, e))?;
                    (s.joiner)(Some(&l), Some(r))
                }
            };
            if flag & JOINED == 0 {
                // It joined now: no "unjoined" result for it at expiry.
                let mut marked = v.clone();
                marked[0] |= JOINED;
                let (_, state) = ctx.raw();
                state
                    .store(ids[other])
                    .put(k, &marked)
                    .map_err(|e| store_err(&node, &s.names[other], e))?;
            }
            if let Some(out) = out {
                outputs.push((out, ts.max(other_ts)));
            }
        }
        let joined = !found.is_empty();
        // Headers for the unjoined result at expiry, if there can be one.
        let headers = if joined || !s.emits_unjoined(is_left) {
            Headers::new()
        } else {
            ctx.headers().clone()
        };
        let bytes = match &value {
            Side::L(l) => KeptCodec(s.left.clone()).encode(&Kept {
                joined,
                headers,
                value: l.clone(),
            }),
            Side::R(r) => KeptCodec(s.right.clone()).encode(&Kept {
                joined,
                headers,
                value: r.clone(),
            }),
        }
        .map_err(|e| codec_err(&node, e))?;
        let id = (ts, partition, offset);
        let sk = store_key(&kb, id);
        {
            let (_, state) = ctx.raw();
            state
                .store(ids[mine])
                .put(&sk, &bytes)
                .map_err(|e| store_err(&node, &s.names[mine], e))?;
        }
        let mut timer = vec![if is_left { LEFT } else { RIGHT }];
        timer.extend_from_slice(&sk);
        ctx.schedule_at(Clock::Stream, expiry.saturating_add(1), &timer, &[])?;
        let headers = ctx.headers().clone();
        for (out, at) in outputs {
            ctx.forward_with(key.clone(), out, at, headers.clone());
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        let s = self.shared.clone();
        let node = ctx.node().to_string();
        let Some((&side, sk)) = timer.key.split_first() else {
            return Ok(());
        };
        let i = usize::from(side == RIGHT);
        let (_, state) = ctx.raw();
        let id = store_id(state, &node, &s.names[i])?;
        let Some(bytes) = state
            .get(id, sk)
            .map_err(|e| store_err(&node, &s.names[i], e))?
        else {
            return Ok(());
        };
        state
            .store(id)
            .delete(sk)
            .map_err(|e| store_err(&node, &s.names[i], e))?;
        if !s.emits_unjoined(side == LEFT) {
            return Ok(());
        }
        let Some((key_bytes, key_len)) = sk.get(..4).and_then(|n| {
            let key_len = u32::from_be_bytes(n.try_into().ok()?) as usize;
            Some((sk.get(4..4 + key_len)?, key_len))
        }) else {
            return Err(crate::window::corrupt(
                &node,
                &s.names[i],
                "a malformed timer key",
            ));
        };
        let ts = sk
            .get(4 + key_len..12 + key_len)
            .and_then(from_time_key)
            .unwrap_or(timer.deadline);
        let (out, headers) = if side == LEFT {
            let l = KeptCodec(s.left.clone())
                .decode(&bytes)
                .map_err(|e| codec_err(&node, e))?;
            if l.joined {
                return Ok(());
            }
            ((s.joiner)(Some(&l.value), None), l.headers)
        } else {
            let r = KeptCodec(s.right.clone())
                .decode(&bytes)
                .map_err(|e| codec_err(&node, e))?;
            if r.joined {
                return Ok(());
            }
            ((s.joiner)(None, Some(&r.value)), r.headers)
        };
        if let Some(out) = out {
            let key = s.key.decode(key_bytes).map_err(|e| codec_err(&node, e))?;
            ctx.forward_with(key, out, ts, headers);
        }
        Ok(())
    }
}

/// What a stream joins with: a table (`&table`, see [`Stream::join`]) or
/// another stream within join windows (`(&stream, name, windows)`, where
/// `name` names the join's stores: `<name>-left`, `<name>-right`,
/// `<name>-timers`).
///
/// A stream alone is not a join side: a stream-stream join needs its
/// windows (and a name for its stores).
/// ```compile_fail
/// use weir_core::Str;
/// use weir_dsl::TopologyBuilder;
///
/// let b = TopologyBuilder::new();
/// let clicks = b.stream("clicks", Str, Str);
/// let views = b.stream("views", Str, Str);
/// clicks.join(&views, |c, v| format!("{c} after {v}"));
/// ```
#[diagnostic::on_unimplemented(
    message = "a stream joins a table (`&table`) or a stream within windows (`(&stream, name, windows)`), not `{Self}`",
    note = "for a windowed stream-stream join: `join((&other, \"name\", JoinWindows::of(d)), joiner)`"
)]
pub trait JoinWith<K, V>: sealed::Sealed {
    /// The value a record meets on this side.
    type Other: Clone + Send + 'static;

    /// Adds the join node. `joiner(v, other)` gives the output, if any;
    /// with `unmatched`, a record that met nothing is passed with `None`.
    #[doc(hidden)]
    fn join_to<VR>(
        self,
        stream: &Stream<K, V>,
        unmatched: bool,
        joiner: ValueJoiner<V, Self::Other, VR>,
    ) -> Stream<K, VR>
    where
        VR: Clone + Send + 'static;
}

/// A joiner taking values, as [`JoinWith`] passes it on.
#[doc(hidden)]
pub type ValueJoiner<V, O, VR> = Arc<dyn Fn(V, Option<O>) -> Option<VR> + Send + Sync>;

pub(crate) mod sealed {
    pub trait Sealed {}
}

impl<K, R, N: Into<String>> sealed::Sealed for (&Stream<K, R>, N, JoinWindows) {}

impl<K, L, R, N> JoinWith<K, L> for (&Stream<K, R>, N, JoinWindows)
where
    K: Clone + Send + 'static,
    L: Clone + Send + 'static,
    R: Clone + Send + 'static,
    N: Into<String>,
{
    type Other = R;

    fn join_to<VR>(
        self,
        stream: &Stream<K, L>,
        unmatched: bool,
        joiner: ValueJoiner<L, R, VR>,
    ) -> Stream<K, VR>
    where
        VR: Clone + Send + 'static,
    {
        let (other, name, windows) = self;
        let kind = if unmatched { Kind::Left } else { Kind::Inner };
        let joiner: Joiner<L, R, VR> =
            Arc::new(move |l, r| l.and_then(|l| joiner(l.clone(), r.cloned())));
        stream.windowed_join(other, name.into(), windows, kind, joiner)
    }
}

impl<K, L> Stream<K, L>
where
    K: Clone + Send + 'static,
    L: Clone + Send + 'static,
{
    /// Joins each record with `other`: a table, or another stream within
    /// join windows. One `joiner(value, other_value)` per match; a record
    /// that matches nothing gives no output (see [`Stream::left_join`]).
    ///
    /// With a table (`join(&table, …)`, see [`Stream::to_table`]), a record
    /// meets the value of its key current at its turn (timestamp order).
    ///
    /// With a stream (`join((&other, name, windows), …)`, see the module
    /// docs of windowed joins), every pair of records with the same key
    /// within `windows` joins once, stamped with the later timestamp.
    /// `name` names the join's stores (`<name>-left`, `<name>-right`,
    /// `<name>-timers`). Both streams need their codecs.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_core::{Json, Str};
    /// use weir_dsl::{JoinWindows, TopologyBuilder};
    ///
    /// let b = TopologyBuilder::new();
    /// let clicks = b.stream("clicks", Str, Str);
    /// let views = b.stream("views", Str, Str);
    /// let tiers = b.table("tiers", "tiers", Str, Str);
    /// clicks
    ///     .join((&views, "click-view", JoinWindows::of(Duration::from_secs(60))),
    ///         |c, v| format!("{c} after {v}"))
    ///     .join(&tiers, |cv, tier| format!("{cv} ({tier})"))
    ///     .with_value_codec(Str)
    ///     .to("clicks-with-views");
    /// assert_eq!(b.build().unwrap().stores(),
    ///     vec!["click-view-left", "click-view-right", "click-view-timers", "tiers"]);
    /// ```
    pub fn join<T, VR>(
        &self,
        other: T,
        joiner: impl Fn(L, T::Other) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR>
    where
        T: JoinWith<K, L>,
        VR: Clone + Send + 'static,
    {
        other.join_to(self, false, Arc::new(move |l, r| r.map(|r| joiner(l, r))))
    }

    /// Like [`Stream::join`], and every record gives an output:
    /// `joiner(value, None)` when it matched nothing — with a table, when
    /// its key is not in the table; with a stream, once, when its window
    /// closed without a match (never a "no match" that a later record
    /// would contradict).
    pub fn left_join<T, VR>(
        &self,
        other: T,
        joiner: impl Fn(L, Option<T::Other>) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR>
    where
        T: JoinWith<K, L>,
        VR: Clone + Send + 'static,
    {
        other.join_to(self, true, Arc::new(move |l, r| Some(joiner(l, r))))
    }

    /// A windowed outer join with another stream: as [`Stream::left_join`]
    /// with `(&other, name, windows)`, and each record of either side that
    /// matched nothing is emitted once, with `None` for the missing side,
    /// when its window closes.
    pub fn outer_join<R, VR>(
        &self,
        other: (&Stream<K, R>, impl Into<String>, JoinWindows),
        joiner: impl Fn(Option<L>, Option<R>) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR>
    where
        R: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let (other, name, windows) = other;
        let joiner: Joiner<L, R, VR> = Arc::new(move |l, r| Some(joiner(l.cloned(), r.cloned())));
        self.windowed_join(other, name.into(), windows, Kind::Outer, joiner)
    }

    /// [`Stream::join`] with `(&other, name, windows)`, the joiner taking
    /// references.
    #[deprecated(note = "use `join((&other, name, windows), joiner)`")]
    pub fn join_windowed<R, VR>(
        &self,
        other: &Stream<K, R>,
        name: impl Into<String>,
        windows: JoinWindows,
        joiner: impl Fn(&L, &R) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR>
    where
        R: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let joiner: Joiner<L, R, VR> = Arc::new(move |l, r| Some(joiner(l?, r?)));
        self.windowed_join(other, name.into(), windows, Kind::Inner, joiner)
    }

    /// [`Stream::left_join`] with `(&other, name, windows)`, the joiner
    /// taking references.
    #[deprecated(note = "use `left_join((&other, name, windows), joiner)`")]
    pub fn left_join_windowed<R, VR>(
        &self,
        other: &Stream<K, R>,
        name: impl Into<String>,
        windows: JoinWindows,
        joiner: impl Fn(&L, Option<&R>) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR>
    where
        R: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let joiner: Joiner<L, R, VR> = Arc::new(move |l, r| Some(joiner(l?, r)));
        self.windowed_join(other, name.into(), windows, Kind::Left, joiner)
    }

    /// [`Stream::outer_join`], the joiner taking references.
    #[deprecated(note = "use `outer_join((&other, name, windows), joiner)`")]
    pub fn outer_join_windowed<R, VR>(
        &self,
        other: &Stream<K, R>,
        name: impl Into<String>,
        windows: JoinWindows,
        joiner: impl Fn(Option<&L>, Option<&R>) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR>
    where
        R: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let joiner: Joiner<L, R, VR> = Arc::new(move |l, r| Some(joiner(l, r)));
        self.windowed_join(other, name.into(), windows, Kind::Outer, joiner)
    }

    fn windowed_join<R, VR>(
        &self,
        other: &Stream<K, R>,
        name: String,
        windows: JoinWindows,
        kind: Kind,
        joiner: Joiner<L, R, VR>,
    ) -> Stream<K, VR>
    where
        R: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        // After a key change, a side goes through its own repartition topic.
        let this = self.partitioned_by_key(&format!("{name}-left"));
        let other = other.partitioned_by_key(&format!("{name}-right"));
        let (key, left): (Arc<dyn Codec<K>>, Arc<dyn Codec<L>>) = this
            .codecs_for(&name)
            .unwrap_or_else(|| (Arc::new(Unavailable), Arc::new(Unavailable)));
        let right: Arc<dyn Codec<R>> = other
            .codecs_for(&name)
            .map_or_else(|| Arc::new(Unavailable) as Arc<dyn Codec<R>>, |(_, c)| c);
        let names = [format!("{name}-left"), format!("{name}-right")];
        let timers_name = format!("{name}-timers");
        let timers = {
            let mut g = this.graph.borrow_mut();
            g.declare_store(&names[0]);
            g.declare_store(&names[1]);
            g.declare_timer_store(&timers_name);
            Timers {
                name: timers_name.into(),
            }
        };
        let stores = [
            crate::process::StoreRef(names[0].clone()),
            crate::process::StoreRef(names[1].clone()),
        ];
        let shared = Arc::new(Shared {
            names,
            key: key.clone(),
            left,
            right,
            joiner,
            windows,
            kind,
        });
        let sl = this.map_values(Side::<L, R>::L);
        let sr = other.map_values(Side::<L, R>::R);
        let mut out =
            sl.merge(&sr)
                .process_with(name, &[&stores[0], &stores[1], &timers], move || JoinNode {
                    shared: shared.clone(),
                });
        out.key_codec = Some(key);
        out.value_codec = None;
        out
    }
}
