//! [`Task`]: one sub-topology × one partition number, with its lifecycle.
//!
//! Created on assignment (in the rebalance callback: cheap, no I/O); its
//! stores are opened and restored between polls (Created → Restoring →
//! Running), its inputs stay paused until it runs; on revoke it commits and
//! closes, its RocksDB closed before the callback returns (Closed).
//!
//! Identity is stable: the id is `<sub-topology name>/<partition>`, where
//! the sub-topology's name comes from its stores or source topics, not from
//! node order; the state directory is
//! `<state_dir>/<application_id>/tasks/<sub-topology name>/<partition>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_dsl::{TaskExecutor, Topology};
use weir_state::{InMemoryBackend, RocksDbBackend, StateBudget, StoreError, TaskState};

use crate::partition_group::{PartitionGroup, LAG_WAIT};
use crate::queries::LocalStores;

/// A partition: index of its topic among the topology's sources, and number.
pub(crate) type Tp = (usize, i32);

/// A task's key: sub-topology index and partition number.
pub(crate) type TaskKey = (usize, i32);

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskPhase {
    /// Made on assignment; stores not open; inputs paused.
    Created,
    /// Stores open, being brought up to date; inputs paused.
    Restoring,
    /// Processing.
    Running,
    /// Closed (revoked or shut down); never used again.
    Closed,
}

/// What a task's stream-time markers last said of it (see
/// [`crate::markers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriterState {
    /// Nothing yet from this owner: an earlier one may have said idle, so
    /// its first outputs wait for a plain marker like an idle one's.
    Unknown,
    /// A plain marker: the tasks behind wait for its stream time.
    Active,
    /// An idle marker: the tasks behind leave it out.
    Idle,
}

/// Whether opening a task's state failed because the files are damaged
/// (wipe and restore), rather than locked by another user or written by a
/// newer format (refuse: wiping would destroy someone else's state).
fn is_corruption(e: &StoreError) -> bool {
    match e {
        StoreError::Engine { message, .. } => {
            let m = message.to_ascii_lowercase();
            !m.contains("lock")
                && (m.contains("corrupt")
                    || m.contains("no such file")
                    || m.contains("does not exist")
                    || m.contains("sst")
                    || m.contains("manifest")
                    || m.contains("current"))
        }
        _ => false,
    }
}

/// One task; see the module docs.
pub(crate) struct Task {
    pub id: String,
    pub phase: TaskPhase,
    pub executor: TaskExecutor,
    /// Open from Restoring on.
    pub state: Option<TaskState>,
    pub group: PartitionGroup<Tp>,
    /// Its inputs were paused at assignment (it has stores to restore); they
    /// are resumed, and sought to the committed positions, when it runs.
    pub paused: bool,
    dir: PathBuf,
    partition: i32,
    /// Where its stores are registered for queries while open.
    queries: Arc<LocalStores>,
    /// The stream time of the last committed stream-time markers, and of
    /// those sent in the open transaction (see [`crate::markers`]).
    pub marked: Option<i64>,
    pub marking: Option<i64>,
    /// When it last had a record, or a timer output to a repartition
    /// topic (or started running): quiet for `max_upstream_idle_ms`, it
    /// marks itself idle.
    pub active_at: Instant,
    /// What its last stream-time markers said of it: as committed, and as
    /// sent in the open transaction.
    pub writer_marked: WriterState,
    pub writer: WriterState,
    /// Timers and punctuations fired in the open transaction.
    pub timers_fired: usize,
    /// A node it calls is unavailable: its next record waits until then
    /// (wall clock, ms since the epoch).
    pub blocked_until: Option<i64>,
}

impl Task {
    /// A new task (Created) for `sub` × `partition`.
    pub fn new(
        topology: &Topology,
        sub: usize,
        partition: i32,
        tasks_dir: &Path,
        max_idle: Duration,
        queries: Arc<LocalStores>,
    ) -> Self {
        let name = topology.subtopology_name(sub);
        Self {
            id: format!("{name}/{partition}"),
            phase: TaskPhase::Created,
            executor: TaskExecutor::new(topology.clone(), sub, partition),
            state: None,
            group: PartitionGroup::new(Vec::new(), max_idle).with_lag_wait(LAG_WAIT),
            paused: false,
            dir: tasks_dir.join(name).join(partition.to_string()),
            partition,
            queries,
            marked: None,
            marking: None,
            active_at: Instant::now(),
            writer_marked: WriterState::Unknown,
            writer: WriterState::Unknown,
            timers_fired: 0,
            blocked_until: None,
        }
    }

    /// Restoring → Running: its stores become queryable.
    pub fn set_running(&mut self) {
        self.phase = TaskPhase::Running;
        self.active_at = Instant::now();
        for name in self.executor.store_names() {
            self.queries.set_running(name, self.partition);
        }
    }

    /// Takes the task's stores out of the query registry (before they close).
    fn unregister(&self) {
        for name in self.executor.store_names() {
            self.queries.unregister(name, self.partition);
        }
    }

    /// Opens the task's stores: RocksDB when it has any, else an empty
    /// in-memory state. Created → Restoring.
    ///
    /// # Errors
    /// [`StoreError`] when the state directory cannot be opened.
    pub fn open(&mut self, budget: &StateBudget) -> Result<(), StoreError> {
        let names = self.executor.store_names().to_vec();
        let state = if names.is_empty() {
            TaskState::new(Box::new(InMemoryBackend::new(0)), names)
        } else {
            let backend = match RocksDbBackend::open(&self.dir, &names, budget) {
                Ok(b) => b,
                Err(e) if is_corruption(&e) => {
                    // The changelogs hold everything: start the task's
                    // state over and restore it fully.
                    tracing::warn!(task = %self.id, dir = %self.dir.display(), error = %e, "state unreadable: wiping it for a full restore from the changelogs");
                    std::fs::remove_dir_all(&self.dir).map_err(|source| StoreError::Io {
                        path: self.dir.clone(),
                        source,
                    })?;
                    RocksDbBackend::open(&self.dir, &names, budget)?
                }
                Err(e) => return Err(e),
            };
            let state = TaskState::new(Box::new(backend), names);
            for (id, name) in state.store_names().iter().enumerate() {
                if let Some(reader) = state.reader(id) {
                    self.queries.register(name, self.partition, reader);
                }
            }
            state
        };
        self.state = Some(state);
        self.phase = TaskPhase::Restoring;
        tracing::debug!(task = %self.id, dir = %self.dir.display(), "task stores open; restoring");
        Ok(())
    }

    /// Drops uncommitted work: pending writes, processor instances, stream
    /// time since the last commit, buffered records.
    pub fn abort(&mut self) {
        if let Some(s) = &mut self.state {
            s.abort();
        }
        self.executor.reset();
        self.group.clear();
        self.marking = None;
        self.writer = self.writer_marked;
        self.timers_fired = 0;
    }

    /// Closes the processors and the stores (RocksDB is closed when this
    /// returns). Pending writes not yet committed are dropped, never applied.
    pub fn close(&mut self) {
        self.unregister();
        self.executor.close();
        if let Some(mut s) = self.state.take() {
            s.abort();
        }
        self.group.clear();
        self.phase = TaskPhase::Closed;
        tracing::debug!(task = %self.id, "task closed");
    }
}

impl Drop for Task {
    /// A task dropped without `close` (a failed thread) must not leave a
    /// reader holding its RocksDB open.
    fn drop(&mut self) {
        self.unregister();
    }
}
