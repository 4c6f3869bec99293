//! Timers and punctuations of a task: what is due, and firing it within a
//! budget (see [`TaskExecutor::fire_timers`]).

use std::panic::{catch_unwind, AssertUnwindSafe};

use weir_core::{Headers, ProcessError, Record, Timestamp};
use weir_state::{Clock, TaskState, Timer, TimerStore};

use super::{call_node, forward, panic_error, Env, TaskExecutor};
use crate::process::{clock_index, TimerFailure, Trigger};

/// Timers read from the store per query while firing.
const FIRE_BATCH: usize = 256;

/// A node of the task that owns a timer store.
#[derive(Debug)]
pub(super) struct TimerNode {
    pub(super) node: usize,
    /// The timer store's id in the task's state.
    pub(super) store: usize,
    /// The earliest deadline per clock (stream, wall) as far as known:
    /// `None` is unknown (read from the store when needed); a value may be
    /// too early (a scheduled timer rolled back), never too late.
    pub(super) next: [Option<Option<Timestamp>>; 2],
    /// Per clock, a deadline no timer is earlier than, when known: reads
    /// seek there, past the timers already fired (whose deletions RocksDB
    /// keeps as tombstones until compaction).
    pub(super) floor: [Option<Timestamp>; 2],
}

/// A punctuation registered by a node (see `ProcessorContext::schedule_every`).
#[derive(Debug)]
pub(super) struct Punctuation {
    pub(super) node: usize,
    pub(super) clock: Clock,
    pub(super) interval: i64,
    /// When it is due next (`None`: not yet placed on its clock).
    pub(super) next: Option<Timestamp>,
}

/// The first multiple of `interval` after `time`.
fn grid_after(time: Timestamp, interval: i64) -> Timestamp {
    time.div_euclid(interval)
        .saturating_add(1)
        .saturating_mul(interval)
}

/// What [`TaskExecutor::fire_timers`] did.
#[derive(Debug, Default)]
pub struct TimerRun {
    /// Timers and punctuations that fired (failed ones included).
    pub fired: usize,
    /// Calls that failed, with the record to dead-letter (a timer's key and
    /// payload, topic = its store's name, timestamp = its deadline) or
    /// `None` for a punctuation (log it). Their writes and outputs were
    /// dropped; a failed timer is removed all the same.
    pub failed: Vec<(Option<Record>, ProcessError)>,
}

impl TaskExecutor {
    /// Sets the system clock the task's wall-clock timers and punctuations
    /// see (milliseconds since the epoch).
    pub fn set_wall_clock(&mut self, now: Timestamp) {
        self.wall_clock = now;
    }

    /// The time of `clock` now, if it has one yet.
    fn clock_time(&self, clock: Clock) -> Option<Timestamp> {
        match clock {
            Clock::Stream => self.stream_time,
            Clock::Wall => Some(self.wall_clock),
        }
    }

    /// Whether a timer or punctuation may be due (cheap: from what is
    /// known in memory; [`TaskExecutor::fire_timers`] reads the store).
    pub fn has_due_timers(&self) -> bool {
        let timers = self.timer_nodes.iter().any(|t| {
            Clock::ALL.iter().any(|&c| {
                let Some(now) = self.clock_time(c) else {
                    return false;
                };
                match t.next[clock_index(c)] {
                    None => true,
                    Some(next) => next.is_some_and(|d| d <= now),
                }
            })
        });
        timers
            || self.punctuations.iter().any(|p| {
                self.clock_time(p.clock)
                    .is_some_and(|now| p.next.is_none_or(|n| n <= now))
            })
    }

    /// The earliest known wall-clock deadline of a timer or punctuation.
    pub fn next_wall_deadline(&self) -> Option<Timestamp> {
        let w = clock_index(Clock::Wall);
        let timers = self.timer_nodes.iter().filter_map(|t| t.next[w].flatten());
        let punct = self
            .punctuations
            .iter()
            .filter(|p| p.clock == Clock::Wall)
            .filter_map(|p| p.next);
        timers.chain(punct).min()
    }

