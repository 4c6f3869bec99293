//! Session windows: per key, periods of activity separated by at least an
//! inactivity gap.
//!
//! A record at `t` opens the session `[t, t]`, and merges with every
//! session of its key that ends at or after `t - gap` and starts at or
//! before `t + gap`: the merged session spans them all, its aggregate is
//! their aggregates combined with the merger, then the record folded in.
//! Sessions are kept in a session store (`weir_state::SessionStore`,
//! changelogged). A session is **closed** once stream time passes `end +
//! gap + grace` — no record that is not late can reach it any more — and
//! is then removed (emitted first when suppressed). A record is **late**
//! when stream time is past `t + grace` on its arrival: counted (`late=`),
//! dead-lettered with kind `late` when configured, never merged.
//!
//! Windows of sessions are `[start, end]`, both ends inclusive (the first
//! and last record's timestamps). Without `suppress` every change is
//! forwarded: `None` for each session merged away, then the merged
//! session's aggregate; with it, each session once, when it closes,
//! stamped with its end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir_core::{Codec, ProcessError};
use weir_state::SessionStore;

use crate::builder::Stream;
use crate::graph::BuildError;
use crate::grouped::Grouped;
use crate::process::{Processor, ProcessorContext, StoreRef};
use crate::window::{store_err, Suppressed, Window, Windowed, WindowedCodec};

/// The inactivity gap and grace of session windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionWindows {
    /// Records of a key closer than this (ms) are in one session.
    pub gap: i64,
    /// How long (ms of stream time) after a record's time it may arrive.
    pub grace: i64,
}

/// Sessions with inactivity gap `gap`, no grace.
pub fn session(gap: Duration) -> SessionWindows {
    SessionWindows {
        gap: i64::try_from(gap.as_millis()).unwrap_or(i64::MAX),
        grace: 0,
    }
}

impl SessionWindows {
    /// Records may arrive up to `d` of stream time after their timestamp.
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self
    }
}

type Step<K, V, A> = Box<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;
type Merger<K, A> = Box<dyn Fn(&K, A, A) -> A + Send + Sync>;

/// A grouped stream with session windows, ready to aggregate.
pub struct SessionGrouped<K, V> {
    grouped: Grouped<K, V>,
    windows: SessionWindows,
    late_to_dlq: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl<K, V> Grouped<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Aggregates per key and session (see the module docs).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_core::{Json, Str};
    /// use weir_dsl::{session, Suppressed, TopologyBuilder};
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("clicks", Str, Str)
    ///     .group_by_key()
    ///     .windowed_by_session(session(Duration::from_secs(300)))
    ///     .count("visits")
    ///     .suppress(Suppressed::until_window_closes())
    ///     .to_stream()
    ///     .map(|w, n| (format!("{}@{}..{}", w.key, w.window.start, w.window.end), n.unwrap_or(0)))
    ///     .with_codecs(Str, Json::<u64>::new())
    ///     .to("visits");
    /// assert_eq!(b.build().unwrap().stores(), vec!["visits"]);
    /// ```
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionGrouped<K, V> {
        SessionGrouped {
            grouped: self.clone(),
            windows,
            late_to_dlq: Arc::new(|| false),
        }
    }
}

