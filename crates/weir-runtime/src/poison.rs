//! Poison inputs: records whose own processing aborts the transaction.
//!
//! A record is a **suspect** of a transaction when one of its outputs can
//! never be delivered (a per-record producer error: too large, unknown
//! topic, …). When that transaction aborts, each suspect's count of aborts
//! in a row goes up by one; once a record reaches `max_aborts_per_record`
//! it is dead-lettered with kind `poison` instead of being processed again
//! (`weir.attempts` = its aborts). A commit ends every row. Aborts without
//! suspects — the broker or a downstream being unavailable — count against
//! no record, so an outage dead-letters nothing.

use std::collections::HashMap;

use crate::task::Tp;

/// A source record: its partition and offset.
type Source = (Tp, i64);

/// The suspects of the open transaction and the aborts in a row per record.
#[derive(Debug, Default)]
pub(crate) struct PoisonLedger {
    max_aborts: u32,
    suspects: HashMap<Source, String>,
    aborts: HashMap<Source, (u32, String)>,
}

impl PoisonLedger {
    /// A ledger dead-lettering records after `max_aborts` (at least 1).
    pub fn new(max_aborts: u32) -> Self {
        Self {
            max_aborts: max_aborts.max(1),
            ..Self::default()
        }
    }

    /// Record `source` made the open transaction fail, because of `reason`.
    pub fn suspect(&mut self, source: Source, reason: String) {
        self.suspects.insert(source, reason);
    }

    /// The open transaction aborted: each suspect's row grows by one.
    pub fn aborted(&mut self) {
        for (source, reason) in self.suspects.drain() {
            let entry = self.aborts.entry(source).or_insert((0, String::new()));
            entry.0 += 1;
            entry.1 = reason;
        }
    }

    /// A transaction committed: no row goes on.
    pub fn committed(&mut self) {
        self.suspects.clear();
        self.aborts.clear();
    }

    /// How many records have aborted a transaction (for log lines).
    pub fn len(&self) -> usize {
        self.aborts.len()
    }

    /// Whether `source` is to be dead-lettered instead of processed: its
    /// aborts in a row and the last reason.
    pub fn verdict(&mut self, source: Source) -> Option<(u32, String)> {
        if self.aborts.is_empty() {
            return None;
        }
        match self.aborts.get(&source) {
            Some((n, _)) if *n >= self.max_aborts => self.aborts.remove(&source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_poison_after_max_aborts_in_a_row() {
        let mut l = PoisonLedger::new(3);
        let r = ((0, 0), 7);
        for round in 1..=3 {
            assert_eq!(l.verdict(r), None, "round {round}");
            l.suspect(r, "too large".into());
            l.suspect(r, "too large".into()); // twice in one transaction: one abort
            l.aborted();
        }
        assert_eq!(l.verdict(r), Some((3, "too large".into())));
        assert_eq!(l.verdict(r), None, "dead-lettered once");
    }

    #[test]
    fn outages_count_against_no_record_and_a_commit_ends_the_row() {
        let mut l = PoisonLedger::new(2);
        let r = ((1, 2), 5);
        l.suspect(r, "x".into());
        l.aborted();
        l.aborted(); // an abort without suspects (the broker was down)
        assert_eq!(l.verdict(r), None);
        l.committed();
        l.suspect(r, "x".into());
        l.aborted();
        assert_eq!(l.verdict(r), None, "the row restarted after the commit");
        assert_eq!(PoisonLedger::new(0).max_aborts, 1);
    }
}
