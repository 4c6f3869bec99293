//! Counts the dead letters in the dead-letter topic for the registry
//! ([`RuntimeStats::dead_letter_queue_size`]).
//!
//! Offsets overcount under exactly-once (every transaction that writes a
//! dead letter adds a commit marker), so the sampler reads the topic
//! instead: a consumer of its own, `read_committed`, assigned every
//! partition from its start, counts the records it is given (markers and
//! aborted records never are). The count is published once every
//! partition has been read to the end it had when first seen (by the
//! consumer's position, or its end-of-partition event), then kept current
//! as letters arrive. Letters the broker's retention deleted are
//! subtracted: each partition keeps the runs of consecutive offsets it
//! counted (a transaction's letters are one run), and the offsets below
//! the partition's start offset (checked every few seconds, with new
//! partitions) are forgotten. A topic the broker says
//! does not exist holds no dead letters: 0; while the topic cannot be
//! read (metadata failing, say) nothing is published. Failures are logged
//! at debug level and retried; counting never stops processing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::Config;
use crate::restore::RestoreContext;
use crate::stats::RuntimeStats;

/// How often partitions and start offsets are checked.
const INTERVAL: Duration = Duration::from_secs(5);

/// One partition's count: the runs of consecutive offsets read there.
#[derive(Debug, Default)]
struct Part {
    /// `[start, end)` runs, in offset order.
    runs: VecDeque<(i64, i64)>,
    total: u64,
    /// Its end when first seen: read to there, the count is published.
    end: Option<i64>,
    /// Read to its end at least once.
    caught_up: bool,
}

impl Part {
    fn count(&mut self, offset: i64) {
        match self.runs.back_mut() {
            Some((_, end)) if *end == offset => *end += 1,
            Some((_, end)) if *end > offset => return, // read already
            _ => self.runs.push_back((offset, offset + 1)),
        }
        self.total += 1;
    }

    /// Forgets the offsets below `start` (deleted by retention).
    fn truncate(&mut self, start: i64) {
        while let Some((s, e)) = self.runs.front_mut() {
            if *s >= start {
                break;
            }
            let gone = (*e).min(start) - *s;
            self.total -= gone as u64;
            if *e <= start {
                self.runs.pop_front();
            } else {
                *s = start;
            }
        }
    }
}

/// What the sampler knows of the topic.
#[derive(Debug, Default, PartialEq, Eq)]
enum Topic {
    /// Not known yet (or its metadata fails): nothing is published.
    #[default]
    Unknown,
    /// The broker says it does not exist: no dead letters.
    Absent,
    /// Assigned and being read.
    Present,
}

/// The dead letters counted, per partition.
#[derive(Debug, Default)]
struct Count {
    parts: BTreeMap<i32, Part>,
    topic: Topic,
}

impl Count {
    /// The count, once every partition was read to its end.
    fn value(&self) -> Option<u64> {
        match self.topic {
            Topic::Unknown => return None,
            Topic::Absent => return Some(0),
            Topic::Present => {}
        }
        self.parts
            .values()
            .all(|p| p.caught_up)
            .then(|| self.parts.values().map(|p| p.total).sum())
    }
}

/// Starts the counting thread; it ends once `shutdown` is set.
pub(crate) fn start(
    cfg: &Config,
    instance_id: &str,
    topic: String,
    stats: Arc<RuntimeStats>,
    shutdown: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let mut config = crate::kafka::reader_config(cfg, &format!("{instance_id}-dlq-size"));
    config
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<RestoreContext> =
        match config.create_with_context(RestoreContext::default()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the dead-letter topic's records");
                return None;
            }
        };
    std::thread::Builder::new()
        .name("weir-dlq-size".into())
        .spawn(move || {
            let mut count = Count::default();
            let mut next = Instant::now();
            while !shutdown.load(Ordering::SeqCst) {
                if Instant::now() >= next {
                    if let Err(e) = refresh(&consumer, &topic, &mut count) {
                        tracing::debug!(%topic, error = %e, "dead-letter topic size");
                    }
                    next = Instant::now() + INTERVAL;
                }
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) if m.topic() == topic => {
                        count
                            .parts
                            .entry(m.partition())
                            .or_default()
                            .count(m.offset());
                    }
                    Some(Err(KafkaError::PartitionEOF(p))) => {
                        count.parts.entry(p).or_default().caught_up = true;
                    }
                    Some(Err(e)) => tracing::debug!(%topic, error = %e, "dead-letter topic size"),
                    _ => {}
                }
                if count.parts.values().any(|p| !p.caught_up) {
                    catch_up(&consumer, &topic, &mut count);
                }
                if let Some(n) = count.value() {
                    stats.set_dead_letter_queue_size(n);
                }
            }
        })
        .map_err(|e| tracing::warn!(error = %e, "cannot start the dead-letter counter"))
        .ok()
}

