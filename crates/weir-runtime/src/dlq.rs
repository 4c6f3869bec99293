//! Dead-letter inspection and replay (`dlq list`, `dlq replay`).
//!
//! **Replay** is a transactional consume-produce loop of its own: it reads
//! the dead-letter topic (`read_committed`) as consumer group `group`
//! (default `<application_id>-dlq-replay`) and writes each chosen dead
//! letter — as it was, or as a fix-up function returns it — to its source
//! topic (`weir.source.topic`) or to another, with header
//! `weir.replayed_from` = `<dlq topic>/<partition>/<offset>` (the `weir.*`
//! headers of the failure are dropped, the others kept). The outputs and
//! the group's offsets commit in one transaction per batch, with the
//! stable `transactional.id` `<group>`, so an interrupted replay — killed
//! even — resumes where its last batch committed and writes nothing twice.
//! It replays up to the end of each partition as found at its start:
//! records that fail again and are dead-lettered anew wait for the next
//! replay.
//!
//! **Replayed markers.** With each dead letter it writes back, a replay
//! writes — in the same transaction — a record to the compacted
//! `<dlq topic>-replayed` (created on the first replay): key
//! `<partition>/<offset>` of the dead letter, value
//! `{"to", "group", "at"}`. A listing reads them and says of each entry
//! where it was replayed to, so a dead letter's fate can be looked up and
//! a view of the pending ones shrinks as they are replayed; and a replay
//! leaves out letters already marked, so a letter replayed under one group
//! (the dashboard's per-letter replay) is not written again under another.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_core::{dlq_headers as h, Headers, Record};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::kafka::{admin_config, producer_config, to_owned_headers, to_record};
use crate::stream_thread::kafka_err;

const TIMEOUT: Duration = Duration::from_secs(30);

/// One dead letter, as its headers describe it.
#[derive(Clone, Debug)]
pub struct DeadLetterEntry {
    /// Its partition and offset in the dead-letter topic.
    pub partition: i32,
    pub offset: i64,
    /// `weir.error.kind` (empty when missing).
    pub kind: String,
    /// `weir.error.message`.
    pub message: String,
    /// `weir.node`.
    pub node: String,
    /// `weir.source.topic`, `.partition`, `.offset` (empty / -1 when missing).
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    /// `weir.attempts` (0 when missing).
    pub attempts: u32,
    /// The record itself.
    pub record: Record,
    /// Where a replay wrote it (from the replayed markers; `None`: not
    /// replayed).
    pub replayed_to: Option<String>,
}

impl DeadLetterEntry {
    fn of(record: Record) -> Self {
        let text = |name| record.headers.get_str(name).unwrap_or("").to_string();
        let num = |name| record.headers.get_str(name).and_then(|v| v.parse().ok());
        Self {
            partition: record.partition,
            offset: record.offset,
            kind: text(h::ERROR_KIND),
            message: text(h::ERROR_MESSAGE),
            node: text(h::NODE),
            source_topic: text(h::SOURCE_TOPIC),
            source_partition: num(h::SOURCE_PARTITION).map_or(-1, |v: i64| v as i32),
            source_offset: num(h::SOURCE_OFFSET).unwrap_or(-1),
            attempts: num(h::ATTEMPTS).map_or(0, |v: i64| v as u32),
            record,
            replayed_to: None,
        }
    }
}

/// What `dlq list` found.
#[derive(Debug, Default)]
pub struct DeadLetterListing {
    /// Dead letters by kind, over the whole topic.
    pub by_kind: BTreeMap<String, u64>,
    /// All of them.
    pub total: u64,
    /// Those no replay has written back yet.
    pub pending: u64,
    /// The first `limit` (in partition, offset order).
    pub entries: Vec<DeadLetterEntry>,
}

/// What `dlq replay` does.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// The dead-letter topic.
    pub topic: String,
    /// Where to write (`None`: each record's source topic).
    pub to: Option<String>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<String>,
    /// Only dead letters at or after this offset (of every partition).
    pub from_offset: Option<i64>,
    /// Only dead letters at or before this offset.
    pub to_offset: Option<i64>,
    /// Only dead letters of this partition of the dead-letter topic.
    pub partition: Option<i32>,
    /// The replay's consumer group (and transactional id).
    pub group: String,
    /// Records per transaction.
    pub batch: usize,
    /// At most this many records per second (`None`: as fast as it goes).
    pub max_per_sec: Option<u64>,
}