impl<K, V> SessionGrouped<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Whether late records also go to the dead-letter topic (kind `late`).
    pub fn late_to_dead_letters(mut self, f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.late_to_dlq = Arc::new(f);
        self
    }

    /// The number of records per key and session, in session store `store`.
    pub fn count(&self, store: impl Into<String>) -> SessionTable<K, u64> {
        self.aggregate(
            store,
            || 0u64,
            |_, _, n| n + 1,
            |_, a, b| a + b,
            weir_core::Json::<u64>::new(),
        )
    }

    /// Combines the values of each session with `f`; merged sessions
    /// combine with `f` too. Needs a value codec.
    pub fn reduce(
        &self,
        store: impl Into<String>,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> SessionTable<K, V> {
        let codec = self.grouped.stream.value_codec.clone();
        let f = Arc::new(f);
        let g = f.clone();
        self.aggregate_with(
            store.into(),
            codec,
            Box::new(move |_, v, a: Option<V>| match a {
                Some(a) => f(a, v),
                None => v,
            }),
            Box::new(move |_, a, b| g(a, b)),
        )
    }

    /// Folds each session's values into an aggregate: `init()`, then
    /// `f(key, value, aggregate)` per record; sessions that merge combine
    /// their aggregates with `merge(key, earlier, later)`.
    pub fn aggregate<A>(
        &self,
        store: impl Into<String>,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merge: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
        codec: impl Codec<A>,
    ) -> SessionTable<K, A>
    where
        A: Clone + Send + 'static,
    {
        let codec: Arc<dyn Codec<A>> = Arc::new(codec);
        self.aggregate_with(
            store.into(),
            Some(codec),
            Box::new(move |k, v, a: Option<A>| f(k, v, a.unwrap_or_else(&init))),
            Box::new(merge),
        )
    }

    fn aggregate_with<A>(
        &self,
        store: String,
        codec: Option<Arc<dyn Codec<A>>>,
        step: Step<K, V, A>,
        merge: Merger<K, A>,
    ) -> SessionTable<K, A>
    where
        A: Clone + Send + 'static,
    {
        let input = self.grouped.partitioned(&store);
        let graph = input.graph.clone();
        if self.windows.gap < 0 || self.windows.grace < 0 {
            graph.borrow_mut().errors.push(BuildError::InvalidWindows {
                store: store.clone(),
                message: "the gap and grace must not be negative".into(),
            });
        }
        let kc = input.key_codec.clone();
        let (kc, ac) = match (kc, codec) {
            (Some(kc), Some(ac)) => (kc, ac),
            (kc, _) => {
                graph.borrow_mut().errors.push(BuildError::MissingCodec {
                    node: store.clone(),
                    part: if kc.is_none() { "key" } else { "value" },
                });
                let unavailable: Arc<dyn Codec<A>> = Arc::new(crate::wait::Unavailable);
                let key: Arc<dyn Codec<K>> = Arc::new(crate::wait::Unavailable);
                (key, unavailable)
            }
        };
        graph.borrow_mut().declare_viewed_store(
            &store,
            crate::StoreView::new(crate::StoreKind::Session, kc.clone(), ac.clone()),
        );
        let suppressed = Arc::new(AtomicBool::new(false));
        let spec = Arc::new(Spec {
            store: store.clone(),
            key: kc.clone(),
            value: ac,
            windows: self.windows,
            step,
            merge,
            late_to_dlq: self.late_to_dlq.clone(),
            suppressed: suppressed.clone(),
        });
        let mut updates: Stream<Windowed<K>, Option<A>> =
            input.process_with(store.clone(), &[&StoreRef(store.clone())], move || {
                SessionAggregate { spec: spec.clone() }
            });
        updates.key_codec = Some(Arc::new(WindowedCodec::new(kc)));
        updates.value_codec = None;
        SessionTable {
            updates,
            suppressed,
        }
    }
}

struct Spec<K, V, A> {
    store: String,
    key: Arc<dyn Codec<K>>,
    value: Arc<dyn Codec<A>>,
    windows: SessionWindows,
    step: Step<K, V, A>,
    merge: Merger<K, A>,
    late_to_dlq: Arc<dyn Fn() -> bool + Send + Sync>,
    suppressed: Arc<AtomicBool>,
}

struct SessionAggregate<K, V, A> {
    spec: Arc<Spec<K, V, A>>,
}

fn codec_err(node: &str, source: weir_core::CodecError) -> ProcessError {
    ProcessError::Codec {
        node: node.to_string(),
        source,
    }
}

