//! Weir's state stores.
//!
//! A task owns one [`TaskState`]: the committed state of every store the
//! task's nodes declared, in one [`StateBackend`] (RocksDB in production,
//! memory in the `TopologyTestDriver` and as the model in property tests),
//! under a [`PendingWrites`] set that holds what the task changed since its
//! last commit.
//!
//! # Invariants
//! - **Reads see pending writes first**, pending deletes included, then the
//!   backend: a processor reads its own uncommitted writes.
//! - **Nothing reaches the backend before the transaction commits.** The
//!   runtime calls [`TaskState::commit`] only after Kafka accepted the
//!   transaction; the whole pending set, and the metadata given with it (the
//!   checkpoint, from the next issue on), go to the backend in one atomic
//!   write batch. [`TaskState::abort`] drops the pending set: the backend
//!   still holds exactly the last commit.
//! - **A failed record drops only its own writes**: the runtime takes a
//!   [`TaskState::savepoint`] before each record and rolls back to it when
//!   the record is dead-lettered.
//! - **One memory budget** ([`StateBudget`]) bounds the block cache and the
//!   memtables of every RocksDB store of every task in the process.
//! - On-disk state carries a format version ([`FORMAT_VERSION`]); a store
//!   written by a newer format is refused, never misread.
//!
//! The store traits ([`KeyValueStore`], [`StateBackend`]) never mention
//! RocksDB; `rocksdb::` types stay inside the `rocks` module. This crate
//! knows nothing of the DSL or of Kafka: the changelog and the checkpoint are
//! the runtime's, and reach the backend as opaque metadata.

mod backend;
mod error;
mod kv;
mod memory;
mod pending;
#[cfg(feature = "rocksdb")]
mod rocks;
mod session;
mod task_state;
mod timer;
mod window;

pub use backend::{StateBackend, StoreReader, WriteSet};
pub use error::StoreError;
pub use kv::{from_time_key, time_key, KeyRange, KeyValueStore, KvIter, KvPair};
pub use memory::InMemoryBackend;
pub use pending::PendingWrites;
#[cfg(feature = "rocksdb")]
pub use rocks::{RocksDbBackend, StateBudget};
pub use session::{decode_session_key, session_range, SessionEntry, SessionStore};
pub use task_state::{StoreId, TaskState, TaskStore};
pub use timer::{Clock, Timer, TimerStore};
pub use window::{decode_window_key, window_key, WindowEntry, WindowStore};

/// The version of Weir's on-disk state layout. A backend written with a
/// larger version is refused at open.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata key under which a backend records [`FORMAT_VERSION`].
pub const FORMAT_KEY: &str = "weir.format";
