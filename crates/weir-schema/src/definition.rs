//! An event type's definition, as registered and as stored in the
//! definitions topic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a user registers: an event type's JSON Schema and its description.
/// The registry gives it the next version number.
///
/// Deserializes from the JSON file `weir schema register` reads:
/// `{"event_type": "refund.requested", "schema": {..}, "description": "..",
/// "examples": [..], "owner": ".."}` (all but `event_type` and `schema`
/// optional).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewDefinition {
    /// The event type: letters, digits, `.`, `_` and `-`.
    pub event_type: String,
    /// The payload's JSON Schema (draft 2020-12 unless `$schema` says otherwise).
    pub schema: Value,
    /// What the event means.
    #[serde(default)]
    pub description: String,
    /// Example payloads; each must conform to the schema.
    #[serde(default)]
    pub examples: Vec<Value>,
    /// Who owns the event type (a team, a service).
    #[serde(default)]
    pub owner: String,
}

impl NewDefinition {
    /// A definition of `event_type` with `schema` and nothing else.
    pub fn new(event_type: impl Into<String>, schema: Value) -> Self {
        Self {
            event_type: event_type.into(),
            schema,
            description: String::new(),
            examples: Vec::new(),
            owner: String::new(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Adds an example payload.
    pub fn example(mut self, payload: Value) -> Self {
        self.examples.push(payload);
        self
    }

    /// Sets the owner.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }
}

/// A registered version of an event type's definition: the value of its
/// record in `_weir_event_definitions` (JSON), keyed
/// [`EventDefinition::key`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventDefinition {
    /// The event type.
    pub event_type: String,
    /// Its version: 1 for the first registration, then one more per update.
    pub version: u32,
    /// The payload's JSON Schema.
    pub schema: Value,
    /// What the event means.
    #[serde(default)]
    pub description: String,
    /// Example payloads.
    #[serde(default)]
    pub examples: Vec<Value>,
    /// Who owns it.
    #[serde(default)]
    pub owner: String,
    /// When it was registered, in ms since the Unix epoch.
    #[serde(default)]
    pub registered_at: i64,
    /// Identifies the registration, so a registrant can tell whether its
    /// record or a concurrent one took the version (the first in the topic
    /// wins).
    #[serde(default)]
    pub registration_id: String,
}

impl EventDefinition {
    /// The record key in the definitions topic:
    /// `<event_type>/<version>/<registration_id>` — one per registration, so
    /// compaction keeps every record and the first registration of a
    /// version in the topic stays the one that holds it (compaction keeps
    /// the last record of a key, which would let a losing concurrent
    /// registration replace the winner under a `<type>/<version>` key).
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.event_type, self.version, self.registration_id
        )
    }
}

pub use weir_core::valid_event_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_file_needs_only_the_type_and_the_schema() {
        let d: NewDefinition =
            serde_json::from_str(r#"{"event_type":"a.b","schema":{"type":"object"}}"#).unwrap();
        assert_eq!(
            d,
            NewDefinition::new("a.b", serde_json::json!({"type":"object"}))
        );
    }

    #[test]
    fn event_type_names() {
        assert!(valid_event_type("refund.requested-v_2"));
        assert!(!valid_event_type(""));
        assert!(!valid_event_type("a/b"));
        assert!(!valid_event_type(&"x".repeat(201)));
    }
}
