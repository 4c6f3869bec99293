//! Window stores: values keyed by (key, window start), over a key-value
//! store.
//!
//! A [`WindowStore`] lays its entries out by **segment** — a span of
//! `segment_ms` of window starts — then key, then start:
//!
//! ```text
//! 0x01 | segment (8, big-endian, sign bit flipped) | key length (4) | key | start (8, flipped)
//! ```
//!
//! so that, over any ordered key-value store:
//! - a fetch of one key over a time range reads one short range per
//!   segment it spans (a handful: retention / segment_ms);
//! - the windows starting in a time range (closing windows, for emit-final)
//!   are read segment by segment, never the whole store;
//! - expiry drops whole segments: one range of keys below the retention
//!   bound, whose entries are deleted one by one — so each deletion reaches
//!   the changelog as a tombstone and a restore never brings an expired
//!   window back (a compacted changelog keeps a key's last value forever).
//!
//! Entries under the tag `0x00` are the store's own metadata (e.g. the time
//! up to which an emit-final node has emitted), changelogged like windows.
//! Because the layout depends on `segment_ms`, a store must keep it: the
//! DSL derives it from the window's size and grace.

use crate::kv::{from_time_key, time_key as ord};
use crate::{KeyRange, KeyValueStore, StoreError};

const META: u8 = 0x00;
const WINDOW: u8 = 0x01;

/// A window's entry key (see the module docs).
pub fn window_key(segment_ms: i64, key: &[u8], start: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 8 + 4 + key.len() + 8);
    k.push(WINDOW);
    k.extend_from_slice(&ord(start.div_euclid(segment_ms)));
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&ord(start));
    k
}

/// The key and start of a window entry key; `None` for metadata or a key
/// that is not a window's.
pub fn decode_window_key(k: &[u8]) -> Option<(&[u8], i64)> {
    if k.len() < 21 || k[0] != WINDOW {
        return None;
    }
    let len = u32::from_be_bytes(k[9..13].try_into().ok()?) as usize;
    if k.len() != 21 + len {
        return None;
    }
    Some((&k[13..13 + len], from_time_key(&k[13 + len..])?))
}

fn segment_prefix(segment: i64) -> Vec<u8> {
    let mut p = Vec::with_capacity(9);
    p.push(WINDOW);
    p.extend_from_slice(&ord(segment));
    p
}

/// The smallest key above every entry of segment `segment` and below.
fn segments_after(segment: i64) -> Vec<u8> {
    match segment.checked_add(1) {
        Some(next) => segment_prefix(next),
        None => vec![WINDOW + 1],
    }
}

fn meta_key(name: &str) -> Vec<u8> {
    let mut k = vec![META];
    k.extend_from_slice(name.as_bytes());
    k
}

/// One window's entry: key, start, value.
pub type WindowEntry = (Vec<u8>, i64, Vec<u8>);

/// A window-store view of a key-value store (see the module docs).
pub struct WindowStore<S> {
    store: S,
    segment_ms: i64,
}

impl<S: KeyValueStore> WindowStore<S> {
    /// The view of `store` with segments of `segment_ms` (at least 1).
    pub fn new(store: S, segment_ms: i64) -> Self {
        Self {
            store,
            segment_ms: segment_ms.max(1),
        }
    }

