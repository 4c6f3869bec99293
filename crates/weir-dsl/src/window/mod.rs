//! Windowed aggregation: [`Grouped::windowed_by`] with [`tumbling`] or
//! [`hopping`] time windows, `count` / `reduce` / `aggregate` per (key,
//! window) in a window store, and [`WindowedTable::suppress`] to emit one
//! final result per window.
//!
//! # Semantics (as Kafka Streams)
//! - Windows are aligned to the epoch and half-open, `[start, end)`: a
//!   tumbling window of size `s` holds `t` when `start = t - t mod s`; a
//!   hopping window of size `s` advancing by `a` starts at every multiple
//!   of `a` with `start <= t < start + s`.
//! - Time is the record's timestamp; the task's **stream time** is the
//!   largest timestamp it has processed. A window **closes** when stream
//!   time reaches `end + grace`. A record whose windows have all closed is
//!   **late**: it changes nothing, is counted (`late` in the runtime's
//!   counters), and goes to the dead-letter topic with kind `late` when the
//!   aggregation says so ([`WindowedGrouped::late_to_dead_letters`]) —
//!   never dropped silently. A hopping record with some windows still open
//!   updates those and is not late; the closed windows it missed are
//!   counted in the node's counter `late_windows`.
//! - The store keeps a window until stream time passes `end + grace`
//!   (retention = size + grace); expired windows are deleted from the store
//!   and, through their tombstones, from its changelog, so a restore never
//!   brings one back.
//! - Without `suppress`, every update is forwarded as it happens: key
//!   [`Windowed`], the new aggregate, the input's timestamp. With
//!   `suppress(Suppressed::until_window_closes())`, each window is
//!   forwarded once, when it closes, with the largest input timestamp it
//!   saw. Emission is driven by state, not a buffer in memory: the closed
//!   windows are read from the window store, and the time up to which
//!   windows were emitted is kept in that store (changelogged with it, and
//!   committed in the same transaction as the results), so a crash neither
//!   loses nor repeats a final result.
//! - Closing depends on stream time, which only records move: the last
//!   windows close when a later record reaches the task.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir_core::{Codec, CodecError, ProcessError, Timestamp};
use weir_state::{StoreError, WindowStore};

use crate::graph::BuildError;
use crate::grouped::Grouped;
use crate::process::StoreName;
use crate::Stream;

use aggregate::{AggregateSpec, WindowAggregate};

/// A time window, `[start, end)` in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

/// A key in a window: the key of a windowed aggregation's results.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The grouping key.
    pub key: K,
    /// Its window.
    pub window: Window,
}

