//! [`InMemoryBackend`]: committed state in `BTreeMap`s.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::{KeyRange, KvIter, StateBackend, StoreError, WriteSet};

/// Committed state in memory: the `TopologyTestDriver`'s backend and the
/// model RocksDB is tested against. Nothing survives the process.
#[derive(Debug, Default, Clone)]
pub struct InMemoryBackend {
    stores: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
    meta: BTreeMap<String, Vec<u8>>,
}

impl InMemoryBackend {
    /// A backend with `stores` empty stores.
    pub fn new(stores: usize) -> Self {
        Self {
            stores: vec![BTreeMap::new(); stores],
            meta: BTreeMap::new(),
        }
    }

    fn store(&self, store: usize) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.stores[store]
    }
}

pub(crate) fn as_ref_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Whether a range is empty by its bounds (BTreeMap::range panics on those).
pub(crate) fn is_empty_range(range: &KeyRange) -> bool {
    match (&range.from, &range.to) {
        (Bound::Included(f), Bound::Included(t)) => f > t,
        (Bound::Included(f), Bound::Excluded(t))
        | (Bound::Excluded(f), Bound::Included(t))
        | (Bound::Excluded(f), Bound::Excluded(t)) => f >= t,
        _ => false,
    }
}

impl StateBackend for InMemoryBackend {
    fn get(&self, store: usize, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store(store).get(key).cloned())
    }

    fn range(&self, store: usize, range: &KeyRange) -> Result<KvIter<'_>, StoreError> {
        if is_empty_range(range) {
            return Ok(Box::new(std::iter::empty()));
        }
        let bounds = (as_ref_bound(&range.from), as_ref_bound(&range.to));
        Ok(Box::new(
            self.store(store)
                .range::<[u8], _>(bounds)
                .map(|(k, v)| Ok((k.clone(), v.clone()))),
        ))
    }

    fn apply(&mut self, set: WriteSet) -> Result<(), StoreError> {
        for (store, key, value) in set.writes {
            match value {
                Some(v) => self.stores[store].insert(key, v),
                None => self.stores[store].remove(&key),
            };
        }
        for (name, value) in set.meta {
            match value {
                Some(v) => self.meta.insert(name, v),
                None => self.meta.remove(&name),
            };
        }
        Ok(())
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(name).cloned())
    }

    fn approximate_len(&self, store: usize) -> Result<u64, StoreError> {
        Ok(self.store(store).len() as u64)
    }

    fn clear(&mut self, store: usize) -> Result<(), StoreError> {
        self.stores[store].clear();
        Ok(())
    }
}