    /// Fires up to `budget` due timers and punctuations — stream-time
    /// timers (deadline <= stream time), then wall-clock ones (deadline <=
    /// the wall clock), each in deadline order, then punctuations — and
    /// appends their outputs to `out`. Each timer is removed from its store
    /// in the same pending writes as its call's effects, so it fires once
    /// per committed transaction. Call after each record (stream time may
    /// have moved) and between records (the wall clock moves); whether more
    /// are due after a full budget, [`TaskExecutor::has_due_timers`] says.
    ///
    /// # Errors
    /// A fatal [`ProcessError`] (a store failed, `init` failed); other
    /// failures are in [`TimerRun::failed`].
    pub fn fire_timers(
        &mut self,
        out: &mut Vec<Record>,
        state: &mut TaskState,
        budget: usize,
    ) -> Result<TimerRun, ProcessError> {
        let mut run = TimerRun::default();
        if self.timer_nodes.is_empty() && self.punctuations.is_empty() {
            return Ok(run);
        }
        if !self.initialized {
            self.init(state)?;
        }
        for i in 0..self.timer_nodes.len() {
            for clock in Clock::ALL {
                let c = clock_index(clock);
                let Some(now) = self.clock_time(clock) else {
                    continue;
                };
                let (node, store) = (self.timer_nodes[i].node, self.timer_nodes[i].store);
                let name = self.topology.inner.nodes[node].name.clone();
                let store_name = self.topology.subtopology_stores(self.subtopology)[store].clone();
                let store_err = |e: weir_state::StoreError| ProcessError::Store {
                    node: name.clone(),
                    store: store_name.clone(),
                    message: e.to_string(),
                };
                while run.fired < budget {
                    let from = self.timer_nodes[i].floor[c].unwrap_or(i64::MIN);
                    let next = match self.timer_nodes[i].next[c] {
                        Some(n) => n,
                        None => TimerStore::new(state.store(store))
                            .next_deadline_from(clock, from)
                            .map_err(store_err)?,
                    };
                    let t = &mut self.timer_nodes[i];
                    t.next[c] = Some(next);
                    // Nothing earlier is left (nothing at all: any new
                    // timer lowers the floor to its deadline).
                    t.floor[c] = Some(next.unwrap_or(i64::MAX).max(from));
                    if next.is_none_or(|d| d > now) {
                        break;
                    }
                    let due = TimerStore::new(state.store(store))
                        .due_from(clock, from, now, (budget - run.fired).min(FIRE_BATCH))
                        .map_err(store_err)?;
                    // Read again from the store next round (it may be too
                    // early: a timer it counted was rolled back).
                    self.timer_nodes[i].next[c] = None;
                    if due.is_empty() {
                        continue;
                    }
                    for timer in due {
                        self.fire_one(node, store, timer, out, state, &mut run)?;
                        run.fired += 1;
                    }
                }
            }
        }
        let mut j = 0;
        while j < self.punctuations.len() && run.fired < budget {
            let p = &self.punctuations[j];
            j += 1;
            let Some(now) = self.clock_time(p.clock) else {
                continue;
            };
            let (node, clock) = (p.node, p.clock);
            let due = p.next.is_some_and(|n| n <= now);
            if p.next.is_none_or(|n| n <= now) {
                let interval = p.interval;
                self.punctuations[j - 1].next = Some(grid_after(now, interval));
            }
            if due {
                self.call_guarded(
                    node,
                    Trigger::Punctuate(clock, now),
                    out,
                    state,
                    None,
                    &mut run,
                )?;
                run.fired += 1;
            }
        }
        Ok(run)
    }

    /// Fires `timer` of `node` (see [`TaskExecutor::fire_timers`]).
    fn fire_one(
        &mut self,
        node: usize,
        store: usize,
        timer: Timer,
        out: &mut Vec<Record>,
        state: &mut TaskState,
        run: &mut TimerRun,
    ) -> Result<(), ProcessError> {
        let store_name = self.topology.subtopology_stores(self.subtopology)[store].clone();
        let store_err = |e: weir_state::StoreError| ProcessError::Store {
            node: self.topology.inner.nodes[node].name.clone(),
            store: store_name.clone(),
            message: e.to_string(),
        };
        TimerStore::new(state.store(store))
            .remove(&timer)
            .map_err(store_err)?;
        let record = Record {
            topic: store_name.clone(),
            partition: self.partition,
            offset: -1,
            key: Some(timer.key.clone()),
            value: Some(timer.payload.clone()),
            headers: Headers::new(),
            timestamp: timer.deadline,
        };
        self.call_guarded(node, Trigger::Timer(timer), out, state, Some(record), run)
    }

