//! Sliding windows: per key, one window for every distinct set of records
//! whose timestamps differ by at most `max_diff` (Kafka Streams'
//! `SlidingWindows`).
//!
//! # Semantics
//! - A window spans `max_diff + 1` ms: `[start, end)` with `end = start +
//!   max_diff + 1`, so it holds the records with `start <= t <= start +
//!   max_diff`. Windows exist only where records are: each record at `t`
//!   has its **left** window `[t - max_diff, t + 1)`, and its **right**
//!   window `[t + 1, t + max_diff + 2)` when that holds any record. Every
//!   other alignment would hold the same records as one of these.
//! - A record updates every existing window that holds it, and creates
//!   the windows that it brings into existence (its own left and right
//!   windows, and the right window of the record before it). A new window
//!   is folded from the records in it, which the aggregation keeps (in
//!   timestamp order, arrival order within one timestamp) in a second
//!   window store `<store>-records` for `max_diff + grace` of stream time.
//!   An existing window folds new records as they arrive: as in Kafka
//!   Streams, an aggregator that is not commutative sees out-of-order
//!   records in arrival order.
//! - Closing, lateness and emit-final are those of time windows: a window
//!   closes when stream time reaches `end + grace`; a record is **late**
//!   when stream time is past `t + grace` (its left window closed) — it
//!   changes nothing, is counted (`late=`), and goes to the dead-letter
//!   topic with kind `late` when configured. A record that is not late
//!   only meets open windows.
//! - Without `suppress` each created or updated window is forwarded with
//!   its largest input timestamp; with `suppress(until_window_closes())`
//!   each window is forwarded once, when it closes.
//!
//! `aggregate` and `reduce` keep the records' values, so they need the
//! stream's value codec; `count` keeps only their timestamps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir_core::{Codec, CodecError, ProcessError, Timestamp};

use crate::builder::Stream;
use crate::graph::BuildError;
use crate::grouped::Grouped;
use crate::process::{Processor, ProcessorContext, StoreRef};
use crate::window::{
    codec_err, corrupt, decode_slot, encode_slot, set_kind, store_err, windows_of, TimeWindows,
    Window, Windowed, WindowedCodec, WindowedStore, WindowedTable,
};

