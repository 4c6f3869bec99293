//! Interactive queries: [`LocalStores`], the stores this instance holds,
//! read from any thread while the stream threads process.
//!
//! A task registers a reader of each of its stores when it opens them
//! (restoring) and marks them running when it runs; closing the task takes
//! them out before its RocksDB closes. Readers see committed state only:
//! pending writes live in the stream thread and reach RocksDB in one write
//! batch after `commit_transaction`, so every value read here is one a
//! `read_committed` reader of the outputs could have seen. A store's key
//! lives in partition `murmur2(key) mod partitions` (the default
//! partitioner on the serialized key, as Kafka Streams assumes); asking for
//! a partition this instance does not hold is a [`QueryError::NotLocal`],
//! never an empty answer.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use weir_core::partition_for_key;
use weir_state::{KeyRange, KvPair, StoreReader};

/// Why a query could not be answered here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The topology has no store of that name.
    #[error("the topology has no store {store}; its stores are {known}")]
    UnknownStore {
        /// The store asked for.
        store: String,
        /// The topology's stores, comma-separated.
        known: String,
    },
    /// Another instance (or nobody, during a rebalance) holds the partition.
    #[error("store {store}: partition {partition} is not held by this instance")]
    NotLocal {
        /// The store.
        store: String,
        /// The key's partition.
        partition: i32,
    },
    /// The partition is held here but still restoring (its values may be
    /// behind the committed outputs).
    #[error("store {store}: partition {partition} is restoring")]
    Restoring {
        /// The store.
        store: String,
        /// The partition.
        partition: i32,
    },
    /// A stored key or value did not decode with the store's codec, or the
    /// asked key did not encode.
    #[error("store {store}: {message}")]
    Codec {
        /// The store.
        store: String,
        /// The codec's message.
        message: String,
    },
    /// The store's engine failed.
    #[error("store {store}: {message}")]
    Store {
        /// The store.
        store: String,
        /// The engine's message.
        message: String,
    },
}

/// The error for an unknown store, built from the map already locked (a
/// second read lock while a writer waits may deadlock).
fn unknown(stores: &BTreeMap<String, StoreEntry>, store: &str) -> QueryError {
    QueryError::UnknownStore {
        store: store.to_string(),
        known: stores.keys().cloned().collect::<Vec<_>>().join(", "),
    }
}

/// One partition of a store held by this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePartition {
    /// The store's name.
    pub store: String,
    /// The partition (the task's partition number).
    pub partition: i32,
    /// Whether it is still being restored.
    pub restoring: bool,
}

struct Held {
    reader: Arc<dyn StoreReader>,
    restoring: bool,
}

struct StoreEntry {
    /// Partitions of the store (tasks of its sub-topology); 0 until known.
    partitions: i32,
    held: BTreeMap<i32, Held>,
}

/// The stores of this instance, for queries; see the module docs. Cheap to
/// share (`Arc`), safe to use from any thread.
pub struct LocalStores {
    stores: RwLock<BTreeMap<String, StoreEntry>>,
}

impl std::fmt::Debug for LocalStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStores")
            .field("partitions", &self.partitions())
            .finish()
    }
}

