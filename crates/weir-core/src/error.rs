//! Errors, each saying what the exactly-once loop must do about it.

/// What the runtime does with an error (the README, "How exactly-once works here").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try the same step again (with backoff); nothing is lost or repeated.
    Retriable,
    /// Abort the open transaction and re-process from the last commit.
    AbortTransaction,
    /// The instance cannot go on with its current producer or configuration.
    Fatal,
    /// The record cannot be processed; it goes to the dead-letter topic.
    DeadLetter,
}

/// A value could not be encoded or decoded by a [`crate::Codec`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a valid encoding of the expected type.
    #[error("cannot decode {codec}: {message}")]
    Decode {
        /// The codec that failed (`json`, `bincode`, `string`, …).
        codec: &'static str,
        /// What was wrong with the input.
        message: String,
    },
    /// The value could not be serialized.
    #[error("cannot encode {codec}: {message}")]
    Encode {
        /// The codec that failed.
        codec: &'static str,
        /// Why.
        message: String,
    },
    /// A null key or value arrived where the codec needs bytes.
    #[error("{codec} cannot decode a null {part}")]
    Null {
        /// The codec that refused it.
        codec: &'static str,
        /// `key` or `value`.
        part: &'static str,
    },
}

impl CodecError {
    /// Bad bytes never get better by retrying: the record is dead-lettered.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::DeadLetter
    }
}

/// How an operator's failure is handled; the operator picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// It may succeed later (a timeout, a busy service): retried with
    /// backoff where the node has a retry policy, then dead-lettered (kind
    /// `retries-exhausted`); dead-lettered at once (kind `retryable`)
    /// where it has none.
    Retryable,
    /// It will never succeed: dead-lettered at once (kind `permanent`).
    Permanent,
    /// The record is invalid: dead-lettered at once (kind `validation`).
    Validation,
}

/// An operator's failure on one record: its [`Failure`] class, a message,
/// and for validation failures the path of the offending field.
///
/// # Examples
/// ```
/// use weir_core::{Failure, OpError};
///
/// let e = OpError::validation("must be positive").at_field("/amount");
/// assert_eq!(e.failure, Failure::Validation);
/// assert_eq!(e.to_string(), "/amount: must be positive");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct OpError {
    /// What to do about it.
    pub failure: Failure,
    /// What went wrong, for a person.
    pub message: String,
    /// The offending field (a JSON pointer such as `/amount`), if any.
    pub field: Option<String>,
    /// A machine-readable description (JSON text), written to the dead
    /// letter's `weir.error.details` header: a schema check's
    /// `SCHEMA_VALIDATION_ERROR` body, for instance.
    pub details: Option<String>,
}

impl OpError {
    /// A failure that may go away (see [`Failure::Retryable`]).
    pub fn retryable(message: impl std::fmt::Display) -> Self {
        Self::new(Failure::Retryable, message)
    }

    /// A failure that will not go away (see [`Failure::Permanent`]).
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::new(Failure::Permanent, message)
    }

    /// An invalid record (see [`Failure::Validation`]).
    pub fn validation(message: impl std::fmt::Display) -> Self {
        Self::new(Failure::Validation, message)
    }

    /// Names the offending field.
    pub fn at_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Attaches a machine-readable description (JSON text).
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    fn new(failure: Failure, message: impl std::fmt::Display) -> Self {
        Self {
            failure,
            message: message.to_string(),
            field: None,
            details: None,
        }
    }
}

