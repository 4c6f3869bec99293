//! Timer stores: durable timers ordered by deadline, over a key-value store.
//!
//! A timer is identified by its [`Clock`] and a key chosen by the processor
//! that set it (scheduling the same key again moves the timer); it carries
//! a deadline and an opaque payload. A [`TimerStore`] keeps two entries per
//! timer:
//!
//! ```text
//! index:  0x01 | clock | deadline (8, big-endian, sign bit flipped) | key  →  payload
//! by key: 0x02 | clock | key                                             →  deadline (8)
//! ```
//!
//! so the due timers of a clock are the first entries of its index range —
//! firing reads only them, never the pending ones — and a cancel or a
//! reschedule finds the index entry through the by-key entry. Both entries
//! are ordinary writes of the store: pending until the transaction commits,
//! changelogged, restored like any other key.

use crate::kv::{from_time_key as unord, time_key as ord};
use crate::{KeyRange, KeyValueStore, StoreError};

const INDEX: u8 = 0x01;
const BY_KEY: u8 = 0x02;

/// The time a timer's deadline is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Clock {
    /// The task's stream time (the largest record timestamp it processed):
    /// deterministic, moves only with records.
    Stream,
    /// The system clock (milliseconds since the epoch): moves while inputs
    /// are idle.
    Wall,
}

impl Clock {
    fn tag(self) -> u8 {
        match self {
            Clock::Stream => 0,
            Clock::Wall => 1,
        }
    }

    /// Both clocks, in the order their timers fire within one step.
    pub const ALL: [Clock; 2] = [Clock::Stream, Clock::Wall];
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::Stream => "stream-time",
            Clock::Wall => "wall-clock",
        })
    }
}

/// One timer as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    pub clock: Clock,
    pub deadline: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

fn index_key(clock: Clock, deadline: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + key.len());
    k.push(INDEX);
    k.push(clock.tag());
    k.extend_from_slice(&ord(deadline));
    k.extend_from_slice(key);
    k
}

fn by_key(clock: Clock, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.len());
    k.push(BY_KEY);
    k.push(clock.tag());
    k.extend_from_slice(key);
    k
}

/// Durable timers over a key-value store (see the module docs).
///
/// # Examples
/// ```
/// use weir_state::{Clock, InMemoryBackend, TaskState, TimerStore};
///
/// let mut state = TaskState::new(Box::new(InMemoryBackend::new(1)), vec!["t".into()]);
/// let mut timers = TimerStore::new(state.store(0));
/// timers.schedule(Clock::Stream, 20, b"b", b"second").unwrap();
/// timers.schedule(Clock::Stream, 10, b"a", b"first").unwrap();
/// let due = timers.due(Clock::Stream, 15, 100).unwrap();
/// assert_eq!(due.len(), 1);
/// assert_eq!(due[0].payload, b"first");
/// ```
pub struct TimerStore<S> {
    store: S,
}

