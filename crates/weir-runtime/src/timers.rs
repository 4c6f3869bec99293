//! Firing a stream thread's timers: each running task's due timers and
//! punctuations within its chunk of the open transaction, their outputs
//! sent in it (see [`weir_dsl::TaskExecutor::fire_timers`]).

use weir_core::{DeadLetter, ErrorClass};

use crate::delivery::TIMER_SOURCE;
use crate::error::Error;
use crate::kafka::is_per_record;
use crate::stats::RuntimeStats;
use crate::task::{Task, TaskKey, TaskPhase};
use crate::task_set::{now_ms, TaskSet};

/// Timers (and punctuations) a task fires per transaction at most: the
/// rest fire after a commit, which comes at once (see
/// [`TaskSet::timer_backlog`]).
pub(crate) const TIMER_CHUNK: usize = 10_000;

impl TaskSet {
    /// The earliest wall-clock deadline of a running task's timers, as
    /// far as known (the poll sleeps no longer).
    pub fn next_wall_deadline(&self) -> Option<i64> {
        self.tasks
            .values()
            .filter(|t| t.phase == TaskPhase::Running)
            .flat_map(|t| [t.executor.next_wall_deadline(), t.blocked_until])
            .flatten()
            .min()
    }

    /// Fires the due timers of task `key` within its chunk of this
    /// transaction, and sends their outputs (see [`TIMER_CHUNK`]).
    pub(crate) fn fire_timers(&mut self, key: TaskKey) {
        let Some(task) = self.tasks.get_mut(&key) else {
            return;
        };
        if task.phase != TaskPhase::Running || !task.executor.has_due_timers() {
            return;
        }
        let budget = TIMER_CHUNK.saturating_sub(task.timers_fired);
        if budget == 0 {
            self.timer_backlog = true;
            return;
        }
        let state = task
            .state
            .as_mut()
            .expect("a running task has its stores open");
        self.out.clear();
        let run = match task.executor.fire_timers(&mut self.out, state, budget) {
            Ok(run) => run,
            Err(e) => {
                let task = task.id.clone();
                self.fail(Error::Task {
                    task,
                    message: e.to_string(),
                });
                return;
            }
        };
        task.timers_fired += run.fired;
        if task.timers_fired >= TIMER_CHUNK && task.executor.has_due_timers() {
            self.timer_backlog = true;
        }
        let task_id = task.id.clone();
        for (record, e) in run.failed {
            if e.class() == ErrorClass::Fatal {
                self.fail(Error::Task {
                    task: task_id,
                    message: e.to_string(),
                });
                return;
            }
            match record {
                Some(r) => {
                    tracing::warn!(task = %task_id, store = %r.topic, deadline = r.timestamp, node = e.node(), error = %e, "dead-lettering a timer");
                    self.out.push(DeadLetter::from(&e).to_record(
                        &self.spec.dead_letter_topic,
                        &r,
                        now_ms(),
                    ));
                    RuntimeStats::add(&self.spec.stats.dead_lettered, 1);
                }
                None => {
                    tracing::warn!(task = %task_id, node = e.node(), error = %e, "a punctuation failed; its writes and outputs were dropped");
                }
            }
        }
        if run.fired == 0 && self.out.is_empty() {
            return;
        }
        RuntimeStats::add(&self.spec.stats.timers_fired, run.fired as u64);
        self.dirty = true;
        if self.writes_marked(key, &self.out) && !self.wake(key) {
            return; // rewound: fired again after the abort
        }
        let out = std::mem::take(&mut self.out);
        for o in &out {
            match self.send_output(o, TIMER_SOURCE) {
                Ok(()) => {}
                Err(e) if e.rdkafka_error_code().is_some_and(is_per_record) => {
                    self.fail(Error::Task {
                        task: task_id.clone(),
                        message: format!(
                            "an output of a timer to {} can never be delivered: {e}",
                            o.topic
                        ),
                    });
                    break;
                }
                Err(e) => {
                    tracing::warn!(topic = %o.topic, error = %e, "send failed; rewinding to the last commit");
                    self.rewind_requested = true;
                    break;
                }
            }
        }
        self.out = out;
    }
}

/// Whether task `t` has timers to fire in this transaction.
pub(crate) fn timers_ready(t: &Task) -> bool {
    t.timers_fired < TIMER_CHUNK && t.executor.has_due_timers()
}
