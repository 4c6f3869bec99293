//! Counters a stream thread keeps, printed as one summary line at shutdown
//! (the Prometheus endpoint comes with the admin server).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::histogram::Histogram;

/// A poll gap longer than this (the consumer's session timeout) may have
/// cost the thread its partitions.
const STALL_MS: i64 = 10_000;
/// After such a gap, how long the stores stay suspect (a few heartbeats).
const RESUME_GRACE_MS: i64 = 3_000;

use weir_dsl::TaskMetrics;

/// One node's totals in the registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeTotals {
    /// Records (or items) the node received.
    pub records_in: u64,
    /// Items it passed downstream; for a sink, records it wrote.
    pub records_out: u64,
    /// Records dead-lettered by a failure in it.
    pub dead_lettered: u64,
    /// Counters its processors added (`retries`, `retries_exhausted`, …).
    pub counters: BTreeMap<String, u64>,
}

/// Per-node totals, gauges per task, and input lag per partition.
#[derive(Debug, Default)]
struct Registry {
    nodes: BTreeMap<String, NodeTotals>,
    /// (task, node, gauge) → value.
    gauges: BTreeMap<(String, String, String), i64>,
    /// (stream thread, topic, partition) → records behind the end.
    lag: BTreeMap<(usize, String, i32), i64>,
    /// Per stream thread: whether it has had an assignment, and how many
    /// of its tasks are restoring.
    threads: BTreeMap<usize, (bool, usize)>,
}

/// Process-wide counters, shared by the stream threads.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    /// Input records processed.
    pub consumed: AtomicU64,
    /// Output records sent (including dead letters).
    pub produced: AtomicU64,
    /// Input records dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Input records that arrived after their windows closed (dropped or,
    /// when so configured, dead-lettered too).
    pub late: AtomicU64,
    /// Timers and punctuations fired (in transactions that may still abort).
    pub timers_fired: AtomicU64,
    /// Commits (transactions committed, or offset commits at least once).
    pub commits: AtomicU64,
    /// Transactions aborted.
    pub aborts: AtomicU64,
    /// Times a thread lost its producer (fenced) and rejoined.
    pub rejoins: AtomicU64,
    /// Changelog records to replay, summed over every restoration planned.
    pub restore_total: AtomicU64,
    /// Changelog records replayed into stores.
    pub restored: AtomicU64,
    /// Stores wiped for a full restore (their checkpoint was unusable).
    pub stores_wiped: AtomicU64,
    /// Time spent committing (changelogs, flush, offsets, commit, store
    /// batch), in microseconds.
    pub commit_micros: AtomicU64,
    /// Of which: flushing outputs, sending (or committing) offsets,
    /// committing the transaction, writing the stores — microseconds.
    pub commit_phase_micros: [AtomicU64; 4],
    /// Outputs not yet acknowledged when commits began to flush, summed.
    pub flush_backlog: AtomicU64,
    /// How long each input record took through the topology (decode,
    /// operators, encode; not the commit).
    pub process_latency: Histogram,
    /// How long each commit took (changelogs, flush, offsets, commit, store
    /// batch).
    pub commit_latency: Histogram,
    /// See [`RuntimeStats::dead_letter_queue_size`]: the size plus one, 0
    /// while unknown.
    dlq_size_plus_one: AtomicU64,
    /// Per stream thread: when its consumer last returned from a poll, and
    /// until when its stores are suspect after a long pause (ms).
    polled_at: Mutex<BTreeMap<usize, (i64, i64)>>,
    /// Per-node counts, processors' gauges and lag (see
    /// [`RuntimeStats::absorb`]).
    registry: Mutex<Registry>,
}

impl RuntimeStats {
    /// The dead letters in the dead-letter topic (committed records,
    /// counted by reading it; see the `dlq_size` module); `None` until it
    /// has been read to its end once.
    pub fn dead_letter_queue_size(&self) -> Option<u64> {
        self.dlq_size_plus_one
            .load(Ordering::Relaxed)
            .checked_sub(1)
    }

