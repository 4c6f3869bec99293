//! Event definitions: an event type's JSON Schema, description, examples and
//! owner, versioned, kept in the compacted topic `_weir_event_definitions`
//! (partition 0; one record per registration, key
//! `<event_type>/<version>/<registration_id>`; the first registration of a
//! version in the topic holds it), and checked on registration.
//!
//! - [`Catalog`]: the definitions in memory; checks new versions (a valid
//!   JSON Schema that compiles, examples that conform, optionally
//!   [`Compatibility::Backward`]) and validates payloads against the latest
//!   version of their type ([`weir_core::EventSchemas`]).
//! - [`SchemaRegistry`]: a catalog kept up to date from the topic by a
//!   background reader; registers through the topic, so every instance and
//!   the CLI see the same definitions. Concurrent registrations of one
//!   version: the first in the topic wins, the other registers again on top
//!   of it.
//!
//! The `validate(event_type)` operator of `weir-dsl` uses either.

mod catalog;
pub mod compat;
mod definition;
mod registry;

pub use catalog::{Catalog, Compatibility};
pub use definition::{valid_event_type, EventDefinition, NewDefinition};
pub use registry::{LogFn, RegistryOptions, SchemaRegistry, DEFINITIONS_TOPIC};

/// Why a definition was refused, or the registry failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The event type's name is not allowed.
    #[error("invalid event type {event_type:?}: use 1 to 200 letters, digits, '.', '_' or '-'")]
    InvalidEventType {
        /// The name given.
        event_type: String,
    },
    /// The schema is not a valid JSON Schema, or does not compile.
    #[error("the schema of {event_type} is not a valid JSON Schema: {message}{}", if path.is_empty() { String::new() } else { format!(" (at {path})") })]
    InvalidSchema {
        /// The event type.
        event_type: String,
        /// Where in the schema (a JSON pointer), when known.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An example does not conform to the schema.
    #[error("example {index} of {event_type} does not conform to its schema: {}{error}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
    InvalidExample {
        /// The event type.
        event_type: String,
        /// The example's position (from 0).
        index: usize,
        /// The offending field.
        field: String,
        /// What is wrong.
        error: String,
    },
    /// The new version would refuse payloads the latest one accepts.
    #[error("the new schema of {event_type} is not backward compatible with version {version}: {}", problems.join("; "))]
    Incompatible {
        /// The event type.
        event_type: String,
        /// The latest version.
        version: u32,
        /// Each incompatibility found.
        problems: Vec<String>,
    },
    /// The latest version is the largest possible (a record written by
    /// something other than Weir).
    #[error("event type {event_type} has no version number left")]
    VersionsExhausted {
        /// The event type.
        event_type: String,
    },
    /// The broker could not be reached, or refused a request.
    #[error("event definitions topic: {0}")]
    Kafka(String),
    /// Waiting on the definitions topic took too long.
    #[error("event definitions topic: {0}")]
    Timeout(String),
}
