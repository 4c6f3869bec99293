//! Retries without stalling: [`Stream::with_retries`] runs a fallible
//! operator under a [`RetryPolicy`].
//!
//! A record whose operator fails with [`Failure::Retryable`] is **parked**:
//! kept, with its attempt count, timestamp, headers and source position,
//! in the node's store `<name>-retries`, and a durable wall-clock timer
//! (timer store `<name>-retry-timers`) is set for its next attempt after an
//! exponential backoff with jitter. Nothing sleeps: the task goes on with
//! other records. When the timer fires, the operator runs again on the
//! parked record; its outputs carry the record's own timestamp and headers
//! plus `weir.attempts` (as do the outputs of a record that succeeds at its
//! first try: `1`). When the attempts are used up, the record is
//! dead-lettered (kind `retries-exhausted`, `weir.attempts` = the tries
//! made); a permanent or validation failure on a later attempt
//! dead-letters it with that kind.
//!
//! **Per-key order** (the default): while a key has a parked record, later
//! records of that key are parked behind it (without trying them) and run
//! in order once it is settled, so a key's outputs keep its input order;
//! other keys flow on. [`RetryPolicy::let_later_records_pass`] lets later
//! records of the key be tried at once instead (each failing one is parked
//! on its own timer).
//!
//! The store and timers are changelogged state: parking, each attempt and
//! its outputs, and the final delivery or dead letter commit in the
//! transactions of the records and timers that caused them, so a record
//! is retried, delivered or dead-lettered exactly once across crashes and
//! rebalances. Parking needs the stream's key and value codecs.

use std::sync::Arc;
use std::time::Duration;

use weir_core::OpError;

use crate::breaker::{Breaker, CircuitBreaker};
use crate::builder::Stream;
use crate::graph::BuildError;
use crate::process::StoreRef;

use node::{RetryNode, Spec};

mod node;
mod parked;

/// How a node retries records that fail with
/// [`Failure::Retryable`](weir_core::Failure::Retryable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_ms: i64,
    cap_ms: i64,
    jitter: bool,
    per_key_order: bool,
}

impl RetryPolicy {
    /// At most `max_attempts` tries in all (the first included); backoff
    /// from 100 ms doubling up to 30 s, with jitter; per-key order.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base_ms: 100,
            cap_ms: 30_000,
            jitter: true,
            per_key_order: true,
        }
    }

    /// The delay before the second try (`base`), doubling per try up to
    /// `cap`.
    pub fn backoff(self, base: Duration, cap: Duration) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1);
        Self {
            base_ms: ms(base),
            cap_ms: ms(cap).max(ms(base)),
            ..self
        }
    }

    /// Exact delays (jitter spreads them over their upper half by default,
    /// so records that failed together do not retry together).
    pub fn without_jitter(self) -> Self {
        Self {
            jitter: false,
            ..self
        }
    }

    /// Later records of a key with a parked record are tried at once
    /// instead of waiting behind it (its order is then not kept).
    pub fn let_later_records_pass(self) -> Self {
        Self {
            per_key_order: false,
            ..self
        }
    }

    /// How many tries in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay after try number `tries` (1 = the first), jittered by
    /// `seed`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_dsl::RetryPolicy;
    ///
    /// let p = RetryPolicy::new(10)
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(1))
    ///     .without_jitter();
    /// assert_eq!([1, 2, 3, 4, 5].map(|n| p.delay_ms(n, 0)), [100, 200, 400, 800, 1000]);
    /// ```
    pub fn delay_ms(&self, tries: u32, seed: u64) -> i64 {
        let doubling = tries.saturating_sub(1).min(62);
        let d = self
            .base_ms
            .saturating_mul(1i64 << doubling)
            .min(self.cap_ms);
        if self.jitter {
            let half = d / 2;
            d - half + (seed % (half as u64 + 1)) as i64
        } else {
            d
        }
    }
}

/// The fallible operator of a retrying node, on values.
type TryFn<K, V, K2, V2> = Arc<dyn Fn(K, V) -> Result<Vec<(K2, V2)>, OpError> + Send + Sync>;

/// A stream whose next fallible operator retries; see the module docs.
pub struct Retrying<K, V> {
    stream: Stream<K, V>,
    name: String,
    policy: RetryPolicy,
    breaker: Option<CircuitBreaker>,
}

impl<K, V> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Runs the next fallible operator (`try_map_values`, `try_map`,
    /// `try_filter`, `try_flat_map`) as node `name`, retrying under
    /// `policy` (see the module docs).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_core::{OpError, Str};
    /// use weir_dsl::{RetryPolicy, TopologyBuilder};
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("orders", Str, Str)
    ///     .with_retries("reserve", RetryPolicy::new(5).backoff(Duration::from_millis(200), Duration::from_secs(10)))
    ///     .try_map_values(|order: String| {
    ///         if order.contains("busy") {
    ///             Err(OpError::retryable("inventory service busy"))
    ///         } else {
    ///             Ok(order)
    ///         }
    ///     })
    ///     .to("reserved");
    /// let t = b.build().unwrap();
    /// assert_eq!(t.stores(), vec!["reserve-retries", "reserve-retry-timers"]);
    /// ```
    pub fn with_retries(&self, name: impl Into<String>, policy: RetryPolicy) -> Retrying<K, V> {
        Retrying {
            stream: self.clone(),
            name: name.into(),
            policy,
            breaker: None,
        }
    }
}

