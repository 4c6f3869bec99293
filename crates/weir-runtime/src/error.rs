//! The runtime's umbrella error.

use weir_core::ErrorClass;

use crate::config::ConfigError;
use crate::failpoint::FailpointError;
use crate::identity::IdentityError;
use crate::topics::TopicError;

/// Why an instance could not start or had to stop.
///
/// `Debug` prints the same one-line message as `Display`, so
/// `fn main() -> weir::Result<()>` reports errors readably.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad configuration (names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad `WEIR_FAILPOINT`.
    #[error(transparent)]
    Failpoint(#[from] FailpointError),
    /// The state dir is unusable or in use.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Topics are missing or wrongly shaped.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// Event definitions could not be loaded or registered.
    #[error(transparent)]
    Schema(#[from] weir_schema::SchemaError),
    /// A Kafka client could not be created or failed fatally.
    #[error("{context}: {message}")]
    Kafka {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        message: String,
        /// What the runtime does about it.
        class: ErrorClass,
    },
    /// A task cannot go on (its stores failed to open or to write).
    #[error("task {task}: {message}")]
    Task {
        /// The task id (`<sub-topology>/<partition>`).
        task: String,
        /// Why.
        message: String,
    },
    /// A transactional call of a stream thread hung past its timeout; the
    /// instance exits so that a restart fences the stuck producer.
    #[error("stream thread {thread}: {call} did not return within its timeout (+{grace_s} s); exiting so a restart fences the stuck producer")]
    HungCall {
        /// The thread.
        thread: usize,
        /// The call.
        call: &'static str,
        /// The grace period past the call's timeout, in seconds.
        grace_s: u64,
    },
    /// A stream thread died.
    #[error("stream thread {thread} failed: {message}")]
    Thread {
        /// Its index.
        thread: usize,
        /// Why.
        message: String,
    },
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// What the runtime does about it: everything at this level is fatal to
    /// the instance except a Kafka error librdkafka calls retriable.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Kafka { class, .. } => *class,
            _ => ErrorClass::Fatal,
        }
    }
}

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
