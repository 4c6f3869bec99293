//! Restoration: bringing a task's stores up to date before it processes
//! (the README, "Changelogs, checkpoints and restore").
//!
//! A task moves Created → Restoring → Running between polls of the stream
//! thread, never inside the rebalance callback, while its input partitions
//! are paused. For each store, [`ChangelogRestorer::plan`] decides where
//! replay starts: the checkpoint the last commit recorded with the state
//! (see [`crate::changelog`]) — after a crash only the tail the last
//! commits added. The store is wiped and replayed from the log start when
//! the checkpoint cannot be trusted: none, taken on another cluster, below
//! the changelog's log start, or past its end (a broker that lost data).
//! The end is listed after the task's committed input offsets are known.
//!
//! [`ChangelogRestorer::step`] replays a bounded chunk of every restoring
//! changelog partition per turn with the thread's restore consumer (no
//! group, `read_committed`, positions never reset silently) and applies it
//! to the stores in one write batch per task, with the checkpoint advanced
//! to what was applied — so a crash during restoration resumes where it
//! stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_state::{StoreError, StoreId, TaskState, WriteSet};

use crate::broker_quirks::FetchNoise;
use crate::changelog::{
    changelog_topic, checkpoint_key, checkpoint_meta, parse_offset, CLUSTER_KEY,
};
use crate::error::Error;
use crate::kafka::restore_consumer_config;
use crate::rebalance::log_librdkafka;
use crate::stats::RuntimeStats;
use crate::stream_thread::{kafka_err, ThreadSpec};
use crate::task::{Task, TaskKey};

/// Records replayed per step at most (a step also ends after [`STEP_TIME`]).
const STEP_RECORDS: usize = 50_000;
/// Time one step may take, so commits of running tasks stay on time.
const STEP_TIME: Duration = Duration::from_millis(100);
/// How long listing a changelog's offsets may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// The restore consumer's context: librdkafka's logs, nothing else.
/// The context of hand-assigned readers (restore, instance directory):
/// librdkafka's log through `tracing`, the test broker's noise quietened.
#[derive(Default)]
pub(crate) struct RestoreContext {
    noise: FetchNoise,
}

impl ClientContext for RestoreContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka(&self.noise, level, fac, log_message);
    }
}

impl ConsumerContext for RestoreContext {}

/// One changelog partition being replayed.
#[derive(Debug)]
struct Progress {
    topic: String,
    partition: i32,
    task: TaskKey,
    store: StoreId,
    /// Where the replay started.
    start: i64,
    /// The next offset to apply.
    next: i64,
    /// The end listed when the restoration was planned.
    end: i64,
}

/// How often a long restoration logs its progress.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Replays changelogs into restoring tasks, a bounded chunk per step.
#[derive(Default)]
pub(crate) struct ChangelogRestorer {
    consumer: Option<BaseConsumer<RestoreContext>>,
    /// Changelog partitions still being replayed.
    /// (A few entries — stores × restoring tasks — searched linearly, so a
    /// record's lookup allocates nothing.)
    active: Vec<Progress>,
    /// Tasks whose restoration is planned (replaying, or done).
    planned: BTreeSet<TaskKey>,
    /// The consumer's assignment no longer matches `active`.
    reassign: bool,
    /// When progress was last logged (or the replay began).
    progress_logged: Option<Instant>,
}

impl std::fmt::Debug for ChangelogRestorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogRestorer")
            .field("active", &self.active)
            .field("planned", &self.planned)
            .finish()
    }
}

/// The progress of changelog partition `topic`[`partition`], if restoring.
fn find<'a>(active: &'a mut [Progress], topic: &str, partition: i32) -> Option<&'a mut Progress> {
    active
        .iter_mut()
        .find(|p| p.partition == partition && p.topic == topic)
}

/// A changelog record to apply: store, key, value (`None`: a tombstone).
pub(crate) type Replayed = (StoreId, Vec<u8>, Option<Vec<u8>>);

