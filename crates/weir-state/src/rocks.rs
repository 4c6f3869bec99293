//! [`RocksDbBackend`] and the process-wide [`StateBudget`].
//!
//! One RocksDB per task, one column family per store (`s.<store name>`),
//! metadata in the default column family. The write-ahead log is on: a
//! write set applied before a `kill -9` is there after it. Every
//! `rocksdb::` type stays in this module.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteBufferManager, DB,
};

use crate::{KeyRange, KvIter, StateBackend, StoreError, WriteSet, FORMAT_KEY, FORMAT_VERSION};

const META_CF: &str = "default";

/// One memory budget for every RocksDB store of the process: a shared block
/// cache of the whole budget, with memtables charged to it through a write
/// buffer manager (at most half of it), as Kafka Streams' bounded-memory
/// RocksDB config does. Index and filter blocks live in the cache too, so
/// the number of stores and files does not grow memory past the budget.
#[derive(Clone)]
pub struct StateBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    cache: Cache,
    write_buffers: WriteBufferManager,
    bytes: usize,
}

impl std::fmt::Debug for StateBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBudget")
            .field("bytes", &self.inner.bytes)
            .field("usage", &self.usage())
            .finish()
    }
}

impl StateBudget {
    /// A budget of `bytes` (at least 8 MiB).
    pub fn new(bytes: usize) -> Self {
        let bytes = bytes.max(8 << 20);
        let cache = Cache::new_lru_cache(bytes);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            bytes / 2,
            false,
            cache.clone(),
        );
        Self {
            inner: Arc::new(BudgetInner {
                cache,
                write_buffers,
                bytes,
            }),
        }
    }

    /// A budget of `mb` MiB (`state_memory_budget_mb`).
    pub fn from_mb(mb: u64) -> Self {
        Self::new(usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX))
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> usize {
        self.inner.bytes
    }

    /// Bytes charged to the budget now (cache and memtables).
    pub fn usage(&self) -> usize {
        self.inner.cache.get_usage()
    }

    fn db_options(&self) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.inner.cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        table.set_bloom_filter(10.0, false);
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_block_based_table_factory(&table);
        o.set_write_buffer_manager(&self.inner.write_buffers);
        // Small memtables: many tasks share one budget.
        o.set_write_buffer_size((self.inner.bytes / 16).clamp(1 << 20, 16 << 20));
        o.set_max_write_buffer_number(2);
        o.set_max_open_files(256);
        o.set_keep_log_file_num(2);
        // A small WAL: past it the memtables are flushed, so opening the
        // store after a crash replays at most this much (restart time).
        o.set_max_total_wal_size(4 << 20);
        o.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Stores and metadata (the checkpoint) are flushed together, so a
        // write set that skipped the WAL is lost whole or kept whole.
        o.set_atomic_flush(true);
        o
    }
}

/// A task's committed state in RocksDB; see the module docs.
pub struct RocksDbBackend {
    /// Shared with the readers handed out for queries (an in-flight query
    /// keeps the database open until it returns).
    db: Arc<DB>,
    path: PathBuf,
    /// Column family name per store index.
    families: Vec<String>,
}

impl std::fmt::Debug for RocksDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbBackend")
            .field("path", &self.path)
            .field("families", &self.families)
            .finish()
    }
}

impl Drop for RocksDbBackend {
    /// Flushes every store's memtable on close, so the next open reads SST
    /// files instead of replaying the write-ahead log.
    fn drop(&mut self) {
        for f in &self.families {
            if let Some(cf) = self.db.cf_handle(f) {
                if let Err(e) = self.db.flush_cf(cf) {
                    tracing::warn!(path = %self.path.display(), error = %e, "flushing a store on close failed; the WAL still holds its writes");
                }
            }
        }
    }
}

fn family(store: &str) -> String {
    format!("s.{store}")
}

