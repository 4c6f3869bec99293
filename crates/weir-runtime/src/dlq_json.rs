//! Dead-letter listings and replay summaries as JSON: one shape for the
//! admin endpoint (`GET /dlq`, `POST /dlq/replay`) and `weir dlq …
//! --output json` through Kafka.

use weir_core::Record;

use crate::dlq::{DeadLetterEntry, DeadLetterListing, ReplayOptions, ReplaySummary};

/// Bytes as JSON: text when UTF-8, else `{"hex": …}`; `null` when absent.
pub fn bytes_json(b: Option<&[u8]>) -> serde_json::Value {
    match b {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(t) => serde_json::Value::String(t.to_string()),
            Err(_) => serde_json::json!({ "hex": weir_core::to_hex(b) }),
        },
    }
}

/// A record's key, value, timestamp and headers (as [`bytes_json`]).
pub fn record_json(r: &Record) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = r
        .headers
        .iter()
        .map(|h| (h.key.clone(), bytes_json(h.value.as_deref())))
        .collect();
    serde_json::json!({
        "key": bytes_json(r.key.as_deref()),
        "value": bytes_json(r.value.as_deref()),
        "timestamp": r.timestamp,
        "headers": headers,
    })
}

impl DeadLetterEntry {
    /// Where it is, why it failed, where it came from, where a replay
    /// wrote it, and the record.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "partition": self.partition,
            "offset": self.offset,
            "kind": self.kind,
            "message": self.message,
            "node": self.node,
            "source": {
                "topic": self.source_topic,
                "partition": self.source_partition,
                "offset": self.source_offset,
            },
            "attempts": self.attempts,
            "replayed_to": self.replayed_to,
            "record": record_json(&self.record),
        })
    }
}

impl DeadLetterListing {
    /// `{"topic", "total", "pending", "by_kind", "entries"}` of `topic`.
    pub fn to_json(&self, topic: &str) -> serde_json::Value {
        serde_json::json!({
            "topic": topic,
            "total": self.total,
            "pending": self.pending,
            "by_kind": self.by_kind,
            "entries": self.entries.iter().map(DeadLetterEntry::to_json).collect::<Vec<_>>(),
        })
    }
}

impl ReplaySummary {
    /// The counts of a replay of `topic`.
    pub fn to_json(&self, topic: &str) -> serde_json::Value {
        serde_json::json!({
            "topic": topic,
            "replayed": self.replayed,
            "filtered": self.filtered,
            "dropped": self.dropped,
            "no_target": self.no_target,
            "read": self.read,
            "already_replayed": self.already_replayed,
        })
    }
}

impl ReplayOptions {
    /// Sets the replay's consumer group: `explicit` when given; else, for
    /// a replay that may leave letters out — filtered (kinds, offsets, a
    /// partition) or through a fix-up (`fix`, which may drop some) — a
    /// group of its own named after them: a replay's group moves past the
    /// letters it left out, and those must stay replayable under the
    /// default group; else the default (`<application_id>-dlq-replay`).
    /// Call after setting the filters.
    pub fn choose_group(&mut self, explicit: Option<String>, fix: Option<&str>) {
        if let Some(g) = explicit {
            self.group = g;
            return;
        }
        let filtered = !self.kinds.is_empty()
            || self.from_offset.is_some()
            || self.to_offset.is_some()
            || self.partition.is_some();
        if let Some(name) = fix {
            self.group = format!("{}-fix-{name}", self.group);
        }
        if filtered {
            self.group = format!(
                "{}-kinds-{}-partition-{}-from-{}-to-{}",
                self.group,
                if self.kinds.is_empty() {
                    "all".to_string()
                } else {
                    self.kinds.join("+")
                },
                self.partition.map_or("all".into(), |p| p.to_string()),
                self.from_offset.map_or("start".into(), |o| o.to_string()),
                self.to_offset.map_or("end".into(), |o| o.to_string())
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ReplayOptions {
        let cfg = crate::Config::load(
            &[("application_id".to_string(), "app".into())].into(),
            None,
            Vec::new(),
        )
        .unwrap();
        ReplayOptions::new(&cfg, "app-dlq")
    }

    #[test]
    fn a_filtered_replay_gets_a_group_of_its_own() {
        let mut o = opts();
        o.choose_group(None, None);
        assert_eq!(o.group, "app-dlq-replay");
        let mut o = opts();
        o.choose_group(Some("mine".into()), Some("f"));
        assert_eq!(o.group, "mine");
        let mut o = opts();
        o.choose_group(None, Some("strip"));
        assert_eq!(o.group, "app-dlq-replay-fix-strip");
        let mut groups = std::collections::BTreeSet::new();
        for f in [
            |o: &mut ReplayOptions| o.kinds = vec!["decode".into()],
            |o: &mut ReplayOptions| o.partition = Some(1),
            |o: &mut ReplayOptions| o.from_offset = Some(5),
            |o: &mut ReplayOptions| o.to_offset = Some(5),
        ] {
            let mut o = opts();
            f(&mut o);
            o.choose_group(None, None);
            assert!(o.group.starts_with("app-dlq-replay-"), "{}", o.group);
            groups.insert(o.group);
        }
        assert_eq!(groups.len(), 4, "{groups:?}");
    }

    #[test]
    fn bytes_are_text_or_hex() {
        assert_eq!(bytes_json(Some(b"ok")), serde_json::json!("ok"));
        assert_eq!(
            bytes_json(Some(&[0xff, 0x01])),
            serde_json::json!({"hex": "ff01"})
        );
        assert_eq!(bytes_json(None), serde_json::Value::Null);
    }
}