impl ReplayOptions {
    /// Replays every dead letter of `topic` to its source topic, as group
    /// `<application_id>-dlq-replay`, 500 per transaction.
    pub fn new(cfg: &Config, topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            to: None,
            kinds: Vec::new(),
            from_offset: None,
            to_offset: None,
            partition: None,
            group: format!("{}-dlq-replay", cfg.application_id),
            batch: 500,
            max_per_sec: None,
        }
    }

    fn wants(&self, e: &DeadLetterEntry) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && self.from_offset.is_none_or(|f| e.offset >= f)
            && self.to_offset.is_none_or(|t| e.offset <= t)
            && self.partition.is_none_or(|p| e.partition == p)
    }
}

/// A fix-up: the record to replay instead of a dead letter, or `None` to
/// leave it out.
pub type FixUp<'a> = &'a dyn Fn(&Record) -> Option<Record>;

/// How a replay went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Dead letters written back.
    pub replayed: u64,
    /// Dead letters the options left out (kind, offsets).
    pub filtered: u64,
    /// Dead letters the fix-up left out.
    pub dropped: u64,
    /// Dead letters with no source topic and no `to` (left out).
    pub no_target: u64,
    /// Dead letters read in all by this run.
    pub read: u64,
    /// Dead letters an earlier replay wrote back (left out).
    pub already_replayed: u64,
}