/// Why a record could not be processed by a topology node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The key or value did not decode.
    #[error("node {node}: {source}")]
    Codec {
        /// The node that decoded or encoded it.
        node: String,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// User code in an operator panicked on this record.
    #[error("node {node}: operator panicked: {message}")]
    Panic {
        /// The node whose closure panicked.
        node: String,
        /// The panic payload, when it was text.
        message: String,
    },
    /// A record arrived from a topic no source of the topology reads.
    #[error("no source reads topic {topic}")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// User code in a `process` node refused the record.
    #[error("node {node}: {message}")]
    Operator {
        /// The node (filled in by the executor when empty).
        node: String,
        /// What the operator said.
        message: String,
    },
    /// A `process` node's `init` failed or panicked: the task cannot run.
    #[error("node {node}: init failed: {message}")]
    Init {
        /// The node.
        node: String,
        /// Why.
        message: String,
    },
    /// The record arrived after every window it belongs to closed (its
    /// timestamp is older than the task's stream time minus the grace
    /// period). Counted as `late`; dead-lettered (kind `late`) only when
    /// `dead_letter` is set, otherwise dropped.
    #[error("node {node}: late record: {message}")]
    Late {
        /// The windowed node.
        node: String,
        /// Which windows had closed, and when.
        message: String,
        /// Whether the record goes to the dead-letter topic.
        dead_letter: bool,
    },
    /// An operator failed on the record with an [`OpError`].
    #[error("node {node}: {error}")]
    Failed {
        /// The node (filled in by the executor when empty).
        node: String,
        /// The operator's error.
        error: OpError,
    },
    /// Something the node calls is unavailable (its circuit breaker is
    /// open): the record is not processed now — not dead-lettered either —
    /// and its task waits until `retry_at` (wall clock, ms since the epoch)
    /// before processing it again.
    #[error("node {node}: unavailable until {retry_at}: {message}")]
    Unavailable {
        /// The node.
        node: String,
        /// Why.
        message: String,
        /// When to try the record again.
        retry_at: crate::Timestamp,
    },
    /// A state store failed (I/O, corruption): not the record's fault.
    #[error("node {node}: state store {store}: {message}")]
    Store {
        /// The node that used the store.
        node: String,
        /// The store.
        store: String,
        /// The store's error.
        message: String,
    },
}

impl ProcessError {
    /// The `weir.error.kind` header value for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            ProcessError::Codec {
                source: CodecError::Encode { .. },
                ..
            } => "encode",
            ProcessError::Codec { .. } => "decode",
            ProcessError::Panic { .. } => "panic",
            ProcessError::UnknownTopic { .. } => "unknown-topic",
            ProcessError::Operator { .. } => "operator",
            ProcessError::Store { .. } => "store",
            ProcessError::Init { .. } => "init",
            ProcessError::Late { .. } => "late",
            ProcessError::Unavailable { .. } => "unavailable",
            ProcessError::Failed { error, .. } => match error.failure {
                Failure::Retryable => "retryable",
                Failure::Permanent => "permanent",
                Failure::Validation => "validation",
            },
        }
    }

    /// The node the error happened in, for the `weir.node` header.
    pub fn node(&self) -> &str {
        match self {
            ProcessError::Codec { node, .. }
            | ProcessError::Panic { node, .. }
            | ProcessError::Operator { node, .. }
            | ProcessError::Store { node, .. }
            | ProcessError::Init { node, .. }
            | ProcessError::Late { node, .. }
            | ProcessError::Failed { node, .. }
            | ProcessError::Unavailable { node, .. } => node,
            ProcessError::UnknownTopic { .. } => "",
        }
    }

    /// A record's own failures are final for that record: it is
    /// dead-lettered. A failing store is not the record's fault: the task
    /// cannot go on (the instance stops, and its restart re-creates it).
    pub fn class(&self) -> ErrorClass {
        match self {
            ProcessError::Store { .. } | ProcessError::Init { .. } => ErrorClass::Fatal,
            ProcessError::Unavailable { .. } => ErrorClass::Retriable,
            _ => ErrorClass::DeadLetter,
        }
    }

    /// Whether the record is counted as late and dropped, not
    /// dead-lettered (a [`ProcessError::Late`] without `dead_letter`).
    pub fn is_dropped_late(&self) -> bool {
        matches!(
            self,
            ProcessError::Late {
                dead_letter: false,
                ..
            }
        )
    }

    /// Whether the record was late (dropped or dead-lettered).
    pub fn is_late(&self) -> bool {
        matches!(self, ProcessError::Late { .. })
    }

    /// The operator's error when an operator failed with one.
    pub fn op_error(&self) -> Option<&OpError> {
        match self {
            ProcessError::Failed { error, .. } => Some(error),
            _ => None,
        }
    }

    /// An error a `process` node returns to dead-letter the record it was
    /// given (kind `operator`).
    pub fn operator(message: impl Into<String>) -> Self {
        ProcessError::Operator {
            node: String::new(),
            message: message.into(),
        }
    }
}

impl From<OpError> for ProcessError {
    /// The node is filled in by the executor.
    fn from(error: OpError) -> Self {
        ProcessError::Failed {
            node: String::new(),
            error,
        }
    }
}
