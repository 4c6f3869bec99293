//! One stream thread: a consumer, a producer, the tasks of the partitions it
//! owns, and the commit loop (the README, "How exactly-once works here").
//!
//! The thread is an OS thread over rdkafka's poll-driven `BaseConsumer` and
//! `BaseProducer`: every blocking call (flush, send offsets, commit) happens
//! on this thread, never inside an async executor. Rebalance callbacks run
//! inside `poll` on this same thread, so the [`TaskSet`] they commit or
//! close lives behind a mutex that is never held across `poll`.
//!
//! One turn of the loop: poll up to a batch of records into their tasks'
//! partition groups; open and restore new tasks (between polls, never in
//! the rebalance callback); process what the groups release, smallest
//! timestamp first; commit when the interval has passed.
//!
//! The pieces: [`crate::task_set`] (tasks, assignment, processing),
//! [`crate::committer`] (commit, abort, positions), [`crate::delivery`]
//! (outputs and their reports), [`crate::rebalance`] (the consumer's
//! callbacks), [`crate::restore`], [`crate::broker_quirks`].

use crate::poison::PoisonLedger;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use weir_core::ErrorClass;
use weir_dsl::Topology;
use weir_state::StateBudget;

use crate::broker_quirks::clear_stale_offsets;
use crate::config::{Config, ProcessingGuarantee};
use crate::delivery::DeliveryContext;
use crate::error::{Error, Result};
use crate::failpoint::Failpoints;
use crate::kafka::{classify, consumer_config, producer_config};
use crate::rebalance::ThreadContext;
use crate::stats::RuntimeStats;
use crate::task_set::TaskSet;
use crate::watchdog::CallWatch;

/// How long one blocking transactional call may take before it is retried.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Records taken from the consumer between two looks at the clock.
const POLL_BATCH: usize = 512;
/// How often a thread reports its input lag to the registry.
const LAG_PUBLISH_INTERVAL: Duration = Duration::from_millis(500);
/// Retriable failures of one commit step before the transaction is aborted.
pub(crate) const MAX_RETRIES: u32 = 10;

/// Everything a stream thread needs, shared or owned.
pub(crate) struct ThreadSpec {
    pub cfg: Arc<Config>,
    pub topology: Topology,
    pub index: usize,
    pub instance_id: String,
    pub dead_letter_topic: String,
    pub shutdown: Arc<AtomicBool>,
    pub stats: Arc<RuntimeStats>,
    pub failpoints: Arc<Failpoints>,
    /// `<state_dir>/<application_id>/tasks`.
    pub tasks_dir: PathBuf,
    /// The process-wide memory budget of every store.
    pub budget: StateBudget,
    /// The transactional call this thread is in (see [`crate::watchdog`]).
    pub watch: Arc<CallWatch>,
    /// The cluster's id, recorded with checkpoints (a checkpoint of another
    /// cluster is not trusted); `None` when the cluster did not say.
    pub cluster_id: Option<String>,
    /// The stores this instance holds, for queries.
    pub queries: Arc<crate::queries::LocalStores>,
    /// Partitions of each repartition topic, for stream-time markers.
    pub repartition_partitions: std::collections::BTreeMap<String, crate::topics::RepartitionTopic>,
}

impl ThreadSpec {
    pub(crate) fn eos(&self) -> bool {
        self.cfg.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2
    }

    fn client_id(&self) -> String {
        format!(
            "{}-{}-{}",
            self.cfg.application_id, self.instance_id, self.index
        )
    }
}

/// Runs the thread until shutdown, rejoining with a new producer after a
/// fatal (fenced) error.
pub(crate) fn run(spec: ThreadSpec) -> Result<()> {
    let spec = Arc::new(spec);
    // Inputs that aborted transactions: remembered across rejoins, so they
    // are dead-lettered rather than retried forever.
    let mut poisoned = PoisonLedger::new(spec.cfg.max_aborts_per_record);
    loop {
        match run_generation(&spec, &mut poisoned)? {
            Exit::Shutdown => return Ok(()),
            Exit::Rejoin => {
                RuntimeStats::add(&spec.stats.rejoins, 1);
                tracing::warn!(
                    thread = spec.index,
                    "producer fenced, failed fatally, or positions unknown: closing tasks and rejoining with a new producer"
                );
            }
        }
    }
}

pub(crate) enum Exit {
    Shutdown,
    Rejoin,
}

pub(crate) fn kafka_err(context: &str) -> impl FnOnce(KafkaError) -> Error + '_ {
    move |source| Error::Kafka {
        context: context.to_string(),
        message: source.to_string(),
        class: classify(&source),
    }
}

