//! [`StateBackend`]: where a task's committed state lives.

use crate::{KeyRange, KvIter, StoreError};

/// One atomic change to a backend: store writes (a `None` value deletes)
/// and metadata entries (a `None` value removes the entry), applied all
/// together or not at all.
#[derive(Debug, Default)]
pub struct WriteSet {
    /// `(store index, key, value)`; the store index is the position of the
    /// store in the list the backend was opened with.
    pub writes: Vec<(usize, Vec<u8>, Option<Vec<u8>>)>,
    /// `(name, value)` metadata (format version, checkpoint, …).
    pub meta: Vec<(String, Option<Vec<u8>>)>,
    /// The set may skip the write-ahead log (a restore's bulk writes): a
    /// crash before [`StateBackend::persist`] may then lose it — always
    /// whole, with its metadata, never in part. Call `persist` before any
    /// logged write follows.
    pub unlogged: bool,
}

/// The committed state of one task: one keyspace per declared store plus a
/// small metadata map, changed only by whole [`WriteSet`]s.
///
/// Implementations: [`crate::InMemoryBackend`] and, with the `rocksdb`
/// feature, [`crate::RocksDbBackend`].
pub trait StateBackend: Send {
    /// The value of `key` in store `store`.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn get(&self, store: usize, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The entries of store `store` in `range`, in key order.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn range(&self, store: usize, range: &KeyRange) -> Result<KvIter<'_>, StoreError>;

    /// Applies `set` atomically (and durably, for persistent backends).
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails; nothing of `set` is applied then.
    fn apply(&mut self, set: WriteSet) -> Result<(), StoreError>;

    /// A metadata entry.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// An estimate of the number of keys in store `store`.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn approximate_len(&self, store: usize) -> Result<u64, StoreError>;

    /// Makes every applied set durable, unlogged ones included (RocksDB:
    /// flushes every column family at once).
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn persist(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Removes every entry of store `store` (a store wiped before a full
    /// restore from its changelog). Metadata is kept.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn clear(&mut self, store: usize) -> Result<(), StoreError>;

    /// A reader of store `store`'s committed state usable from other
    /// threads while the task runs (interactive queries), or `None` when
    /// the backend cannot share its state.
    fn reader(&self, store: usize) -> Option<std::sync::Arc<dyn StoreReader>> {
        let _ = store;
        None
    }
}

/// Reads one store's committed state from any thread (an interactive
/// query): it never sees a pending write, only what commits applied.
pub trait StoreReader: Send + Sync {
    /// The value of `key`.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` entries in `range`, in key order.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn range(&self, range: &KeyRange, limit: usize) -> Result<Vec<crate::KvPair>, StoreError>;

    /// An estimate of the number of keys.
    ///
    /// # Errors
    /// [`StoreError`] when the engine fails.
    fn approximate_len(&self) -> Result<u64, StoreError>;
}
