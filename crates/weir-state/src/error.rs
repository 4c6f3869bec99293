//! [`StoreError`]: what can go wrong with a store.

use std::path::PathBuf;

/// A store operation failed.
///
/// None of these is a problem with one record: the runtime treats them as
/// infrastructure failures (the task is closed and the instance restarts or
/// re-creates it), never as a reason to dead-letter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage engine reported an error (I/O, corruption, …).
    #[error("store {store}: {message}")]
    Engine {
        /// The store, or the state directory when no store is involved.
        store: String,
        /// The engine's message.
        message: String,
    },
    /// The state directory was written by a newer (or unknown) format.
    #[error("state in {path} has format version {found}; this build reads version {supported}")]
    Format {
        /// The state directory.
        path: PathBuf,
        /// What the directory says.
        found: String,
        /// What this build understands.
        supported: u32,
    },
    /// A store name is not one the task declared.
    #[error("no store named {name} in this task; declared: {declared}")]
    UnknownStore {
        /// The name asked for.
        name: String,
        /// The stores the task has.
        declared: String,
    },
    /// The state directory could not be created or read.
    #[error("state directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
