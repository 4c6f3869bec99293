//! Log lines for dead letters, rate-limited: a million bad records must
//! not print a million lines. The first dead letter of an interval is
//! logged in full (topic, partition, offset, node, error); the rest of the
//! interval is summed up in one line with counts by kind when the interval
//! ends. Every dead letter is also logged at debug level.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often at most a dead-letter line is printed (plus one summary).
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What one stream thread has dead-lettered in the current interval.
#[derive(Debug)]
pub(crate) struct DeadLetterLog {
    interval: Duration,
    started: Option<Instant>,
    /// Dead letters after the first of the interval, by kind.
    more: BTreeMap<String, u64>,
}

/// One dead letter, for its log line.
pub(crate) struct Noted<'a> {
    pub kind: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub node: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl DeadLetterLog {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            started: None,
            more: BTreeMap::new(),
        }
    }

    /// Logs dead letter `d` (in full if it is the interval's first).
    pub fn note(&mut self, d: &Noted<'_>, now: Instant) {
        tracing::debug!(
            kind = d.kind, topic = d.topic, partition = d.partition, offset = d.offset,
            node = d.node, error = %d.error, "dead-lettering record"
        );
        self.flush(now);
        if self.started.is_none() {
            self.started = Some(now);
            tracing::warn!(
                kind = d.kind, topic = d.topic, partition = d.partition, offset = d.offset,
                node = d.node, error = %d.error,
                "dead-lettering record (further dead letters in the next {} s are summed up in one line)",
                self.interval.as_secs()
            );
        } else {
            *self.more.entry(d.kind.to_string()).or_default() += 1;
        }
    }

    /// Ends the interval when it is over: prints the summary line of the
    /// dead letters after its first, if any.
    pub fn flush(&mut self, now: Instant) {
        if let Some(line) = self.summary(now) {
            tracing::warn!(kinds = %line.1, "{} more records dead-lettered in the last {} s", line.0, self.interval.as_secs());
        }
    }

    /// The interval's summary (total, `kind=n` list) when it is over, and
    /// a fresh interval.
    fn summary(&mut self, now: Instant) -> Option<(u64, String)> {
        let started = self.started?;
        if now.duration_since(started) < self.interval {
            return None;
        }
        self.started = None;
        let more = std::mem::take(&mut self.more);
        let total: u64 = more.values().sum();
        (total > 0).then(|| {
            let kinds = more
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            (total, kinds)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noted(kind: &str) -> Noted<'_> {
        Noted {
            kind,
            topic: "t",
            partition: 0,
            offset: 1,
            node: "n",
            error: &"bad",
        }
    }

    #[test]
    fn one_line_then_one_summary_per_interval() {
        let mut log = DeadLetterLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        log.note(&noted("decode"), t0);
        for i in 0..1000 {
            let kind = if i % 4 == 0 { "panic" } else { "decode" };
            log.note(&noted(kind), t0 + Duration::from_millis(i));
        }
        assert_eq!(log.summary(t0 + Duration::from_secs(9)), None);
        assert_eq!(
            log.summary(t0 + Duration::from_secs(10)),
            Some((1000, "decode=750 panic=250".to_string()))
        );
        // The next dead letter opens a new interval: logged in full, not counted.
        log.note(&noted("late"), t0 + Duration::from_secs(11));
        assert!(log.more.is_empty());
        assert_eq!(log.summary(t0 + Duration::from_secs(30)), None);
    }
}