/// Applies replayed changelog records to a restoring task's stores with the
/// checkpoints they reach (store id → next offset), in one write batch
/// that skips the write-ahead log (a crash loses the batch and its
/// checkpoint together: the restore resumes earlier). The task persists its
/// state before it runs.
pub(crate) fn apply_replayed(
    state: &mut TaskState,
    writes: Vec<Replayed>,
    checkpoints: &[(StoreId, i64)],
    cluster: Option<&str>,
) -> Result<(), StoreError> {
    let meta = checkpoint_meta(state.store_names(), checkpoints, cluster);
    state.restore(WriteSet {
        writes,
        meta,
        unlogged: true,
    })
}

/// A store's checkpoint and the cluster it was taken on, as the last
/// commit (or restore step) recorded them.
pub(crate) fn stored_checkpoint(
    state: &TaskState,
    store: &str,
) -> Result<(Option<i64>, Option<String>), StoreError> {
    let checkpoint = state
        .meta(&checkpoint_key(store))?
        .and_then(|b| parse_offset(&b));
    let cluster = state
        .meta(CLUSTER_KEY)?
        .map(|b| String::from_utf8_lossy(&b).to_string());
    Ok((checkpoint, cluster))
}

/// Why a checkpoint cannot be trusted (the store is then wiped).
fn distrust(
    checkpoint: Option<i64>,
    stored_cluster: Option<&str>,
    cluster: Option<&str>,
    low: i64,
    high: i64,
) -> Option<String> {
    let Some(c) = checkpoint else {
        return Some("no checkpoint".into());
    };
    if let (Some(a), Some(b)) = (stored_cluster, cluster) {
        if a != b {
            return Some(format!("checkpoint taken on cluster {a}, now on {b}"));
        }
    }
    if c < low {
        return Some(format!(
            "checkpoint {c} is below the changelog's log start {low}"
        ));
    }
    if c > high {
        return Some(format!("checkpoint {c} is past the changelog's end {high}"));
    }
    None
}

impl ChangelogRestorer {
    fn consumer(&mut self, spec: &ThreadSpec) -> Result<&BaseConsumer<RestoreContext>, Error> {
        if self.consumer.is_none() {
            let client_id = format!(
                "{}-{}-{}-restore",
                spec.cfg.application_id, spec.instance_id, spec.index
            );
            let c: BaseConsumer<RestoreContext> = restore_consumer_config(&spec.cfg, &client_id)
                .create_with_context(RestoreContext {
                    noise: FetchNoise::default(),
                })
                .map_err(kafka_err("creating the restore consumer"))?;
            self.consumer = Some(c);
        }
        Ok(self.consumer.as_ref().expect("just made"))
    }

    /// Whether `key`'s restoration was planned.
    pub fn is_planned(&self, key: TaskKey) -> bool {
        self.planned.contains(&key)
    }

    /// Whether `key`'s stores are up to date.
    pub fn is_done(&self, key: TaskKey) -> bool {
        self.planned.contains(&key) && !self.active.iter().any(|p| p.task == key)
    }