    /// Runs one call of `node` outside any record — a timer or a
    /// punctuation — in its own savepoint: on failure its writes and
    /// outputs are dropped and the failure goes to `run` (a fatal one is
    /// returned).
    fn call_guarded(
        &mut self,
        node: usize,
        trigger: Trigger,
        out: &mut Vec<Record>,
        state: &mut TaskState,
        record: Option<Record>,
        run: &mut TimerRun,
    ) -> Result<(), ProcessError> {
        let mark = out.len();
        state.savepoint();
        let nodes = &self.topology.inner.nodes;
        let ledger_store = self
            .ledger
            .as_ref()
            .and_then(|(l, _)| state.store_id(&l.store).ok());
        let timer = match &trigger {
            Trigger::Timer(t) => Some(t.clone()),
            _ => None,
        };
        let mut env = env!(self, state, None);
        env.ledger_store = ledger_store;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut forwarded = Vec::new();
            call_node(nodes, node, trigger, &mut forwarded, &mut env)?;
            for it in forwarded {
                forward(nodes, &nodes[node], it, out, &mut env)?;
            }
            Ok(())
        }));
        let result = match result {
            Ok(r) => r,
            Err(payload) => Err(panic_error(nodes, payload)),
        };
        match result {
            Ok(()) => {
                env.meters.commit_staged();
                env.meters.dead_letters(nodes, &env.dead_letters);
                out.append(&mut env.dead_letters);
                env.state.release_savepoint();
                Ok(())
            }
            Err(e) => {
                out.truncate(mark);
                env.meters.drop_staged();
                env.state.rollback_to_savepoint();
                let panicked = matches!(e, ProcessError::Panic { .. });
                if panicked {
                    self.replace_panicked(state)?;
                }
                if e.class() == weir_core::ErrorClass::Fatal {
                    return Err(e);
                }
                // A failed timer stays removed (its removal is outside
                // the savepoint): it must not fail forever. Its node may
                // settle what it stood for.
                if let Some(t) = timer {
                    let failure = TimerFailure {
                        kind: e.kind().to_string(),
                        message: e.to_string(),
                        retry_at: match &e {
                            ProcessError::Unavailable { retry_at, .. } => Some(*retry_at),
                            _ => None,
                        },
                    };
                    if self.timer_failed(node, t, failure, out, state)? {
                        return Ok(());
                    }
                }
                // The runtime dead-letters a failed timer's record (a
                // punctuation has none: it is logged and dropped).
                if record.is_some() {
                    self.meters
                        .dead_lettered(&self.topology.inner.nodes, e.node());
                }
                run.failed.push((record, e));
                Ok(())
            }
        }
    }

    /// Lets `node` settle a timer whose call failed, in a savepoint of its
    /// own; whether it did.
    fn timer_failed(
        &mut self,
        node: usize,
        timer: Timer,
        failure: TimerFailure,
        out: &mut Vec<Record>,
        state: &mut TaskState,
    ) -> Result<bool, ProcessError> {
        let mark = out.len();
        state.savepoint();
        let nodes = &self.topology.inner.nodes;
        let ledger_store = self
            .ledger
            .as_ref()
            .and_then(|(l, _)| state.store_id(&l.store).ok());
        let mut env = env!(self, state, None);
        env.ledger_store = ledger_store;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut forwarded = Vec::new();
            call_node(
                nodes,
                node,
                Trigger::TimerFailed(timer, failure),
                &mut forwarded,
                &mut env,
            )?;
            for it in forwarded {
                forward(nodes, &nodes[node], it, out, &mut env)?;
            }
            Ok::<(), ProcessError>(())
        }));
        match result {
            Ok(Ok(())) if env.timer_handled => {
                env.meters.commit_staged();
                env.meters.dead_letters(nodes, &env.dead_letters);
                out.append(&mut env.dead_letters);
                env.state.release_savepoint();
                Ok(true)
            }
            Ok(Err(e)) if e.class() == weir_core::ErrorClass::Fatal => {
                out.truncate(mark);
                env.meters.drop_staged();
                env.state.rollback_to_savepoint();
                Err(e)
            }
            other => {
                out.truncate(mark);
                env.meters.drop_staged();
                env.state.rollback_to_savepoint();
                if other.is_err() {
                    self.replace_panicked(state)?;
                }
                Ok(false)
            }
        }
    }
}