    pub(crate) fn set_dead_letter_queue_size(&self, n: u64) {
        self.dlq_size_plus_one
            .store(n.saturating_add(1), Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds what task `task` counted (drained at each commit) and takes its
    /// gauges as they are now.
    pub fn absorb(&self, task: &str, m: TaskMetrics) {
        let mut r = self.registry();
        for (node, c) in m.nodes {
            let t = r.nodes.entry(node).or_default();
            t.records_in += c.records_in;
            t.records_out += c.records_out;
            t.dead_lettered += c.dead_lettered;
        }
        for (node, name, n) in m.counters {
            *r.nodes
                .entry(node)
                .or_default()
                .counters
                .entry(name.to_string())
                .or_default() += n;
        }
        r.gauges.retain(|(t, _, _), _| t != task);
        for (node, name, v) in m.gauges {
            r.gauges
                .insert((task.to_string(), node, name.to_string()), v);
        }
    }

    /// Task `task` closed: its last counts are added, its gauges dropped.
    pub fn task_closed(&self, task: &str, m: TaskMetrics) {
        self.absorb(task, m);
        self.registry().gauges.retain(|(t, _, _), _| t != task);
    }

    /// Stream thread `thread`'s input lag now, per partition (replacing
    /// what it reported before).
    pub fn set_lag(&self, thread: usize, lag: Vec<(String, i32, i64)>) {
        let mut r = self.registry();
        r.lag.retain(|(th, _, _), _| *th != thread);
        for (topic, partition, n) in lag {
            r.lag.insert((thread, topic, partition), n);
        }
    }

    /// Stream thread `thread`'s consumer returned from a poll now (its
    /// rebalance callbacks, if any, have run).
    pub(crate) fn polled(&self, thread: usize) {
        let now = crate::task_set::now_ms();
        let mut polls = self.polled_at.lock().unwrap_or_else(|e| e.into_inner());
        let entry = polls.entry(thread).or_insert((now, now));
        if now - entry.0 > STALL_MS {
            // Back from a pause longer than a session: the group may have
            // moved its partitions; the first polls may not know it yet
            // (the heartbeat that tells comes within a second or so).
            entry.1 = now + RESUME_GRACE_MS;
        }
        entry.0 = now;
    }

    /// Whether this instance's stores may be stale: a stream thread has not
    /// polled for longer than a consumer session (10 s), or resumed from
    /// such a pause less than 3 s ago. A paused process (SIGSTOP, a stall)
    /// may have lost its partitions without knowing it yet: until a poll
    /// has run the revocation, its stores must not answer queries. The
    /// duration is how long ago the oldest poll was.
    pub fn stalled(&self) -> Option<std::time::Duration> {
        let now = crate::task_set::now_ms();
        let polls = self.polled_at.lock().unwrap_or_else(|e| e.into_inner());
        polls
            .values()
            .find(|(last, suspect_until)| now - last > STALL_MS || now < *suspect_until)
            .map(|(last, _)| {
                std::time::Duration::from_millis(now.saturating_sub(*last).max(0) as u64)
            })
    }

    /// Stream thread `thread`'s readiness (see [`RuntimeStats::is_ready`]).
    pub fn set_thread_readiness(&self, thread: usize, joined: bool, restoring: usize) {
        self.registry().threads.insert(thread, (joined, restoring));
    }

    /// Whether all `threads` stream threads have had an assignment from the
    /// group and none of their tasks is restoring (the admin endpoint's
    /// `/ready`).
    pub fn is_ready(&self, threads: usize) -> bool {
        let r = self.registry();
        (0..threads).all(|t| matches!(r.threads.get(&t), Some(&(true, 0))))
    }

    /// Tasks restoring now, over every stream thread.
    pub fn tasks_restoring(&self) -> usize {
        self.registry().threads.values().map(|(_, n)| n).sum()
    }

    /// Every node's totals, by name.
    pub fn nodes(&self) -> BTreeMap<String, NodeTotals> {
        self.registry().nodes.clone()
    }

    /// Every gauge summed over the instance's tasks: node → gauge → value.
    pub fn gauges(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for ((_, node, name), v) in &self.registry().gauges {
            *out.entry(node.clone())
                .or_default()
                .entry(name.clone())
                .or_default() += v;
        }
        out
    }

    /// Records behind each assigned input partition's end (`topic/partition` → lag).
    pub fn lag(&self) -> BTreeMap<String, i64> {
        self.registry()
            .lag
            .iter()
            .map(|((_, t, p), n)| (format!("{t}/{p}"), *n))
            .collect()
    }

    /// Every counter by name, as a JSON object (the monitoring topic's
    /// `counters`).
    pub fn counters(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let lag = self.lag();
        let lag_total: i64 = lag.values().sum();
        serde_json::json!({
            "consumed": g(&self.consumed),
            "produced": g(&self.produced),
            "dead_lettered": g(&self.dead_lettered),
            "late": g(&self.late),
            "timers_fired": g(&self.timers_fired),
            "commits": g(&self.commits),
            "aborts": g(&self.aborts),
            "rejoins": g(&self.rejoins),
            "restore_total": g(&self.restore_total),
            "restored": g(&self.restored),
            "stores_wiped": g(&self.stores_wiped),
            "commit_ms": g(&self.commit_micros) / 1000,
            "flush_backlog": g(&self.flush_backlog),
            "nodes": self.nodes().into_iter().map(|(name, t)| {
                let mut o = serde_json::json!({
                    "records_in": t.records_in,
                    "records_out": t.records_out,
                    "dead_lettered": t.dead_lettered,
                });
                for (k, v) in t.counters {
                    o[k] = v.into();
                }
                (name, o)
            }).collect::<serde_json::Map<_, _>>(),
            "gauges": self.gauges(),
            "lag": lag,
            "lag_total": lag_total,
        })
    }

    /// `consumed=… produced=… dead_lettered=… commits=… aborts=… rejoins=…
    /// restored=… restore_total=… stores_wiped=… commit_ms=…
    /// commit_phases_ms=<flush>/<offsets>/<commit>/<stores> flush_backlog=… late=… timers_fired=…`
    pub fn summary(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "consumed={} produced={} dead_lettered={} commits={} aborts={} rejoins={} restored={} restore_total={} stores_wiped={} commit_ms={} commit_phases_ms={} flush_backlog={} late={} timers_fired={}",
            g(&self.consumed),
            g(&self.produced),
            g(&self.dead_lettered),
            g(&self.commits),
            g(&self.aborts),
            g(&self.rejoins),
            g(&self.restored),
            g(&self.restore_total),
            g(&self.stores_wiped),
            g(&self.commit_micros) / 1000,
            self.commit_phase_micros
                .iter()
                .map(|c| (g(c) / 1000).to_string())
                .collect::<Vec<_>>()
                .join("/"),
            g(&self.flush_backlog),
            g(&self.late),
            g(&self.timers_fired)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_suspect_after_a_pause_until_a_grace_has_passed() {
        let s = RuntimeStats::default();
        assert_eq!(s.stalled(), None, "no thread yet");
        s.polled(0);
        assert_eq!(s.stalled(), None, "polling regularly");
        let now = crate::task_set::now_ms();
        // Thread 0 last polled 11 s ago: paused past a session.
        s.polled_at.lock().unwrap().insert(0, (now - 11_000, 0));
        assert!(s.stalled().is_some_and(|d| d.as_millis() >= 11_000));
        // Back: its first polls may not know of a revocation yet.
        s.polled(0);
        assert!(s.stalled().is_some(), "suspect during the grace");
        s.polled_at.lock().unwrap().insert(0, (now, now - 1));
        assert_eq!(s.stalled(), None, "the grace has passed");
        // Any thread stalled is enough.
        s.polled_at.lock().unwrap().insert(1, (now - 20_000, 0));
        assert!(s.stalled().is_some());
    }

    #[test]
    fn ready_when_every_thread_has_joined_and_nothing_restores() {
        let s = RuntimeStats::default();
        assert!(!s.is_ready(2), "no thread reported yet");
        s.set_thread_readiness(0, true, 0);
        assert!(!s.is_ready(2), "thread 1 has not reported");
        s.set_thread_readiness(1, true, 2);
        assert!(!s.is_ready(2));
        assert_eq!(s.tasks_restoring(), 2);
        s.set_thread_readiness(1, true, 0);
        assert!(s.is_ready(2));
        s.set_thread_readiness(0, false, 0);
        assert!(!s.is_ready(2), "a thread between assignments");
    }

    #[test]
    fn gauges_sum_over_tasks_and_leave_with_their_task() {
        let s = RuntimeStats::default();
        let m = |v: i64| weir_dsl::TaskMetrics {
            gauges: vec![("w".to_string(), "pending_waits", v)],
            ..Default::default()
        };
        s.absorb("0_0", m(3));
        s.absorb("0_1", m(4));
        assert_eq!(s.gauges()["w"]["pending_waits"], 7);
        s.absorb("0_1", m(1));
        assert_eq!(
            s.gauges()["w"]["pending_waits"],
            4,
            "a task's gauges are replaced"
        );
        s.task_closed("0_0", weir_dsl::TaskMetrics::default());
        assert_eq!(s.gauges()["w"]["pending_waits"], 1);
    }
}
