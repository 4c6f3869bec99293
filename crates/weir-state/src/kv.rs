//! The [`KeyValueStore`] trait and key ranges.

use std::ops::Bound;

use crate::StoreError;

/// A key and its value, as bytes.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// Entries of a range read, in ascending key order (bytewise).
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<KvPair, StoreError>> + 'a>;

/// A range of keys (bytewise order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// Lower bound.
    pub from: Bound<Vec<u8>>,
    /// Upper bound.
    pub to: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self {
            from: Bound::Unbounded,
            to: Bound::Unbounded,
        }
    }

    /// Keys `k` with `from <= k < to`.
    pub fn between(from: &[u8], to: &[u8]) -> Self {
        Self {
            from: Bound::Included(from.to_vec()),
            to: Bound::Excluded(to.to_vec()),
        }
    }

    /// Keys `k` with `from <= k <= to` (Kafka Streams' `range(from, to)`).
    pub fn inclusive(from: &[u8], to: &[u8]) -> Self {
        Self {
            from: Bound::Included(from.to_vec()),
            to: Bound::Included(to.to_vec()),
        }
    }

    /// Keys that start with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        Self {
            from: Bound::Included(prefix.to_vec()),
            to: match prefix_successor(prefix) {
                Some(end) => Bound::Excluded(end),
                None => Bound::Unbounded,
            },
        }
    }

    /// Whether `key` is inside the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let above = match &self.from {
            Bound::Included(f) => key >= f.as_slice(),
            Bound::Excluded(f) => key > f.as_slice(),
            Bound::Unbounded => true,
        };
        above && self.below_end(key)
    }

    /// Whether `key` is below the upper bound.
    pub fn below_end(&self, key: &[u8]) -> bool {
        match &self.to {
            Bound::Included(t) => key <= t.as_slice(),
            Bound::Excluded(t) => key < t.as_slice(),
            Bound::Unbounded => true,
        }
    }
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` when there is none (the prefix is empty or all `0xff`).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A key-value store over bytes. Typed access (keys and values through
/// codecs) is layered on top by the DSL.
///
/// Implemented by [`crate::TaskStore`]: a task's view of one store, where
/// reads see the task's pending writes over its committed state.
pub trait KeyValueStore {
    /// The value of `key`, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Removes `key` (a no-op when absent).
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError>;

    /// The entries in `range`, in key order.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails (also per item).
    fn range(&self, range: KeyRange) -> Result<KvIter<'_>, StoreError>;

    /// The entries whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// As [`KeyValueStore::range`].
    fn prefix(&self, prefix: &[u8]) -> Result<KvIter<'_>, StoreError> {
        self.range(KeyRange::prefix(prefix))
    }

    /// An estimate of the number of keys (exact for in-memory stores).
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn approximate_len(&self) -> Result<u64, StoreError>;
}

/// A timestamp (any `i64`) as 8 bytes whose byte order is its numeric
/// order (big-endian, sign bit flipped): the time part of ordered keys.
pub fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The timestamp of [`time_key`] bytes; `None` unless exactly 8 bytes.
pub fn from_time_key(b: &[u8]) -> Option<i64> {
    let a: [u8; 8] = b.try_into().ok()?;
    Some((u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_cover_exactly_the_prefix() {
        let r = KeyRange::prefix(b"ab");
        assert!(r.contains(b"ab"));
        assert!(r.contains(b"ab\xff\xff"));
        assert!(!r.contains(b"ac"));
        assert!(!r.contains(b"aa\xff"));
        let r = KeyRange::prefix(b"a\xff");
        assert_eq!(r.to, Bound::Excluded(b"b".to_vec()));
        assert_eq!(KeyRange::prefix(b"\xff\xff").to, Bound::Unbounded);
        assert_eq!(
            KeyRange::prefix(b""),
            KeyRange::all().with_from_included(b"")
        );
    }

    impl KeyRange {
        fn with_from_included(mut self, f: &[u8]) -> Self {
            self.from = Bound::Included(f.to_vec());
            self
        }
    }
}