impl<K, V> Retrying<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Guards the node's calls with a circuit breaker (see
    /// [`crate::CircuitBreaker`]): while it is open, records wait in their
    /// partitions instead of failing, and parked tries are put off without
    /// being charged — an outage dead-letters nothing.
    pub fn with_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Turns each record into zero or more records, or fails it.
    pub fn try_flat_map<K2, V2, I>(
        &self,
        f: impl Fn(K, V) -> Result<I, OpError> + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        let s = self.node(Arc::new(move |k, v| Ok(f(k, v)?.into_iter().collect())));
        s.graph.borrow_mut().mark_rekeyed(s.node);
        s
    }

    /// Replaces each record's key and value, or fails it.
    pub fn try_map<K2, V2>(
        &self,
        f: impl Fn(K, V) -> Result<(K2, V2), OpError> + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        let s = self.node(Arc::new(move |k, v| Ok(vec![f(k, v)?])));
        s.graph.borrow_mut().mark_rekeyed(s.node);
        s
    }

    /// Replaces each record's value, or fails it; keeps the key codec.
    pub fn try_map_values<V2>(
        &self,
        f: impl Fn(V) -> Result<V2, OpError> + Send + Sync + 'static,
    ) -> Stream<K, V2>
    where
        V2: Clone + Send + 'static,
    {
        let s: Stream<K, V2> = self.node(Arc::new(move |k, v| Ok(vec![(k, f(v)?)])));
        Stream {
            key_codec: self.stream.key_codec.clone(),
            ..s
        }
    }

    /// Keeps the records for which `predicate` is `Ok(true)`, or fails
    /// them; keeps both codecs.
    pub fn try_filter(
        &self,
        predicate: impl Fn(&K, &V) -> Result<bool, OpError> + Send + Sync + 'static,
    ) -> Stream<K, V> {
        let s: Stream<K, V> = self.node(Arc::new(move |k, v| {
            Ok(if predicate(&k, &v)? {
                vec![(k, v)]
            } else {
                Vec::new()
            })
        }));
        Stream {
            key_codec: self.stream.key_codec.clone(),
            value_codec: self.stream.value_codec.clone(),
            ..s
        }
    }

    fn node<K2, V2>(&self, f: TryFn<K, V, K2, V2>) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        let graph = self.stream.graph.clone();
        let parked = format!("{}-retries", self.name);
        let timers = format!("{}-retry-timers", self.name);
        let codecs = match (&self.stream.key_codec, &self.stream.value_codec) {
            (Some(k), Some(v)) => Some((k.clone(), v.clone())),
            (k, _) => {
                graph.borrow_mut().errors.push(BuildError::MissingCodec {
                    node: self.name.clone(),
                    part: if k.is_none() { "key" } else { "value" },
                });
                None
            }
        };
        {
            let mut g = graph.borrow_mut();
            g.declare_store(&parked);
            g.declare_timer_store(&timers);
        }
        let spec = Arc::new(Spec {
            f,
            codecs,
            policy: self.policy,
            parked: parked.clone(),
            breaker: self.breaker,
        });
        let s: Stream<K2, V2> = self.stream.process_with(
            self.name.clone(),
            &[&StoreRef(parked), &StoreRef(timers)],
            move || RetryNode {
                spec: spec.clone(),
                breaker: spec.breaker.map(Breaker::new),
            },
        );
        s.graph.borrow_mut().nodes[s.node].kind = "retrying";
        s
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::parked::{entry_key, key_prefix, split_entry, Parked};
    use super::*;

    proptest! {
        /// Parked records round-trip, and a cut one does not decode.
        #[test]
        fn parked_records_round_trip(
            tries in any::<u32>(), timestamp in any::<i64>(), partition in any::<i32>(),
            offset in any::<i64>(), topic in ".*", key in any::<Vec<u8>>(),
            value in any::<Vec<u8>>(), error in ".*",
            headers in proptest::collection::vec((".*", proptest::option::of(any::<Vec<u8>>())), 0..4),
            event_id in proptest::option::of(".*"),
            raw in proptest::option::of((proptest::option::of(any::<Vec<u8>>()), proptest::option::of(any::<Vec<u8>>()))),
        ) {
            let headers = {
                let mut h = weir_core::Headers::new();
                for (k, v) in headers {
                    h.push(k, v);
                }
                h
            };
            let p = Parked { tries, timestamp, topic, partition, offset, headers, key, value, error, event_id, raw };
            let b = p.encode();
            prop_assert_eq!(Parked::decode(&b), Some(p));
            prop_assert_eq!(Parked::decode(&b[..b.len() - 1]), None);
        }

        /// Delays double from the base up to the cap; jitter keeps them in
        /// their upper half.
        #[test]
        fn delays_double_up_to_the_cap(tries in 1u32..100, seed in any::<u64>()) {
            let p = RetryPolicy::new(100).backoff(Duration::from_millis(50), Duration::from_secs(5));
            let exact = p.without_jitter().delay_ms(tries, seed);
            prop_assert_eq!(exact, (50i64 << (tries - 1).min(20)).min(5_000));
            let jittered = p.delay_ms(tries, seed);
            prop_assert!(jittered <= exact && jittered >= exact - exact / 2);
        }
    }

    #[test]
    fn entry_keys_split_into_their_key_and_sequence() {
        let prefix = key_prefix(b"order-1");
        let k = entry_key(&prefix, 7);
        assert_eq!(split_entry(&k), Some((prefix.as_slice(), 7)));
        assert!(entry_key(&prefix, 7) < entry_key(&prefix, 8));
    }
}
