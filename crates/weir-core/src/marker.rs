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

use crate::{Headers, Record, Timestamp};

/// The header of a stream-time marker (see the module docs).
pub const STREAM_TIME_HEADER: &str = "weir.stream-time";

/// A parsed stream-time marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamTimeMarker {
    /// The writer's stream time.
    pub time: Timestamp,
    /// The writing task (`<sub-topology>.<partition>`).
    pub writer: String,
    /// How many tasks write the topic.
    pub writers: u32,
}

impl StreamTimeMarker {
    /// The marker record for `topic` (the partition is the sender's to set).
    pub fn to_record(&self, topic: &str) -> Record {
        let mut r = Record::new(topic, None, None, self.time);
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
        h
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
        parts.next().is_none().then_some(Self {
            time,
            writer,
            writers,
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
        };
        assert_eq!(StreamTimeMarker::of(&m.to_record("t")), Some(m.clone()));
        let mut data = m.to_record("t");
        data.value = Some(b"x".to_vec());
        assert_eq!(StreamTimeMarker::of(&data), None);
        let mut bad = m.to_record("t");
        bad.headers = Headers::new();
        bad.headers.push(STREAM_TIME_HEADER, Some(b"12 a".to_vec()));
        assert_eq!(StreamTimeMarker::of(&bad), None);
    }
}
