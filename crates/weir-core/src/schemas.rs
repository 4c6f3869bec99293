//! What the `validate` operator asks of event definitions: the
//! [`EventSchemas`] trait (implemented by `weir-schema`'s catalog and
//! registry) and the [`SchemaViolation`] it reports.

use crate::OpError;

/// Checks payloads against the latest registered definition of their event
/// type.
pub trait EventSchemas: Send + Sync {
    /// `Ok` when `payload` conforms to the latest definition of
    /// `event_type`.
    ///
    /// # Errors
    /// A [`SchemaViolation`] naming the first offending field, or saying
    /// that no definition of `event_type` is registered.
    fn check(&self, event_type: &str, payload: &serde_json::Value) -> Result<(), SchemaViolation>;
}

/// Why a payload does not conform to its event type's definition.
///
/// # Examples
/// ```
/// use weir_core::{Failure, SchemaViolation};
///
/// let v = SchemaViolation {
///     event_type: "user.created".into(),
///     version: Some(2),
///     field: "data.email".into(),
///     error: "\"x\" is not a \"email\"".into(),
/// };
/// let e = v.into_op_error();
/// assert_eq!(e.failure, Failure::Validation);
/// assert_eq!(e.field.as_deref(), Some("data.email"));
/// let body: serde_json::Value = serde_json::from_str(e.details.as_deref().unwrap()).unwrap();
/// assert_eq!(body["errorCode"], "SCHEMA_VALIDATION_ERROR");
/// assert_eq!(body["details"]["field"], "data.email");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaViolation {
    /// The event type checked.
    pub event_type: String,
    /// The version checked against; `None` when no definition exists.
    pub version: Option<u32>,
    /// The offending field as a dotted path (`data.items[0].price`);
    /// empty for the payload as a whole.
    pub field: String,
    /// What is wrong with it.
    pub error: String,
}

impl SchemaViolation {
    /// The body written to the dead letter's `weir.error.details`:
    /// `{"status":"error","errorCode":"SCHEMA_VALIDATION_ERROR","message",
    /// "eventType","version","details":{"field","error"}}`.
    pub fn body(&self) -> serde_json::Value {
        let message = match self.version {
            Some(v) => format!(
                "Event data does not match schema for event type '{}' (version {v})",
                self.event_type
            ),
            None => format!(
                "No definition is registered for event type '{}'",
                self.event_type
            ),
        };
        serde_json::json!({
            "status": "error",
            "errorCode": "SCHEMA_VALIDATION_ERROR",
            "message": message,
            "eventType": self.event_type,
            "version": self.version,
            "details": { "field": self.field, "error": self.error },
        })
    }

    /// A validation [`OpError`]: message `error`, the field, and
    /// [`SchemaViolation::body`] as details.
    pub fn into_op_error(self) -> OpError {
        let body = self.body().to_string();
        let e = OpError::validation(format!("{} ({})", self.error, self.event_type));
        let e = if self.field.is_empty() {
            e
        } else {
            e.at_field(self.field)
        };
        e.with_details(body)
    }
}

/// Whether `name` is a valid event type: 1 to 200 characters out of
/// letters, digits, `.`, `_` and `-`.
pub fn valid_event_type(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
