//! The contract's event envelope, `{eventType, source, id, timestamp,
//! data, metadata}`: each field checked before anything else looks at the
//! event, and the request body as the OpenAPI document describes it.

use axum::http::StatusCode;
use serde_json::Value;

use super::{time, Refusal};

/// The envelope's fields, checked.
pub(crate) struct Envelope<'a> {
    pub(crate) event_type: &'a str,
    pub(crate) id: &'a str,
    pub(crate) timestamp_ms: i64,
    pub(crate) correlation_id: Option<&'a str>,
}

impl<'a> Envelope<'a> {
    pub(crate) fn read(event: &'a Value) -> Result<Self, Refusal> {
        let bad = |field: &str, error: &str| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "INVALID_EVENT",
                format!("{field} {error}"),
            )
            .field(field, error)
        };
        let Some(obj) = event.as_object() else {
            return Err(bad("", "the event must be a JSON object"));
        };
        let text = |field: &str| -> Result<&'a str, Refusal> {
            match event.get(field) {
                // As the document's pattern: not only spaces, tabs and
                // line ends; at most 256 characters.
                Some(Value::String(s))
                    if s.bytes()
                        .any(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                        && s.chars().count() <= 256 =>
                {
                    Ok(s)
                }
                Some(Value::String(_)) => Err(bad(field, "must have 1 to 256 characters")),
                Some(_) => Err(bad(field, "must be a string")),
                None => Err(bad(field, "is required")),
            }
        };
        let event_type = text("eventType")?;
        if !weir_core::valid_event_type(event_type) {
            return Err(bad(
                "eventType",
                "must use only letters, digits, '.', '_' and '-'",
            ));
        }
        text("source")?;
        let id = text("id")?;
        let timestamp_ms = time::parse(text("timestamp")?)
            .filter(|ms| *ms >= 0)
            .ok_or_else(|| bad("timestamp", "must be an RFC 3339 date-time after 1970"))?;
        match obj.get("data") {
            Some(Value::Object(_)) => {}
            Some(_) => return Err(bad("data", "must be an object")),
            None => return Err(bad("data", "is required")),
        }
        let correlation_id = match obj.get("metadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => match m.get("correlationId") {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) => Some(c.as_str()),
                Some(_) => return Err(bad("metadata.correlationId", "must be a string")),
            },
            Some(_) => return Err(bad("metadata", "must be an object")),
        };
        Ok(Self {
            event_type,
            id,
            timestamp_ms,
            correlation_id,
        })
    }
}

/// The request body of `POST /v1/events` (the contract's event).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a description of what `publish_route` reads
#[schema(rename_all = "camelCase")]
pub(crate) struct PublishBody {
    /// The event type; its latest registered definition checks the event.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,200}$")]
    event_type: String,
    /// The publishing service.
    #[schema(min_length = 1, max_length = 256, pattern = "[^ \\t\\r\\n]")]
    source: String,
    /// The event's id (the idempotency key without `Idempotency-Key`).
    #[schema(min_length = 1, max_length = 256, pattern = "[^ \\t\\r\\n]")]
    id: String,
    /// When it happened (RFC 3339, from 1970 on); the record's timestamp.
    #[schema(format = DateTime, pattern = "^(19[7-9][1-9]|19[89][0-9]|[2-9][0-9]{3})-")]
    timestamp: String,
    /// The payload.
    data: serde_json::Map<String, Value>,
    /// `correlationId` becomes the `correlation-id` header.
    metadata: Option<serde_json::Map<String, Value>>,
}
