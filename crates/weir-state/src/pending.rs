//! [`PendingWrites`]: what a task changed since its last commit.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::memory::{as_ref_bound, is_empty_range};
use crate::{KeyRange, WriteSet};

type Entry = Option<Vec<u8>>;
/// A pending key: (store index, key).
type Slot = (usize, Vec<u8>);

/// The writes of one commit interval, per store and key: the latest value
/// or a delete (`None`). Each key appears once however often it changed, so
/// a commit writes (and, from the next issue on, changelogs) each changed key
/// once.
///
/// A savepoint records the previous pending entry of every key written
/// after it, so [`PendingWrites::rollback_to_savepoint`] restores exactly
/// the state before the savepoint: a failed record drops its own writes and
/// no one else's.
#[derive(Debug, Default)]
pub struct PendingWrites {
    entries: BTreeMap<Slot, Entry>,
    /// Undo log since the savepoint: the slot and its entry before
    /// (`None` = it was not pending).
    undo: Vec<(Slot, Option<Entry>)>,
    savepoint: bool,
    bytes: usize,
}

impl PendingWrites {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pending entry of `key`: `Some(Some(v))` written, `Some(None)`
    /// deleted, `None` untouched since the last commit.
    pub fn get(&self, store: usize, key: &[u8]) -> Option<Option<&[u8]>> {
        // A borrowed (usize, &[u8]) lookup is not possible on a
        // BTreeMap<(usize, Vec<u8>), _>; one allocation per read of a key.
        self.entries
            .get(&(store, key.to_vec()))
            .map(|e| e.as_deref())
    }

    /// Records a write (`Some`) or delete (`None`) of `key`.
    pub fn set(&mut self, store: usize, key: &[u8], value: Option<&[u8]>) {
        let slot = (store, key.to_vec());
        let new = value.map(<[u8]>::to_vec);
        let new_len = new.as_ref().map_or(0, Vec::len);
        let previous = self.entries.insert(slot.clone(), new);
        match &previous {
            Some(old) => {
                self.bytes -= old.as_ref().map_or(0, Vec::len);
                self.bytes += new_len;
            }
            None => self.bytes += slot.1.len() + new_len,
        }
        if self.savepoint {
            self.undo.push((slot, previous));
        }
    }

    /// The pending entries of `store` in `range`, in key order.
    pub fn range<'a>(
        &'a self,
        store: usize,
        range: &KeyRange,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let lower: Bound<Slot> = match as_ref_bound(&range.from) {
            Bound::Included(f) => Bound::Included((store, f.to_vec())),
            Bound::Excluded(f) => Bound::Excluded((store, f.to_vec())),
            Bound::Unbounded => Bound::Included((store, Vec::new())),
        };
        let upper: Bound<Slot> = match as_ref_bound(&range.to) {
            Bound::Included(t) => Bound::Included((store, t.to_vec())),
            Bound::Excluded(t) => Bound::Excluded((store, t.to_vec())),
            Bound::Unbounded => Bound::Excluded((store + 1, Vec::new())),
        };
        let empty = is_empty_range(range);
        let iter = (!empty).then(|| self.entries.range((lower, upper)));
        iter.into_iter()
            .flatten()
            .map(|((_, k), v)| (k.as_slice(), v.as_deref()))
    }

    /// Starts a savepoint (replacing any earlier one).
    pub fn savepoint(&mut self) {
        self.undo.clear();
        self.savepoint = true;
    }

    /// Undoes every write since the savepoint, and ends it.
    pub fn rollback_to_savepoint(&mut self) {
        while let Some((slot, previous)) = self.undo.pop() {
            let current = match previous {
                Some(entry) => self.entries.insert(slot.clone(), entry),
                None => self.entries.remove(&slot),
            };
            let current_len = current.flatten().map_or(0, |v| v.len());
            match self.entries.get(&slot) {
                Some(restored) => {
                    self.bytes -= current_len;
                    self.bytes += restored.as_ref().map_or(0, Vec::len);
                }
                None => self.bytes -= slot.1.len() + current_len,
            }
        }
        self.savepoint = false;
    }

    /// Keeps every write since the savepoint, and ends it.
    pub fn release_savepoint(&mut self) {
        self.undo.clear();
        self.savepoint = false;
    }

    /// Number of pending keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Approximate bytes held (keys and values), to commit early when large.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every pending entry, in (store, key) order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[u8], Option<&[u8]>)> {
        self.entries
            .iter()
            .map(|((s, k), v)| (*s, k.as_slice(), v.as_deref()))
    }

    /// Moves every pending entry into a [`WriteSet`], leaving this set empty.
    pub fn drain_into(&mut self, set: &mut WriteSet) {
        self.undo.clear();
        self.savepoint = false;
        self.bytes = 0;
        set.writes.extend(
            std::mem::take(&mut self.entries)
                .into_iter()
                .map(|((s, k), v)| (s, k, v)),
        );
    }

    /// Drops every pending entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.undo.clear();
        self.savepoint = false;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_earlier_pending_entries_and_byte_count() {
        let mut p = PendingWrites::new();
        p.set(0, b"a", Some(b"1"));
        let before = p.bytes();
        p.savepoint();
        p.set(0, b"a", Some(b"22"));
        p.set(0, b"b", None);
        p.set(1, b"a", Some(b"3"));
        p.rollback_to_savepoint();
        assert_eq!(p.get(0, b"a"), Some(Some(&b"1"[..])));
        assert_eq!(p.get(0, b"b"), None);
        assert_eq!(p.get(1, b"a"), None);
        assert_eq!(p.bytes(), before);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn ranges_stay_inside_their_store() {
        let mut p = PendingWrites::new();
        p.set(0, b"z", Some(b"0"));
        p.set(1, b"a", Some(b"1"));
        p.set(1, b"b", None);
        p.set(2, b"", Some(b"2"));
        let got: Vec<_> = p.range(1, &KeyRange::all()).collect();
        assert_eq!(got, vec![(&b"a"[..], Some(&b"1"[..])), (&b"b"[..], None)]);
        assert_eq!(p.range(1, &KeyRange::between(b"b", b"a")).count(), 0);
    }
}
