//! What a task's nodes count: records in and out and dead-lettered per
//! node, and the counters and gauges processors report through
//! [`crate::ProcessorContext::count`] and [`crate::ProcessorContext::gauge`]
//! (retries, breaker states, pending waits). The executor keeps them in
//! plain fields — no atomics on the record path — and the runtime drains
//! them into its registry at each commit ([`crate::TaskExecutor::take_metrics`]).
//!
//! Counts are of work done: a record processed in a transaction that then
//! aborts is counted again when it is processed again (as Kafka Streams'
//! process-rate).

use std::collections::BTreeMap;

use weir_core::Record;

use crate::graph::Node;

/// One node's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounts {
    /// Records (or items) the node received.
    pub records_in: u64,
    /// Items it passed downstream; for a sink, records it wrote (work
    /// done: a record that then fails is counted too, as it is again when
    /// it is processed again).
    pub records_out: u64,
    /// Records dead-lettered by a failure in this node.
    pub dead_lettered: u64,
}

impl NodeCounts {
    fn is_zero(&self) -> bool {
        *self == NodeCounts::default()
    }
}

/// What a task counted since the last [`crate::TaskExecutor::take_metrics`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskMetrics {
    /// The nodes that counted anything: name and counts.
    pub nodes: Vec<(String, NodeCounts)>,
    /// Counters processors added: node, counter, increment.
    pub counters: Vec<(String, &'static str, u64)>,
    /// Every gauge processors set in this task: node, gauge, value now.
    pub gauges: Vec<(String, &'static str, i64)>,
}

/// A processor's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetricUpdate {
    Count(u64),
    Gauge(i64),
    /// A change of a gauge that follows state in stores: applied only if
    /// the record (or timer) succeeds, as its writes are.
    Add(i64),
}

/// A task's meters, by node index.
#[derive(Debug, Default)]
pub(crate) struct Meters {
    pub counts: Vec<NodeCounts>,
    counters: BTreeMap<(usize, &'static str), u64>,
    gauges: BTreeMap<(usize, &'static str), i64>,
    /// The gauges as of the last commit, for an abort to go back to.
    committed_gauges: BTreeMap<(usize, &'static str), i64>,
    /// [`MetricUpdate::Add`]s of the record or timer being processed.
    staged: Vec<(usize, &'static str, i64)>,
}

impl Meters {
    pub fn new(nodes: usize) -> Self {
        Self {
            counts: vec![NodeCounts::default(); nodes],
            ..Self::default()
        }
    }

    pub fn apply(&mut self, node: usize, updates: Vec<(&'static str, MetricUpdate)>) {
        for (name, u) in updates {
            match u {
                MetricUpdate::Count(n) => *self.counters.entry((node, name)).or_default() += n,
                MetricUpdate::Gauge(v) => {
                    self.gauges.insert((node, name), v);
                }
                MetricUpdate::Add(d) => self.staged.push((node, name, d)),
            }
        }
    }

    /// The record or timer succeeded: its gauge changes hold.
    pub fn commit_staged(&mut self) {
        for (node, name, d) in self.staged.drain(..) {
            *self.gauges.entry((node, name)).or_default() += d;
        }
    }

    /// It failed: its writes were rolled back, and so are its gauge changes.
    pub fn drop_staged(&mut self) {
        self.staged.clear();
    }

    /// Counts a dead letter of the node named `node` (unknown names — the
    /// runtime's own — are not counted here).
    pub fn dead_lettered(&mut self, nodes: &[Node], node: &str) {
        if let Some(n) = nodes.iter().find(|n| n.name == node) {
            self.counts[n.id].dead_lettered += 1;
        }
    }

    /// Counts dead letters a call wrote, by their `weir.node` header.
    pub fn dead_letters(&mut self, nodes: &[Node], records: &[Record]) {
        for r in records {
            if let Some(node) = r.headers.get_str(weir_core::dlq_headers::NODE) {
                self.dead_lettered(nodes, node);
            }
        }
    }

    /// The task's transaction committed: its gauges are the ones to go
    /// back to.
    pub fn gauges_committed(&mut self) {
        self.committed_gauges.clone_from(&self.gauges);
    }

    /// The transaction aborted: the stores went back to the last commit,
    /// and so do the gauges (until the fresh processors' `init` sets them
    /// again, when the task next runs).
    pub fn gauges_rolled_back(&mut self) {
        self.gauges.clone_from(&self.committed_gauges);
        self.staged.clear();
    }

    pub fn take(&mut self, nodes: &[Node]) -> TaskMetrics {
        let name = |i: usize| nodes[i].name.clone();
        let mut m = TaskMetrics::default();
        for (i, c) in self.counts.iter_mut().enumerate() {
            if !c.is_zero() {
                m.nodes.push((name(i), std::mem::take(c)));
            }
        }
        m.counters = std::mem::take(&mut self.counters)
            .into_iter()
            .map(|((i, n), v)| (name(i), n, v))
            .collect();
        m.gauges = self
            .gauges
            .iter()
            .map(|(&(i, n), &v)| (name(i), n, v))
            .collect();
        m
    }
}
