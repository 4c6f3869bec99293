//! W3C trace context across a topology: an input record's `traceparent`
//! continues in its outputs. Outputs copy their input's headers (as in
//! Kafka Streams); for a valid `traceparent`
//! (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`) the copy is
//! replaced by one with the same trace id and flags and a new parent id —
//! the span of this record's processing — so a trace reads input → Weir →
//! consumers of the outputs. An invalid `traceparent` is copied as is
//! (someone else's to fix; dropping it would hide it). The
//! `correlation-id` header is carried like any other header.
//!
//! When spans are exported (the facade installs a [`SpanParent`] with
//! [`set_span_parent`]), an input whose `traceparent` is sampled (flags
//! bit 0) gets a `record` span that is a child of the producer's span,
//! and the new parent id its outputs carry is that span's own id: the
//! trace reads producer → Weir's `record` span → consumers, with no gap.

use std::sync::OnceLock;

use weir_core::Record;

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";

/// Makes span ids: xorshift64* seeded from a random UUID — unique enough
/// for span ids (not a secret), and no system call per record.
#[derive(Debug)]
pub(crate) struct SpanIds {
    state: u64,
}

impl Default for SpanIds {
    fn default() -> Self {
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        Self { state: seed | 1 }
    }
}

impl SpanIds {
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d).max(1)
    }
}

/// Whether `value` is a valid `traceparent` (version 00 or later).
pub fn valid_traceparent(value: &[u8]) -> bool {
    parse(value).is_some()
}

/// The trace id and flags of a valid `traceparent` value.
pub(crate) fn parse(value: &[u8]) -> Option<(&str, &str)> {
    let s = std::str::from_utf8(value).ok()?;
    // Version 00 is exactly 55 characters; a later version may append
    // fields after these four, which a version-00 reader keeps to.
    let head = s.get(..55)?;
    if s.len() > 55 && (s.starts_with("00") || !s[55..].starts_with('-')) {
        return None;
    }
    let mut parts = head.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |p: &str, n: usize| {
        p.len() == n && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let ok = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    ok.then_some((trace, flags))
}

/// Makes `span` a child of the span `traceparent` names and returns
/// `span`'s id (`None`: not joined, say the span is not exported).
pub type SpanParent = fn(&tracing::Span, &str) -> Option<u64>;

static SPAN_PARENT: OnceLock<SpanParent> = OnceLock::new();

/// Installs the process's [`SpanParent`] (the first call wins): the
/// exporter of spans knows how to join them to a trace.
pub fn set_span_parent(f: SpanParent) {
    let _ = SPAN_PARENT.set(f);
}

/// The `record` span around processing `input`, entered, for one record
/// in 64 (samples, not every record) and for a record whose sampled trace
/// it joins; with the span's id when it joined (the outputs' parent).
pub(crate) fn record_span(input: &Record) -> (Option<tracing::span::EnteredSpan>, Option<u64>) {
    let joined = joined(input);
    if joined.is_none() && input.offset % 64 != 0 {
        return (None, None);
    }
    let span = tracing::debug_span!("record", topic = %input.topic, partition = input.partition, offset = input.offset);
    let id = joined.and_then(|(join, traceparent)| join(&span, traceparent));
    (Some(span.entered()), id)
}

/// The [`SpanParent`] and `input`'s `traceparent`, when one is installed
/// and the `traceparent` is valid and sampled: the record gets a span of
/// its own in that trace.
fn joined(input: &Record) -> Option<(SpanParent, &str)> {
    let f = *SPAN_PARENT.get()?;
    let value = input.headers.get(TRACEPARENT)?;
    let (_, flags) = parse(value)?;
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    let text = std::str::from_utf8(value).ok()?;
    sampled.then_some((f, text))
}

/// Replaces, in `outputs` that copied `input`'s `traceparent`, the parent
/// id with `span` (the record's exported span) or else a new span id; see
/// the module docs.
pub(crate) fn continue_trace(
    input: &Record,
    outputs: &mut [Record],
    ids: &mut SpanIds,
    span: Option<u64>,
) {
    if outputs.is_empty() {
        return;
    }
    let Some(value) = input.headers.get(TRACEPARENT) else {
        return;
    };
    let Some((trace, flags)) = parse(value) else {
        return;
    };
    let id = span.filter(|&s| s != 0).unwrap_or_else(|| ids.next());
    let child = format!("00-{trace}-{id:016x}-{flags}");
    for o in outputs {
        if o.headers.get(TRACEPARENT) == Some(value) {
            o.headers.set(TRACEPARENT, child.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::Headers;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn record(traceparent: Option<&str>) -> Record {
        let mut headers = Headers::new();
        headers.push("correlation-id", Some(b"c-1".to_vec()));
        if let Some(t) = traceparent {
            headers.push(TRACEPARENT, Some(t.as_bytes().to_vec()));
        }
        let mut r = Record::new("in", None, Some(b"v".to_vec()), 0);
        r.headers = headers;
        r
    }

    #[test]
    fn outputs_continue_the_inputs_trace_with_a_new_parent() {
        let input = record(Some(TP));
        let mut outputs = vec![input.clone(), input.clone()];
        let mut ids = SpanIds::default();
        continue_trace(&input, &mut outputs, &mut ids, None);
        for o in &outputs {
            let t = o.headers.get_str(TRACEPARENT).unwrap();
            assert_eq!(
                parse(t.as_bytes()),
                Some(("4bf92f3577b34da6a3ce929d0e0e4736", "01"))
            );
            assert_ne!(t, TP, "a new parent id");
            assert_eq!(o.headers.get_str("correlation-id"), Some("c-1"));
        }
        assert_eq!(
            outputs[0].headers.get(TRACEPARENT),
            outputs[1].headers.get(TRACEPARENT),
            "one span per input record"
        );
    }

    #[test]
    fn an_exported_span_is_the_outputs_parent() {
        let input = record(Some(TP));
        let mut outputs = vec![input.clone()];
        continue_trace(&input, &mut outputs, &mut SpanIds::default(), Some(0xabc));
        assert_eq!(
            outputs[0].headers.get_str(TRACEPARENT),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01")
        );
    }

    #[test]
    fn invalid_or_missing_trace_context_is_left_alone() {
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
            let input = record(Some(bad));
            let mut outputs = vec![input.clone()];
            continue_trace(&input, &mut outputs, &mut SpanIds::default(), None);
            assert_eq!(outputs[0].headers.get_str(TRACEPARENT), Some(bad));
        }
        // A later version may append fields.
        assert!(parse(format!("01{}-more", &TP[2..]).as_bytes()).is_some());
        let input = record(None);
        let mut outputs = vec![input.clone()];
        continue_trace(&input, &mut outputs, &mut SpanIds::default(), None);
        assert_eq!(outputs[0].headers.get(TRACEPARENT), None);
    }
}
