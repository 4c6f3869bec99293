//! The retrying node: tries the operator, parks a record that failed
//! retryably behind a durable timer, and settles it (outputs, the status
//! ledger, or a dead letter) when a try succeeds or the tries run out.

use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use weir_core::{dlq_headers, Codec, DeadLetter, Failure, OpError, ProcessError};
use weir_state::{Clock, KeyValueStore, Timer};

use super::parked::{entries_of, entry_key, key_prefix, split_entry, store_err, write, Parked};
use super::{RetryPolicy, TryFn};
use crate::breaker::{Breaker, CircuitBreaker};
use crate::ledger::{EventStatus, StatusUpdate};
use crate::process::{Processor, ProcessorContext, TimerFailure};

pub(super) type Codecs<K, V> = (Arc<dyn Codec<K>>, Arc<dyn Codec<V>>);

pub(super) struct Spec<K, V, K2, V2> {
    pub(super) f: TryFn<K, V, K2, V2>,
    /// `None` only in a topology that does not build.
    pub(super) codecs: Option<Codecs<K, V>>,
    pub(super) policy: RetryPolicy,
    pub(super) parked: String,
    pub(super) breaker: Option<CircuitBreaker>,
}

pub(super) struct RetryNode<K, V, K2, V2> {
    pub(super) spec: Arc<Spec<K, V, K2, V2>>,
    /// This task's breaker, when the node has one.
    pub(super) breaker: Option<Breaker>,
}

fn status(status: EventStatus, attempts: u32, error: Option<String>) -> StatusUpdate {
    StatusUpdate {
        status,
        attempts,
        error,
    }
}

/// What one try of the operator came to.
enum Tried<K2, V2> {
    Done(Vec<(K2, V2)>),
    Failed(OpError),
    /// User code panicked: never retried.
    Panicked(String),
}