impl RocksDbBackend {
    /// Opens (or creates) the RocksDB at `path` with one column family per
    /// name in `stores` (store index = position), under `budget`. Column
    /// families of stores no longer declared are kept, untouched.
    ///
    /// # Errors
    /// [`StoreError::Format`] when the directory was written by a newer
    /// format; [`StoreError::Engine`] or [`StoreError::Io`] when it cannot
    /// be opened (corruption included: the caller decides whether to wipe).
    pub fn open(path: &Path, stores: &[String], budget: &StateBudget) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let opts = budget.db_options();
        let families: Vec<String> = stores.iter().map(|s| family(s)).collect();
        let mut all: Vec<String> = DB::list_cf(&opts, path).unwrap_or_default();
        for f in &families {
            if !all.contains(f) {
                all.push(f.clone());
            }
        }
        let descriptors = all
            .iter()
            .filter(|f| *f != META_CF)
            .map(|f| ColumnFamilyDescriptor::new(f.as_str(), budget.db_options()));
        let db =
            DB::open_cf_descriptors(&opts, path, descriptors).map_err(|e| StoreError::Engine {
                store: path.display().to_string(),
                message: e.to_string(),
            })?;
        let mut backend = Self {
            db: Arc::new(db),
            path: path.to_path_buf(),
            families,
        };
        backend.check_format()?;
        Ok(backend)
    }

    fn check_format(&mut self) -> Result<(), StoreError> {
        match self.meta(FORMAT_KEY)? {
            Some(v) => {
                let found = String::from_utf8_lossy(&v).to_string();
                match found.parse::<u32>() {
                    Ok(n) if n <= FORMAT_VERSION => Ok(()),
                    _ => Err(StoreError::Format {
                        path: self.path.clone(),
                        found,
                        supported: FORMAT_VERSION,
                    }),
                }
            }
            None => self.apply(WriteSet {
                unlogged: false,
                writes: Vec::new(),
                meta: vec![(
                    FORMAT_KEY.to_string(),
                    Some(FORMAT_VERSION.to_string().into_bytes()),
                )],
            }),
        }
    }

    /// The directory of this database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn engine(&self, store: usize) -> impl Fn(rocksdb::Error) -> StoreError + '_ {
        move |e| StoreError::Engine {
            store: self
                .families
                .get(store)
                .map_or_else(|| META_CF.to_string(), |f| f[2..].to_string()),
            message: e.to_string(),
        }
    }

    fn cf(&self, store: usize) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(&self.families[store])
            .expect("every declared store's column family is opened")
    }
}