/// The maximum time difference and grace of sliding windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindows {
    max_diff: i64,
    grace: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Sliding windows over records at most `max_diff` apart, no grace (add
/// one with [`SlidingWindows::grace`]).
pub fn sliding(max_diff: Duration) -> SlidingWindows {
    SlidingWindows {
        max_diff: ms(max_diff),
        grace: 0,
    }
}

impl SlidingWindows {
    /// Records may arrive up to `d` of stream time after their timestamp.
    pub fn grace(self, d: Duration) -> Self {
        Self {
            grace: ms(d),
            ..self
        }
    }

    /// The maximum time difference in milliseconds.
    pub fn max_diff_ms(&self) -> i64 {
        self.max_diff
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    /// The same windows as time windows of `max_diff + 1` ms at every
    /// millisecond: what the window store, its decoding and emit-final use.
    fn as_time_windows(&self) -> TimeWindows {
        TimeWindows::fixed(self.max_diff.saturating_add(1), 1, self.grace)
    }
}

/// Folds one kept record (its encoded value) into a window's aggregate.
type Fold<K, A> = Box<dyn Fn(&K, &[u8], Option<A>) -> Result<A, CodecError> + Send + Sync>;
/// The encoding a record is kept in.
type Keep<V> = Box<dyn Fn(&V) -> Result<Vec<u8>, CodecError> + Send + Sync>;
type Step<K, V, A> = Box<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

/// A grouped stream with sliding windows, ready to aggregate; see the
/// module docs.
pub struct SlidingGrouped<K, V> {
    grouped: Grouped<K, V>,
    windows: SlidingWindows,
    late_to_dlq: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl<K, V> Grouped<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Aggregates per key over sliding windows (see the module docs).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_core::{Json, Str};
    /// use weir_dsl::{sliding, TopologyBuilder};
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("logins", Str, Str)
    ///     .group_by_key()
    ///     .windowed_by_sliding(sliding(Duration::from_secs(60)))
    ///     .count("logins-per-minute")
    ///     .to_stream()
    ///     .filter(|_, n| *n >= 5)
    ///     .map(|w, n| (w.key, n))
    ///     .with_codecs(Str, Json::<u64>::new())
    ///     .to("login-bursts");
    /// let t = b.build().unwrap();
    /// assert_eq!(t.stores(), vec!["logins-per-minute", "logins-per-minute-records"]);
    /// ```
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingGrouped<K, V> {
        SlidingGrouped {
            grouped: self.clone(),
            windows,
            late_to_dlq: Arc::new(|| false),
        }
    }
}

impl<K, V> SlidingGrouped<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Whether late records also go to the dead-letter topic (kind `late`);
    /// asked per late record (default: only counted).
    pub fn late_to_dead_letters(mut self, f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.late_to_dlq = Arc::new(f);
        self
    }

    /// The number of records per key and window, in window store `store`.
    pub fn count(&self, store: impl Into<String>) -> WindowedTable<K, u64> {
        let ac: Arc<dyn Codec<u64>> = Arc::new(weir_core::Json::<u64>::new());
        self.aggregate_with(
            store.into(),
            Some(ac),
            Box::new(|_, _, n: Option<u64>| n.unwrap_or(0) + 1),
            Some((
                Box::new(|_: &V| Ok(Vec::new())),
                Box::new(|_: &K, _: &[u8], n: Option<u64>| Ok(n.unwrap_or(0) + 1)),
            )),
        )
    }

    /// Combines the values of each key and window with `f(aggregate,
    /// value)`; the first value is the aggregate. Needs a value codec.
    pub fn reduce(
        &self,
        store: impl Into<String>,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> WindowedTable<K, V> {
        let vc = self.grouped.stream.value_codec.clone();
        let f = Arc::new(f);
        let g = f.clone();
        let step: Step<K, V, V> = Box::new(move |_, v, a: Option<V>| match a {
            Some(a) => f(a, v),
            None => v,
        });
        let kept = vc.clone().map(|vc| {
            keep_values(vc, move |_, v, a| match a {
                Some(a) => g(a, v),
                None => v,
            })
        });
        self.aggregate_with(store.into(), vc, step, kept)
    }

    /// Folds the values of each key and window into an aggregate: `init()`
    /// for a new window, then `f(key, value, aggregate)` per record. Needs
    /// the stream's value codec (records are kept) and `codec` for the
    /// aggregate.
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
        let step = Arc::new(move |k: &K, v: V, a: Option<A>| f(k, v, a.unwrap_or_else(&init)));
        let s = step.clone();
        let kept = self
            .grouped
            .stream
            .value_codec
            .clone()
            .map(|vc| keep_values(vc, move |k, v, a| s(k, v, a)));
        self.aggregate_with(
            store.into(),
            Some(codec),
            Box::new(move |k, v, a| step(k, v, a)),
            kept,
        )
    }

    fn aggregate_with<A>(
        &self,
        store: String,
        codec: Option<Arc<dyn Codec<A>>>,
        step: Step<K, V, A>,
        kept: Option<(Keep<V>, Fold<K, A>)>,
    ) -> WindowedTable<K, A>
    where
        A: Clone + Send + 'static,
    {
        let input = self.grouped.partitioned(&store);
        let graph = input.graph.clone();
        let w = self.windows;
        if w.max_diff < 0 || w.grace < 0 || w.max_diff == i64::MAX {
            graph.borrow_mut().errors.push(BuildError::InvalidWindows {
                store: store.clone(),
                message: format!(
                    "a sliding window's max difference and grace must be in 0..{} ms, not {} and {}",
                    i64::MAX,
                    w.max_diff,
                    w.grace
                ),
            });
        }
        let kc = input.key_codec.clone();
        let (kc, ac, (keep, fold)) = match (kc, codec, kept) {
            (Some(kc), Some(ac), Some(kept)) => (kc, ac, kept),
            (kc, _, _) => {
                graph.borrow_mut().errors.push(BuildError::MissingCodec {
                    node: store.clone(),
                    part: if kc.is_none() { "key" } else { "value" },
                });
                let key: Arc<dyn Codec<K>> = Arc::new(crate::wait::Unavailable);
                let agg: Arc<dyn Codec<A>> = Arc::new(crate::wait::Unavailable);
                let keep: Keep<V> = Box::new(|_| Ok(Vec::new()));
                let fold: Fold<K, A> = Box::new(|_, _, _| {
                    Err(CodecError::Decode {
                        codec: "unavailable",
                        message: "a topology that did not build".into(),
                    })
                });
                (key, agg, (keep, fold))
            }
        };
        let records = format!("{store}-records");
        {
            let mut g = graph.borrow_mut();
            g.declare_store(&store);
            g.declare_store(&records);
        }
        let tw = w.as_time_windows();
        let handle = WindowedStore {
            name: store.as_str().into(),
            key_codec: kc.clone(),
            value_codec: ac.clone(),
            windows: Arc::new(move || tw),
        };
        let suppressed = Arc::new(AtomicBool::new(false));
        let spec = Arc::new(Spec {
            store: handle.clone(),
            records: records.clone(),
            windows: w,
            step,
            keep,
            fold,
            late_to_dlq: self.late_to_dlq.clone(),
            suppressed: suppressed.clone(),
        });
        let updates: Stream<Windowed<K>, A> =
            input.process_with(store.clone(), &[&handle, &StoreRef(records)], move || {
                SlidingAggregate {
                    spec: spec.clone(),
                    expired_below: None,
                }
            });
        set_kind(&updates, "sliding_aggregate");
        WindowedTable {
            updates: Stream {
                key_codec: Some(Arc::new(WindowedCodec::new(kc))),
                value_codec: Some(ac),
                ..updates
            },
            store: handle,
            suppressed,
        }
    }
}

/// Keeps records as their values' encoding, folded back with `step`.
fn keep_values<K, V, A>(
    vc: Arc<dyn Codec<V>>,
    step: impl Fn(&K, V, Option<A>) -> A + Send + Sync + 'static,
) -> (Keep<V>, Fold<K, A>)
where
    V: 'static,
{
    let dc = vc.clone();
    (
        Box::new(move |v| vc.encode(v)),
        Box::new(move |k, bytes, a| Ok(step(k, dc.decode(bytes)?, a))),
    )
}

struct Spec<K, V, A> {
    store: WindowedStore<K, A>,
    /// The kept records' window store.
    records: String,
    windows: SlidingWindows,
    step: Step<K, V, A>,
    keep: Keep<V>,
    fold: Fold<K, A>,
    late_to_dlq: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Set when the table is suppressed: emit-final expires the windows.
    suppressed: Arc<AtomicBool>,
}

struct SlidingAggregate<K, V, A> {
    spec: Arc<Spec<K, V, A>>,
    /// Segments below this were expired (by this instance).
    expired_below: Option<Timestamp>,
}

/// Appends one kept record to the records of one timestamp: each is a
/// 4-byte big-endian length, then its bytes.
fn append_kept(list: &mut Vec<u8>, value: &[u8]) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    list.extend_from_slice(&len.to_be_bytes());
    list.extend_from_slice(value);
}

