//! Typed queries of a running instance's stores: [`Running::store`] gives a
//! [`StoreQuery`] over the committed state this instance holds (see
//! [`weir_runtime::LocalStores`]).

use std::sync::Arc;

use weir_dsl::Store;
use weir_runtime::{Instance, LocalStores, QueryError, Result, StorePartition};
use weir_state::KeyRange;

/// A topology running in this process (from [`crate::App::start`]): its
/// stores for queries, `stop`, `wait`.
#[derive(Debug)]
pub struct Running {
    instance: Instance,
    /// The admin endpoint, when `admin_listen` is set (stops with this).
    admin: Option<weir_admin::AdminServer>,
    /// The trace export, flushed when the instance has stopped.
    telemetry: crate::telemetry::Telemetry,
}

impl Running {
    pub(crate) fn new(
        instance: Instance,
        admin: Option<weir_admin::AdminServer>,
        telemetry: crate::telemetry::Telemetry,
    ) -> Self {
        Self {
            instance,
            admin,
            telemetry,
        }
    }

    /// Where the admin endpoint listens, when `admin_listen` is set (with
    /// port 0, the port picked).
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr())
    }

    /// Whether every stream thread has its assignment and no task is
    /// restoring (the admin endpoint's `/ready`).
    pub fn is_ready(&self) -> bool {
        self.instance.is_ready()
    }

    /// A read-only handle on `store`, usable from any thread while the
    /// instance processes; it reads committed state only.
    pub fn store<K: 'static, V: 'static>(&self, store: &Store<K, V>) -> StoreQuery<K, V> {
        StoreQuery {
            stores: self.instance.stores(),
            store: store.clone(),
        }
    }

    /// The untyped view of every store this instance holds.
    pub fn stores(&self) -> Arc<LocalStores> {
        self.instance.stores()
    }

    /// The instance's counters.
    pub fn stats(&self) -> Arc<weir_runtime::RuntimeStats> {
        self.instance.stats()
    }

    /// Asks the instance to commit and stop; [`Running::wait`] returns when
    /// it has.
    pub fn stop(&self) {
        self.instance.stop();
    }

    /// Whether the instance has stopped (asked to, or failed).
    pub fn is_finished(&self) -> bool {
        self.instance.is_finished()
    }

    /// Waits until the instance stops, then flushes its trace export
    /// (`otlp_endpoint`).
    ///
    /// # Errors
    /// As [`weir_runtime::Instance::wait`].
    pub fn wait(self) -> Result<()> {
        let Running {
            instance,
            admin,
            telemetry,
        } = self;
        let result = instance.wait();
        drop(admin);
        telemetry.shutdown();
        result
    }
}

/// Typed, read-only queries of one store's committed state on this
/// instance. Cheap to clone; `Send` and `Sync`.
pub struct StoreQuery<K, V> {
    stores: Arc<LocalStores>,
    store: Store<K, V>,
}

impl<K, V> Clone for StoreQuery<K, V> {
    fn clone(&self) -> Self {
        Self {
            stores: self.stores.clone(),
            store: self.store.clone(),
        }
    }
}

impl<K: 'static, V: 'static> StoreQuery<K, V> {
    fn codec_err(&self, e: weir_core::CodecError) -> QueryError {
        QueryError::Codec {
            store: self.store.name().to_string(),
            message: e.to_string(),
        }
    }

    fn decode(
        &self,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> std::result::Result<Vec<(K, V)>, QueryError> {
        entries
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    self.store.decode_key(&k).map_err(|e| self.codec_err(e))?,
                    self.store.decode_value(&v).map_err(|e| self.codec_err(e))?,
                ))
            })
            .collect()
    }

    /// The committed value of `key`.
    ///
    /// # Errors
    /// [`QueryError::NotLocal`] when another instance holds the key's
    /// partition; [`QueryError::Restoring`] while it restores here;
    /// [`QueryError::Codec`], [`QueryError::Store`].
    pub fn get(&self, key: &K) -> std::result::Result<Option<V>, QueryError> {
        let k = self.store.encode_key(key).map_err(|e| self.codec_err(e))?;
        self.stores
            .get(self.store.name(), &k)?
            .map(|v| self.store.decode_value(&v).map_err(|e| self.codec_err(e)))
            .transpose()
    }

    /// The partition holding `key` (whether or not this instance holds it).
    ///
    /// # Errors
    /// [`QueryError::Codec`] when the key does not encode.
    pub fn partition_of(&self, key: &K) -> std::result::Result<i32, QueryError> {
        let k = self.store.encode_key(key).map_err(|e| self.codec_err(e))?;
        self.stores.partition_of(self.store.name(), &k)
    }

    /// Up to `limit` committed entries with `from <= key <= to` (by encoded
    /// key order) over the partitions this instance holds.
    ///
    /// # Errors
    /// [`QueryError::Restoring`] when a held partition restores; as
    /// [`StoreQuery::get`].
    pub fn range(
        &self,
        from: &K,
        to: &K,
        limit: usize,
    ) -> std::result::Result<Vec<(K, V)>, QueryError> {
        let f = self.store.encode_key(from).map_err(|e| self.codec_err(e))?;
        let t = self.store.encode_key(to).map_err(|e| self.codec_err(e))?;
        let entries = self
            .stores
            .range(self.store.name(), &KeyRange::inclusive(&f, &t), limit)?;
        self.decode(entries)
    }

    /// Up to `limit` committed entries whose encoded key starts with
    /// `prefix`, over the partitions this instance holds.
    ///
    /// # Errors
    /// As [`StoreQuery::range`].
    pub fn prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> std::result::Result<Vec<(K, V)>, QueryError> {
        let entries = self
            .stores
            .range(self.store.name(), &KeyRange::prefix(prefix), limit)?;
        self.decode(entries)
    }

    /// Up to `limit` committed entries over the partitions held here.
    ///
    /// # Errors
    /// As [`StoreQuery::range`].
    pub fn all(&self, limit: usize) -> std::result::Result<Vec<(K, V)>, QueryError> {
        let entries = self
            .stores
            .range(self.store.name(), &KeyRange::all(), limit)?;
        self.decode(entries)
    }

    /// An estimate of the committed keys over the partitions held here.
    ///
    /// # Errors
    /// As [`StoreQuery::range`].
    pub fn approximate_len(&self) -> std::result::Result<u64, QueryError> {
        self.stores.approximate_len(self.store.name())
    }

    /// The partitions of this store held here, and whether each restores.
    pub fn partitions(&self) -> Vec<StorePartition> {
        self.stores
            .partitions()
            .into_iter()
            .filter(|p| p.store == self.store.name())
            .collect()
    }
}