    /// The value of `key`'s window starting at `start`.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    pub fn get(&self, key: &[u8], start: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&window_key(self.segment_ms, key, start))
    }

    /// Sets `key`'s window starting at `start`.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    pub fn put(&mut self, key: &[u8], start: i64, value: &[u8]) -> Result<(), StoreError> {
        self.store
            .put(&window_key(self.segment_ms, key, start), value)
    }

    /// Removes `key`'s window starting at `start`.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    pub fn delete(&mut self, key: &[u8], start: i64) -> Result<(), StoreError> {
        self.store.delete(&window_key(self.segment_ms, key, start))
    }

    /// `key`'s windows with `from <= start <= to`, by start: one short
    /// range per segment that holds any window (empty stretches of time
    /// cost one seek).
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    pub fn fetch(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let last = to.div_euclid(self.segment_ms);
        let mut next = Some(from.div_euclid(self.segment_ms));
        while let Some(seg) = next.and_then(|s| self.first_segment(s, last).transpose()) {
            let seg = seg?;
            let lo = window_key(
                self.segment_ms,
                key,
                from.max(seg.saturating_mul(self.segment_ms)),
            );
            let seg_last = seg
                .saturating_mul(self.segment_ms)
                .saturating_add(self.segment_ms - 1);
            let hi = window_key(self.segment_ms, key, to.min(seg_last));
            for entry in self.store.range(KeyRange::inclusive(&lo, &hi))? {
                let (k, v) = entry?;
                if let Some((_, start)) = decode_window_key(&k) {
                    out.push((start, v));
                }
            }
            next = seg.checked_add(1);
        }
        Ok(out)
    }

    /// The first segment in `from..=last` holding an entry.
    fn first_segment(&self, from: i64, last: i64) -> Result<Option<i64>, StoreError> {
        if from > last {
            return Ok(None);
        }
        let range = KeyRange::between(&segment_prefix(from), &segments_after(last));
        match self.store.range(range)?.next() {
            Some(entry) => Ok(entry?.0.get(1..9).and_then(from_time_key)),
            None => Ok(None),
        }
    }

    /// Every window with `from <= start < to`, segment by segment (within
    /// one segment by key, then start): one scan of the segments that hold
    /// such starts.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    pub fn starting_in(&self, from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        let range = KeyRange::between(
            &segment_prefix(from.div_euclid(self.segment_ms)),
            &segments_after((to - 1).div_euclid(self.segment_ms)),
        );
        for entry in self.store.range(range)? {
            let (k, v) = entry?;
            if let Some((key, start)) = decode_window_key(&k) {
                if (from..to).contains(&start) {
                    out.push((key.to_vec(), start, v));
                }
            }
        }
        Ok(out)
    }

    /// Deletes every window of every segment that ends at or before
    /// `bound` (all of its windows start before `bound`); returns how many.
    /// Windows of the segment holding `bound` stay until it ends.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    pub fn expire_before(&mut self, bound: i64) -> Result<usize, StoreError> {
        let below = segment_prefix(bound.div_euclid(self.segment_ms));
        let keys: Vec<Vec<u8>> = self
            .store
            .range(KeyRange::between(&[WINDOW], &below))?
            .map(|e| e.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        for k in &keys {
            self.store.delete(k)?;
        }
        Ok(keys.len())
    }

    /// The store's metadata entry `name`.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&meta_key(name))
    }

    /// Sets the store's metadata entry `name` (changelogged like a window).
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    pub fn set_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.put(&meta_key(name), value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::{InMemoryBackend, TaskState};

    #[test]
    fn keys_round_trip_and_order_by_segment_key_start() {
        for (key, start) in [
            (&b""[..], 0),
            (b"a", -1),
            (b"ab\xff", i64::MAX),
            (b"z", i64::MIN),
        ] {
            assert_eq!(
                decode_window_key(&window_key(10, key, start)),
                Some((key, start))
            );
        }
        assert!(
            window_key(10, b"b", 5) < window_key(10, b"a", 15),
            "segment first"
        );
        assert!(
            window_key(10, b"a", 9) < window_key(10, b"ab", 0),
            "whole key before start"
        );
        assert!(window_key(10, b"a", -3) < window_key(10, b"a", 3));
        assert_eq!(decode_window_key(&meta_key("x")), None);
        assert_eq!(decode_window_key(&window_key(10, b"a", 1)[..20]), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u8, i64, u8),
        Delete(u8, i64),
        Expire(i64),
        Commit,
        Abort,
    }

    fn op() -> impl Strategy<Value = Op> {
        let t = -60i64..200;
        prop_oneof![
            6 => (0..4u8, t.clone(), any::<u8>()).prop_map(|(k, s, v)| Op::Put(k, s, v)),
            1 => (0..4u8, t.clone()).prop_map(|(k, s)| Op::Delete(k, s)),
            1 => t.prop_map(Op::Expire),
            1 => Just(Op::Commit),
            1 => Just(Op::Abort),
        ]
    }

    fn key(k: u8) -> Vec<u8> {
        // Keys of different lengths, one a prefix of another.
        vec![b'k'; usize::from(k) + 1]
    }

    proptest! {
        /// Against a map of (key, start) → value: gets, fetches by key and
        /// time range, windows starting in a range, and segment expiry,
        /// through pending writes, commits and aborts.
        #[test]
        fn the_window_store_behaves_as_a_map_of_windows(
            seg in 1i64..40,
            ops in prop::collection::vec(op(), 1..120),
            probes in prop::collection::vec((0..4u8, -70i64..210, 0i64..120), 1..8),
        ) {
            let mut state = TaskState::new(Box::new(InMemoryBackend::new(1)), vec!["w".into()]);
            let (mut model, mut committed): (BTreeMap<(Vec<u8>, i64), u8>, _) = Default::default();
            for op in ops {
                let mut w = WindowStore::new(state.store(0), seg);
                match op {
                    Op::Put(k, s, v) => {
                        w.put(&key(k), s, &[v]).unwrap();
                        model.insert((key(k), s), v);
                    }
                    Op::Delete(k, s) => {
                        w.delete(&key(k), s).unwrap();
                        model.remove(&(key(k), s));
                    }
                    Op::Expire(bound) => {
                        let cut = bound.div_euclid(seg) * seg;
                        let n = w.expire_before(bound).unwrap();
                        let before = model.len();
                        model.retain(|(_, s), _| *s >= cut);
                        prop_assert_eq!(n, before - model.len());
                    }
                    Op::Commit => {
                        state.commit(Vec::new()).unwrap();
                        committed = model.clone();
                    }
                    Op::Abort => {
                        state.abort();
                        model = committed.clone();
                    }
                }
            }
            let w = WindowStore::new(state.store(0), seg);
            for (k, from, len) in probes {
                let to = from + len;
                let want: Vec<(i64, Vec<u8>)> = model
                    .iter()
                    .filter(|((mk, s), _)| *mk == key(k) && (from..=to).contains(s))
                    .map(|((_, s), v)| (*s, vec![*v]))
                    .collect();
                prop_assert_eq!(w.fetch(&key(k), from, to).unwrap(), want);
                prop_assert_eq!(w.get(&key(k), from).unwrap(), model.get(&(key(k), from)).map(|v| vec![*v]));
                let mut got = w.starting_in(from, to).unwrap();
                got.sort();
                let want: Vec<WindowEntry> = model
                    .iter()
                    .filter(|((_, s), _)| (from..to).contains(s))
                    .map(|((mk, s), v)| (mk.clone(), *s, vec![*v]))
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn metadata_is_not_a_window() {
        let mut state = TaskState::new(Box::new(InMemoryBackend::new(1)), vec!["w".into()]);
        let mut w = WindowStore::new(state.store(0), 10);
        w.set_meta("emitted", b"42").unwrap();
        w.put(b"a", 3, b"v").unwrap();
        assert_eq!(w.meta("emitted").unwrap(), Some(b"42".to_vec()));
        assert_eq!(w.starting_in(i64::MIN, i64::MAX).unwrap().len(), 1);
        assert_eq!(w.expire_before(i64::MAX).unwrap(), 1);
        assert_eq!(
            w.meta("emitted").unwrap(),
            Some(b"42".to_vec()),
            "expiry keeps metadata"
        );
    }
}