/// Assigns partitions not read yet (from their start) and forgets letters
/// below each partition's start offset.
fn refresh(
    consumer: &BaseConsumer<RestoreContext>,
    topic: &str,
    count: &mut Count,
) -> rdkafka::error::KafkaResult<()> {
    let timeout = Duration::from_secs(5);
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(());
    };
    match t.error() {
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
            if count.parts.is_empty() {
                count.topic = Topic::Absent;
            }
            return Ok(());
        }
        Some(_) => return Ok(()),
        None if t.partitions().is_empty() => return Ok(()),
        None => {}
    }
    let mut new = TopicPartitionList::new();
    for p in t.partitions() {
        if !count.parts.contains_key(&p.id()) {
            new.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    if new.count() > 0 {
        consumer.incremental_assign(&new)?;
        for e in new.elements() {
            count.parts.insert(e.partition(), Part::default());
        }
    }
    count.topic = Topic::Present;
    for (&p, part) in &mut count.parts {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        part.truncate(low);
        part.end.get_or_insert(high);
    }
    Ok(())
}

/// Marks the partitions whose position reached the end they had when
/// first seen (the position also steps over transaction markers, which
/// are never delivered).
fn catch_up(consumer: &BaseConsumer<RestoreContext>, topic: &str, count: &mut Count) {
    let Ok(positions) = consumer.position() else {
        return;
    };
    for e in positions.elements_for_topic(topic) {
        if let (Some(part), Offset::Offset(o)) = (count.parts.get_mut(&e.partition()), e.offset()) {
            if part.end.is_some_and(|end| o >= end) {
                part.caught_up = true;
            }
        }
    }
    for part in count.parts.values_mut() {
        // An empty partition has nothing to read.
        if part.end == Some(0) {
            part.caught_up = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Against a model that keeps every offset: exactly the letters at
        /// or past the start offset, however the retention cuts.
        #[test]
        fn counts_what_retention_left(
            offsets in proptest::collection::btree_set(0i64..20_000, 0..300),
            starts in proptest::collection::vec(0i64..25_000, 1..4),
        ) {
            let mut part = Part::default();
            for &o in &offsets {
                part.count(o);
                part.count(o); // a repeat is not counted twice
            }
            prop_assert_eq!(part.total, offsets.len() as u64);
            let mut start = 0;
            for s in starts {
                start = start.max(s);
                part.truncate(s);
                let kept = offsets.iter().filter(|&&o| o >= start).count() as u64;
                prop_assert_eq!(part.total, kept);
            }
        }
    }

    #[test]
    fn a_topic_emptied_by_retention_counts_zero() {
        let mut part = Part::default();
        for o in 0..10 {
            part.count(o);
        }
        part.truncate(10);
        assert_eq!((part.total, part.runs.len()), (0, 0));
    }

    #[test]
    fn nothing_is_published_before_every_partition_was_read() {
        let mut c = Count::default();
        assert_eq!(c.value(), None, "nothing known yet");
        c.topic = Topic::Absent;
        assert_eq!(c.value(), Some(0), "no topic: no letters");
        c.topic = Topic::Present;
        c.parts.insert(0, Part::default());
        c.parts.insert(1, Part::default());
        c.parts.get_mut(&0).unwrap().count(3);
        c.parts.get_mut(&0).unwrap().caught_up = true;
        assert_eq!(c.value(), None);
        c.parts.get_mut(&1).unwrap().caught_up = true;
        assert_eq!(c.value(), Some(1));
    }
}