impl<S: KeyValueStore> TimerStore<S> {
    /// Timers kept in `store` (which holds nothing else).
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// Sets timer (`clock`, `key`) to fire at `deadline` with `payload`,
    /// replacing the timer of that key if there is one.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn schedule(
        &mut self,
        clock: Clock,
        deadline: i64,
        key: &[u8],
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let bk = by_key(clock, key);
        if let Some(old) = self.store.get(&bk)?.as_deref().and_then(unord) {
            if old != deadline {
                self.store.delete(&index_key(clock, old, key))?;
            }
        }
        self.store.put(&index_key(clock, deadline, key), payload)?;
        self.store.put(&bk, &ord(deadline))
    }

    /// The deadline and payload of timer (`clock`, `key`), if set.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn get(&self, clock: Clock, key: &[u8]) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let Some(deadline) = self
            .store
            .get(&by_key(clock, key))?
            .as_deref()
            .and_then(unord)
        else {
            return Ok(None);
        };
        Ok(self
            .store
            .get(&index_key(clock, deadline, key))?
            .map(|p| (deadline, p)))
    }

    /// Removes timer (`clock`, `key`); whether it was set.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn cancel(&mut self, clock: Clock, key: &[u8]) -> Result<bool, StoreError> {
        let bk = by_key(clock, key);
        let Some(deadline) = self.store.get(&bk)?.as_deref().and_then(unord) else {
            return Ok(false);
        };
        self.store.delete(&index_key(clock, deadline, key))?;
        self.store.delete(&bk)?;
        Ok(true)
    }

    /// The earliest deadline of `clock`, if any timer is set: one seek.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn next_deadline(&self, clock: Clock) -> Result<Option<i64>, StoreError> {
        self.next_deadline_from(clock, i64::MIN)
    }

    /// The earliest deadline of `clock` at or after `from`: a caller that
    /// knows no timer is earlier seeks past the deleted ones (tombstones
    /// until compaction) instead of stepping over them.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn next_deadline_from(&self, clock: Clock, from: i64) -> Result<Option<i64>, StoreError> {
        let range = KeyRange {
            from: std::ops::Bound::Included(index_key(clock, from, &[])),
            to: KeyRange::prefix(&[INDEX, clock.tag()]).to,
        };
        match self.store.range(range)?.next() {
            Some(entry) => Ok(entry?.0.get(2..10).and_then(unord)),
            None => Ok(None),
        }
    }

    /// Up to `limit` timers of `clock` with `deadline <= up_to`, in deadline
    /// order (then key order): reads only those.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn due(&self, clock: Clock, up_to: i64, limit: usize) -> Result<Vec<Timer>, StoreError> {
        self.due_from(clock, i64::MIN, up_to, limit)
    }

    /// As [`TimerStore::due`], for a caller that knows no timer of `clock`
    /// is earlier than `from` (see [`TimerStore::next_deadline_from`]).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn due_from(
        &self,
        clock: Clock,
        from: i64,
        up_to: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        let start = index_key(clock, from, &[]);
        let range = match up_to.checked_add(1) {
            Some(end) => KeyRange::between(&start, &index_key(clock, end, &[])),
            None => KeyRange {
                from: std::ops::Bound::Included(start),
                to: KeyRange::prefix(&[INDEX, clock.tag()]).to,
            },
        };
        let mut due = Vec::new();
        for entry in self.store.range(range)?.take(limit) {
            let (k, payload) = entry?;
            let Some(deadline) = k.get(2..10).and_then(unord) else {
                continue; // not a timer entry: never written by this type
            };
            due.push(Timer {
                clock,
                deadline,
                key: k[10..].to_vec(),
                payload,
            });
        }
        Ok(due)
    }

    /// Removes a timer returned by [`TimerStore::due`] (it fired).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn remove(&mut self, timer: &Timer) -> Result<(), StoreError> {
        // A timer's by-key entry always names the deadline of its one
        // index entry (scheduling moves both): delete both, no read.
        self.store
            .delete(&index_key(timer.clock, timer.deadline, &timer.key))?;
        self.store.delete(&by_key(timer.clock, &timer.key))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::{InMemoryBackend, TaskState};

    #[derive(Clone, Debug)]
    enum Op {
        Schedule(bool, i64, u8, u8),
        Cancel(bool, u8),
        Fire(bool, i64, usize),
        Commit,
        Abort,
    }

    fn clock(wall: bool) -> Clock {
        if wall {
            Clock::Wall
        } else {
            Clock::Stream
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), -50i64..50, 0u8..12, any::<u8>())
                .prop_map(|(w, d, k, p)| Op::Schedule(w, d, k, p)),
            1 => (any::<bool>(), 0u8..12).prop_map(|(w, k)| Op::Cancel(w, k)),
            2 => (any::<bool>(), -60i64..60, 0usize..5).prop_map(|(w, t, n)| Op::Fire(w, t, n)),
            1 => Just(Op::Commit),
            1 => Just(Op::Abort),
        ]
    }

    type Model = BTreeMap<(Clock, Vec<u8>), (i64, Vec<u8>)>;

    /// The model's due timers: deadline order, then key order.
    fn model_due(m: &Model, c: Clock, up_to: i64, limit: usize) -> Vec<Timer> {
        let mut due: Vec<Timer> = m
            .iter()
            .filter(|((cl, _), (d, _))| *cl == c && *d <= up_to)
            .map(|((cl, k), (d, p))| Timer {
                clock: *cl,
                deadline: *d,
                key: k.clone(),
                payload: p.clone(),
            })
            .collect();
        due.sort_by(|a, b| (a.deadline, &a.key).cmp(&(b.deadline, &b.key)));
        due.truncate(limit);
        due
    }

    proptest! {
        /// Against a map of (clock, key) → (deadline, payload), with pending
        /// writes committed or dropped at random.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..120)) {
            let mut state = TaskState::new(Box::new(InMemoryBackend::new(1)), vec!["t".into()]);
            let (mut committed, mut model) = (Model::new(), Model::new());
            for op in ops {
                match op {
                    Op::Schedule(w, d, k, p) => {
                        TimerStore::new(state.store(0)).schedule(clock(w), d, &[k], &[p]).unwrap();
                        model.insert((clock(w), vec![k]), (d, vec![p]));
                    }
                    Op::Cancel(w, k) => {
                        let had = TimerStore::new(state.store(0)).cancel(clock(w), &[k]).unwrap();
                        prop_assert_eq!(had, model.remove(&(clock(w), vec![k])).is_some());
                    }
                    Op::Fire(w, t, n) => {
                        let mut timers = TimerStore::new(state.store(0));
                        let due = timers.due(clock(w), t, n).unwrap();
                        prop_assert_eq!(&due, &model_due(&model, clock(w), t, n));
                        for timer in &due {
                            timers.remove(timer).unwrap();
                            model.remove(&(timer.clock, timer.key.clone()));
                        }
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
                for c in Clock::ALL {
                    let timers = TimerStore::new(state.store(0));
                    let next = model
                        .iter()
                        .filter(|((cl, _), _)| *cl == c)
                        .map(|(_, (d, _))| *d)
                        .min();
                    prop_assert_eq!(timers.next_deadline(c).unwrap(), next);
                }
                for ((c, k), (d, p)) in &model {
                    let got = TimerStore::new(state.store(0)).get(*c, k).unwrap();
                    prop_assert_eq!(got, Some((*d, p.clone())));
                }
            }
        }
    }

    #[test]
    fn extreme_deadlines_order_and_fire() {
        let mut state = TaskState::new(Box::new(InMemoryBackend::new(1)), vec!["t".into()]);
        let mut timers = TimerStore::new(state.store(0));
        timers.schedule(Clock::Wall, i64::MAX, b"max", b"").unwrap();
        timers.schedule(Clock::Wall, i64::MIN, b"min", b"").unwrap();
        timers.schedule(Clock::Wall, 0, b"zero", b"").unwrap();
        let keys: Vec<Vec<u8>> = timers
            .due(Clock::Wall, i64::MAX, 10)
            .unwrap()
            .into_iter()
            .map(|t| t.key)
            .collect();
        assert_eq!(
            keys,
            vec![b"min".to_vec(), b"zero".to_vec(), b"max".to_vec()]
        );
        assert!(timers.due(Clock::Stream, i64::MAX, 10).unwrap().is_empty());
        assert_eq!(timers.next_deadline(Clock::Wall).unwrap(), Some(i64::MIN));
    }
}
