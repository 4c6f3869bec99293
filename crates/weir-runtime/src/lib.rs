//! The Weir engine: runs a [`weir_dsl::Topology`] against Kafka with
//! exactly-once (or at-least-once) processing.
//!
//! [`run`] takes a [`Config`] (defaults, TOML file, `WEIR_*`
//! environment: [`Config::load`]), locks its state dir and reads its stable instance id
//! ([`InstanceIdentity`]), checks or creates its topics, and starts
//! `num_stream_threads` stream threads. Each thread owns one consumer (group
//! = `application_id`) and one producer (`transactional.id =
//! <application_id>-<instance_id>-<thread>`), and runs the tasks of the
//! partitions assigned to it through the shared [`weir_dsl::TaskExecutor`].
//!
//! # The exactly-once v2 loop
//! 1. Poll a record, give it to its task, send its outputs (or its dead
//!    letter) to the transactional producer.
//! 2. Every `commit_interval_ms`, if anything was processed: flush, then
//!    `send_offsets_to_transaction` with the positions of **all** assigned
//!    partitions and fresh consumer group metadata (so a zombie fails the
//!    generation check whatever its transaction carries), then
//!    `commit_transaction`, then `begin_transaction`.
//! 3. On revoke: commit, then close the revoked tasks; if the assignment was
//!    lost, abort instead. On assign: create tasks; positions come from the
//!    broker's committed offsets.
//!
//! # Error table
//! | where | error | what happens |
//! |---|---|---|
//! | flush / send offsets / commit | retriable (timeout, coordinator moving) | the same call is retried (up to 10 times, then abort) |
//! | flush / send offsets / commit | abortable (`txn_requires_abort`, e.g. `UNKNOWN_MEMBER_ID`, a failed delivery) | `abort_transaction`, drop pending work, seek every assigned partition to its last committed offset (the broker's `committed()` for partitions never committed here), continue |
//! | any transactional call | fatal (fenced, …) | close the tasks without applying anything, create a new producer and consumer, rejoin |
//! | one output can never be delivered (too large, unknown topic) | per record | abort as above (the broker being down counts against no record); after `max_aborts_per_record` (default 3) such aborts in a row, that input goes to the DLQ instead (`weir.error.kind = poison`, `weir.attempts` = the aborts) |
//! | a record fails to decode / encode / an operator panics | per record | its outputs are discarded and its dead letter is written in the same transaction |
//! | consumer-side fetch errors (including the test broker's empty-fetch parse errors) | — | logged; never abort |
//!
//! Under `at_least_once` the loop is the same without the transaction:
//! outputs are flushed (acknowledged), then offsets are committed; a
//! "rewind" seeks back without aborting, so outputs may repeat.
//!
//! # Failpoints
//! `WEIR_FAILPOINT=<step>` aborts the process at `after_changelog_produce`,
//! `before_produce_flush`, `after_send_offsets`, `before_commit`,
//! `after_commit` or `after_commit_before_checkpoint` (see [`failpoint`]).

mod broker_quirks;
mod changelog;
mod committer;
mod config;
mod dead_letters;
mod delivery;
mod directory;
mod dlq;
mod dlq_json;
mod dlq_size;
mod error;
pub mod failpoint;
mod histogram;
mod identity;
mod ingress;
mod instance;
mod kafka;
mod lag;
mod markers;
mod monitoring;
mod partition_group;
mod poison;
mod purge;
mod queries;
mod rebalance;
mod restore;
mod schemas;
mod stats;
mod stream_thread;
mod task;
mod task_set;
mod timers;
mod topics;
mod trace;
mod watchdog;

pub use config::{
    Config, ConfigError, ConfigValue, ProcessingGuarantee, EOS_RESERVED_KAFKA_KEYS,
    REFUSED_KAFKA_KEYS,
};
pub use directory::{instances_topic, Directory, InstanceInfo};
pub use dlq::{
    list_dead_letters, list_dead_letters_where, replay_dead_letters, replayed_topic,
    DeadLetterEntry, DeadLetterListing, FixUp, ReplayOptions, ReplaySummary,
};
pub use dlq_json::{bytes_json, record_json};
pub use error::{Error, Result};
pub use histogram::{Histogram, HistogramSnapshot, LATENCY_BUCKETS};
pub use identity::{IdentityError, InstanceIdentity};
pub use ingress::{ingress_ids_topic, IngressSink, SinkError, Written};
pub use instance::{configured_topology, run, start, Instance};
pub use monitoring::monitoring_topic;
pub use queries::{LocalStores, QueryError, StorePartition};
pub use schemas::schema_registry;
pub use stats::RuntimeStats;
pub use topics::TopicError;
pub use trace::{set_span_parent, valid_traceparent, SpanParent, TRACEPARENT};