/// Tumbling or hopping time windows with a grace period; see the module
/// docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindows {
    size: i64,
    advance: i64,
    grace: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Non-overlapping windows of `size`, aligned to the epoch (no grace: add
/// one with [`TimeWindows::grace`]).
pub fn tumbling(size: Duration) -> TimeWindows {
    TimeWindows {
        size: ms(size),
        advance: ms(size),
        grace: 0,
    }
}

/// Windows of `size` starting every `advance` (`0 < advance <= size`),
/// aligned to the epoch.
pub fn hopping(size: Duration, advance: Duration) -> TimeWindows {
    TimeWindows {
        size: ms(size),
        advance: ms(advance),
        grace: 0,
    }
}

impl TimeWindows {
    /// Windows of `size` every `advance` with `grace` (other window kinds
    /// that store like time windows).
    pub(crate) fn fixed(size: i64, advance: i64, grace: i64) -> Self {
        Self {
            size,
            advance,
            grace,
        }
    }

    /// How long after its end a window still takes records (on stream
    /// time).
    pub fn grace(self, grace: Duration) -> Self {
        Self {
            grace: ms(grace),
            ..self
        }
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size
    }

    /// Advance in milliseconds (the size, for tumbling windows).
    pub fn advance_ms(&self) -> i64 {
        self.advance
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    /// What is wrong with these windows, if anything.
    fn invalid(&self) -> Option<String> {
        if self.size <= 0 {
            Some(format!(
                "window size must be positive, not {} ms",
                self.size
            ))
        } else if self.advance <= 0 || self.advance > self.size {
            Some(format!(
                "a hopping window's advance must be in 1..={} ms, not {} ms",
                self.size, self.advance
            ))
        } else {
            None
        }
    }

    /// The starts of the windows that hold time `t`, ascending.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_dsl::{hopping, tumbling};
    ///
    /// let s = |n| Duration::from_millis(n);
    /// assert_eq!(tumbling(s(10)).window_starts(25).collect::<Vec<_>>(), vec![20]);
    /// assert_eq!(tumbling(s(10)).window_starts(-1).collect::<Vec<_>>(), vec![-10]);
    /// assert_eq!(hopping(s(10), s(4)).window_starts(9).collect::<Vec<_>>(), vec![0, 4, 8]);
    /// ```
    pub fn window_starts(&self, t: Timestamp) -> impl Iterator<Item = Timestamp> {
        let (size, advance) = (self.size.max(1), self.advance.max(1));
        let last = t - t.rem_euclid(advance);
        // The first start with start + size > t.
        let first = {
            let lowest = t.saturating_sub(size) + 1;
            let r = lowest.rem_euclid(advance);
            if r == 0 {
                lowest
            } else {
                lowest - r + advance
            }
        };
        (0..)
            .map(move |i: i64| first + i * advance)
            .take_while(move |s| *s <= last)
    }

    /// The smallest window start still open at `stream_time`: every window
    /// starting below it closed (end + grace <= stream time).
    pub(crate) fn first_open_start(&self, stream_time: Timestamp) -> Timestamp {
        let bound = stream_time
            .saturating_sub(self.grace)
            .saturating_sub(self.size)
            .saturating_add(1);
        let advance = self.advance.max(1);
        let r = bound.rem_euclid(advance);
        if r == 0 {
            bound
        } else {
            bound.saturating_add(advance - r)
        }
    }

    /// The segment span of the window store: one window size.
    fn segment_ms(&self) -> i64 {
        self.size.max(1)
    }
}

/// When a windowed table emits; see [`WindowedTable::suppress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suppressed(());

impl Suppressed {
    /// One final result per window, when it closes (stream time reaches
    /// end + grace).
    pub fn until_window_closes() -> Self {
        Suppressed(())
    }
}

/// A typed handle on a window store (a windowed aggregation's).
pub struct WindowedStore<K, V> {
    pub(crate) name: Arc<str>,
    pub(crate) key_codec: Arc<dyn Codec<K>>,
    pub(crate) value_codec: Arc<dyn Codec<V>>,
    pub(crate) windows: WindowsFn,
}

/// Windows fixed at build time, or computed when a task starts (from
/// topology parameters, which are set by then).
pub(crate) type WindowsFn = Arc<dyn Fn() -> TimeWindows + Send + Sync>;

impl<K, V> Clone for WindowedStore<K, V> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            key_codec: self.key_codec.clone(),
            value_codec: self.value_codec.clone(),
            windows: self.windows.clone(),
        }
    }
}

impl<K, V> StoreName for WindowedStore<K, V> {
    fn store_name(&self) -> &str {
        &self.name
    }
}

impl<K, V> WindowedStore<K, V> {
    /// The store's name (and its changelog's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The windows it holds (for windows computed from parameters: as
    /// configured now).
    pub fn windows(&self) -> TimeWindows {
        (self.windows)()
    }
}

impl<K: 'static, V: 'static> WindowedStore<K, V> {
    /// A stored entry as a window and its value; `Ok(None)` for the
    /// store's own metadata.
    ///
    /// # Errors
    /// A codec error when the entry does not decode.
    pub fn decode(&self, key: &[u8], value: &[u8]) -> Result<Option<(Windowed<K>, V)>, CodecError> {
        let Some((k, start)) = weir_state::decode_window_key(key) else {
            return Ok(None);
        };
        let Some((_, bytes)) = decode_slot(value) else {
            return Err(CodecError::Decode {
                codec: "window",
                message: format!("a window value of {} bytes", value.len()),
            });
        };
        let window = Window {
            start,
            end: start.saturating_add(self.windows().size),
        };
        Ok(Some((
            Windowed {
                key: self.key_codec.decode(k)?,
                window,
            },
            self.value_codec.decode(bytes)?,
        )))
    }
}

/// A window's stored value: the largest input timestamp, then the
/// aggregate's encoding.
pub(crate) fn encode_slot(max_ts: Timestamp, agg: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + agg.len());
    v.extend_from_slice(&max_ts.to_be_bytes());
    v.extend_from_slice(agg);
    v
}