    /// Decides where each of `task`'s stores resumes (wiping those whose
    /// checkpoint cannot be trusted) and queues what is to replay. Call
    /// once the task's committed input offsets are known.
    ///
    /// # Errors
    /// [`Error::Task`] when a changelog cannot be listed or a store fails.
    ///
    /// A table read from a topic (`TopologyBuilder::table`) restores from
    /// that topic, and only up to `committed(topic, partition)`, the task's
    /// committed offset of it (not known: nothing is replayed and a store
    /// with a checkpoint is wiped — processing starts where the consumer's
    /// reset puts it).
    pub fn plan(
        &mut self,
        key: TaskKey,
        task: &mut Task,
        spec: &ThreadSpec,
        committed: &dyn Fn(&str, i32) -> Option<i64>,
    ) -> Result<(), Error> {
        let stats = &spec.stats;
        let task_err = |message: String| Error::Task {
            task: task.id.clone(),
            message,
        };
        let names = task.executor.store_names().to_vec();
        let partition = key.1;
        for (store, name) in names.iter().enumerate() {
            let table_source = spec.topology.table_source(name);
            let topic = match table_source {
                Some(t) => t.to_string(),
                None => changelog_topic(&spec.cfg.application_id, name),
            };
            let state = task
                .state
                .as_mut()
                .expect("a restoring task has its stores open");
            let (checkpoint, stored_cluster) =
                stored_checkpoint(state, name).map_err(|e| task_err(e.to_string()))?;
            let consumer = self.consumer(spec)?;
            let list = || {
                consumer
                    .fetch_watermarks(&topic, partition, LIST_TIMEOUT)
                    .map_err(|e| task_err(format!("listing changelog {topic}[{partition}]: {e}")))
            };
            let (low, mut high) = list()?;
            if table_source.is_some() {
                // The table's topic is read on from the committed offset:
                // replaying past it would show joins values from the future.
                high = committed(&topic, partition).unwrap_or(low);
            }
            // A read_committed listing can fall just short of a
            // transaction already committed (its markers not yet written):
            // list again before calling a checkpoint past the end.
            let mut tries = 0;
            while table_source.is_none() && checkpoint.is_some_and(|c| c > high) && tries < 5 {
                std::thread::sleep(Duration::from_millis(100));
                high = high.max(list()?.1);
                tries += 1;
            }
            let start = match distrust(
                checkpoint,
                stored_cluster.as_deref(),
                spec.cluster_id.as_deref(),
                low,
                high,
            ) {
                None => checkpoint.unwrap_or(low),
                Some(reason) => {
                    if checkpoint.is_some() {
                        tracing::warn!(task = %task.id, store = %name, %reason, "wiping the store for a full restore");
                        RuntimeStats::add(&stats.stores_wiped, 1);
                    } else {
                        tracing::debug!(task = %task.id, store = %name, "no checkpoint: restoring from the log start");
                    }
                    let state = task.state.as_mut().expect("open");
                    state.wipe(store).map_err(|e| task_err(e.to_string()))?;
                    low
                }
            };
            let todo = (high - start).max(0);
            RuntimeStats::add(&stats.restore_total, todo as u64);
            tracing::info!(task = %task.id, store = %name, changelog = %topic, from = start, to = high, records = todo, "restoring");
            if start < high {
                self.active
                    .retain(|p| !(p.partition == partition && p.topic == topic));
                self.active.push(Progress {
                    topic,
                    partition,
                    task: key,
                    store,
                    start,
                    next: start,
                    end: high,
                });
                self.reassign = true;
            }
        }
        self.planned.insert(key);
        Ok(())
    }

