//! The producer's side of a stream thread: sending outputs, and delivery
//! reports tagged with the transaction they belong to.
//!
//! A report can arrive after the transaction it belongs to was given up (an
//! abort waits at most `CALL_TIMEOUT` for them): it must not poison a record
//! of the next transaction, whose source indexes start again at 0. So each
//! output's opaque carries its transaction's sequence number next to the
//! source index, and failures of other transactions are ignored.

use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::client::ClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::Message;

/// Bits of the opaque that hold the source index (the rest: the transaction).
const SOURCE_BITS: u32 = 40;

/// Set in the source index of a changelog record: the rest of the index is
/// its changelog slot (see [`crate::changelog::ChangelogWrites`]), whose
/// acknowledged offset becomes the checkpoint.
pub(crate) const CHANGELOG_FLAG: usize = 1 << (SOURCE_BITS - 1);

/// The source index of stream-time markers: no source record (a failed
/// delivery aborts the transaction, like any other).
pub(crate) const MARKER_SOURCE: usize = CHANGELOG_FLAG - 1;

/// The source index of timers' and punctuations' outputs: no source record
/// (a failed delivery aborts the transaction; one that can never succeed
/// stops the thread, see `TaskSet::abort`).
pub(crate) const TIMER_SOURCE: usize = CHANGELOG_FLAG - 2;

/// Packs a transaction sequence number and a source index into an opaque.
pub(crate) fn opaque(txn: u64, source: usize) -> usize {
    let txn = (txn & ((1 << (usize::BITS - SOURCE_BITS)) - 1)) as usize;
    (txn << SOURCE_BITS) | (source & ((1 << SOURCE_BITS) - 1))
}

/// The transaction sequence number (truncated as [`opaque`] stores it) and
/// the source index of an opaque.
pub(crate) fn unpack(opaque: usize) -> (u64, usize) {
    (
        (opaque >> SOURCE_BITS) as u64,
        opaque & ((1 << SOURCE_BITS) - 1),
    )
}

/// Whether a report's transaction number (as packed) is `txn`.
pub(crate) fn same_txn(packed: u64, txn: u64) -> bool {
    packed == txn & ((1 << (usize::BITS - SOURCE_BITS)) - 1)
}

/// A failed delivery: the packed transaction number, the source index, the error.
pub(crate) type Failure = (u64, usize, RDKafkaErrorCode);

/// An acknowledged changelog record: the packed transaction number, its
/// changelog slot, its offset.
pub(crate) type Ack = (u64, usize, i64);

/// The producer's context: records outputs that failed, by source record,
/// and the offsets of acknowledged changelog records.
pub(crate) struct DeliveryContext {
    pub failures: Arc<Mutex<Vec<Failure>>>,
    pub acks: Arc<Mutex<Vec<Ack>>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, packed: usize) {
        if let Ok(m) = result {
            if packed & CHANGELOG_FLAG != 0 {
                let (txn, source) = unpack(packed);
                lock_vec(&self.acks).push((txn, source & !CHANGELOG_FLAG, m.offset()));
            }
        }
        if let Err((e, m)) = result {
            let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
            tracing::warn!(topic = m.topic(), error = %e, "output delivery failed");
            let (txn, source) = unpack(packed);
            lock_vec(&self.failures).push((txn, source, code));
        }
    }
}

pub(crate) fn lock_vec<T>(m: &Mutex<Vec<T>>) -> MutexGuard<'_, Vec<T>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaques_carry_their_transaction() {
        for (txn, source) in [(0, 0), (1, 5), (7, (1 << 40) - 1), (1 << 30, 3)] {
            let (t, s) = unpack(opaque(txn, source));
            assert_eq!(s, source);
            assert!(same_txn(t, txn));
            assert!(!same_txn(t, txn + 1));
        }
    }
}
