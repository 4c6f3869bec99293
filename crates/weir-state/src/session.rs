//! Session stores: values keyed by (key, session start, session end), over
//! a key-value store.
//!
//! A session is a period of activity of one key: it starts at its first
//! record and ends at its last, and sessions closer than a gap merge (the
//! DSL's business; this store only keeps them). Two entries per session:
//!
//! ```text
//! by key:  0x01 | key length (4) | key | end (8, flipped) | start (8, flipped)  →  value
//! by end:  0x02 | end (8, flipped) | key length (4) | key | start (8, flipped)  →  (empty)
//! ```
//!
//! so that finding a key's sessions near a time reads one short range of
//! that key (from the earliest end asked for), and expiry reads only the
//! expired sessions: the range of the by-end index below the retention
//! bound, whose entries are deleted one by one — each deletion reaches the
//! changelog as a tombstone, and a restore never brings an expired session
//! back. Both entries are ordinary writes of the store: pending until the
//! transaction commits, changelogged, restored like any other key.

use crate::kv::{from_time_key as unord, time_key as ord};
use crate::{KeyRange, KeyValueStore, StoreError};

const BY_KEY: u8 = 0x01;
const BY_END: u8 = 0x02;

fn key_prefix(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + key.len() + 16);
    k.push(BY_KEY);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

fn by_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut k = key_prefix(key);
    k.extend_from_slice(&ord(end));
    k.extend_from_slice(&ord(start));
    k
}

fn by_end(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 8 + 4 + key.len() + 8);
    k.push(BY_END);
    k.extend_from_slice(&ord(end));
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&ord(start));
    k
}

/// The store keys of `key`'s sessions that end at or after
/// `earliest_end`, in end order: what [`SessionStore::find`] reads, for a
/// reader of the store's partitions outside its task (a query).
pub fn session_range(key: &[u8], earliest_end: i64) -> KeyRange {
    let prefix = key_prefix(key);
    let mut from = prefix.clone();
    from.extend_from_slice(&ord(earliest_end));
    KeyRange {
        from: std::ops::Bound::Included(from),
        to: KeyRange::prefix(&prefix).to,
    }
}

/// The start and end of the session that `stored` (a store key in
/// [`session_range`] of `key`) names; `None` for any other key.
pub fn decode_session_key(key: &[u8], stored: &[u8]) -> Option<(i64, i64)> {
    let times = stored.strip_prefix(key_prefix(key).as_slice())?;
    if times.len() != 16 {
        return None;
    }
    Some((unord(&times[8..])?, unord(&times[..8])?))
}

/// One session as stored: its start and end (both inclusive, as record
/// timestamps) and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEntry {
    pub start: i64,
    pub end: i64,
    pub value: Vec<u8>,
}

/// Sessions over a key-value store (see the module docs).
///
/// # Examples
/// ```
/// use weir_state::{InMemoryBackend, SessionStore, TaskState};
///
/// let mut state = TaskState::new(Box::new(InMemoryBackend::new(1)), vec!["s".into()]);
/// let mut sessions = SessionStore::new(state.store(0));
/// sessions.put(b"user", 100, 250, b"3 clicks").unwrap();
/// // Sessions of `user` that end at or after 200 and start at or before 300:
/// let found = sessions.find(b"user", 200, 300).unwrap();
/// assert_eq!((found[0].start, found[0].end), (100, 250));
/// assert_eq!(sessions.expire_before(251).unwrap(), 1);
/// ```
pub struct SessionStore<S> {
    store: S,
}