pub(crate) fn decode_slot(v: &[u8]) -> Option<(Timestamp, &[u8])> {
    let ts = Timestamp::from_be_bytes(v.get(..8)?.try_into().ok()?);
    Some((ts, &v[8..]))
}

/// The stream's key codec for [`Windowed`] keys: the key's bytes, then the
/// window's start and end (8 bytes each, big-endian).
pub struct WindowedCodec<K>(Arc<dyn Codec<K>>);

impl<K> WindowedCodec<K> {
    /// Windowed keys whose key is encoded with `key`.
    pub fn new(key: Arc<dyn Codec<K>>) -> Self {
        Self(key)
    }
}

impl<K: 'static> Codec<Windowed<K>> for WindowedCodec<K> {
    fn name(&self) -> &'static str {
        "windowed"
    }

    fn encode(&self, w: &Windowed<K>) -> Result<Vec<u8>, CodecError> {
        let mut b = self.0.encode(&w.key)?;
        b.extend_from_slice(&w.window.start.to_be_bytes());
        b.extend_from_slice(&w.window.end.to_be_bytes());
        Ok(b)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Windowed<K>, CodecError> {
        let Some(split) = bytes.len().checked_sub(16) else {
            return Err(CodecError::Decode {
                codec: "windowed",
                message: format!("{} bytes, fewer than a window's 16", bytes.len()),
            });
        };
        let (k, w) = bytes.split_at(split);
        let start = Timestamp::from_be_bytes(w[..8].try_into().expect("8 bytes"));
        let end = Timestamp::from_be_bytes(w[8..].try_into().expect("8 bytes"));
        Ok(Windowed {
            key: self.0.decode(k)?,
            window: Window { start, end },
        })
    }
}

/// A grouped stream with windows, ready to aggregate; see the module docs.
pub struct WindowedGrouped<K, V> {
    grouped: Grouped<K, V>,
    windows: WindowsFn,
    /// Fixed windows, checked at build time.
    fixed: Option<TimeWindows>,
    late_to_dlq: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl<K, V> Grouped<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Aggregates per key and window of `windows`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_core::{Json, Str};
    /// use weir_dsl::{tumbling, Suppressed, TopologyBuilder};
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("clicks", Str, Json::<serde_json::Value>::new())
    ///     .group_by_key()
    ///     .windowed_by(tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10)))
    ///     .count("clicks-per-minute")
    ///     .suppress(Suppressed::until_window_closes())
    ///     .to_stream()
    ///     .map(|w, n| (format!("{}@{}", w.key, w.window.start), n))
    ///     .with_codecs(Str, Json::<u64>::new())
    ///     .to("clicks-per-minute");
    /// assert_eq!(b.build().unwrap().stores(), vec!["clicks-per-minute"]);
    /// ```
    pub fn windowed_by(&self, windows: TimeWindows) -> WindowedGrouped<K, V> {
        WindowedGrouped {
            grouped: self.clone(),
            windows: Arc::new(move || windows),
            fixed: Some(windows),
            late_to_dlq: Arc::new(|| false),
        }
    }

    /// Like [`Grouped::windowed_by`], with windows computed when each task
    /// starts — from topology parameters, e.g.
    /// `move || tumbling(Duration::from_millis(size.get()))`. Invalid
    /// windows then stop the task with an error naming them. The store's
    /// layout depends on the window size: changing it needs a new
    /// application id (or reset state), as in Kafka Streams.
    pub fn windowed_by_fn(
        &self,
        windows: impl Fn() -> TimeWindows + Send + Sync + 'static,
    ) -> WindowedGrouped<K, V> {
        WindowedGrouped {
            grouped: self.clone(),
            windows: Arc::new(windows),
            fixed: None,
            late_to_dlq: Arc::new(|| false),
        }
    }
}

