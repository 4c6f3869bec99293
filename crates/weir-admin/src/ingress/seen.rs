//! Idempotency keys seen within the window: each key's slot holds the
//! answer given to its first accepted request. A request takes its key's
//! slot (an async lock) for the whole of its write, so a retry arriving
//! while the first attempt is in flight waits for it and then gets its
//! answer — or, if the first failed, writes itself.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::Accepted;

/// A key's slot: `None` until a request with the key is accepted.
pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<Accepted>>>;

#[derive(Default)]
struct Inner {
    slots: HashMap<String, (i64, Slot)>,
    /// Keys by when their slot was made, for expiry.
    order: VecDeque<(i64, String)>,
}

/// The keys seen in the last `window_ms`.
pub(crate) struct Seen {
    window_ms: i64,
    inner: Mutex<Inner>,
}

impl Seen {
    pub(crate) fn new(window_ms: u64) -> Self {
        Self {
            window_ms: i64::try_from(window_ms).unwrap_or(i64::MAX),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `key`'s slot, made now if it has none.
    pub(crate) fn slot(&self, key: &str, now_ms: i64) -> Slot {
        let mut inner = self.lock();
        self.expire(&mut inner, now_ms);
        if let Some((_, slot)) = inner.slots.get(key) {
            return slot.clone();
        }
        let slot = Slot::default();
        inner.slots.insert(key.to_string(), (now_ms, slot.clone()));
        inner.order.push_back((now_ms, key.to_string()));
        slot
    }

    /// Learns that `key` was accepted at `at_ms` (by this or another
    /// instance); a slot that has an answer, or is being written, keeps it.
    pub(crate) fn learn(&self, key: &str, at_ms: i64, accepted: Accepted, now_ms: i64) {
        if at_ms.saturating_add(self.window_ms) < now_ms {
            return;
        }
        let slot = self.slot(key, at_ms.min(now_ms));
        let learned = slot.try_lock().map(|mut held| {
            if held.is_none() {
                *held = Some(accepted);
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
            let Some((made, slot)) = inner.slots.get(&key) else {
                continue;
            };
            if *made != at {
                continue; // a newer slot of the key has its own entry
            }
            if Arc::strong_count(slot) > 1 {
                // In use: look again a window later.
                inner.order.push_back((now_ms, key.clone()));
                if let Some(e) = inner.slots.get_mut(&key) {
                    e.0 = now_ms;
                }
                continue;
            }
            inner.slots.remove(&key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(receipt: &str) -> Accepted {
        Accepted {
            status: "accepted".into(),
            event_id: "e".into(),
            timestamp: "t".into(),
            receipt: receipt.into(),
        }
    }

    #[test]
    fn a_key_keeps_its_first_answer_for_the_window_only() {
        let seen = Seen::new(1_000);
        let slot = seen.slot("a", 0);
        *slot.try_lock().unwrap() = Some(accepted("r1"));
        drop(slot);
        seen.learn("a", 10, accepted("r2"), 10);
        assert_eq!(
            seen.slot("a", 500)
                .try_lock()
                .unwrap()
                .as_ref()
                .unwrap()
                .receipt,
            "r1"
        );
        // Past the window the key is new again.
        assert!(seen.slot("a", 1_001).try_lock().unwrap().is_none());
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn claims_older_than_the_window_are_ignored_and_held_slots_survive_expiry() {
        let seen = Seen::new(1_000);
        seen.learn("old", 0, accepted("r"), 5_000);
        assert_eq!(seen.len(), 0);
        let held = seen.slot("busy", 0);
        let _ = seen.slot("other", 2_000); // expires what it can
        assert_eq!(seen.len(), 2, "the held slot stays");
        drop(held);
        let _ = seen.slot("other", 10_000);
        assert_eq!(seen.len(), 1);
    }
}