impl<S: KeyValueStore> SessionStore<S> {
    /// Sessions kept in `store` (which holds nothing else).
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// Sets session (`key`, `start`, `end`) to `value`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn put(
        &mut self,
        key: &[u8],
        start: i64,
        end: i64,
        value: &[u8],
    ) -> Result<(), StoreError> {
        self.store.put(&by_key(key, start, end), value)?;
        self.store.put(&by_end(key, start, end), &[])
    }

    /// The value of session (`key`, `start`, `end`), if stored.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn get(&self, key: &[u8], start: i64, end: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&by_key(key, start, end))
    }

    /// Removes session (`key`, `start`, `end`) (merged into another, or
    /// done with).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StoreError> {
        self.store.delete(&by_key(key, start, end))?;
        self.store.delete(&by_end(key, start, end))
    }

    /// The sessions of `key` that end at or after `earliest_end` and start
    /// at or before `latest_start` — those a record at `t` with gap `g`
    /// merges with are `find(key, t - g, t + g)` — ordered by end, then
    /// start. Reads only the key's sessions ending from `earliest_end` on.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn find(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionEntry>, StoreError> {
        let mut found = Vec::new();
        for entry in self.store.range(session_range(key, earliest_end))? {
            let (k, value) = entry?;
            let Some((start, end)) = decode_session_key(key, &k) else {
                continue; // not a session entry: never written by this type
            };
            if start <= latest_start {
                found.push(SessionEntry { start, end, value });
            }
        }
        Ok(found)
    }

    /// Every session of `key`, ordered by end, then start.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn sessions(&self, key: &[u8]) -> Result<Vec<SessionEntry>, StoreError> {
        self.find(key, i64::MIN, i64::MAX)
    }

    /// Every session that ended before `bound`, with its key, in end
    /// order (then key, start). Reads only those (and their values).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn ended_before(&self, bound: i64) -> Result<Vec<(Vec<u8>, SessionEntry)>, StoreError> {
        let mut found = Vec::new();
        for (key, start, end) in self.ids_ended_before(bound)? {
            if let Some(value) = self.get(&key, start, end)? {
                found.push((key, SessionEntry { start, end, value }));
            }
        }
        Ok(found)
    }

    fn ids_ended_before(&self, bound: i64) -> Result<Vec<(Vec<u8>, i64, i64)>, StoreError> {
        let mut to = vec![BY_END];
        to.extend_from_slice(&ord(bound));
        self.store
            .range(KeyRange::between(&[BY_END], &to))?
            .filter_map(|entry| {
                let (k, _) = match entry {
                    Ok(e) => e,
                    Err(e) => return Some(Err(e)),
                };
                let end = unord(k.get(1..9)?)?;
                let len = u32::from_be_bytes(k.get(9..13)?.try_into().ok()?) as usize;
                let key = k.get(13..13 + len)?.to_vec();
                let start = unord(k.get(13 + len..)?)?;
                Some(Ok((key, start, end)))
            })
            .collect()
    }

    /// Removes every session that ended before `bound` (retention on
    /// stream time); how many. Reads only those.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn expire_before(&mut self, bound: i64) -> Result<usize, StoreError> {
        let expired = self.ids_ended_before(bound)?;
        for (key, start, end) in &expired {
            self.remove(key, *start, *end)?;
        }
        Ok(expired.len())
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
        Put(u8, i64, i64, u8),
        Remove(u8, i64, i64),
        Find(u8, i64, i64),
        Expire(i64),
        Commit,
        Abort,
    }

    fn op() -> impl Strategy<Value = Op> {
        let session = (0u8..4, -30i64..30, 0i64..20);
        prop_oneof![
            4 => (session.clone(), any::<u8>()).prop_map(|((k, s, len), v)| Op::Put(k, s, s + len, v)),
            1 => session.prop_map(|(k, s, len)| Op::Remove(k, s, s + len)),
            3 => (0u8..4, -40i64..60, -40i64..60).prop_map(|(k, e, s)| Op::Find(k, e, s)),
            1 => (-40i64..60).prop_map(Op::Expire),
            1 => Just(Op::Commit),
            1 => Just(Op::Abort),
        ]
    }

    type Model = BTreeMap<(Vec<u8>, i64, i64), Vec<u8>>;

    proptest! {
        /// Against a map of (key, start, end) → value, with pending writes
        /// committed or dropped at random.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..120)) {
            let mut state = TaskState::new(Box::new(InMemoryBackend::new(1)), vec!["s".into()]);
            let (mut committed, mut model) = (Model::new(), Model::new());
            for op in ops {
                let mut sessions = SessionStore::new(state.store(0));
                match op {
                    Op::Put(k, s, e, v) => {
                        sessions.put(&[k], s, e, &[v]).unwrap();
                        model.insert((vec![k], s, e), vec![v]);
                    }
                    Op::Remove(k, s, e) => {
                        sessions.remove(&[k], s, e).unwrap();
                        model.remove(&(vec![k], s, e));
                    }
                    Op::Find(k, earliest_end, latest_start) => {
                        let got = sessions.find(&[k], earliest_end, latest_start).unwrap();
                        let mut want: Vec<SessionEntry> = model
                            .iter()
                            .filter(|((mk, s, e), _)| {
                                *mk == vec![k] && *e >= earliest_end && *s <= latest_start
                            })
                            .map(|((_, s, e), v)| SessionEntry { start: *s, end: *e, value: v.clone() })
                            .collect();
                        want.sort_by_key(|w| (w.end, w.start));
                        prop_assert_eq!(got, want);
                    }
                    Op::Expire(bound) => {
                        let ended: Vec<(Vec<u8>, i64, i64)> = sessions
                            .ended_before(bound)
                            .unwrap()
                            .into_iter()
                            .map(|(k, e)| (k, e.start, e.end))
                            .collect();
                        let mut want: Vec<(Vec<u8>, i64, i64)> = model
                            .keys()
                            .filter(|(_, _, e)| *e < bound)
                            .cloned()
                            .collect();
                        want.sort_by(|a, b| (a.2, &a.0, a.1).cmp(&(b.2, &b.0, b.1)));
                        prop_assert_eq!(ended, want);
                        let n = sessions.expire_before(bound).unwrap();
                        let before = model.len();
                        model.retain(|(_, _, e), _| *e >= bound);
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
                let sessions = SessionStore::new(state.store(0));
                for ((k, s, e), v) in &model {
                    prop_assert_eq!(sessions.get(k, *s, *e).unwrap(), Some(v.clone()));
                }
                for k in 0u8..4 {
                    let n = model.keys().filter(|(mk, _, _)| *mk == vec![k]).count();
                    prop_assert_eq!(sessions.sessions(&[k]).unwrap().len(), n);
                }
            }
        }
    }
}