pub(crate) fn lock(state: &Mutex<TaskSet>) -> MutexGuard<'_, TaskSet> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn run_generation(spec: &Arc<ThreadSpec>, poisoned: &mut PoisonLedger) -> Result<Exit> {
    let client_id = spec.client_id();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let tx_id = spec.eos().then(|| client_id.clone());
    let producer: BaseProducer<DeliveryContext> =
        producer_config(&spec.cfg, &client_id, tx_id.as_deref())
            .create_with_context(DeliveryContext {
                failures: failures.clone(),
                acks: acks.clone(),
            })
            .map_err(kafka_err("creating the producer"))?;
    if spec.eos() {
        let mut attempt = 0;
        loop {
            let result = spec.watch.run("init_transactions", CALL_TIMEOUT, || {
                producer.init_transactions(CALL_TIMEOUT)
            });
            match result {
                Ok(()) => break,
                Err(e) if classify(&e) == ErrorClass::Retriable && attempt < MAX_RETRIES => {
                    attempt += 1;
                    tracing::warn!(error = %e, "init_transactions timed out; retrying");
                }
                Err(e) => return Err(kafka_err("initialising transactions")(e)),
            }
        }
        clear_stale_offsets(spec, &producer, CALL_TIMEOUT)?;
        producer
            .begin_transaction()
            .map_err(kafka_err("beginning a transaction"))?;
    }
    let state = Arc::new(Mutex::new(TaskSet::new(
        spec.clone(),
        producer,
        failures,
        acks,
        std::mem::take(poisoned),
    )));
    let consumer: BaseConsumer<ThreadContext> = consumer_config(&spec.cfg, &client_id)
        .create_with_context(ThreadContext::new(
            state.clone(),
            lock(&state).partition_ends.clone(),
        ))
        .map_err(kafka_err("creating the consumer"))?;
    let topics = spec.topology.source_topics();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(kafka_err("subscribing"))?;
    let interval = Duration::from_millis(spec.cfg.commit_interval_ms);
    let mut lag_published = Instant::now();
    loop {
        if spec.shutdown.load(Ordering::SeqCst) {
            lock(&state).finish(&consumer);
            drop(consumer);
            return lock(&state).take_failure().map_or(Ok(Exit::Shutdown), Err);
        }
        let wait = {
            let s = lock(&state);
            // Restoring tasks are served between polls: do not sleep in one.
            if s.has_ready_work(Instant::now()) || s.restoring() {
                Duration::ZERO
            } else {
                let wait = interval
                    .saturating_sub(s.last_commit.elapsed())
                    .clamp(Duration::from_millis(1), Duration::from_millis(100));
                // No later than the next wall-clock timer.
                match s.next_wall_deadline() {
                    Some(d) => wait.min(Duration::from_millis(
                        (d - crate::task_set::now_ms()).clamp(0, 100) as u64,
                    )),
                    None => wait,
                }
            }
        };
        // Take what is already fetched in one go (up to a batch) into the
        // tasks' buffers; never hold the lock across a poll, which may run
        // a rebalance callback that needs it.
        let mut next = consumer.poll(wait);
        let mut taken = 0;
        while let Some(polled) = next {
            match polled {
                Ok(m) => lock(&state).buffer(&m),
                Err(e) => crate::rebalance::consumer_error(&e),
            }
            taken += 1;
            if taken == POLL_BATCH {
                break; // nothing polled is left unbuffered
            }
            next = consumer.poll(Duration::ZERO);
        }
        let mut s = lock(&state);
        s.spec.stats.polled(s.spec.index);
        s.producer.poll(Duration::ZERO);
        s.advance_tasks(&consumer);
        if s.unknown_positions {
            s.fetch_positions(&consumer);
        }
        s.update_lag(&consumer);
        s.publish_readiness();
        if lag_published.elapsed() >= LAG_PUBLISH_INTERVAL {
            s.publish_lag(&consumer);
            lag_published = Instant::now();
        }
        s.process_ready(Instant::now(), &consumer);
        s.note_quiet_writers(&consumer, Instant::now());
        if s.rewind_requested && !s.fenced {
            s.abort(&consumer, true);
        }
        // Every transaction carries every assigned partition's position.
        if s.dirty
            && (s.last_commit.elapsed() >= interval || s.buffers_full() || s.timer_backlog)
            && !s.fenced
            && !s.unknown_positions
        {
            s.commit(&consumer);
        }
        if let Some(e) = s.take_failure() {
            // Never commit from here on (the revoke callback run by dropping
            // the consumer would): the tasks' pending writes are dropped.
            s.fenced = true;
            s.close_all_dirty();
            drop(s);
            drop(consumer);
            return Err(e);
        }
        if s.fenced {
            s.close_all_dirty();
            *poisoned = std::mem::take(&mut s.poisoned);
            drop(s);
            drop(consumer);
            return Ok(Exit::Rejoin);
        }
    }
}
