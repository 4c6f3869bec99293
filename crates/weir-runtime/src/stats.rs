//! Counters a stream thread keeps, printed as one summary line at shutdown
//! (the Prometheus endpoint comes with the admin server).

use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl RuntimeStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Every counter by name, as a JSON object (the monitoring topic's
    /// `counters`).
    pub fn counters(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
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