impl<K, V> WindowedGrouped<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Whether late records also go to the dead-letter topic (kind `late`);
    /// asked per late record, so a topology parameter can decide (default:
    /// only counted).
    pub fn late_to_dead_letters(mut self, f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.late_to_dlq = Arc::new(f);
        self
    }

    /// The number of records per key and window, in window store `store`.
    pub fn count(&self, store: impl Into<String>) -> WindowedTable<K, u64> {
        self.aggregate(
            store,
            || 0u64,
            |_, _, n| n + 1,
            weir_core::Json::<u64>::new(),
        )
    }

    /// Combines the values of each key and window with `f(aggregate,
    /// value)`; the first value is the aggregate. Needs a value codec.
    pub fn reduce(
        &self,
        store: impl Into<String>,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> WindowedTable<K, V> {
        let store = store.into();
        let codec = self.grouped.stream.value_codec.clone();
        let f = Arc::new(f);
        self.aggregate_with(store, codec, move |_, v, a: Option<V>| match a {
            Some(a) => f(a, v),
            None => v,
        })
    }

    /// Folds the values of each key and window into an aggregate: `init()`
    /// for a new window, then `f(key, value, aggregate)` per record.
    pub fn aggregate<A>(
        &self,
        store: impl Into<String>,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        codec: impl Codec<A>,
    ) -> WindowedTable<K, A>
    where
        A: Clone + Send + 'static,
    {
        let codec: Arc<dyn Codec<A>> = Arc::new(codec);
        self.aggregate_with(store.into(), Some(codec), move |k, v, a: Option<A>| {
            f(k, v, a.unwrap_or_else(&init))
        })
    }

    fn aggregate_with<A>(
        &self,
        store: String,
        codec: Option<Arc<dyn Codec<A>>>,
        step: impl Fn(&K, V, Option<A>) -> A + Send + Sync + 'static,
    ) -> WindowedTable<K, A>
    where
        A: Clone + Send + 'static,
    {
        let input = self.grouped.partitioned(&store);
        let graph = input.graph.clone();
        let fail = |e: BuildError| graph.borrow_mut().errors.push(e);
        if let Some(message) = self.fixed.and_then(|w| w.invalid()) {
            fail(BuildError::InvalidWindows {
                store: store.clone(),
                message,
            });
        }
        let (Some(kc), Some(ac)) = (input.key_codec.clone(), codec) else {
            let part = if input.key_codec.is_none() {
                "key"
            } else {
                "value"
            };
            fail(BuildError::MissingCodec {
                node: store.clone(),
                part,
            });
            return WindowedTable::placeholder(&input, store, self.windows.clone());
        };
        let windows = self.windows.clone();
        graph.borrow_mut().declare_viewed_store(
            &store,
            crate::StoreView::windowed(kc.clone(), ac.clone(), move || windows().segment_ms()),
        );
        let handle = WindowedStore {
            name: store.as_str().into(),
            key_codec: kc.clone(),
            value_codec: ac.clone(),
            windows: self.windows.clone(),
        };
        let suppressed = Arc::new(AtomicBool::new(false));
        let spec = Arc::new(AggregateSpec {
            store: handle.clone(),
            step: Box::new(step),
            late_to_dlq: self.late_to_dlq.clone(),
            suppressed: suppressed.clone(),
        });
        let updates: Stream<Windowed<K>, A> =
            input.process_with(store.clone(), &[&handle], move || WindowAggregate {
                spec: spec.clone(),
                windows: None,
                expired_below: None,
            });
        set_kind(&updates, "windowed_aggregate");
        WindowedTable {
            updates: Stream {
                key_codec: Some(Arc::new(WindowedCodec(kc))),
                value_codec: Some(ac),
                ..updates
            },
            store: handle,
            suppressed,
        }
    }
}

pub(crate) fn set_kind<K, V>(s: &Stream<K, V>, kind: &'static str) {
    s.graph.borrow_mut().nodes[s.node].kind = kind;
}

pub(crate) fn store_err(node: &str, store: &str, e: StoreError) -> ProcessError {
    ProcessError::Store {
        node: node.to_string(),
        store: store.to_string(),
        message: e.to_string(),
    }
}

/// A stored window that does not read back: not the record's fault.
pub(crate) fn corrupt(node: &str, store: &str, message: impl Into<String>) -> ProcessError {
    ProcessError::Store {
        node: node.to_string(),
        store: store.to_string(),
        message: message.into(),
    }
}

pub(crate) fn codec_err(node: &str, source: CodecError) -> ProcessError {
    ProcessError::Codec {
        node: node.to_string(),
        source,
    }
}

/// A task's window view of store `name`.
pub(crate) fn windows_of<'c>(
    state: &'c mut weir_state::TaskState,
    node: &str,
    name: &str,
    windows: &TimeWindows,
) -> Result<WindowStore<weir_state::TaskStore<'c>>, ProcessError> {
    let id = state.store_id(name).map_err(|e| store_err(node, name, e))?;
    Ok(WindowStore::new(state.store(id), windows.segment_ms()))
}

