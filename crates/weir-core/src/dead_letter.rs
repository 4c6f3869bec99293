//! Building dead-letter records (the README, "Dead letters: list and replay").

use crate::{dlq_headers as h, Record, Timestamp};

/// Why a record is being dead-lettered, in the terms of the DLQ headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// `weir.error.kind`: `decode`, `encode`, `panic`, `produce`, …
    pub kind: String,
    /// `weir.error.message`: what went wrong, for a person.
    pub message: String,
    /// `weir.node`: the topology node where it failed.
    pub node: String,
    /// `weir.attempts`: how many times processing was tried.
    pub attempts: u32,
    /// `weir.error.details` (only when set): a machine-readable
    /// description, JSON text — for a schema check, a body shaped as
    /// `{"status":"error","errorCode":"SCHEMA_VALIDATION_ERROR","message":..,
    /// "details":{"field":..,"error":..}}`.
    pub details: Option<String>,
}

impl DeadLetter {
    /// The record to write to `dlq_topic` for the failed `source` record: the
    /// original key, value, headers and timestamp, plus Weir's `weir.*` headers.
    pub fn to_record(&self, dlq_topic: &str, source: &Record, failed_at: Timestamp) -> Record {
        let mut headers = source.headers.clone();
        headers.set(h::ERROR_KIND, self.kind.as_bytes());
        headers.set(h::ERROR_MESSAGE, self.message.as_bytes());
        headers.set(h::SOURCE_TOPIC, source.topic.as_bytes());
        headers.set(h::SOURCE_PARTITION, source.partition.to_string());
        headers.set(h::SOURCE_OFFSET, source.offset.to_string());
        headers.set(h::NODE, self.node.as_bytes());
        headers.set(h::ATTEMPTS, self.attempts.to_string());
        headers.set(h::FAILED_AT, failed_at.to_string());
        if let Some(d) = &self.details {
            headers.set(h::ERROR_DETAILS, d.as_bytes());
        }
        Record {
            topic: dlq_topic.to_string(),
            partition: -1,
            offset: -1,
            key: source.key.clone(),
            value: source.value.clone(),
            headers,
            timestamp: source.timestamp,
        }
    }
}

impl From<&crate::ProcessError> for DeadLetter {
    fn from(err: &crate::ProcessError) -> Self {
        DeadLetter {
            kind: err.kind().to_string(),
            message: err.to_string(),
            node: err.node().to_string(),
            attempts: 1,
            details: err.op_error().and_then(|e| e.details.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_keeps_the_payload_and_says_where_it_came_from() {
        let mut src = Record::new("events", Some(b"k".to_vec()), Some(b"{bad".to_vec()), 42);
        src.partition = 3;
        src.offset = 17;
        src.headers.push("correlation-id", Some(b"c-1".to_vec()));
        let dl = DeadLetter {
            kind: "decode".into(),
            message: "cannot decode json".into(),
            node: "source-events".into(),
            attempts: 1,
            details: None,
        };
        let r = dl.to_record("app-dlq", &src, 1000);
        assert_eq!(r.topic, "app-dlq");
        assert_eq!(r.value.as_deref(), Some(&b"{bad"[..]));
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.headers.get_str(h::SOURCE_TOPIC), Some("events"));
        assert_eq!(r.headers.get_str(h::SOURCE_PARTITION), Some("3"));
        assert_eq!(r.headers.get_str(h::SOURCE_OFFSET), Some("17"));
        assert_eq!(r.headers.get_str(h::ERROR_KIND), Some("decode"));
        assert_eq!(r.headers.get_str(h::NODE), Some("source-events"));
        assert_eq!(r.headers.get_str(h::ATTEMPTS), Some("1"));
        assert_eq!(r.headers.get_str(h::FAILED_AT), Some("1000"));
        assert_eq!(r.headers.get_str("correlation-id"), Some("c-1"));
    }
}