impl LocalStores {
    /// The stores `counts` names (store → partition count).
    pub(crate) fn new(counts: impl IntoIterator<Item = (String, i32)>) -> Self {
        let stores = counts
            .into_iter()
            .map(|(s, partitions)| {
                (
                    s,
                    StoreEntry {
                        partitions,
                        held: BTreeMap::new(),
                    },
                )
            })
            .collect();
        Self {
            stores: RwLock::new(stores),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, StoreEntry>> {
        self.stores.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, StoreEntry>> {
        self.stores.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A task opened `store`'s partition `partition`: queryable once running.
    pub(crate) fn register(&self, store: &str, partition: i32, reader: Arc<dyn StoreReader>) {
        if let Some(e) = self.write().get_mut(store) {
            e.held.insert(
                partition,
                Held {
                    reader,
                    restoring: true,
                },
            );
        }
    }

    /// The task holding `store`'s `partition` finished restoring.
    pub(crate) fn set_running(&self, store: &str, partition: i32) {
        if let Some(h) = self
            .write()
            .get_mut(store)
            .and_then(|e| e.held.get_mut(&partition))
        {
            h.restoring = false;
        }
    }

    /// The task holding `store`'s `partition` closes.
    pub(crate) fn unregister(&self, store: &str, partition: i32) {
        if let Some(e) = self.write().get_mut(store) {
            e.held.remove(&partition);
        }
    }

    /// The topology's store names, in order.
    pub fn stores(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Every store partition this instance holds, and whether it restores.
    pub fn partitions(&self) -> Vec<StorePartition> {
        self.read()
            .iter()
            .flat_map(|(store, e)| {
                e.held.iter().map(|(&partition, h)| StorePartition {
                    store: store.clone(),
                    partition,
                    restoring: h.restoring,
                })
            })
            .collect()
    }

    /// The number of partitions of `store` (its sub-topology's tasks).
    ///
    /// # Errors
    /// [`QueryError::UnknownStore`].
    pub fn partition_count(&self, store: &str) -> Result<i32, QueryError> {
        let stores = self.read();
        stores
            .get(store)
            .map(|e| e.partitions)
            .ok_or_else(|| unknown(&stores, store))
    }

    /// The partitions of `store` this instance holds (restoring ones
    /// included), in order.
    ///
    /// # Errors
    /// [`QueryError::UnknownStore`].
    pub fn held_partitions(&self, store: &str) -> Result<Vec<i32>, QueryError> {
        let stores = self.read();
        let entry = stores.get(store).ok_or_else(|| unknown(&stores, store))?;
        Ok(entry.held.keys().copied().collect())
    }

    /// The partition of `store` that holds the serialized `key`.
    ///
    /// # Errors
    /// [`QueryError::UnknownStore`].
    pub fn partition_of(&self, store: &str, key: &[u8]) -> Result<i32, QueryError> {
        let n = self.partition_count(store)?;
        Ok(partition_for_key(key, n.max(1).unsigned_abs()) as i32)
    }

    /// The reader of a held, running partition.
    fn reader(&self, store: &str, partition: i32) -> Result<Arc<dyn StoreReader>, QueryError> {
        let stores = self.read();
        let entry = stores.get(store).ok_or_else(|| unknown(&stores, store))?;
        match entry.held.get(&partition) {
            None => Err(QueryError::NotLocal {
                store: store.to_string(),
                partition,
            }),
            Some(h) if h.restoring => Err(QueryError::Restoring {
                store: store.to_string(),
                partition,
            }),
            Some(h) => Ok(h.reader.clone()),
        }
    }

    fn engine(store: &str) -> impl Fn(weir_state::StoreError) -> QueryError + '_ {
        move |e| QueryError::Store {
            store: store.to_string(),
            message: e.to_string(),
        }
    }

    /// The committed value of the serialized `key` in `store`.
    ///
    /// # Errors
    /// [`QueryError::NotLocal`] when another instance holds the key's
    /// partition, [`QueryError::Restoring`], [`QueryError::UnknownStore`],
    /// [`QueryError::Store`].
    pub fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, QueryError> {
        let partition = self.partition_of(store, key)?;
        // The lock is not held during the read: a closing task is not
        // kept waiting by a query.
        let reader = self.reader(store, partition)?;
        reader.get(key).map_err(Self::engine(store))
    }

    /// Up to `limit` committed entries of `store` in `range`, in key order,
    /// from one partition.
    ///
    /// # Errors
    /// As [`LocalStores::get`].
    pub fn range_in(
        &self,
        store: &str,
        partition: i32,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<KvPair>, QueryError> {
        let reader = self.reader(store, partition)?;
        reader.range(range, limit).map_err(Self::engine(store))
    }

    /// Up to `limit` committed entries of `store` in `range` over every
    /// partition this instance holds, in key order.
    ///
    /// # Errors
    /// [`QueryError::Restoring`] when a held partition is restoring, else
    /// as [`LocalStores::get`].
    pub fn range(
        &self,
        store: &str,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<KvPair>, QueryError> {
        let held = self.held_partitions(store)?;
        let all = self.range_over(store, &held, range, limit)?;
        Ok(all.into_iter().map(|(_, kv)| kv).collect())
    }

    /// Up to `limit` committed entries of `store` in `range` over
    /// `partitions` (each held here), in key order, each with the partition
    /// it was read from.
    ///
    /// # Errors
    /// [`QueryError::NotLocal`] for a partition not held here, else as
    /// [`LocalStores::range`].
    pub fn range_over(
        &self,
        store: &str,
        partitions: &[i32],
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<(i32, KvPair)>, QueryError> {
        let mut all = Vec::new();
        for &p in partitions {
            let read = self.range_in(store, p, range, limit)?;
            all.extend(read.into_iter().map(|kv| (p, kv)));
        }
        all.sort_by(|a, b| a.1 .0.cmp(&b.1 .0));
        all.truncate(limit);
        Ok(all)
    }

    /// An estimate of the committed keys of `store` over the partitions
    /// this instance holds.
    ///
    /// # Errors
    /// As [`LocalStores::range`].
    pub fn approximate_len(&self, store: &str) -> Result<u64, QueryError> {
        let held = self.held_partitions(store)?;
        let mut n = 0;
        for p in held {
            n += self
                .reader(store, p)?
                .approximate_len()
                .map_err(Self::engine(store))?;
        }
        Ok(n)
    }
}
