//! [`TaskState`]: a task's stores, pending writes over committed state.

use std::iter::Peekable;

use crate::{
    KeyRange, KeyValueStore, KvIter, KvPair, PendingWrites, StateBackend, StoreError, WriteSet,
};

/// A store of a task, by its position in the task's declared stores.
pub type StoreId = usize;

/// The state of one task: its declared stores in one [`StateBackend`], and
/// the [`PendingWrites`] of the current commit interval over them.
///
/// # Examples
/// ```
/// use weir_state::{InMemoryBackend, KeyValueStore, TaskState};
///
/// let mut state = TaskState::new(Box::new(InMemoryBackend::new(1)), vec!["counts".into()]);
/// let id = state.store_id("counts").unwrap();
/// state.store(id).put(b"k", b"1").unwrap();
/// assert_eq!(state.store(id).get(b"k").unwrap(), Some(b"1".to_vec()));
/// state.abort(); // the write was never committed
/// assert_eq!(state.store(id).get(b"k").unwrap(), None);
/// ```
pub struct TaskState {
    backend: Box<dyn StateBackend>,
    pending: PendingWrites,
    names: Vec<String>,
    /// Unlogged sets were applied since the last persist.
    unlogged: bool,
}

impl std::fmt::Debug for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskState")
            .field("stores", &self.names)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl TaskState {
    /// The state over `backend`, whose stores are `names` in this order.
    pub fn new(backend: Box<dyn StateBackend>, names: Vec<String>) -> Self {
        Self {
            backend,
            pending: PendingWrites::new(),
            names,
            unlogged: false,
        }
    }

    /// The names of the task's stores, by [`StoreId`].
    pub fn store_names(&self) -> &[String] {
        &self.names
    }

    /// The id of the store named `name`.
    ///
    /// # Errors
    /// [`StoreError::UnknownStore`] when the task has no such store.
    pub fn store_id(&self, name: &str) -> Result<StoreId, StoreError> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::UnknownStore {
                name: name.to_string(),
                declared: self.names.join(", "),
            })
    }

    /// A key-value view of store `id`: reads see pending writes first.
    ///
    /// # Panics
    /// If `id` is not one of this task's store ids.
    pub fn store(&mut self, id: StoreId) -> TaskStore<'_> {
        assert!(id < self.names.len(), "store id {id} out of range");
        TaskStore { state: self, id }
    }

    /// The value of `key` in store `id`, pending writes first.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    pub fn get(&self, id: StoreId, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.get(id, key) {
            Some(entry) => Ok(entry.map(<[u8]>::to_vec)),
            None => self.backend.get(id, key),
        }
    }

    /// The entries of store `id` in `range`, pending writes merged over the
    /// committed ones (pending deletes hide committed entries).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    pub fn range(&self, id: StoreId, range: KeyRange) -> Result<KvIter<'_>, StoreError> {
        let committed = self.backend.range(id, &range)?;
        let pending = self.pending.range(id, &range);
        Ok(Box::new(Merge {
            pending: pending.peekable(),
            committed: committed.peekable(),
        }))
    }

    /// Marks the start of a record's writes.
    pub fn savepoint(&mut self) {
        self.pending.savepoint();
    }

    /// Drops the writes made since [`TaskState::savepoint`].
    pub fn rollback_to_savepoint(&mut self) {
        self.pending.rollback_to_savepoint();
    }

    /// Keeps the writes made since [`TaskState::savepoint`].
    pub fn release_savepoint(&mut self) {
        self.pending.release_savepoint();
    }

    /// The pending writes.
    pub fn pending(&self) -> &PendingWrites {
        &self.pending
    }

    /// Applies every pending write, with `meta`, to the backend in one
    /// atomic write set. Call only once the transaction that carried these
    /// writes committed.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails; the pending writes are then
    /// lost from memory and the backend keeps the previous commit.
    pub fn commit(&mut self, meta: Vec<(String, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        if self.pending.is_empty() && meta.is_empty() {
            return Ok(());
        }
        let mut set = WriteSet {
            writes: Vec::with_capacity(self.pending.len()),
            meta,
            unlogged: false,
        };
        self.pending.drain_into(&mut set);
        self.backend.apply(set)
    }

    /// Applies changelog records replayed into the committed state (with
    /// `meta`, the new checkpoint) in one atomic write set, bypassing the
    /// pending writes. Only while restoring: nothing may be pending.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    pub fn restore(&mut self, set: WriteSet) -> Result<(), StoreError> {
        debug_assert!(self.pending.is_empty(), "restoring under pending writes");
        self.unlogged |= set.unlogged;
        self.backend.apply(set)
    }

    /// Makes restored (unlogged) writes durable; call when a restoration
    /// ends, before the task writes anything else.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    pub fn persist(&mut self) -> Result<(), StoreError> {
        if std::mem::take(&mut self.unlogged) {
            self.backend.persist()?;
        }
        Ok(())
    }

    /// Removes every committed entry of store `id` (before a full restore).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    pub fn wipe(&mut self, id: StoreId) -> Result<(), StoreError> {
        self.pending.clear();
        self.backend.clear(id)
    }

    /// Drops every pending write: the state is the last commit again.
    pub fn abort(&mut self) {
        self.pending.clear();
    }

    /// A metadata entry of the backend.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.meta(name)
    }

    /// A reader of store `id`'s committed state for other threads (see
    /// [`crate::StoreReader`]); `None` when the backend cannot share it.
    pub fn reader(&self, id: StoreId) -> Option<std::sync::Arc<dyn crate::StoreReader>> {
        self.backend.reader(id)
    }

    /// The estimated number of committed keys of store `id`.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    pub fn approximate_len(&self, id: StoreId) -> Result<u64, StoreError> {
        self.backend.approximate_len(id)
    }
}

/// A task's view of one of its stores; see [`TaskState::store`].
pub struct TaskStore<'a> {
    state: &'a mut TaskState,
    id: StoreId,
}

impl KeyValueStore for TaskStore<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.state.get(self.id, key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.state.pending.set(self.id, key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.state.pending.set(self.id, key, None);
        Ok(())
    }

    fn range(&self, range: KeyRange) -> Result<KvIter<'_>, StoreError> {
        self.state.range(self.id, range)
    }

    fn approximate_len(&self) -> Result<u64, StoreError> {
        // Committed keys plus pending puts of new keys is not knowable
        // without reads; the committed estimate is what RocksDB offers too.
        self.state.approximate_len(self.id)
    }
}

/// Pending entries merged over committed ones, in key order.
struct Merge<'a, P: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>> {
    pending: Peekable<P>,
    committed: Peekable<KvIter<'a>>,
}

impl<'a, P: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>> Iterator for Merge<'a, P> {
    type Item = Result<KvPair, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        loop {
            let order = match (self.pending.peek(), self.committed.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) | (_, Some(Err(_))) => Ordering::Greater,
                (Some((pk, _)), Some(Ok((ck, _)))) => (*pk).cmp(ck.as_slice()),
            };
            if order == Ordering::Equal {
                // The pending entry shadows the committed one.
                self.committed.next();
            }
            if order == Ordering::Greater {
                return self.committed.next();
            }
            let (k, v) = self.pending.next()?;
            if let Some(v) = v {
                return Some(Ok((k.to_vec(), v.to_vec())));
            }
            // A pending delete: skip it (and what it shadowed).
        }
    }
}
