//! Stream time behind repartition topics: the slowest writer's.
//!
//! Records reach a repartition topic from every upstream task, each at its
//! own pace, so a downstream task that took the largest timestamp it read
//! would run ahead of its slower writers and find their in-order records
//! late. Instead its stream time is the smallest of its writers' stream
//! times, as their markers (`weir_core::StreamTimeMarker`) report them,
//! once every writer of every repartition topic it reads has reported; the
//! records themselves do not move it. A writer with no record yet holds
//! every window open — one event on each input partition closes them —
//! until it reports itself idle: an idle writer is left out of the
//! smallest time until its next marker (when every writer is idle, the
//! smallest of their times counts).

use std::collections::HashMap;

use weir_core::{StreamTimeMarker, Timestamp};

/// The latest reported time of each writer, per repartition topic read.
#[derive(Clone, Debug, Default)]
pub(super) struct WriterClocks {
    topics: HashMap<String, Writers>,
}

#[derive(Clone, Debug, Default)]
struct Writers {
    /// How many tasks write the topic (as the markers say).
    expected: u32,
    times: HashMap<String, Clock>,
}

/// One writer's latest report.
#[derive(Clone, Copy, Debug)]
struct Clock {
    /// Its stream time (`Timestamp::MIN` while it has none).
    time: Timestamp,
    idle: bool,
}

impl WriterClocks {
    /// Notes `marker`, read from `topic`; a writer's time never goes back,
    /// its idleness is the latest marker's.
    pub(super) fn note(&mut self, topic: &str, marker: &StreamTimeMarker) {
        let w = match self.topics.get_mut(topic) {
            Some(w) => w,
            None => self.topics.entry(topic.to_string()).or_default(),
        };
        w.expected = marker.writers;
        let clock = Clock {
            time: marker.time,
            idle: marker.idle,
        };
        match w.times.get_mut(&marker.writer) {
            Some(c) => {
                c.time = c.time.max(marker.time);
                c.idle = marker.idle;
            }
            None => {
                w.times.insert(marker.writer.clone(), clock);
            }
        }
    }

    /// The smallest time over `topics`, once every writer of each has
    /// reported: of the writers that are not idle, or of every writer with
    /// a time when all of a topic's are idle. `None` while some writer
    /// holds it: one not yet heard from, or one not idle without a time.
    pub(super) fn time(&self, topics: &[String]) -> Option<Timestamp> {
        let mut min: Option<Timestamp> = None;
        for topic in topics {
            let t = self.topics.get(topic)?.time()?;
            min = Some(min.map_or(t, |m| m.min(t)));
        }
        min
    }
}

impl Writers {
    fn time(&self) -> Option<Timestamp> {
        if (self.times.len() as u64) < u64::from(self.expected.max(1)) {
            return None;
        }
        let active = self
            .times
            .values()
            .filter(|c| !c.idle)
            .map(|c| c.time)
            .min();
        let t = match active {
            Some(t) => t,
            None => self
                .times
                .values()
                .map(|c| c.time)
                .filter(|&t| t > Timestamp::MIN)
                .min()?,
        };
        (t > Timestamp::MIN).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(writer: &str, writers: u32, time: Timestamp) -> StreamTimeMarker {
        StreamTimeMarker {
            time,
            writer: writer.into(),
            writers,
            idle: false,
        }
    }

    fn idle(writer: &str, writers: u32, time: Timestamp) -> StreamTimeMarker {
        StreamTimeMarker {
            idle: true,
            ..marker(writer, writers, time)
        }
    }

    #[test]
    fn the_slowest_writer_sets_the_time_once_all_have_reported() {
        let topics = vec!["r".to_string()];
        let mut c = WriterClocks::default();
        c.note("r", &marker("0.0", 2, 500));
        assert_eq!(c.time(&topics), None, "one of two writers reported");
        c.note("r", &marker("0.1", 2, 100));
        assert_eq!(c.time(&topics), Some(100));
        c.note("r", &marker("0.1", 2, 900));
        assert_eq!(c.time(&topics), Some(500));
        c.note("r", &marker("0.0", 2, 300));
        assert_eq!(
            c.time(&topics),
            Some(500),
            "a writer's time never goes back"
        );
    }

    #[test]
    fn every_topic_read_must_have_reported() {
        let topics = vec!["a".to_string(), "b".to_string()];
        let mut c = WriterClocks::default();
        c.note("a", &marker("0.0", 1, 700));
        assert_eq!(c.time(&topics), None);
        c.note("b", &marker("1.0", 1, 400));
        assert_eq!(c.time(&topics), Some(400));
        assert_eq!(c.time(&[]), None, "no repartition topic: no clock");
    }

    #[test]
    fn an_idle_writer_is_left_out_until_its_next_marker() {
        let topics = vec!["r".to_string()];
        let mut c = WriterClocks::default();
        c.note("r", &marker("0.0", 3, 500));
        c.note("r", &marker("0.1", 3, 200));
        assert_eq!(c.time(&topics), None, "0.2 has not reported");
        c.note("r", &idle("0.2", 3, Timestamp::MIN));
        assert_eq!(c.time(&topics), Some(200), "a timeless idle writer");
        c.note("r", &idle("0.1", 3, 200));
        assert_eq!(c.time(&topics), Some(500));
        c.note("r", &marker("0.1", 3, 200));
        assert_eq!(c.time(&topics), Some(200), "back: it holds again");
        c.note("r", &marker("0.2", 3, Timestamp::MIN));
        assert_eq!(c.time(&topics), None, "back without a time: it holds");
    }

    #[test]
    fn when_every_writer_is_idle_the_smallest_time_counts() {
        let topics = vec!["r".to_string()];
        let mut c = WriterClocks::default();
        c.note("r", &idle("0.0", 3, 900));
        c.note("r", &idle("0.1", 3, 300));
        c.note("r", &idle("0.2", 3, Timestamp::MIN));
        assert_eq!(c.time(&topics), Some(300));
        let mut none = WriterClocks::default();
        none.note("r", &idle("0.0", 1, Timestamp::MIN));
        assert_eq!(none.time(&topics), None, "no writer has a time");
    }
}
