//! Stream-time markers: how stream time crosses a repartition topic.
//!
//! A task's stream time moves with the records it reads. Behind a
//! repartition topic a task reads only the records of its keys, so its
//! windows would wait for them however far the upstream tasks got. So each
//! upstream task writes, in its transactions, a marker to every partition
//! of each repartition topic it feeds — no key, no value, the header
//! [`STREAM_TIME_HEADER`] = `<time> <writer> <writers>` (its stream time,
//! its task id, how many tasks write the topic) and the time as the
//! record's timestamp — and a downstream task's stream time is the
//! smallest of its writers' latest marker times, once all of them have
//! reported. With one event of a later timestamp on each input partition,
//! every window behind the repartition topic closes.
//!
//! A writer whose inputs have been quiet for a while (the runtime's
//! `max_upstream_idle_ms`) says so with an *idle* marker (the extra header
//! [`STREAM_TIME_IDLE_HEADER`] = `1`): the downstream task leaves it out
//! of the smallest time until its next, non-idle, marker, which it sends
//! before its next output. A marker without the header is not idle, so a
//! reader that does not know it takes an idle marker as a plain one.

use crate::{Headers, Record, Timestamp};

/// The header of a stream-time marker (see the module docs).
pub const STREAM_TIME_HEADER: &str = "weir.stream-time";

/// The header that makes a stream-time marker an idle one (value `1`).
pub const STREAM_TIME_IDLE_HEADER: &str = "weir.stream-time-idle";

/// A parsed stream-time marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamTimeMarker {
    /// The writer's stream time.
    pub time: Timestamp,
    /// The writing task (`<sub-topology>.<partition>`).
    pub writer: String,
    /// How many tasks write the topic.
    pub writers: u32,
    /// The writer's inputs are quiet: leave it out until its next marker.
    pub idle: bool,
}

impl StreamTimeMarker {
    /// The marker record for `topic` (the partition is the sender's to set).
    pub fn to_record(&self, topic: &str) -> Record {
        let mut r = Record::new(topic, None, None, self.record_timestamp());
        r.headers = self.headers();
        r
    }

    /// The marker's headers.
    pub fn headers(&self) -> Headers {
        let mut h = Headers::new();
        h.push(
            STREAM_TIME_HEADER,
            Some(format!("{} {} {}", self.time, self.writer, self.writers).into_bytes()),
        );
        if self.idle {
            h.push(STREAM_TIME_IDLE_HEADER, Some(b"1".to_vec()));
        }
        h
    }

    /// The marker record's timestamp: its time, or 0 for a writer with no
    /// stream time yet ([`Timestamp::MIN`], which no broker takes), so that
    /// a partition group releases it early rather than after everything.
    pub fn record_timestamp(&self) -> Timestamp {
        self.time.max(0)
    }

    /// The marker `record` carries, if it is one (no key, no value, a
    /// well-formed header).
    pub fn of(record: &Record) -> Option<Self> {
        if record.key.is_some() || record.value.is_some() {
            return None;
        }
        let text = record.headers.get_str(STREAM_TIME_HEADER)?;
        let mut parts = text.split(' ');
        let time = parts.next()?.parse().ok()?;
        let writer = parts.next()?.to_string();
        let writers = parts.next()?.parse().ok()?;
        let idle = record.headers.get_str(STREAM_TIME_IDLE_HEADER) == Some("1");
        parts.next().is_none().then_some(Self {
            time,
            writer,
            writers,
            idle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_data_is_not_a_marker() {
        let m = StreamTimeMarker {
            time: -5,
            writer: "0.3".into(),
            writers: 4,
            idle: false,
        };
        assert_eq!(StreamTimeMarker::of(&m.to_record("t")), Some(m.clone()));
        let idle = StreamTimeMarker {
            time: Timestamp::MIN,
            idle: true,
            ..m.clone()
        };
        let r = idle.to_record("t");
        assert_eq!(r.timestamp, 0, "a timeless marker is stamped 0");
        assert_eq!(StreamTimeMarker::of(&r), Some(idle));
        let mut data = m.to_record("t");
        data.value = Some(b"x".to_vec());
        assert_eq!(StreamTimeMarker::of(&data), None);
        let mut bad = m.to_record("t");
        bad.headers = Headers::new();
        bad.headers.push(STREAM_TIME_HEADER, Some(b"12 a".to_vec()));
        assert_eq!(StreamTimeMarker::of(&bad), None);
    }
}
