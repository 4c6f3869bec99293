//! The broker-backed registry: a [`Catalog`] kept up to date from the
//! definitions topic by a reader thread, and registration through that
//! topic.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;
use weir_core::{EventSchemas, SchemaViolation};

use crate::{Catalog, Compatibility, EventDefinition, NewDefinition, SchemaError};

/// The compacted topic that holds every version of every definition.
pub const DEFINITIONS_TOPIC: &str = "_weir_event_definitions";

/// Where the reader's librdkafka log lines go: level, facility, message.
pub type LogFn = Arc<dyn Fn(RDKafkaLogLevel, &str, &str) + Send + Sync>;

/// How to reach the definitions topic.
#[derive(Clone)]
pub struct RegistryOptions {
    /// The topic (default [`DEFINITIONS_TOPIC`]).
    pub topic: String,
    /// Its replication factor when Weir creates it (default 1).
    pub replication_factor: i32,
    /// How long a request may wait on the broker (default 30 s).
    pub timeout: Duration,
    /// Receives the reader's librdkafka log lines (default: rdkafka's own
    /// logging). The runtime passes its own, which knows which broker
    /// messages are noise.
    pub log: Option<LogFn>,
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("topic", &self.topic)
            .field("replication_factor", &self.replication_factor)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The reader's client context: its log lines go to [`RegistryOptions::log`].
struct ReaderContext {
    log: Option<LogFn>,
}

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match &self.log {
            Some(f) => f(level, fac, message),
            None => DefaultClientContext.log(level, fac, message),
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// The writer's context: remembers the first failed delivery (a record
/// too large, a denied write), which `flush` does not report.
#[derive(Default)]
struct WriterContext {
    failed: Mutex<Option<String>>,
}

impl ClientContext for WriterContext {}

impl ProducerContext for WriterContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(|| e.to_string());
        }
    }
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            topic: DEFINITIONS_TOPIC.to_string(),
            replication_factor: 1,
            timeout: Duration::from_secs(30),
            log: None,
        }
    }
}

#[derive(Default)]
struct Progress {
    /// The next offset to apply.
    position: i64,
    /// Registrations of this process waiting to see their record.
    pending: HashSet<String>,
    /// Their outcome once seen: whether the record took its version.
    outcomes: HashMap<String, bool>,
}

struct Shared {
    catalog: RwLock<Catalog>,
    progress: Mutex<Progress>,
    moved: Condvar,
    stop: AtomicBool,
}

/// Event definitions shared through the definitions topic (see the crate
/// docs). Every instance that validates, and the `weir schema` CLI, holds
/// one; a definition registered by one is seen by all.
pub struct SchemaRegistry {
    shared: Arc<Shared>,
    consumer: Arc<BaseConsumer<ReaderContext>>,
    producer: BaseProducer<WriterContext>,
    reader: Option<JoinHandle<()>>,
    opts: RegistryOptions,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("topic", &self.opts.topic)
            .finish_non_exhaustive()
    }
}

