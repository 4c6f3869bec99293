//! Latency histograms with fixed buckets, cheap on the record path: a
//! stream thread counts into a plain [`LocalHistogram`] and folds it into
//! the shared, atomic [`Histogram`] now and then (every lag publication,
//! about twice a second), so no atomic is touched per record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (the last bucket, `+Inf`, is
/// implied): 50 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

const SLOTS: usize = LATENCY_BUCKETS.len() + 1;

fn slot(d: Duration) -> usize {
    let s = d.as_secs_f64();
    LATENCY_BUCKETS
        .iter()
        .position(|&b| s <= b)
        .unwrap_or(LATENCY_BUCKETS.len())
}

/// A shared histogram of durations; see the module docs.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; SLOTS],
    sum_nanos: AtomicU64,
}

/// What a [`Histogram`] holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, cumulative,
    /// for each of [`LATENCY_BUCKETS`].
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        self.counts[slot(d)].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// Adds `local`'s observations and empties it.
    pub(crate) fn absorb(&self, local: &mut LocalHistogram) {
        if local.sum_nanos == 0 && local.counts.iter().all(|&c| c == 0) {
            return;
        }
        for (shared, n) in self.counts.iter().zip(local.counts.iter_mut()) {
            if *n > 0 {
                shared.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        }
        self.sum_nanos.fetch_add(local.sum_nanos, Ordering::Relaxed);
        local.sum_nanos = 0;
    }

    /// The buckets now (cumulative).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            running += self.counts[i].load(Ordering::Relaxed);
            buckets.push((*bound, running));
        }
        let count = running + self.counts[SLOTS - 1].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A stream thread's own histogram, folded into a [`Histogram`].
#[derive(Debug, Default)]
pub(crate) struct LocalHistogram {
    counts: [u64; SLOTS],
    sum_nanos: u64,
}

impl LocalHistogram {
    /// Records one duration.
    pub fn observe(&mut self, d: Duration) {
        self.counts[slot(d)] += 1;
        self.sum_nanos = self
            .sum_nanos
            .saturating_add(d.as_nanos().min(u128::from(u64::MAX)) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a model: each bucket counts the observations at or
        /// below its bound, the count is all of them, the sum their sum —
        /// whether observed directly or through a local histogram.
        #[test]
        fn buckets_count_what_lies_below_their_bounds(
            micros in proptest::collection::vec(0u64..20_000_000, 0..200),
            split in 0usize..200,
        ) {
            let shared = Histogram::default();
            let mut local = LocalHistogram::default();
            for (i, m) in micros.iter().enumerate() {
                let d = Duration::from_micros(*m);
                if i < split { shared.observe(d) } else { local.observe(d) }
            }
            shared.absorb(&mut local);
            let s = shared.snapshot();
            prop_assert_eq!(s.count, micros.len() as u64);
            for (bound, n) in &s.buckets {
                let want = micros.iter().filter(|&&m| m as f64 / 1e6 <= *bound).count() as u64;
                prop_assert_eq!(*n, want, "bucket {}", bound);
            }
            let sum: u64 = micros.iter().sum();
            prop_assert!((s.sum_seconds - sum as f64 / 1e6).abs() < 1e-6);
            // Absorbing again adds nothing: the local one was emptied.
            shared.absorb(&mut local);
            prop_assert_eq!(shared.snapshot(), s);
        }
    }
}