    /// Replays one bounded chunk of every restoring changelog partition
    /// into its task's stores.
    ///
    /// # Errors
    /// [`Error::Task`] when a store fails, [`Error::Kafka`] when the
    /// restore consumer cannot be assigned.
    pub fn step(
        &mut self,
        tasks: &mut BTreeMap<TaskKey, Task>,
        spec: &ThreadSpec,
        committed: &dyn Fn(&str, i32) -> Option<i64>,
    ) -> Result<(), Error> {
        if self.active.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.reassign) {
            let mut tpl = TopicPartitionList::new();
            for p in &self.active {
                let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next));
            }
            self.consumer(spec)?
                .assign(&tpl)
                .map_err(kafka_err("assigning the restore consumer"))?;
        }
        let consumer = self.consumer.as_ref().expect("made by assign above");
        let mut batches: BTreeMap<TaskKey, Vec<Replayed>> = BTreeMap::new();
        let started = Instant::now();
        let mut taken = 0;
        while taken < STEP_RECORDS {
            let left = STEP_TIME.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match consumer.poll(left.min(Duration::from_millis(10))) {
                None => break,
                Some(Ok(m)) => {
                    let Some(p) = find(&mut self.active, m.topic(), m.partition()) else {
                        continue;
                    };
                    // Past the planned end: a table's topic beyond the
                    // committed offset is processed, not restored.
                    if m.offset() < p.next || m.offset() >= p.end {
                        continue;
                    }
                    p.next = m.offset() + 1;
                    // A table topic's record without a key is dead-lettered
                    // when processed; it is no entry.
                    let Some(k) = m.key() else { continue };
                    batches.entry(p.task).or_default().push((
                        p.store,
                        k.to_vec(),
                        m.payload().map(<[u8]>::to_vec),
                    ));
                    taken += 1;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "restore consumer error; listing the restoring changelogs again");
                    self.recheck(tasks, spec, committed)?;
                    return Ok(());
                }
            }
        }
        // Where each partition stands: past the end → done. The consumer's
        // position also steps over transaction markers.
        if let Ok(positions) = consumer.position() {
            for e in positions.elements() {
                if let (Some(p), Offset::Offset(o)) =
                    (find(&mut self.active, e.topic(), e.partition()), e.offset())
                {
                    p.next = p.next.max(o.min(p.end));
                }
            }
        }
        // Checkpoints advance with what was applied.
        let mut next: BTreeMap<TaskKey, Vec<(StoreId, i64)>> = BTreeMap::new();
        for p in &self.active {
            next.entry(p.task).or_default().push((p.store, p.next));
        }
        for (key, checkpoints) in next {
            let Some(task) = tasks.get_mut(&key) else {
                continue;
            };
            let Some(state) = task.state.as_mut() else {
                continue;
            };
            let writes = batches.remove(&key).unwrap_or_default();
            apply_replayed(state, writes, &checkpoints, spec.cluster_id.as_deref()).map_err(
                |e| Error::Task {
                    task: task.id.clone(),
                    message: format!("applying restored records: {e}"),
                },
            )?;
        }
        RuntimeStats::add(&spec.stats.restored, taken as u64);
        let before = self.active.len();
        self.active.retain(|p| {
            let (topic, partition) = (&p.topic, p.partition);
            let done = p.next >= p.end;
            if done {
                tracing::info!(changelog = %topic, partition, offset = p.next, "changelog partition restored");
            }
            !done
        });
        if self.active.len() != before {
            self.reassign = true;
        }
        self.log_progress();
        Ok(())
    }

    /// Every [`PROGRESS_LOG_INTERVAL`] of a replay: records done / total
    /// per changelog partition still replaying.
    fn log_progress(&mut self) {
        if self.active.is_empty() {
            self.progress_logged = None;
            return;
        }
        let since = *self.progress_logged.get_or_insert_with(Instant::now);
        if since.elapsed() < PROGRESS_LOG_INTERVAL {
            return;
        }
        self.progress_logged = Some(Instant::now());
        for p in &self.active {
            tracing::info!(
                changelog = %p.topic,
                partition = p.partition,
                done = p.next - p.start,
                total = p.end - p.start,
                "restoring: records done / total"
            );
        }
    }

    /// After a restore consumer error (say, a checkpoint compacted away
    /// under it): plans every restoring task again from its stores.
    fn recheck(
        &mut self,
        tasks: &mut BTreeMap<TaskKey, Task>,
        spec: &ThreadSpec,
        committed: &dyn Fn(&str, i32) -> Option<i64>,
    ) -> Result<(), Error> {
        let keys: BTreeSet<TaskKey> = self.active.iter().map(|p| p.task).collect();
        for key in keys {
            self.forget(key);
            if let Some(task) = tasks.get_mut(&key) {
                self.plan(key, task, spec, committed)?;
            }
        }
        Ok(())
    }

    /// Drops `key`'s restoration (its task was revoked or closed).
    pub fn forget(&mut self, key: TaskKey) {
        self.planned.remove(&key);
        let before = self.active.len();
        self.active.retain(|p| p.task != key);
        if self.active.len() != before {
            self.reassign = true;
        }
    }

    /// Drops every restoration.
    pub fn clear(&mut self) {
        self.active.clear();
        self.planned.clear();
        self.reassign = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::ChangelogWrites;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use weir_state::{KeyRange, KeyValueStore, RocksDbBackend, StateBudget};

    const STORES: usize = 2;
    const TASK: TaskKey = (0, 3);

    #[derive(Clone, Debug)]
    enum Op {
        Put(usize, u8, u8),
        Delete(usize, u8),
        /// A record that fails: its writes are rolled back to its savepoint.
        Failed(usize, u8, u8),
        /// A record that succeeds: its writes are kept at its savepoint's end.
        Kept(usize, u8, u8),
        Commit,
        /// The transaction commits; the process dies before the checkpoint.
        CommitThenCrash,
        Abort,
        /// The process dies with a transaction open (the broker aborts it).
        Crash,
        /// The state directory is lost.
        LoseState,
    }

    fn op() -> impl Strategy<Value = Op> {
        let s = 0..STORES;
        prop_oneof![
            6 => (s.clone(), 0..8u8, any::<u8>()).prop_map(|(s, k, v)| Op::Put(s, k, v)),
            2 => (s.clone(), 0..8u8).prop_map(|(s, k)| Op::Delete(s, k)),
            1 => (s.clone(), 0..8u8, any::<u8>()).prop_map(|(s, k, v)| Op::Failed(s, k, v)),
            3 => (s, 0..8u8, any::<u8>()).prop_map(|(s, k, v)| Op::Kept(s, k, v)),
            2 => Just(Op::Commit),
            1 => Just(Op::CommitThenCrash),
            1 => Just(Op::Abort),
            1 => Just(Op::Crash),
            1 => Just(Op::LoseState),
        ]
    }

    /// A changelog record: its transaction, key and value.
    type LogRecord = (u64, Vec<u8>, Option<Vec<u8>>);

    /// One changelog partition per store, as a read_committed consumer sees
    /// it: records of aborted transactions are skipped.
    #[derive(Default)]
    struct Log {
        records: Vec<Vec<LogRecord>>,
        committed: HashSet<u64>,
    }

    fn names() -> Vec<String> {
        (0..STORES).map(|i| format!("store-{i}")).collect()
    }

    fn open(dir: &std::path::Path, budget: &StateBudget) -> TaskState {
        let backend = RocksDbBackend::open(dir, &names(), budget).unwrap();
        TaskState::new(Box::new(backend), names())
    }

    /// What the runtime does at commit: produce the pending set, once per
    /// changed key (acknowledged at once here).
    fn send(
        state: &TaskState,
        log: &mut Log,
        txn: u64,
        writes: &mut ChangelogWrites,
        acks: &mut Vec<(usize, i64)>,
    ) {
        for (store, k, v) in state.pending().iter() {
            let slot = writes.slot(TASK, store);
            acks.push((slot, log.records[store].len() as i64));
            log.records[store].push((txn, k.to_vec(), v.map(<[u8]>::to_vec)));
        }
    }

    /// What a restoring task does: plan from the checkpoint (wiping an
    /// untrusted store), replay the committed tail in chunks.
    fn restore(state: &mut TaskState, log: &Log, cluster: &str) {
        for (store, name) in names().iter().enumerate() {
            let (checkpoint, stored) = stored_checkpoint(state, name).unwrap();
            let high = log.records[store].len() as i64;
            let start = match distrust(checkpoint, stored.as_deref(), Some(cluster), 0, high) {
                None => checkpoint.unwrap(),
                Some(_) => {
                    state.wipe(store).unwrap();
                    0
                }
            };
            let tail: Vec<(usize, &LogRecord)> = log.records[store]
                .iter()
                .enumerate()
                .skip(start as usize)
                .collect();
            for chunk in tail.chunks(3) {
                let writes: Vec<Replayed> = chunk
                    .iter()
                    .filter(|(_, (txn, _, _))| log.committed.contains(txn))
                    .map(|(_, (_, k, v))| (store, k.clone(), v.clone()))
                    .collect();
                let next = chunk.last().unwrap().0 as i64 + 1;
                apply_replayed(state, writes, &[(store, next)], Some(cluster)).unwrap();
            }
        }
    }

    fn contents(state: &mut TaskState) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        (0..STORES)
            .map(|s| {
                state
                    .store(s)
                    .range(KeyRange::all())
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            })
            .collect()
    }

    type Model = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

    fn model_contents(m: &Model) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        m.iter()
            .map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The state restored from the changelog equals the committed state,
        /// whatever the history of commits, aborts, crashes between commit
        /// and checkpoint, and lost state directories.
        #[test]
        fn state_after_restore_equals_state_before(ops in prop::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("task");
            let budget = StateBudget::new(8 << 20);
            let cluster = "cluster-a";
            let mut log = Log { records: vec![Vec::new(); STORES], ..Log::default() };
            let mut committed: Model = vec![BTreeMap::new(); STORES];
            let mut visible = committed.clone();
            let mut state = Some(open(&path, &budget));
            let mut txn = 0u64;
            let mut writes = ChangelogWrites::default();
            let mut acks = Vec::new();
            for op in &ops {
                let st = state.as_mut().unwrap();
                let mut restart = false;
                match op {
                    Op::Put(s, k, v) => {
                        st.store(*s).put(&[*k], &[*v]).unwrap();
                        visible[*s].insert(vec![*k], vec![*v]);
                    }
                    Op::Delete(s, k) => {
                        st.store(*s).delete(&[*k]).unwrap();
                        visible[*s].remove(&vec![*k]);
                    }
                    Op::Failed(s, k, v) => {
                        st.savepoint();
                        st.store(*s).put(&[*k], &[*v]).unwrap();
                        st.rollback_to_savepoint();
                    }
                    Op::Kept(s, k, v) => {
                        st.savepoint();
                        st.store(*s).put(&[*k], &[*v]).unwrap();
                        st.release_savepoint();
                        visible[*s].insert(vec![*k], vec![*v]);
                    }
                    Op::Commit | Op::CommitThenCrash => {
                        send(st, &mut log, txn, &mut writes, &mut acks);
                        let checkpoints = writes
                            .checkpoints(acks.drain(..))
                            .remove(&TASK)
                            .unwrap_or_default();
                        log.committed.insert(txn);
                        committed = visible.clone();
                        if matches!(op, Op::Commit) {
                            let meta = checkpoint_meta(st.store_names(), &checkpoints, Some(cluster));
                            st.commit(meta).unwrap();
                        } else {
                            restart = true;
                        }
                    }
                    Op::Abort => {
                        send(st, &mut log, txn, &mut writes, &mut acks);
                        st.abort();
                        visible = committed.clone();
                    }
                    Op::Crash => {
                        send(st, &mut log, txn, &mut writes, &mut acks);
                        restart = true;
                    }
                    Op::LoseState => {
                        drop(state.take());
                        std::fs::remove_dir_all(&path).unwrap();
                        restart = true;
                    }
                }
                if matches!(op, Op::Commit | Op::CommitThenCrash | Op::Abort | Op::Crash | Op::LoseState) {
                    txn += 1;
                    writes.clear();
                    acks.clear();
                }
                if restart {
                    drop(state.take());
                    let mut st = open(&path, &budget);
                    restore(&mut st, &log, cluster);
                    visible = committed.clone();
                    prop_assert_eq!(contents(&mut st), model_contents(&committed), "after {:?}", op);
                    state = Some(st);
                }
            }
            // A final restart restores exactly the committed state too.
            drop(state.take());
            let mut st = open(&path, &budget);
            restore(&mut st, &log, cluster);
            prop_assert_eq!(contents(&mut st), model_contents(&committed));
        }
    }

    #[test]
    fn checkpoints_are_trusted_only_inside_the_log_of_the_same_cluster() {
        assert_eq!(distrust(Some(5), Some("c"), Some("c"), 0, 10), None);
        assert_eq!(distrust(Some(10), None, Some("c"), 0, 10), None);
        assert_eq!(distrust(Some(0), Some("c"), None, 0, 0), None);
        assert!(distrust(None, None, None, 0, 0).is_some());
        assert!(distrust(Some(5), Some("a"), Some("b"), 0, 10)
            .unwrap()
            .contains("cluster a"));
        assert!(distrust(Some(3), None, None, 4, 10)
            .unwrap()
            .contains("below"));
        assert!(distrust(Some(11), None, None, 0, 10)
            .unwrap()
            .contains("past"));
    }
}