/// The partitions of `topic`, each with its low and high watermark.
fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<(i32, i64, i64)>> {
    let md = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(kafka_err("reading the dead-letter topic's metadata"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| Error::Usage(format!("dead-letter topic {topic} does not exist")))?;
    let mut out = Vec::new();
    for p in t.partitions() {
        let (lo, hi) = consumer
            .fetch_watermarks(topic, p.id(), TIMEOUT)
            .map_err(kafka_err("reading the dead-letter topic's offsets"))?;
        out.push((p.id(), lo, hi));
    }
    out.sort_unstable();
    Ok(out)
}

fn reader(cfg: &Config, group: &str) -> Result<BaseConsumer> {
    admin_config(cfg)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(kafka_err("creating the dead-letter reader"))
}

/// Reads `parts` from `start` (per partition) until each reaches its end
/// as found at the start, calling `each` per record; `each` returns
/// whether to go on.
fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    parts: &[(i32, i64, i64)],
    start: &BTreeMap<i32, i64>,
    mut each: impl FnMut(Record) -> Result<bool>,
    mut idle: impl FnMut(&BTreeMap<i32, i64>) -> Result<()>,
) -> Result<BTreeMap<i32, i64>> {
    let mut next: BTreeMap<i32, i64> = parts
        .iter()
        .map(|&(p, lo, _)| (p, start[&p].max(lo)))
        .collect();
    let end: BTreeMap<i32, i64> = parts.iter().map(|&(p, _, hi)| (p, hi)).collect();
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in &next {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))
            .map_err(kafka_err("assigning the dead-letter topic"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(kafka_err("assigning the dead-letter topic"))?;
    let mut done: BTreeMap<i32, bool> = next.iter().map(|(&p, &o)| (p, o >= end[&p])).collect();
    while done.values().any(|d| !d) {
        match consumer.poll(Duration::from_millis(100)) {
            None | Some(Err(_)) => {
                // The consumer's position steps over transaction markers,
                // which end a read_committed partition without a record
                // (and the test broker's empty fetches come as errors).
                if let Ok(positions) = consumer.position() {
                    for e in positions.elements() {
                        if let Offset::Offset(o) = e.offset() {
                            if o >= end[&e.partition()] {
                                done.insert(e.partition(), true);
                            }
                        }
                    }
                }
                idle(&next)?;
            }
            Some(Ok(m)) => {
                let p = m.partition();
                if m.offset() >= end[&p] {
                    done.insert(p, true);
                    continue;
                }
                next.insert(p, m.offset() + 1);
                if m.offset() + 1 >= end[&p] {
                    done.insert(p, true);
                }
                if !each(to_record(&m))? {
                    return Ok(next);
                }
            }
        }
    }
    Ok(next)
}

/// The topic of a dead-letter topic's replayed markers (see the module
/// docs).
pub fn replayed_topic(dead_letter_topic: &str) -> String {
    format!("{dead_letter_topic}-replayed")
}

/// The key of dead letter `partition`/`offset` in the replayed markers.
fn marker_key(partition: i32, offset: i64) -> String {
    format!("{partition}/{offset}")
}

/// Where each replayed dead letter went: `(partition, offset)` → topic.
/// Empty when nothing was ever replayed (no markers topic).
fn replayed_markers(cfg: &Config, dlq: &str) -> Result<BTreeMap<(i32, i64), String>> {
    let topic = replayed_topic(dlq);
    let consumer = reader(cfg, &format!("{}-dlq-list", cfg.application_id))?;
    let parts = match partitions(&consumer, &topic) {
        Ok(p) => p,
        Err(Error::Usage(_)) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let start = parts.iter().map(|&(p, lo, _)| (p, lo)).collect();
    let mut out = BTreeMap::new();
    read_to_end(
        &consumer,
        &topic,
        &parts,
        &start,
        |r| {
            let key = r.key.as_deref().map(String::from_utf8_lossy);
            let at = key.as_deref().and_then(|k| {
                let (p, o) = k.split_once('/')?;
                Some((p.parse::<i32>().ok()?, o.parse::<i64>().ok()?))
            });
            let to = r
                .value
                .as_deref()
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                .and_then(|v| v["to"].as_str().map(str::to_string));
            if let (Some(at), Some(to)) = (at, to) {
                out.insert(at, to);
            }
            Ok(true)
        },
        |_| Ok(()),
    )?;
    Ok(out)
}

/// Reads the dead-letter topic from its start: counts by kind, and the
/// first `limit` entries, each with where it was replayed to. Commits
/// nothing.
///
/// # Errors
/// [`Error::Kafka`] when the broker cannot be read; [`Error::Usage`] when
/// the topic does not exist.
pub fn list_dead_letters(cfg: &Config, topic: &str, limit: usize) -> Result<DeadLetterListing> {
    list_dead_letters_where(cfg, topic, limit, false)
}

/// As [`list_dead_letters`]; with `pending_only`, the entries listed are
/// the first `limit` that no replay wrote back (the counts still cover
/// every dead letter).
///
/// # Errors
/// As [`list_dead_letters`].
pub fn list_dead_letters_where(
    cfg: &Config,
    topic: &str,
    limit: usize,
    pending_only: bool,
) -> Result<DeadLetterListing> {
    let consumer = reader(cfg, &format!("{}-dlq-list", cfg.application_id))?;
    let parts = partitions(&consumer, topic)?;
    let replayed = replayed_markers(cfg, topic)?;
    let start = parts.iter().map(|&(p, lo, _)| (p, lo)).collect();
    let mut listing = DeadLetterListing::default();
    read_to_end(
        &consumer,
        topic,
        &parts,
        &start,
        |r| {
            let mut e = DeadLetterEntry::of(r);
            e.replayed_to = replayed.get(&(e.partition, e.offset)).cloned();
            *listing.by_kind.entry(e.kind.clone()).or_default() += 1;
            listing.total += 1;
            if e.replayed_to.is_none() {
                listing.pending += 1;
            }
            if listing.entries.len() < limit && (!pending_only || e.replayed_to.is_none()) {
                listing.entries.push(e);
            }
            Ok(true)
        },
        |_| Ok(()),
    )?;
    listing.entries.sort_by_key(|e| (e.partition, e.offset));
    Ok(listing)
}

/// The record to write back for dead letter `e`: its key, value and
/// timestamp, its headers without the failure's `weir.*` ones, plus
/// `weir.replayed_from`.
fn replay_record(e: &DeadLetterEntry, dlq: &str, fixed: Record, to: &str) -> Record {
    let failure = [
        h::ERROR_KIND,
        h::ERROR_MESSAGE,
        h::SOURCE_TOPIC,
        h::SOURCE_PARTITION,
        h::SOURCE_OFFSET,
        h::NODE,
        h::ATTEMPTS,
        h::FAILED_AT,
        h::ERROR_DETAILS,
        h::REPLAYED_FROM,
    ];
    let mut headers = Headers::new();
    for hd in fixed.headers.iter() {
        if !failure.contains(&hd.key.as_str()) {
            headers.push(hd.key.clone(), hd.value.clone());
        }
    }
    headers.set(
        h::REPLAYED_FROM,
        format!("{dlq}/{}/{}", e.partition, e.offset),
    );
    Record {
        topic: to.to_string(),
        partition: -1,
        offset: -1,
        headers,
        ..fixed
    }
}

/// Replays dead letters (see the module docs); `progress(done, total)`
/// after each committed batch.
///
/// # Errors
/// [`Error::Kafka`] when a transaction fails (nothing of it is written;
/// run the replay again to resume); [`Error::Usage`] when the topic does
/// not exist.
pub fn replay_dead_letters(
    cfg: &Config,
    opts: &ReplayOptions,
    fix: Option<FixUp<'_>>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ReplaySummary> {
    let consumer = reader(cfg, &opts.group)?;
    let mut parts = partitions(&consumer, &opts.topic)?;
    // Only the partition and offsets asked for are read (one letter: one
    // fetch, not the whole topic).
    if let Some(p) = opts.partition {
        parts.retain(|&(q, _, _)| q == p);
        if parts.is_empty() {
            return Err(Error::Usage(format!(
                "dead-letter topic {} has no partition {p}",
                opts.topic
            )));
        }
    }
    if let Some(t) = opts.to_offset {
        for part in &mut parts {
            part.2 = part.2.min(t.saturating_add(1)).max(part.1);
        }
    }
    // Letters some replay wrote back already are not written again.
    let replayed = replayed_markers(cfg, &opts.topic)?;
    // Resume from the group's committed offsets.
    let mut tpl = TopicPartitionList::new();
    for &(p, _, _) in &parts {
        tpl.add_partition(&opts.topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .map_err(kafka_err("reading the replay's committed offsets"))?;
    let mut start = BTreeMap::new();
    for &(p, lo, hi) in &parts {
        let o = match committed.find_partition(&opts.topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => lo,
        };
        // Never past the end: the group's position is committed, and
        // letters that arrive later must still be read.
        start.insert(p, o.max(opts.from_offset.unwrap_or(0).min(hi)));
    }
    let total: u64 = parts
        .iter()
        .map(|&(p, lo, hi)| (hi - start[&p].max(lo)).max(0) as u64)
        .sum();
    // A target that does not exist is a mistake to name, not an outage:
    // checked before anything is written (source topics as letters name
    // them, once each).
    let mut targets: BTreeMap<String, bool> = BTreeMap::new();
    let mut check_target = |to: &str, what: &dyn Fn() -> String| -> Result<()> {
        let exists = match targets.get(to) {
            Some(&e) => e,
            None => {
                let e = crate::topics::topic_exists(cfg, to)?;
                targets.insert(to.to_string(), e);
                e
            }
        };
        if exists {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "{} topic {to} does not exist; the replay stopped before it",
                what()
            )))
        }
    };
    if let Some(to) = opts.to.as_deref() {
        check_target(to, &|| "the replay's target".to_string())?;
    }
    let markers = replayed_topic(&opts.topic);
    crate::topics::ensure_topic(cfg, &markers, 1, &[("cleanup.policy", "compact")])?;
    let producer: BaseProducer = producer_config(cfg, &opts.group, Some(&opts.group))
        .create()
        .map_err(kafka_err("creating the replay producer"))?;
    producer
        .init_transactions(TIMEOUT)
        .map_err(kafka_err("init_transactions (replay)"))?;
    crate::broker_quirks::clear_stale_offsets_of(
        cfg,
        &opts.group,
        &opts.topic,
        &producer,
        TIMEOUT,
    )?;
    producer
        .begin_transaction()
        .map_err(kafka_err("begin_transaction (replay)"))?;
    let mut summary = ReplaySummary::default();
    let mut in_batch = 0usize;
    let mut since_commit = Instant::now();
    let started = Instant::now();
    let mut positions = start.clone();
    let commit = |producer: &BaseProducer, next: &BTreeMap<i32, i64>| -> Result<()> {
        let mut offsets = TopicPartitionList::new();
        for (&p, &o) in next {
            offsets
                .add_partition_offset(&opts.topic, p, Offset::Offset(o))
                .map_err(kafka_err("building the replay's offsets"))?;
        }
        let cgm = consumer
            .group_metadata()
            .ok_or_else(|| Error::Usage("the replay consumer has no group metadata".into()))?;
        producer
            .send_offsets_to_transaction(&offsets, &cgm, TIMEOUT)
            .map_err(kafka_err("send_offsets_to_transaction (replay)"))?;
        producer
            .commit_transaction(TIMEOUT)
            .map_err(kafka_err("commit_transaction (replay)"))?;
        producer
            .begin_transaction()
            .map_err(kafka_err("begin_transaction (replay)"))
    };
    let result = {
        let summary = &mut summary;
        let positions_ref = &mut positions;
        read_to_end(
            &consumer,
            &opts.topic,
            &parts,
            &start,
            |r| {
                let e = DeadLetterEntry::of(r);
                summary.read += 1;
                positions_ref.insert(e.partition, e.offset + 1);
                if !opts.wants(&e) {
                    summary.filtered += 1;
                } else if replayed.contains_key(&(e.partition, e.offset)) {
                    summary.already_replayed += 1;
                } else {
                    let fixed = match fix {
                        Some(f) => f(&e.record),
                        None => Some(e.record.clone()),
                    };
                    match (
                        fixed,
                        opts.to
                            .as_deref()
                            .or(Some(e.source_topic.as_str()).filter(|t| !t.is_empty())),
                    ) {
                        (None, _) => summary.dropped += 1,
                        (Some(_), None) => summary.no_target += 1,
                        (Some(fixed), Some(to)) => {
                            check_target(to, &|| {
                                format!(
                                    "dead letter {}/{}'s source (give a target with `to`)",
                                    e.partition, e.offset
                                )
                            })?;
                            let out = replay_record(&e, &opts.topic, fixed, to);
                            send(&producer, &out)?;
                            let marker = serde_json::json!({
                                "to": to,
                                "group": opts.group,
                                "at": now_ms(),
                            });
                            send(
                                &producer,
                                &Record::new(
                                    markers.as_str(),
                                    Some(marker_key(e.partition, e.offset).into_bytes()),
                                    Some(marker.to_string().into_bytes()),
                                    now_ms(),
                                ),
                            )?;
                            summary.replayed += 1;
                            in_batch += 1;
                        }
                    }
                }
                if let Some(rate) = opts.max_per_sec.filter(|r| *r > 0) {
                    let due = started + Duration::from_secs_f64(summary.read as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                if in_batch >= opts.batch.max(1)
                    || since_commit.elapsed() >= Duration::from_millis(500)
                {
                    commit(&producer, positions_ref)?;
                    progress(summary.read, total);
                    (in_batch, since_commit) = (0, Instant::now());
                }
                Ok(true)
            },
            |_| Ok(()),
        )
    };
    let next = result?;
    commit(&producer, &next)?;
    progress(summary.read, total);
    Ok(summary)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn send(producer: &BaseProducer, r: &Record) -> Result<()> {
    let headers = to_owned_headers(&r.headers);
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic).timestamp(r.timestamp);
    if let Some(k) = r.key.as_deref() {
        rec = rec.key(k);
    }
    if let Some(v) = r.value.as_deref() {
        rec = rec.payload(v);
    }
    if let Some(hs) = headers {
        rec = rec.headers(hs);
    }
    let mut rec = rec;
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                back,
            )) => {
                producer.poll(Duration::from_millis(10));
                rec = back;
            }
            Err((e, _)) => return Err(kafka_err("replaying a dead letter")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_record_keeps_its_payload_and_says_where_it_came_from() {
        let mut r = Record::new("app-dlq", Some(b"k".to_vec()), Some(b"v".to_vec()), 42);
        r.partition = 2;
        r.offset = 9;
        r.headers.set(h::ERROR_KIND, "decode");
        r.headers.set(h::SOURCE_TOPIC, "orders");
        r.headers.set(h::ATTEMPTS, "3");
        r.headers.set("correlation-id", "c-1");
        let e = DeadLetterEntry::of(r.clone());
        assert_eq!(
            (e.kind.as_str(), e.source_topic.as_str(), e.attempts),
            ("decode", "orders", 3)
        );
        let out = replay_record(&e, "app-dlq", r, "orders");
        assert_eq!(out.topic, "orders");
        assert_eq!(out.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(out.timestamp, 42);
        assert_eq!(out.headers.get_str(h::REPLAYED_FROM), Some("app-dlq/2/9"));
        assert_eq!(out.headers.get_str("correlation-id"), Some("c-1"));
        assert_eq!(out.headers.get_str(h::ERROR_KIND), None);
        assert_eq!(out.headers.get_str(h::ATTEMPTS), None);
    }

    #[test]
    fn options_filter_by_kind_and_offsets() {
        let mut r = Record::new("d", None, None, 0);
        r.partition = 0;
        r.offset = 10;
        r.headers.set(h::ERROR_KIND, "late");
        let e = DeadLetterEntry::of(r);
        let mut o = ReplayOptions {
            topic: "d".into(),
            to: None,
            kinds: Vec::new(),
            from_offset: None,
            to_offset: None,
            partition: None,
            group: "g".into(),
            batch: 1,
            max_per_sec: None,
        };
        assert!(o.wants(&e));
        o.kinds = vec!["decode".into()];
        assert!(!o.wants(&e));
        o.kinds = vec!["late".into()];
        o.partition = Some(1);
        assert!(!o.wants(&e), "another partition");
        o.partition = Some(0);
        assert!(o.wants(&e));
        o.from_offset = Some(11);
        assert!(!o.wants(&e));
        o.from_offset = Some(10);
        o.to_offset = Some(10);
        assert!(o.wants(&e));
    }
}