impl StateBackend for RocksDbBackend {
    fn get(&self, store: usize, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.cf(store), key)
            .map_err(self.engine(store))
    }

    fn range(&self, store: usize, range: &KeyRange) -> Result<KvIter<'_>, StoreError> {
        use std::ops::Bound;
        let mut read = ReadOptions::default();
        match &range.to {
            Bound::Excluded(t) => read.set_iterate_upper_bound(t.clone()),
            Bound::Included(t) => {
                // The smallest key above `t`.
                let mut end = t.clone();
                end.push(0);
                read.set_iterate_upper_bound(end);
            }
            Bound::Unbounded => {}
        }
        let (start, skip): (&[u8], Option<Vec<u8>>) = match &range.from {
            Bound::Included(f) => (f, None),
            Bound::Excluded(f) => (f, Some(f.clone())),
            Bound::Unbounded => (&[], None),
        };
        let iter = self.db.iterator_cf_opt(
            self.cf(store),
            read,
            IteratorMode::From(start, Direction::Forward),
        );
        let err = self.engine(store);
        Ok(Box::new(
            iter.map(move |r| r.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(&err))
                .filter(move |r| !matches!((r, &skip), (Ok((k, _)), Some(s)) if k == s)),
        ))
    }

    fn apply(&mut self, set: WriteSet) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (store, key, value) in &set.writes {
            let cf = self.cf(*store);
            match value {
                Some(v) => batch.put_cf(cf, key, v),
                None => batch.delete_cf(cf, key),
            }
        }
        for (name, value) in &set.meta {
            match value {
                Some(v) => batch.put(name.as_bytes(), v),
                None => batch.delete(name.as_bytes()),
            }
        }
        if set.unlogged {
            let mut opts = rocksdb::WriteOptions::default();
            opts.disable_wal(true);
            self.db
                .write_opt(batch, &opts)
                .map_err(self.engine(usize::MAX))
        } else {
            self.db.write(batch).map_err(self.engine(usize::MAX))
        }
    }

    fn persist(&mut self) -> Result<(), StoreError> {
        let mut cfs: Vec<&rocksdb::ColumnFamily> = self
            .families
            .iter()
            .filter_map(|f| self.db.cf_handle(f))
            .collect();
        if let Some(meta) = self.db.cf_handle(META_CF) {
            cfs.push(meta);
        }
        self.db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
            .map_err(self.engine(usize::MAX))
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get(name.as_bytes())
            .map_err(self.engine(usize::MAX))
    }

    fn approximate_len(&self, store: usize) -> Result<u64, StoreError> {
        Ok(self
            .db
            .property_int_value_cf(self.cf(store), "rocksdb.estimate-num-keys")
            .map_err(self.engine(store))?
            .unwrap_or(0))
    }

    fn reader(&self, store: usize) -> Option<Arc<dyn crate::StoreReader>> {
        Some(Arc::new(RocksReader {
            db: self.db.clone(),
            family: self.families.get(store)?.clone(),
        }))
    }

    fn clear(&mut self, store: usize) -> Result<(), StoreError> {
        // Deleting key by key in bounded batches: a wipe is rare (corrupt
        // or foreign state) and is followed by a full restore anyway.
        const BATCH: usize = 10_000;
        loop {
            let keys: Vec<Box<[u8]>> = self
                .db
                .iterator_cf(self.cf(store), IteratorMode::Start)
                .take(BATCH)
                .map(|r| r.map(|(k, _)| k))
                .collect::<Result<_, _>>()
                .map_err(self.engine(store))?;
            if keys.is_empty() {
                return Ok(());
            }
            let mut batch = WriteBatch::default();
            for k in &keys {
                batch.delete_cf(self.cf(store), k);
            }
            self.db.write(batch).map_err(self.engine(store))?;
        }
    }
}

/// A store's committed state read from other threads; see
/// [`crate::StoreReader`]. Commits apply whole write batches, so a read sees
/// a commit entirely or not at all.
struct RocksReader {
    db: Arc<DB>,
    family: String,
}

impl RocksReader {
    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Engine {
            store: self.family[2..].to_string(),
            message: e.to_string(),
        }
    }

    fn cf(&self) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(&self.family)
            .ok_or_else(|| self.err("column family missing"))
    }
}

impl crate::StoreReader for RocksReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf()?, key).map_err(|e| self.err(e))
    }

    fn range(&self, range: &KeyRange, limit: usize) -> Result<Vec<crate::KvPair>, StoreError> {
        let mut out = Vec::new();
        let start: &[u8] = match &range.from {
            std::ops::Bound::Included(f) | std::ops::Bound::Excluded(f) => f,
            std::ops::Bound::Unbounded => &[],
        };
        let iter = self
            .db
            .iterator_cf(self.cf()?, IteratorMode::From(start, Direction::Forward));
        for r in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = r.map_err(|e| self.err(e))?;
            if !range.below_end(&k) {
                break;
            }
            if range.contains(&k) {
                out.push((k.into_vec(), v.into_vec()));
            }
        }
        Ok(out)
    }

    fn approximate_len(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .property_int_value_cf(self.cf()?, "rocksdb.estimate-num-keys")
            .map_err(|e| self.err(e))?
            .unwrap_or(0))
    }
}