/// The windows of `store`, checked (when a task starts).
pub(crate) fn resolve<K, V>(
    store: &WindowedStore<K, V>,
    node: &str,
) -> Result<TimeWindows, ProcessError> {
    let w = store.windows();
    match w.invalid() {
        None => Ok(w),
        Some(message) => Err(ProcessError::Init {
            node: node.to_string(),
            message: format!("windowed store {}: {message}", store.name),
        }),
    }
}

/// The result of a windowed aggregation: per key and window, kept in a
/// window store, and the stream of its updates (or, suppressed, of its
/// final results).
pub struct WindowedTable<K, V> {
    pub(crate) updates: Stream<Windowed<K>, V>,
    pub(crate) store: WindowedStore<K, V>,
    pub(crate) suppressed: Arc<AtomicBool>,
}

impl<K, V> WindowedTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// The stream of updates (or final results, after `suppress`).
    pub fn to_stream(&self) -> Stream<Windowed<K>, V> {
        self.updates.clone()
    }

    /// The window store holding the table.
    pub fn store(&self) -> &WindowedStore<K, V> {
        &self.store
    }

    /// Emits one final result per window, once it closes (see the module
    /// docs), instead of every update.
    pub fn suppress(&self, _until: Suppressed) -> WindowedTable<K, V> {
        self.suppressed.store(true, Ordering::Relaxed);
        let name = format!("{}-suppress", self.store.name);
        let store = self.store.clone();
        let emitter =
            self.updates
                .process_with(name, &[&self.store], move || crate::suppress::EmitFinal {
                    store: store.clone(),
                    windows: None,
                });
        set_kind(&emitter, "suppress");
        WindowedTable {
            updates: Stream {
                key_codec: self.updates.key_codec.clone(),
                value_codec: self.updates.value_codec.clone(),
                ..emitter
            },
            store: self.store.clone(),
            suppressed: self.suppressed.clone(),
        }
    }

    /// A table for a topology that will not build (a codec is missing).
    fn placeholder<V0>(input: &Stream<K, V0>, store: String, windows: WindowsFn) -> Self
    where
        V0: Clone + Send + 'static,
    {
        let updates: Stream<Windowed<K>, V> =
            input.process(store.clone(), &[], |_, _: K, _: V0| Ok(()));
        WindowedTable {
            updates,
            store: WindowedStore {
                name: store.as_str().into(),
                key_codec: Arc::new(crate::table::Unbuildable(PhantomData)),
                value_codec: Arc::new(crate::table::Unbuildable(PhantomData)),
                windows,
            },
            suppressed: Arc::new(AtomicBool::new(false)),
        }
    }
}

mod aggregate;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Window starts against a naive model: every multiple of the
        /// advance near `t` whose window holds `t`.
        #[test]
        fn windows_hold_exactly_their_times(
            t in -10_000i64..10_000,
            size in 1i64..200,
            advance_pick in 1i64..200,
        ) {
            let advance = 1 + (advance_pick - 1) % size;
            for w in [hopping(Duration::from_millis(size as u64), Duration::from_millis(advance as u64)),
                      tumbling(Duration::from_millis(size as u64))] {
                let (size, advance) = (w.size_ms(), w.advance_ms());
                let naive: Vec<i64> = (t - 2 * size - advance..=t + advance)
                    .filter(|s| s.rem_euclid(advance) == 0 && *s <= t && t < s + size)
                    .collect();
                prop_assert_eq!(w.window_starts(t).collect::<Vec<_>>(), naive);
            }
        }

        /// The windowed key codec round-trips.
        #[test]
        fn windowed_keys_round_trip(key in ".*", start in any::<i64>(), end in any::<i64>()) {
            let c = WindowedCodec::<String>(Arc::new(weir_core::Str));
            let w = Windowed { key, window: Window { start, end } };
            prop_assert_eq!(c.decode(&c.encode(&w).unwrap()).unwrap(), w);
        }
    }

    #[test]
    fn bad_windows_are_named() {
        assert!(tumbling(Duration::ZERO).invalid().is_some());
        let h = hopping(Duration::from_millis(10), Duration::from_millis(11));
        assert!(h.invalid().unwrap().contains("advance"));
        assert!(tumbling(Duration::from_millis(10)).invalid().is_none());
        assert!(WindowedCodec::<String>(Arc::new(weir_core::Str))
            .decode(b"short")
            .is_err());
    }
}
