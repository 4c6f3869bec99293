//! Idempotency keys seen within the window: each key's slot holds the
//! first answer given for it. A request takes its key's slot (an async
//! lock) for the whole of its write, so a retry arriving while the first
//! attempt is in flight waits for it and then gets its answer — or, if the
//! first failed, writes itself. At most `max_keys` slots are kept: past
//! that the oldest idle ones go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::First;

/// A key's slot: `None` until a request with the key is accepted.
pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<First>>>;

#[derive(Default)]
struct Inner {
    slots: HashMap<String, (i64, Slot)>,
    /// Keys by when their slot was made, for expiry (an entry whose time is
    /// not its slot's is stale and skipped).
    order: VecDeque<(i64, String)>,
}

/// The keys seen in the last `window_ms`, at most `max_keys` of them.
pub(crate) struct Seen {
    window_ms: i64,
    max_keys: usize,
    inner: Mutex<Inner>,
}

impl Seen {
    pub(crate) fn new(window_ms: u64, max_keys: u64) -> Self {
        Self {
            window_ms: i64::try_from(window_ms).unwrap_or(i64::MAX),
            max_keys: usize::try_from(max_keys).unwrap_or(usize::MAX).max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `key`'s slot, if it has one.
    pub(crate) fn get(&self, key: &str, now_ms: i64) -> Option<Slot> {
        let mut inner = self.lock();
        self.expire(&mut inner, now_ms);
        inner.slots.get(key).map(|(_, s)| s.clone())
    }

    /// `key`'s slot, made now if it has none.
    pub(crate) fn slot(&self, key: &str, now_ms: i64) -> Slot {
        let mut inner = self.lock();
        self.expire(&mut inner, now_ms);
        if let Some((_, slot)) = inner.slots.get(key) {
            return slot.clone();
        }
        self.make_room(&mut inner, now_ms);
        // Stale entries (of slots given back) never outgrow the slots.
        if inner.order.len() > 2 * self.max_keys.max(1024) {
            let Inner { slots, order } = &mut *inner;
            order.retain(|(at, k)| slots.get(k).is_some_and(|(made, _)| made == at));
        }
        let slot = Slot::default();
        inner.slots.insert(key.to_string(), (now_ms, slot.clone()));
        inner.order.push_back((now_ms, key.to_string()));
        slot
    }

    /// Drops `key`'s slot if it holds no answer and nobody holds it (a
    /// request that was not accepted gives its slot back).
    pub(crate) fn forget_if_empty(&self, key: &str) {
        let mut inner = self.lock();
        let idle_and_empty = inner.slots.get(key).is_some_and(|(_, slot)| {
            Arc::strong_count(slot) == 1 && slot.try_lock().is_ok_and(|held| held.is_none())
        });
        if idle_and_empty {
            inner.slots.remove(key);
            // Usually the newest entry of the queue; older ones are
            // skipped as stale and swept by `slot`.
            if inner.order.back().is_some_and(|(_, k)| k == key) {
                inner.order.pop_back();
            }
        }
    }

    /// Learns that `key` was accepted at `at_ms` (by this or another
    /// instance); a slot that has an answer, or is being written, keeps it.
    pub(crate) fn learn(&self, key: &str, at_ms: i64, first: First, now_ms: i64) {
        if at_ms.saturating_add(self.window_ms) < now_ms {
            return;
        }
        let slot = self.slot(key, at_ms.min(now_ms));
        let learned = slot.try_lock().map(|mut held| {
            if held.is_none() {
                *held = Some(first);
            }
        });
        drop(learned);
    }

    /// Drops slots older than the window that nobody holds.
    fn expire(&self, inner: &mut Inner, now_ms: i64) {
        while let Some((at, _)) = inner.order.front() {
            if at.saturating_add(self.window_ms) >= now_ms {
                break;
            }
            let (at, key) = inner.order.pop_front().expect("front exists");
            Self::drop_or_requeue(inner, at, key, now_ms);
        }
    }

    /// At the limit, drops the oldest idle slots until one more fits (held
    /// ones are passed over: at most one walk over the queue).
    fn make_room(&self, inner: &mut Inner, now_ms: i64) {
        let mut tries = inner.order.len();
        while inner.slots.len() >= self.max_keys && tries > 0 {
            tries -= 1;
            let Some((at, key)) = inner.order.pop_front() else {
                break;
            };
            Self::drop_or_requeue(inner, at, key, now_ms);
        }
    }

    /// Drops `key`'s slot made at `at` unless someone holds it (then it
    /// goes to the back of the queue, timed `now_ms`).
    fn drop_or_requeue(inner: &mut Inner, at: i64, key: String, now_ms: i64) {
        let Some((made, slot)) = inner.slots.get(&key) else {
            return;
        };
        if *made != at {
            return; // stale: the key's slot has a newer entry
        }
        if Arc::strong_count(slot) > 1 {
            inner.order.push_back((now_ms, key.clone()));
            if let Some(e) = inner.slots.get_mut(&key) {
                e.0 = now_ms;
            }
            return;
        }
        inner.slots.remove(&key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().slots.len()
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.lock().order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Accepted;
    use super::*;

    fn first(receipt: &str) -> First {
        First {
            accepted: Accepted {
                status: "accepted".into(),
                event_id: "e".into(),
                timestamp: "t".into(),
                receipt: receipt.into(),
            },
            fingerprint: 1,
        }
    }

    fn receipt(seen: &Seen, key: &str, now: i64) -> Option<String> {
        let slot = seen.get(key, now)?;
        let held = slot.try_lock().unwrap();
        held.as_ref().map(|f| f.accepted.receipt.clone())
    }

    #[test]
    fn a_key_keeps_its_first_answer_for_the_window_only() {
        let seen = Seen::new(1_000, 100);
        let slot = seen.slot("a", 0);
        *slot.try_lock().unwrap() = Some(first("r1"));
        drop(slot);
        seen.learn("a", 10, first("r2"), 10);
        assert_eq!(receipt(&seen, "a", 500).as_deref(), Some("r1"));
        // Past the window the key is new again.
        assert_eq!(receipt(&seen, "a", 1_001), None);
        assert_eq!(seen.len(), 0);
    }

    #[test]
    fn claims_older_than_the_window_are_ignored_and_held_slots_survive_expiry() {
        let seen = Seen::new(1_000, 100);
        seen.learn("old", 0, first("r"), 5_000);
        assert_eq!(seen.len(), 0);
        let held = seen.slot("busy", 0);
        let _ = seen.slot("other", 2_000); // expires what it can
        assert_eq!(seen.len(), 2, "the held slot stays");
        drop(held);
        let _ = seen.slot("other", 10_000);
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn keys_given_back_do_not_pile_up_in_the_queue() {
        let seen = Seen::new(i64::MAX as u64, 10);
        for i in 0..20_000 {
            // One accepted key and one refused key made before it: the
            // refused one is not the newest entry when it is given back.
            let refused = format!("r{i}");
            let held = seen.slot(&refused, i);
            *seen.slot(&format!("a{i}"), i).try_lock().unwrap() = Some(first("x"));
            drop(held);
            seen.forget_if_empty(&refused);
        }
        // The last refused key made room for itself, then left.
        assert_eq!(seen.len(), 9);
        assert!(seen.queued() <= 2 * 1024 + 2, "{}", seen.queued());
    }

    #[test]
    fn empty_slots_are_given_back_and_the_oldest_idle_ones_make_room() {
        let seen = Seen::new(1_000_000, 3);
        drop(seen.slot("refused", 0));
        seen.forget_if_empty("refused");
        assert_eq!(seen.len(), 0);
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            *seen.slot(k, i as i64).try_lock().unwrap() = Some(first(k));
        }
        let held = seen.get("a", 3).unwrap();
        // "a" is held: "b", the oldest idle one, goes.
        drop(seen.slot("d", 4));
        assert_eq!(seen.len(), 3);
        assert!(receipt(&seen, "b", 5).is_none());
        assert_eq!(receipt(&seen, "c", 5).as_deref(), Some("c"));
        drop(held);
        assert_eq!(receipt(&seen, "a", 5).as_deref(), Some("a"));
        // An answered slot is not given back.
        seen.forget_if_empty("a");
        assert_eq!(receipt(&seen, "a", 6).as_deref(), Some("a"));
    }
}