impl<K, V, A> Processor<K, V, Windowed<K>, Option<A>> for SessionAggregate<K, V, A>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    A: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
        key: K,
        value: V,
    ) -> Result<(), ProcessError> {
        let spec = &*self.spec;
        let w = spec.windows;
        let t = ctx.timestamp();
        let node = ctx.node().to_string();
        if ctx
            .stream_time()
            .is_some_and(|st| st > t.saturating_add(w.grace))
        {
            return Err(ProcessError::Late {
                node,
                message: format!(
                    "timestamp {t}: stream time passed it by more than the grace ({} ms)",
                    w.grace
                ),
                dead_letter: (spec.late_to_dlq)(),
            });
        }
        let kb = spec.key.encode(&key).map_err(|e| codec_err(&node, e))?;
        let (_, state) = ctx.raw();
        let id = state
            .store_id(&spec.store)
            .map_err(|e| store_err(&node, &spec.store, e))?;
        let mut sessions = SessionStore::new(state.store(id));
        let found = sessions
            .find(&kb, t.saturating_sub(w.gap), t.saturating_add(w.gap))
            .map_err(|e| store_err(&node, &spec.store, e))?;
        let (mut start, mut end, mut agg) = (t, t, None::<A>);
        let mut merged_away = Vec::with_capacity(found.len());
        // Earlier sessions first (by end, then start), so the merger sees
        // them in time order.
        for s in found {
            let a = spec
                .value
                .decode(&s.value)
                .map_err(|e| codec_err(&node, e))?;
            agg = Some(match agg {
                None => a,
                Some(x) => (spec.merge)(&key, x, a),
            });
            start = start.min(s.start);
            end = end.max(s.end);
            sessions
                .remove(&kb, s.start, s.end)
                .map_err(|e| store_err(&node, &spec.store, e))?;
            merged_away.push(Window {
                start: s.start,
                end: s.end,
            });
        }
        let agg = (spec.step)(&key, value, agg);
        let bytes = spec.value.encode(&agg).map_err(|e| codec_err(&node, e))?;
        sessions
            .put(&kb, start, end, &bytes)
            .map_err(|e| store_err(&node, &spec.store, e))?;
        // A session's results carry its end: its largest timestamp.
        if !spec.suppressed.load(Ordering::Relaxed) {
            for window in merged_away {
                let headers = ctx.headers().clone();
                ctx.forward_with(
                    Windowed {
                        key: key.clone(),
                        window,
                    },
                    None,
                    window.end,
                    headers,
                );
            }
            let headers = ctx.headers().clone();
            ctx.forward_with(
                Windowed {
                    key,
                    window: Window { start, end },
                },
                Some(agg),
                end,
                headers,
            );
        }
        Ok(())
    }

    fn wants_stream_time(&self) -> bool {
        true
    }

    fn on_stream_time(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
    ) -> Result<(), ProcessError> {
        let spec = &*self.spec;
        let Some(st) = ctx.stream_time() else {
            return Ok(());
        };
        let node = ctx.node().to_string();
        let bound = st
            .saturating_sub(spec.windows.gap)
            .saturating_sub(spec.windows.grace);
        let (_, state) = ctx.raw();
        let id = state
            .store_id(&spec.store)
            .map_err(|e| store_err(&node, &spec.store, e))?;
        let mut sessions = SessionStore::new(state.store(id));
        let closed = sessions
            .ended_before(bound)
            .map_err(|e| store_err(&node, &spec.store, e))?;
        for (kb, s) in &closed {
            sessions
                .remove(kb, s.start, s.end)
                .map_err(|e| store_err(&node, &spec.store, e))?;
        }
        if spec.suppressed.load(Ordering::Relaxed) {
            for (kb, s) in closed {
                let key = spec.key.decode(&kb).map_err(|e| codec_err(&node, e))?;
                let agg = spec
                    .value
                    .decode(&s.value)
                    .map_err(|e| codec_err(&node, e))?;
                let window = Window {
                    start: s.start,
                    end: s.end,
                };
                ctx.forward_with(
                    Windowed { key, window },
                    Some(agg),
                    s.end,
                    Default::default(),
                );
            }
        }
        Ok(())
    }
}

/// The result of a session aggregation: per key and session, kept in a
/// session store, and the stream of its changes (or, suppressed, of its
/// final results).
pub struct SessionTable<K, A> {
    updates: Stream<Windowed<K>, Option<A>>,
    suppressed: Arc<AtomicBool>,
}

impl<K, A> SessionTable<K, A>
where
    K: Clone + Send + 'static,
    A: Clone + Send + 'static,
{
    /// The changes (`None`: a session merged away) or, suppressed, each
    /// session's final aggregate once (always `Some`).
    pub fn to_stream(&self) -> Stream<Windowed<K>, Option<A>> {
        self.updates.clone()
    }

    /// Emit-final: each session once, when it closes (see the module docs).
    pub fn suppress(&self, _until: Suppressed) -> SessionTable<K, A> {
        self.suppressed.store(true, Ordering::Relaxed);
        SessionTable {
            updates: self.updates.clone(),
            suppressed: self.suppressed.clone(),
        }
    }
}