/// The kept records of one timestamp, in arrival order; `None` when the
/// list is cut short.
fn kept_records(list: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        out.push(rest.get(4..4 + len)?);
        rest = &rest[4 + len..];
    }
    Some(out)
}

impl<K, V, A> SlidingAggregate<K, V, A>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    A: Clone + Send + 'static,
{
    /// A new window `[start, start + max_diff]` folded from the kept
    /// records (`kept`: by timestamp), with its largest timestamp; `None`
    /// when it holds none.
    fn fold_window(
        &self,
        node: &str,
        key: &K,
        start: Timestamp,
        kept: &[(Timestamp, Vec<u8>)],
    ) -> Result<Option<(Timestamp, A)>, ProcessError> {
        let spec = &*self.spec;
        let end = start.saturating_add(spec.windows.max_diff);
        let mut acc: Option<(Timestamp, A)> = None;
        for (ts, list) in kept.iter().filter(|(ts, _)| (start..=end).contains(ts)) {
            let values = kept_records(list)
                .ok_or_else(|| corrupt(node, &spec.records, "a kept record list is cut short"))?;
            for bytes in values {
                let agg = (spec.fold)(key, bytes, acc.take().map(|(_, a)| a)).map_err(|e| {
                    corrupt(
                        node,
                        &spec.records,
                        format!("a kept record does not decode: {e}"),
                    )
                })?;
                acc = Some((*ts, agg));
            }
        }
        Ok(acc)
    }
}