impl<K, V, K2, V2> RetryNode<K, V, K2, V2>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    K2: Clone + Send + 'static,
    V2: Clone + Send + 'static,
{
    fn codecs(&self, node: &str) -> Result<&Codecs<K, V>, ProcessError> {
        self.spec.codecs.as_ref().ok_or_else(|| ProcessError::Init {
            node: node.to_string(),
            message: "the node has no key or value codec to park records with".into(),
        })
    }

    /// Tries a parked record again (decoding it first).
    fn try_parked(&self, node: &str, p: &Parked) -> Tried<K2, V2> {
        let (kc, vc) = match self.codecs(node) {
            Ok(c) => c,
            Err(e) => return Tried::Panicked(e.to_string()),
        };
        let (k, v) = match (kc.decode(&p.key), vc.decode(&p.value)) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) => {
                return Tried::Failed(OpError::permanent(format!(
                    "a parked record does not decode: {e}"
                )))
            }
        };
        match catch_unwind(AssertUnwindSafe(|| (self.spec.f)(k, v))) {
            Ok(Ok(out)) => Tried::Done(out),
            Ok(Err(e)) => Tried::Failed(e),
            Err(payload) => Tried::Panicked(
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into()),
            ),
        }
    }

    /// Sets the timer of entry `key` for the try after `tries`.
    fn schedule(
        &self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: &[u8],
        tries: u32,
    ) -> Result<(), ProcessError> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (key, tries, ctx.wall_clock()).hash(&mut h);
        let deadline = ctx
            .wall_clock()
            .saturating_add(self.spec.policy.delay_ms(tries, h.finish()));
        ctx.schedule_at(Clock::Wall, deadline, key, &[])
    }

    /// Tries parked entry `key` (`p`), then — in per-key order — the
    /// entries behind it, until one must wait again or none is left.
    fn settle(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: Vec<u8>,
        p: Parked,
    ) -> Result<(), ProcessError> {
        let store = self.spec.parked.clone();
        let mut queue = if self.spec.policy.per_key_order {
            let prefix = split_entry(&key).map(|(pre, _)| pre.to_vec());
            let (node, state) = ctx.raw();
            match prefix {
                Some(pre) => entries_of(state, node, &store, &pre)?
                    .into_iter()
                    .filter(|(k, _)| *k > key)
                    .collect(),
                None => Vec::new(),
            }
        } else {
            Vec::new()
        };
        queue.insert(0, (key, p));
        for (key, mut p) in queue {
            let tries = p.tries + 1;
            let node = ctx.node().to_string();
            let now = ctx.wall_clock();
            if let Some(Err(until)) = self.breaker.as_mut().map(|b| b.admit(now, &node)) {
                // Put off, not charged; the records behind it wait too.
                ctx.schedule_at(Clock::Wall, until, &key, &[])?;
                return Ok(());
            }
            let tried = self.try_parked(&node, &p);
            ctx.count("retries", 1);
            if let Some(b) = self.breaker.as_mut() {
                match &tried {
                    Tried::Failed(e) if e.failure == Failure::Retryable => {
                        if let Some(until) = b.failed(now, &node) {
                            p.error = e.to_string();
                            let (node, state) = ctx.raw();
                            write(state, node, &store, &key, Some(&p))?;
                            ctx.schedule_at(Clock::Wall, until, &key, &[])?;
                            return Ok(());
                        }
                    }
                    // Done, or refused for the record's own sake: the
                    // service answered.
                    Tried::Done(_) | Tried::Failed(_) => b.succeeded(&node),
                    Tried::Panicked(_) => {}
                }
            }
            match tried {
                Tried::Done(out) => {
                    if let Some(id) = &p.event_id {
                        ctx.update_event_status(id, &status(EventStatus::Completed, tries, None))?;
                    }
                    let mut headers = p.headers.clone();
                    headers.set(dlq_headers::ATTEMPTS, tries.to_string());
                    for (k, v) in out {
                        ctx.forward_with(k, v, p.timestamp, headers.clone());
                    }
                    let (node, state) = ctx.raw();
                    write(state, node, &store, &key, None)?;
                }
                Tried::Failed(e)
                    if e.failure == Failure::Retryable && tries < self.spec.policy.max_attempts =>
                {
                    tracing::debug!(node = %node, tries, error = %e, "retrying later");
                    p.tries = tries;
                    p.error = e.to_string();
                    if let Some(id) = &p.event_id {
                        ctx.update_event_status(
                            id,
                            &status(EventStatus::Retry, tries, Some(p.error.clone())),
                        )?;
                    }
                    let (node, state) = ctx.raw();
                    write(state, node, &store, &key, Some(&p))?;
                    self.schedule(ctx, &key, tries)?;
                    // Later records of the key wait behind it.
                    return Ok(());
                }
                failed => {
                    let (kind, message) = match failed {
                        Tried::Failed(e) if e.failure == Failure::Retryable => (
                            "retries-exhausted",
                            format!("node {node}: {tries} tries: {e}"),
                        ),
                        Tried::Failed(e) => {
                            let kind = ProcessError::from(e.clone()).kind();
                            (kind, format!("node {node}: {e}"))
                        }
                        _ => {
                            let Tried::Panicked(m) = failed else {
                                unreachable!("the other outcomes are matched above")
                            };
                            ("panic", format!("node {node}: operator panicked: {m}"))
                        }
                    };
                    if kind == "retries-exhausted" {
                        ctx.count("retries_exhausted", 1);
                    }
                    if let Some(id) = &p.event_id {
                        ctx.update_event_status(
                            id,
                            &status(EventStatus::Failed, tries, Some(message.clone())),
                        )?;
                    }
                    ctx.dead_letter(
                        &p.source(),
                        &DeadLetter {
                            kind: kind.into(),
                            message,
                            node: node.clone(),
                            attempts: tries,
                            details: None,
                        },
                    );
                    let (node, state) = ctx.raw();
                    write(state, node, &store, &key, None)?;
                }
            }
        }
        Ok(())
    }
}