impl SchemaRegistry {
    /// Creates the topic when missing (one partition, compacted), starts
    /// reading it from the beginning, and returns once every definition in
    /// it is loaded. `client` holds `bootstrap.servers` and any security
    /// settings.
    ///
    /// # Errors
    /// [`SchemaError::Kafka`] when the broker refuses; [`SchemaError::Timeout`]
    /// when the topic is not read to its end within the timeout.
    pub fn connect(client: &ClientConfig, opts: RegistryOptions) -> Result<Self, SchemaError> {
        ensure_topic(client, &opts)?;
        let kafka =
            |what: &str, e: rdkafka::error::KafkaError| SchemaError::Kafka(format!("{what}: {e}"));
        let mut cc = client.clone();
        cc.set("group.id", "weir-schema-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        let context = ReaderContext {
            log: opts.log.clone(),
        };
        let consumer: Arc<BaseConsumer<ReaderContext>> = Arc::new(
            cc.create_with_context(context)
                .map_err(|e| kafka("create the reader", e))?,
        );
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&opts.topic, 0, Offset::Beginning)
            .map_err(|e| kafka("assign", e))?;
        consumer.assign(&tpl).map_err(|e| kafka("assign", e))?;
        let mut pc = client.clone();
        pc.set("enable.idempotence", "true").set("acks", "all");
        let producer: BaseProducer<WriterContext> = pc
            .create_with_context(WriterContext::default())
            .map_err(|e| kafka("create the writer", e))?;
        let shared = Arc::new(Shared {
            catalog: RwLock::new(Catalog::default()),
            progress: Mutex::new(Progress::default()),
            moved: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let reader = {
            let (shared, consumer) = (shared.clone(), consumer.clone());
            std::thread::Builder::new()
                .name("weir-schema-reader".into())
                .spawn(move || read(&shared, &consumer))
                .map_err(|e| SchemaError::Kafka(format!("start the reader: {e}")))?
        };
        let registry = Self {
            shared,
            consumer,
            producer,
            reader: Some(reader),
            opts,
        };
        registry.refresh()?;
        Ok(registry)
    }

    /// Waits until every definition written to the topic before this call
    /// is loaded.
    ///
    /// # Errors
    /// [`SchemaError::Kafka`] when the topic's end cannot be read;
    /// [`SchemaError::Timeout`] when loading takes longer than the timeout.
    pub fn refresh(&self) -> Result<(), SchemaError> {
        let (_, high) = self
            .consumer
            .fetch_watermarks(&self.opts.topic, 0, self.opts.timeout)
            .map_err(|e| SchemaError::Kafka(format!("read the end of {}: {e}", self.opts.topic)))?;
        self.wait_until(|p| p.position >= high, "loading the definitions")
    }

    /// Registers `new` as the next version of its type (version 1 for a
    /// new type) and returns it once this registry has loaded it.
    ///
    /// # Errors
    /// The checks of [`Catalog::prepare`]; [`SchemaError::Kafka`] when the
    /// record cannot be written; [`SchemaError::Timeout`].
    pub fn register(
        &self,
        new: NewDefinition,
        compatibility: Compatibility,
    ) -> Result<EventDefinition, SchemaError> {
        self.refresh()?;
        // A concurrent registration may take the version first: prepare
        // again on top of it (its checks then run against it).
        for _ in 0..5 {
            let def = self.read_catalog().prepare(new.clone(), compatibility)?;
            if self.write_and_wait(&def)? {
                return Ok(def);
            }
        }
        Err(SchemaError::Timeout(format!(
            "{}: five concurrent registrations took the next version first",
            new.event_type
        )))
    }

    /// Registers `new` as version 1 unless its type already has a
    /// definition, and returns the latest: for topologies that ship their
    /// definitions, so that many instances starting at once register one
    /// version between them, not one each.
    ///
    /// # Errors
    /// As [`SchemaRegistry::register`].
    pub fn register_if_absent(&self, new: NewDefinition) -> Result<EventDefinition, SchemaError> {
        self.refresh()?;
        if let Some(d) = self.get(&new.event_type, None) {
            return Ok(d);
        }
        let def = self.read_catalog().prepare(new, Compatibility::None)?;
        self.write_and_wait(&def)?;
        // Ours, or a concurrent one's that came first: either way there is one.
        self.get(&def.event_type, None)
            .ok_or_else(|| SchemaError::Timeout(format!("{} was not loaded", def.event_type)))
    }

    /// Version `version` of `event_type`, or its latest.
    pub fn get(&self, event_type: &str, version: Option<u32>) -> Option<EventDefinition> {
        self.read_catalog().get(event_type, version).cloned()
    }

    /// Every version of `event_type`, oldest first.
    pub fn versions(&self, event_type: &str) -> Vec<EventDefinition> {
        self.read_catalog()
            .versions(event_type)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The latest version of every event type, by type.
    pub fn list(&self) -> Vec<EventDefinition> {
        self.read_catalog().list().into_iter().cloned().collect()
    }

    /// Writes `def` and waits until the reader has applied it; whether it
    /// took its version (a concurrent registration may have come first).
    fn write_and_wait(&self, def: &EventDefinition) -> Result<bool, SchemaError> {
        let id = def.registration_id.clone();
        self.lock().pending.insert(id.clone());
        let value = serde_json::to_vec(def).expect("a definition serializes");
        let key = def.key();
        // Partition 0, whatever the topic's partition count: the reader
        // reads only it.
        let sent = self
            .producer
            .send(
                BaseRecord::to(&self.opts.topic)
                    .partition(0)
                    .key(&key)
                    .payload(&value),
            )
            .map_err(|(e, _)| e.to_string())
            .and_then(|()| {
                self.producer
                    .flush(self.opts.timeout)
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| {
                let failed = self.producer.context().failed.lock();
                match failed.unwrap_or_else(|e| e.into_inner()).take() {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            });
        if let Err(e) = sent {
            self.lock().pending.remove(&id);
            return Err(SchemaError::Kafka(format!("write {key}: {e}")));
        }
        let result = self.wait_until(|p| p.outcomes.contains_key(&id), "registering");
        let mut p = self.lock();
        p.pending.remove(&id);
        let won = p.outcomes.remove(&id) == Some(true);
        drop(p);
        result?;
        if won {
            tracing::info!(event_type = %def.event_type, version = def.version, "registered an event definition");
        }
        Ok(won)
    }

    fn read_catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.shared
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.shared
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn wait_until(&self, done: impl Fn(&Progress) -> bool, what: &str) -> Result<(), SchemaError> {
        let deadline = Instant::now() + self.opts.timeout;
        let mut p = self.lock();
        loop {
            if done(&p) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SchemaError::Timeout(format!(
                    "{what} took longer than {:?} (read up to offset {} of {})",
                    self.opts.timeout, p.position, self.opts.topic
                )));
            }
            p = self
                .shared
                .moved
                .wait_timeout(p, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl EventSchemas for SchemaRegistry {
    fn check(&self, event_type: &str, payload: &Value) -> Result<(), SchemaViolation> {
        self.read_catalog().check(event_type, payload)
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The reader thread: applies each record of the topic in order.
fn read(shared: &Shared, consumer: &BaseConsumer<ReaderContext>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(next) = consumer.poll(Duration::from_millis(100)) else {
            // Nothing new: the consumer's position steps over what is not a
            // record (a transaction marker), which `refresh` must reach too.
            catch_up(shared, consumer);
            continue;
        };
        let msg = match next {
            Ok(m) => m,
            // Empty fetches of some brokers come as parse errors; nothing
            // is lost, the next poll goes on.
            Err(e) => {
                tracing::debug!(error = %e, "definitions reader");
                continue;
            }
        };
        let def = msg
            .payload()
            .map(serde_json::from_slice::<EventDefinition>)
            .transpose();
        let key = msg.key().map(String::from_utf8_lossy).unwrap_or_default();
        let mut applied = None;
        match def {
            Ok(Some(d)) if d.key() == key => {
                let id = d.registration_id.clone();
                let took = shared
                    .catalog
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply(d);
                applied = Some((id, took));
            }
            Ok(Some(d)) => {
                tracing::warn!(%key, expected = %d.key(), offset = msg.offset(), "skipping a definition stored under the wrong key");
            }
            Ok(None) => {
                tracing::warn!(%key, offset = msg.offset(), "skipping a tombstone: definitions are never deleted");
            }
            Err(e) => {
                tracing::warn!(%key, offset = msg.offset(), error = %e, "skipping a record that is not a definition");
            }
        }
        let mut p = shared.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.position = msg.offset() + 1;
        if let Some((id, took)) = applied {
            if p.pending.contains(&id) {
                p.outcomes.insert(id, took);
            }
        }
        drop(p);
        shared.moved.notify_all();
    }
}

/// Moves the reader's position to the consumer's when that is further.
fn catch_up(shared: &Shared, consumer: &BaseConsumer<ReaderContext>) {
    let Ok(positions) = consumer.position() else {
        return;
    };
    let Some(rdkafka::Offset::Offset(at)) = positions.elements().first().map(|e| e.offset()) else {
        return;
    };
    let mut p = shared.progress.lock().unwrap_or_else(|e| e.into_inner());
    if at > p.position {
        p.position = at;
        drop(p);
        shared.moved.notify_all();
    }
}

fn ensure_topic(client: &ClientConfig, opts: &RegistryOptions) -> Result<(), SchemaError> {
    let admin: AdminClient<DefaultClientContext> = client
        .create()
        .map_err(|e| SchemaError::Kafka(format!("create an admin client: {e}")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SchemaError::Kafka(format!("start a runtime: {e}")))?;
    let topic = NewTopic::new(
        &opts.topic,
        1,
        TopicReplication::Fixed(opts.replication_factor),
    )
    .set("cleanup.policy", "compact");
    let results = rt
        .block_on(admin.create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(opts.timeout)),
        ))
        .map_err(|e| SchemaError::Kafka(format!("create {}: {e}", opts.topic)))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(SchemaError::Kafka(format!("create {t}: {code}"))),
        }
    }
    // Wait until metadata shows it, so the reader's assignment does not race
    // its creation.
    let deadline = Instant::now() + opts.timeout;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(&opts.topic), opts.timeout)
            .map_err(|e| SchemaError::Kafka(format!("metadata of {}: {e}", opts.topic)))?;
        if md
            .topics()
            .iter()
            .any(|t| t.name() == opts.topic && t.error().is_none() && !t.partitions().is_empty())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(SchemaError::Timeout(format!(
                "{} did not appear in metadata",
                opts.topic
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
