//! The vocabulary every Weir crate shares: [`Record`] and [`Headers`], the
//! [`Codec`] trait with its JSON, bincode, string and byte implementations,
//! Kafka's [`murmur2`] partitioning, and the error classes the exactly-once
//! loop acts on.
//!
//! Nothing here knows about Kafka clients or storage engines: `weir-dsl`
//! builds on these types without a broker, and `weir-runtime` adapts them to
//! rdkafka at its edges.

mod codec;
mod dead_letter;
mod error;
mod hex;
mod marker;
mod partition;
mod record;
mod schemas;

pub use codec::{Bincode, Bytes, Codec, Json, Str, BINCODE_LIMIT};
pub use dead_letter::DeadLetter;
pub use error::{CodecError, ErrorClass, Failure, OpError, ProcessError};
pub use hex::{from_hex, to_hex};
pub use marker::{StreamTimeMarker, STREAM_TIME_HEADER, STREAM_TIME_IDLE_HEADER};
pub use partition::{murmur2, partition_for_key};
pub use record::{Header, Headers, Record, Timestamp};
pub use schemas::{valid_event_type, EventSchemas, SchemaViolation};

/// Header names Weir writes on dead-letter records (see the README, "Dead letters: list and replay").
pub mod dlq_headers {
    /// What kind of failure sent the record to the DLQ (`decode`, `panic`, `produce`, …).
    pub const ERROR_KIND: &str = "weir.error.kind";
    /// A human-readable description of the failure.
    pub const ERROR_MESSAGE: &str = "weir.error.message";
    /// A machine-readable description of the failure (JSON), when there is
    /// one: a schema check's `SCHEMA_VALIDATION_ERROR` body.
    pub const ERROR_DETAILS: &str = "weir.error.details";
    /// The topic the failed record was read from.
    pub const SOURCE_TOPIC: &str = "weir.source.topic";
    /// The partition the failed record was read from (decimal text).
    pub const SOURCE_PARTITION: &str = "weir.source.partition";
    /// The offset of the failed record (decimal text).
    pub const SOURCE_OFFSET: &str = "weir.source.offset";
    /// The topology node where the failure happened.
    pub const NODE: &str = "weir.node";
    /// How many times processing was attempted (decimal text).
    pub const ATTEMPTS: &str = "weir.attempts";
    /// When the record was dead-lettered, in milliseconds since the Unix epoch (decimal text).
    pub const FAILED_AT: &str = "weir.failed_at";
    /// On a record replayed from the dead-letter topic: the dead letter it
    /// came from, as `<topic>/<partition>/<offset>`.
    pub const REPLAYED_FROM: &str = "weir.replayed_from";
}
