//! Stream time behind repartition topics: the slowest writer's.
//!
//! Records reach a repartition topic from every upstream task, each at its
//! own pace, so a downstream task that took the largest timestamp it read
//! would run ahead of its slower writers and find their in-order records
//! late. Instead its stream time is the smallest of its writers' stream
//! times, as their markers (`weir_core::StreamTimeMarker`) report them,
//! once every writer of every repartition topic it reads has reported; the
//! records themselves do not move it. A writer with no record yet holds
//! every window open — one event on each input partition closes them.

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
    times: HashMap<String, Timestamp>,
}

impl WriterClocks {
    /// Notes `marker`, read from `topic`; a writer's time never goes back.
    pub(super) fn note(&mut self, topic: &str, marker: &StreamTimeMarker) {
        let w = match self.topics.get_mut(topic) {
            Some(w) => w,
            None => self.topics.entry(topic.to_string()).or_default(),
        };
        w.expected = marker.writers;
        match w.times.get_mut(&marker.writer) {
            Some(t) => *t = (*t).max(marker.time),
            None => {
                w.times.insert(marker.writer.clone(), marker.time);
            }
        }
    }

    /// The smallest writer time over `topics`, once every writer of each
    /// has reported.
    pub(super) fn time(&self, topics: &[String]) -> Option<Timestamp> {
        let mut min: Option<Timestamp> = None;
        for topic in topics {
            let w = self.topics.get(topic)?;
            if (w.times.len() as u64) < u64::from(w.expected.max(1)) {
                return None;
            }
            let t = w.times.values().min()?;
            min = Some(min.map_or(*t, |m| m.min(*t)));
        }
        min
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
}