impl<K, V, K2, V2> RetryNode<K, V, K2, V2>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    K2: Clone + Send + 'static,
    V2: Clone + Send + 'static,
{
    /// The parked record stored under `key`, as bytes.
    fn parked_raw(
        &self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, ProcessError> {
        let store = &self.spec.parked;
        let (node, state) = ctx.raw();
        let id = state
            .store_id(store)
            .map_err(|e| store_err(node, store, e))?;
        state
            .store(id)
            .get(key)
            .map_err(|e| store_err(node, store, e))
    }

    /// Sets the `breaker_open` gauge (1 while open or probing).
    fn report_breaker(&self, ctx: &mut ProcessorContext<'_, K2, V2>) {
        if let Some(b) = &self.breaker {
            ctx.gauge("breaker_open", i64::from(b.is_open()));
        }
    }

    fn process_record(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: K,
        value: V,
    ) -> Result<(), ProcessError> {
        let (kc, vc) = self.codecs(ctx.node())?.clone();
        let codec_err = |node: &str, source| ProcessError::Codec {
            node: node.to_string(),
            source,
        };
        let kb = kc.encode(&key).map_err(|e| codec_err(ctx.node(), e))?;
        let prefix = key_prefix(&kb);
        let store = self.spec.parked.clone();
        let queued = {
            let (node, state) = ctx.raw();
            entries_of(state, node, &store, &prefix)?
        };
        let behind = self.spec.policy.per_key_order && !queued.is_empty();
        let now = ctx.wall_clock();
        let unavailable = |node: &str, until| ProcessError::Unavailable {
            node: node.to_string(),
            message: "circuit breaker open".into(),
            retry_at: until,
        };
        if !behind {
            if let Some(Err(until)) = self.breaker.as_mut().map(|b| b.admit(now, ctx.node())) {
                return Err(unavailable(ctx.node(), until));
            }
        }
        let tried = if behind {
            None
        } else {
            Some((self.spec.f)(key.clone(), value.clone()))
        };
        if let (Some(b), Some(t)) = (self.breaker.as_mut(), &tried) {
            match t {
                Ok(_) => b.succeeded(ctx.node()),
                Err(e) if e.failure == Failure::Retryable => {
                    if let Some(until) = b.failed(now, ctx.node()) {
                        // Not charged: the record waits for the probe.
                        return Err(unavailable(ctx.node(), until));
                    }
                }
                // The service answered: the record is at fault, not it.
                Err(_) => b.succeeded(ctx.node()),
            }
        }
        let error = match tried {
            Some(Ok(out)) => {
                // Every output of a retrying node says how many tries it
                // took: here, the first.
                ctx.headers().set(dlq_headers::ATTEMPTS, "1");
                for (k, v) in out {
                    ctx.forward(k, v);
                }
                return Ok(());
            }
            Some(Err(e))
                if e.failure != Failure::Retryable || self.spec.policy.max_attempts <= 1 =>
            {
                return Err(e.into());
            }
            Some(Err(e)) => e.to_string(),
            None => String::new(),
        };
        // Park it: behind its key's records, or on a timer of its own.
        let seq = queued
            .last()
            .and_then(|(k, _)| split_entry(k))
            .map_or(0, |(_, s)| s + 1);
        let entry = entry_key(&prefix, seq);
        let (topic, partition, offset) = match (ctx.source_topic(), ctx.position()) {
            (Some(t), Some((p, o))) => (t.to_string(), p, o),
            _ => (String::new(), -1, -1),
        };
        let parked = Parked {
            tries: u32::from(!behind),
            timestamp: ctx.timestamp(),
            topic,
            partition,
            offset,
            headers: ctx.headers().clone(),
            key: kb,
            value: vc.encode(&value).map_err(|e| codec_err(ctx.node(), e))?,
            event_id: ctx.event_id().map(str::to_string),
            raw: None,
            error,
        };
        let parked = Parked {
            raw: ctx.source_record().and_then(|r| {
                let same = r.key.as_deref() == Some(parked.key.as_slice())
                    && r.value.as_deref() == Some(parked.value.as_slice());
                (!same).then(|| (r.key.clone(), r.value.clone()))
            }),
            ..parked
        };
        ctx.set_event_status(if behind {
            status(EventStatus::Unprocessed, 0, None)
        } else {
            status(EventStatus::Retry, 1, Some(parked.error.clone()))
        });
        {
            let (node, state) = ctx.raw();
            write(state, node, &store, &entry, Some(&parked))?;
        }
        if !behind {
            return self.schedule(ctx, &entry, 1);
        }
        // The head waits on a timer; one lost with a failed timer call is
        // set again, so the key cannot stall.
        let head = &queued[0].0;
        if ctx.timer(Clock::Wall, head)?.is_none() {
            let now = ctx.wall_clock();
            ctx.schedule_at(Clock::Wall, now, head, &[])?;
        }
        Ok(())
    }

    /// A retry's call failed downstream of this node (or panicked): the
    /// parked record is dead-lettered with that failure (or, when a node
    /// downstream was unavailable, tried again then), and the record
    /// behind it gets its turn — no key is left without a timer.
    fn settle_failed_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        timer: Timer,
        failure: &TimerFailure,
    ) -> Result<bool, ProcessError> {
        let store = self.spec.parked.clone();
        let parked = self.parked_raw(ctx, &timer.key)?;
        let Some(p) = parked.as_deref().and_then(Parked::decode) else {
            return Ok(false);
        };
        if let Some(at) = failure.retry_at {
            ctx.schedule_at(Clock::Wall, at, &timer.key, &[])?;
            return Ok(true);
        }
        let tries = p.tries + 1;
        if let Some(id) = &p.event_id {
            ctx.update_event_status(
                id,
                &status(EventStatus::Failed, tries, Some(failure.message.clone())),
            )?;
        }
        ctx.dead_letter(
            &p.source(),
            &DeadLetter {
                kind: failure.kind.clone(),
                message: failure.message.clone(),
                node: ctx.node().to_string(),
                attempts: tries,
                details: None,
            },
        );
        {
            let (node, state) = ctx.raw();
            write(state, node, &store, &timer.key, None)?;
        }
        if self.spec.policy.per_key_order {
            if let Some((pre, _)) = split_entry(&timer.key) {
                let next = {
                    let (node, state) = ctx.raw();
                    entries_of(state, node, &store, pre)?
                        .into_iter()
                        .find(|(k, _)| *k > timer.key)
                };
                if let Some((k, _)) = next {
                    let now = ctx.wall_clock();
                    ctx.schedule_at(Clock::Wall, now, &k, &[])?;
                }
            }
        }
        Ok(true)
    }

    fn on_timer_record(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        let store = self.spec.parked.clone();
        let parked = self.parked_raw(ctx, &timer.key)?;
        // Settled already (a timer set again for a head that then went).
        let Some(bytes) = parked else {
            return Ok(());
        };
        let p = Parked::decode(&bytes)
            .ok_or_else(|| store_err(ctx.node(), &store, "a parked record does not decode"))?;
        self.settle(ctx, timer.key, p)
    }
}

/// The trait's calls, each followed by a report of the breaker's state.
impl<K, V, K2, V2> Processor<K, V, K2, V2> for RetryNode<K, V, K2, V2>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    K2: Clone + Send + 'static,
    V2: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        key: K,
        value: V,
    ) -> Result<(), ProcessError> {
        let r = self.process_record(ctx, key, value);
        self.report_breaker(ctx);
        r
    }

    fn on_timer_failed(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        timer: Timer,
        failure: &TimerFailure,
    ) -> Result<bool, ProcessError> {
        let r = self.settle_failed_timer(ctx, timer, failure);
        self.report_breaker(ctx);
        r
    }

    fn on_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        let r = self.on_timer_record(ctx, timer);
        self.report_breaker(ctx);
        r
    }
}