impl<K, V, A> Processor<K, V, Windowed<K>, A> for SlidingAggregate<K, V, A>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    A: Clone + Send + 'static,
{
    /// Lateness and expiry are on stream time (behind a repartition topic:
    /// the slowest writer's, which needs the writers' markers).
    fn wants_stream_time(&self) -> bool {
        true
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, A>,
        key: K,
        value: V,
    ) -> Result<(), ProcessError> {
        let spec = self.spec.clone();
        let SlidingWindows { max_diff, grace } = spec.windows;
        let tw = spec.windows.as_time_windows();
        let t = ctx.timestamp();
        // No stream time yet (behind a repartition topic): nothing closed.
        let stream_time = ctx.stream_time().unwrap_or(Timestamp::MIN);
        if stream_time > t.saturating_add(grace) {
            return Err(ProcessError::Late {
                node: ctx.node().to_string(),
                message: format!(
                    "timestamp {t}: its sliding window closed at stream time {stream_time} (grace {grace} ms)"
                ),
                dead_letter: (spec.late_to_dlq)(),
            });
        }
        let kb = spec
            .store
            .key_codec
            .encode(&key)
            .map_err(|e| codec_err(ctx.node(), e))?;
        let mine = (spec.keep)(&value).map_err(|e| codec_err(ctx.node(), e))?;
        let name = &*spec.store.name;
        let mut updates: Vec<(Timestamp, Timestamp, A)> = Vec::new();
        {
            let (node, state) = ctx.raw();
            // Keep the record, then read those that can share a window
            // with it or start one it creates.
            let kept = {
                let mut rs = windows_of(state, node, &spec.records, &tw)?;
                let err = |e| store_err(node, &spec.records, e);
                let mut list = rs.get(&kb, t).map_err(err)?.unwrap_or_default();
                append_kept(&mut list, &mine);
                rs.put(&kb, t, &list).map_err(err)?;
                let lo = t.saturating_sub(max_diff).saturating_sub(1);
                let kept = rs
                    .fetch(&kb, lo, t.saturating_add(max_diff).saturating_add(1))
                    .map_err(err)?;
                if stream_time > Timestamp::MIN {
                    // A record below the first open start, less one, can
                    // neither share a window with one that is not late nor
                    // make one's right window.
                    let bound = tw.first_open_start(stream_time).saturating_sub(1);
                    let segment = bound.div_euclid(tw.size_ms()) * tw.size_ms();
                    if self.expired_below.is_none_or(|e| segment > e) {
                        rs.expire_before(bound).map_err(err)?;
                        self.expired_below = Some(segment);
                    }
                }
                kept
            };
            let mut ws = windows_of(state, node, name, &tw)?;
            let err = |e| store_err(node, name, e);
            let existing = ws
                .fetch(&kb, t.saturating_sub(max_diff), t.saturating_add(1))
                .map_err(err)?;
            // Windows that hold the record fold it in.
            for (start, slot) in existing.iter().filter(|(s, _)| *s <= t) {
                let (max_ts, bytes) = decode_slot(slot).ok_or_else(|| {
                    corrupt(node, name, "a window value shorter than its timestamp")
                })?;
                let old =
                    spec.store.value_codec.decode(bytes).map_err(|e| {
                        corrupt(node, name, format!("a window does not decode: {e}"))
                    })?;
                let new = (spec.step)(&key, value.clone(), Some(old));
                let enc = spec
                    .store
                    .value_codec
                    .encode(&new)
                    .map_err(|e| codec_err(node, e))?;
                let max_ts = max_ts.max(t);
                ws.put(&kb, *start, &encode_slot(max_ts, &enc))
                    .map_err(err)?;
                updates.push((*start, max_ts, new));
            }
            // Windows the record brings into existence: its left window,
            // the right window of the record before it, its right window.
            let before = kept
                .iter()
                .map(|(ts, _)| *ts)
                .filter(|ts| *ts < t && *ts >= t.saturating_sub(max_diff).saturating_sub(1))
                .max();
            let mut created = vec![t.saturating_sub(max_diff)];
            created.extend(before.map(|p| p.saturating_add(1)));
            created.push(t.saturating_add(1));
            created.sort_unstable();
            created.dedup();
            for start in created {
                if existing.iter().any(|(s, _)| *s == start) {
                    continue;
                }
                let Some((max_ts, agg)) = self.fold_window(node, &key, start, &kept)? else {
                    continue;
                };
                let enc = spec
                    .store
                    .value_codec
                    .encode(&agg)
                    .map_err(|e| codec_err(node, e))?;
                ws.put(&kb, start, &encode_slot(max_ts, &enc))
                    .map_err(err)?;
                updates.push((start, max_ts, agg));
            }
            // Without emit-final, closed windows expire here.
            if !spec.suppressed.load(Ordering::Relaxed) && stream_time > Timestamp::MIN {
                ws.expire_before(tw.first_open_start(stream_time))
                    .map_err(err)?;
            }
        }
        updates.sort_by_key(|(start, _, _)| *start);
        let headers = ctx.headers().clone();
        for (start, max_ts, agg) in updates {
            let window = Window {
                start,
                end: start.saturating_add(tw.size_ms()),
            };
            let k = Windowed {
                key: key.clone(),
                window,
            };
            ctx.forward_with(k, agg, max_ts, headers.clone());
        }
        Ok(())
    }

    fn close(&mut self) {
        self.expired_below = None;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Kept record lists round-trip.
        #[test]
        fn kept_lists_round_trip(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..10)) {
            let mut list = Vec::new();
            for v in &values {
                append_kept(&mut list, v);
            }
            let back = kept_records(&list).unwrap();
            prop_assert_eq!(back, values.iter().map(Vec::as_slice).collect::<Vec<_>>());
            if !list.is_empty() {
                prop_assert!(kept_records(&list[..list.len() - 1]).is_none());
            }
        }
    }

    #[test]
    fn sliding_windows_are_time_windows_of_max_diff_plus_one() {
        let w = sliding(Duration::from_millis(10)).grace(Duration::from_millis(3));
        let tw = w.as_time_windows();
        assert_eq!((tw.size_ms(), tw.advance_ms(), tw.grace_ms()), (11, 1, 3));
    }
}
