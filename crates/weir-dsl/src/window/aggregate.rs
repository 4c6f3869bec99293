//! The windowed aggregation node: folds each record into every open window
//! that holds it, forwards the updates, and expires windows past their grace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use weir_core::{ProcessError, Timestamp};

use super::{
    codec_err, corrupt, decode_slot, encode_slot, resolve, store_err, windows_of, TimeWindows,
    Window, Windowed, WindowedStore,
};
use crate::process::{Processor, ProcessorContext};

/// The node's counter of closed windows that a record with other windows
/// still open (hopping) could not update.
const LATE_WINDOWS: &str = "late_windows";

pub(super) type Step<K, V, A> = Box<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

pub(super) struct AggregateSpec<K, V, A> {
    pub(super) store: WindowedStore<K, A>,
    pub(super) step: Step<K, V, A>,
    pub(super) late_to_dlq: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Set when the table is suppressed: the emit-final node expires
    /// windows (after emitting them), not the aggregation.
    pub(super) suppressed: Arc<AtomicBool>,
}

pub(super) struct WindowAggregate<K, V, A> {
    pub(super) spec: Arc<AggregateSpec<K, V, A>>,
    /// Resolved in `init`.
    pub(super) windows: Option<TimeWindows>,
    /// Windows starting below this were expired (by this instance).
    pub(super) expired_below: Option<Timestamp>,
}

impl<K, V, A> Processor<K, V, Windowed<K>, A> for WindowAggregate<K, V, A>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    A: Clone + Send + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, A>) -> Result<(), ProcessError> {
        self.windows = Some(resolve(&self.spec.store, ctx.node())?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, A>,
        key: K,
        value: V,
    ) -> Result<(), ProcessError> {
        let spec = &*self.spec;
        let w = &match self.windows {
            Some(w) => w,
            None => *self.windows.insert(resolve(&spec.store, ctx.node())?),
        };
        let t = ctx.timestamp();
        // No stream time yet (behind a repartition topic, before every
        // upstream task reported): nothing has closed.
        let stream_time = ctx.stream_time().unwrap_or(Timestamp::MIN);
        let close = stream_time.saturating_sub(w.grace);
        let kb = spec
            .store
            .key_codec
            .encode(&key)
            .map_err(|e| codec_err(ctx.node(), e))?;
        let mut updates = Vec::new();
        let mut closed = 0;
        {
            let (node, state) = ctx.raw();
            let mut ws = windows_of(state, node, &spec.store.name, w)?;
            for start in w.window_starts(t) {
                let end = start.saturating_add(w.size);
                if end <= close {
                    closed += 1;
                    continue;
                }
                let (old, max_ts) = match ws
                    .get(&kb, start)
                    .map_err(|e| store_err(node, &spec.store.name, e))?
                {
                    Some(slot) => {
                        let (ts, bytes) = decode_slot(&slot).ok_or_else(|| {
                            corrupt(
                                node,
                                &spec.store.name,
                                "a window value shorter than its timestamp",
                            )
                        })?;
                        let old = spec
                            .store
                            .value_codec
                            .decode(bytes)
                            .map_err(|e| codec_err(node, e))?;
                        (Some(old), ts.max(t))
                    }
                    None => (None, t),
                };
                let new = (spec.step)(&key, value.clone(), old);
                let bytes = spec
                    .store
                    .value_codec
                    .encode(&new)
                    .map_err(|e| codec_err(node, e))?;
                ws.put(&kb, start, &encode_slot(max_ts, &bytes))
                    .map_err(|e| store_err(node, &spec.store.name, e))?;
                updates.push((Window { start, end }, new, max_ts));
            }
            if updates.is_empty() {
                return Err(ProcessError::Late {
                    node: node.to_string(),
                    message: format!(
                        "timestamp {t}: its {closed} window(s) closed at stream time {stream_time} (grace {} ms)",
                        w.grace
                    ),
                    dead_letter: (spec.late_to_dlq)(),
                });
            }
            // Without emit-final, windows expire here: those that closed.
            if !spec.suppressed.load(Ordering::Relaxed) && stream_time > Timestamp::MIN {
                let bound = w.first_open_start(stream_time);
                let segment = bound.div_euclid(w.segment_ms()) * w.segment_ms();
                if self.expired_below.is_none_or(|e| segment > e) {
                    ws.expire_before(bound)
                        .map_err(|e| store_err(node, &spec.store.name, e))?;
                    self.expired_below = Some(segment);
                }
            }
        }
        if closed > 0 {
            // A hopping record some of whose windows had closed: the open
            // ones took it, the closed ones are counted.
            ctx.count(LATE_WINDOWS, closed);
        }
        // A window's result carries the largest timestamp in it.
        for (window, new, max_ts) in updates {
            let headers = ctx.headers().clone();
            ctx.forward_with(
                Windowed {
                    key: key.clone(),
                    window,
                },
                new,
                max_ts,
                headers,
            );
        }
        Ok(())
    }

    fn close(&mut self) {
        self.expired_below = None;
    }
}
