//! Emit-final for windowed tables (`WindowedTable::suppress`): results are
//! read from the window store when stream time closes their windows, with
//! the emission's progress kept in the store (see [`crate::window`]).

use weir_core::{Headers, ProcessError, Timestamp};

use crate::process::{Processor, ProcessorContext};
use crate::window::{
    corrupt, decode_slot, resolve, store_err, windows_of, TimeWindows, Window, Windowed,
    WindowedStore,
};

/// The metadata entry of the window store: windows starting below it were
/// emitted (8 bytes, big-endian).
const EMITTED_BELOW: &str = "emitted-below";

/// Emit-final: each time stream time advances, forwards every window that
/// closed since the last emission (read from the window store), records how
/// far it got, and expires them.
pub(crate) struct EmitFinal<K, V> {
    pub store: WindowedStore<K, V>,
    /// Resolved in `init`.
    pub windows: Option<TimeWindows>,
}

impl<K, V> Processor<Windowed<K>, V, Windowed<K>, V> for EmitFinal<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, V>) -> Result<(), ProcessError> {
        self.windows = Some(resolve(&self.store, ctx.node())?);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, Windowed<K>, V>,
        _key: Windowed<K>,
        _value: V,
    ) -> Result<(), ProcessError> {
        // Updates are in the store; results leave when their window closes.
        Ok(())
    }

    fn wants_stream_time(&self) -> bool {
        true
    }

    fn on_stream_time(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, V>,
    ) -> Result<(), ProcessError> {
        let w = match self.windows {
            Some(w) => w,
            None => *self.windows.insert(resolve(&self.store, ctx.node())?),
        };
        let Some(stream_time) = ctx.stream_time() else {
            return Ok(());
        };
        // Windows with end + grace <= stream time are closed.
        let bound = w.first_open_start(stream_time);
        let name = &*self.store.name;
        let mut finals = Vec::new();
        {
            let (node, state) = ctx.raw();
            let mut ws = windows_of(state, node, name, &w)?;
            let emitted = ws
                .meta(EMITTED_BELOW)
                .map_err(|e| store_err(node, name, e))?
                .and_then(|b| b.as_slice().try_into().ok().map(Timestamp::from_be_bytes));
            let from = emitted.unwrap_or(Timestamp::MIN);
            if bound <= from {
                return Ok(());
            }
            let mut closed = ws
                .starting_in(from, bound)
                .map_err(|e| store_err(node, name, e))?;
            closed.sort_by_key(|(_, start, _)| *start);
            for (kb, start, slot) in closed {
                let (ts, bytes) = decode_slot(&slot).ok_or_else(|| {
                    corrupt(node, name, "a window value shorter than its timestamp")
                })?;
                let key = self.store.key_codec.decode(&kb).map_err(|e| {
                    corrupt(
                        node,
                        name,
                        format!("a stored window key does not decode: {e}"),
                    )
                })?;
                let value = self.store.value_codec.decode(bytes).map_err(|e| {
                    corrupt(
                        node,
                        name,
                        format!("a stored window value does not decode: {e}"),
                    )
                })?;
                let window = Window {
                    start,
                    end: start.saturating_add(w.size_ms()),
                };
                finals.push((Windowed { key, window }, value, ts));
            }
            ws.set_meta(EMITTED_BELOW, &bound.to_be_bytes())
                .map_err(|e| store_err(node, name, e))?;
            ws.expire_before(bound)
                .map_err(|e| store_err(node, name, e))?;
        }
        for (k, v, ts) in finals {
            ctx.forward_with(k, v, ts, Headers::new());
        }
        Ok(())
    }
}
