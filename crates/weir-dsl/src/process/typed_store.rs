//! [`TypedStore`]: a store read and written through its codecs from a
//! processor (moved out of `process.rs`; code unchanged).

use weir_core::ProcessError;
use weir_state::{KeyRange, TaskState};

use super::Store;

/// A store seen through its codecs, from a
/// [`ProcessorContext`](super::ProcessorContext).
pub struct TypedStore<'a, K, V> {
    pub(super) node: &'a str,
    pub(super) state: &'a mut TaskState,
    pub(super) id: usize,
    pub(super) store: &'a Store<K, V>,
}

impl<K: 'static, V: 'static> TypedStore<'_, K, V> {
    fn store_err(&self, e: weir_state::StoreError) -> ProcessError {
        ProcessError::Store {
            node: self.node.to_string(),
            store: self.store.name.to_string(),
            message: e.to_string(),
        }
    }

    fn codec_err(&self, source: weir_core::CodecError) -> ProcessError {
        ProcessError::Codec {
            node: self.node.to_string(),
            source,
        }
    }

    /// The value of `key`, if any (this task's uncommitted writes included).
    ///
    /// # Errors
    /// A codec error (dead-letters the record) or a store failure.
    pub fn get(&self, key: &K) -> Result<Option<V>, ProcessError> {
        let k = self
            .store
            .key_codec
            .encode(key)
            .map_err(|e| self.codec_err(e))?;
        match self.state.get(self.id, &k).map_err(|e| self.store_err(e))? {
            Some(v) => Ok(Some(
                self.store
                    .value_codec
                    .decode(&v)
                    .map_err(|e| self.codec_err(e))?,
            )),
            None => Ok(None),
        }
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// A codec error (dead-letters the record).
    pub fn put(&mut self, key: &K, value: &V) -> Result<(), ProcessError> {
        let k = self
            .store
            .key_codec
            .encode(key)
            .map_err(|e| self.codec_err(e))?;
        let v = self
            .store
            .value_codec
            .encode(value)
            .map_err(|e| self.codec_err(e))?;
        use weir_state::KeyValueStore as _;
        self.state
            .store(self.id)
            .put(&k, &v)
            .map_err(|e| self.store_err(e))
    }

    /// Removes `key`.
    ///
    /// # Errors
    /// A codec error (dead-letters the record).
    pub fn delete(&mut self, key: &K) -> Result<(), ProcessError> {
        let k = self
            .store
            .key_codec
            .encode(key)
            .map_err(|e| self.codec_err(e))?;
        use weir_state::KeyValueStore as _;
        self.state
            .store(self.id)
            .delete(&k)
            .map_err(|e| self.store_err(e))
    }

    /// Entries with `from <= key <= to` in the order of their encoded keys.
    ///
    /// # Errors
    /// A codec error or a store failure.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, ProcessError> {
        let f = self
            .store
            .key_codec
            .encode(from)
            .map_err(|e| self.codec_err(e))?;
        let t = self
            .store
            .key_codec
            .encode(to)
            .map_err(|e| self.codec_err(e))?;
        self.scan(KeyRange::inclusive(&f, &t))
    }

    /// Every entry, in the order of their encoded keys.
    ///
    /// # Errors
    /// A codec error or a store failure.
    pub fn all(&self) -> Result<Vec<(K, V)>, ProcessError> {
        self.scan(KeyRange::all())
    }

    /// Entries whose encoded key starts with `prefix`.
    ///
    /// # Errors
    /// A codec error or a store failure.
    pub fn prefix(&self, prefix: &[u8]) -> Result<Vec<(K, V)>, ProcessError> {
        self.scan(KeyRange::prefix(prefix))
    }

    fn scan(&self, range: KeyRange) -> Result<Vec<(K, V)>, ProcessError> {
        let iter = self
            .state
            .range(self.id, range)
            .map_err(|e| self.store_err(e))?;
        iter.map(|r| {
            let (k, v) = r.map_err(|e| self.store_err(e))?;
            Ok((
                self.store
                    .key_codec
                    .decode(&k)
                    .map_err(|e| self.codec_err(e))?,
                self.store
                    .value_codec
                    .decode(&v)
                    .map_err(|e| self.codec_err(e))?,
            ))
        })
        .collect()
    }

    /// The estimated number of committed keys.
    ///
    /// # Errors
    /// A store failure.
    pub fn approximate_len(&self) -> Result<u64, ProcessError> {
        self.state
            .approximate_len(self.id)
            .map_err(|e| self.store_err(e))
    }
}
