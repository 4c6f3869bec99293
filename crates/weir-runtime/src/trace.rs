//! W3C trace context across a topology: an input record's `traceparent`
//! continues in its outputs. Outputs copy their input's headers (as in
//! Kafka Streams); for a valid `traceparent`
//! (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`) the copy is
//! replaced by one with the same trace id and flags and a new parent id —
//! the span of this record's processing — so a trace reads input → Weir →
//! consumers of the outputs. An invalid `traceparent` is copied as is
//! (someone else's to fix; dropping it would hide it). The
//! `correlation-id` header is carried like any other header.

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

/// Replaces, in `outputs` that copied `input`'s `traceparent`, the parent
/// id with a new span id; see the module docs.
pub(crate) fn continue_trace(input: &Record, outputs: &mut [Record], ids: &mut SpanIds) {
    if outputs.is_empty() {
        return;
    }
    let Some(value) = input.headers.get(TRACEPARENT) else {
        return;
    };
    let Some((trace, flags)) = parse(value) else {
        return;
    };
    let child = format!("00-{trace}-{:016x}-{flags}", ids.next());
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
        continue_trace(&input, &mut outputs, &mut ids);
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
            continue_trace(&input, &mut outputs, &mut SpanIds::default());
            assert_eq!(outputs[0].headers.get_str(TRACEPARENT), Some(bad));
        }
        // A later version may append fields.
        assert!(parse(format!("01{}-more", &TP[2..]).as_bytes()).is_some());
        let input = record(None);
        let mut outputs = vec![input.clone()];
        continue_trace(&input, &mut outputs, &mut SpanIds::default());
        assert_eq!(outputs[0].headers.get(TRACEPARENT), None);
    }
}
