//! Running an instance: [`run`] a topology under a [`Config`] until
//! SIGTERM or Ctrl-C, or [`start`] it and keep the [`Instance`] (its stores
//! for queries, `stop`, `wait`); [`configured_topology`] for the topic
//! renames of the configuration. Argument parsing and the process's exit code belong
//! to the binary (the `weir` facade's `App`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use weir_dsl::Topology;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::failpoint::Failpoints;
use crate::identity::InstanceIdentity;
use crate::queries::LocalStores;
use crate::stats::RuntimeStats;
use crate::stream_thread::{self, ThreadSpec};
use crate::topics::prepare_topics;
use crate::watchdog::CallWatch;

/// The topology with the configuration's `[topics]` renames applied and
/// its `[params]` values set.
///
/// # Errors
/// A [`crate::ConfigError`] when a rename names no topic of the topology,
/// merges two sources, or turns a sink into a source; or when a `[params]`
/// value names no declared parameter or does not parse as its type. Sets
/// the parameters, so call it once per process.
pub fn configured_topology(config: &Config, topology: &Topology) -> Result<Topology> {
    for (name, value) in &config.params {
        topology
            .set_param(name, value)
            .map_err(|message| crate::ConfigError::Invalid {
                key: format!("params.{name}"),
                message,
            })?;
    }
    let mut known = topology.source_topics();
    known.extend(topology.sink_topics());
    known.extend(topology.dead_letter_topic().map(str::to_string));
    let mut rename = std::collections::BTreeMap::new();
    // An exact name, else one that matches with case ignored and `-`, `.`
    // and `_` alike (a `WEIR_TOPICS__ORDERS_V1` variable names `orders.v1`).
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '.'], "_");
    for (logical, physical) in &config.topics {
        let like: Vec<&String> = known.iter().filter(|t| norm(t) == norm(logical)).collect();
        let found = match known.iter().find(|t| *t == logical) {
            Some(t) => t,
            None if like.len() == 1 => like[0],
            None if like.len() > 1 => {
                return Err(crate::ConfigError::Invalid {
                    key: format!("topics.{logical}"),
                    message: format!(
                        "names more than one topic of the topology: {}; name one exactly in the file's [topics]",
                        like.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                }
                .into())
            }
            None => {
                return Err(crate::ConfigError::Invalid {
                    key: format!("topics.{logical}"),
                    message: format!(
                        "the topology has no topic {logical:?}; its topics are {}",
                        known.join(", ")
                    ),
                }
                .into())
            }
        };
        if let Some(first) = rename.insert(found.clone(), physical.clone()) {
            return Err(crate::ConfigError::Invalid {
                key: format!("topics.{logical}"),
                message: format!(
                    "renames topic {found:?} a second time ({first:?}, then {physical:?})"
                ),
            }
            .into());
        }
    }
    // Repartition topics are the application's own: `<application_id>-<store>-repartition`.
    for (topic, _) in topology.repartition_topics() {
        let physical = format!("{}-{topic}", config.application_id);
        rename.entry(topic).or_insert(physical);
    }
    let renamed = topology.with_topic_names(&rename);
    // A rename must not merge two sources, nor turn a sink into a source.
    let sources = renamed.source_topics();
    let original_loops: Vec<String> = topology
        .sink_topics()
        .into_iter()
        .filter(|t| topology.source_topics().contains(t))
        .map(|t| rename.get(&t).cloned().unwrap_or(t))
        .collect();
    if sources.len() != topology.source_topics().len() {
        return Err(crate::ConfigError::Invalid {
            key: "topics".into(),
            message: "two source topics are renamed to the same topic".into(),
        }
        .into());
    }
    if let Some(t) = renamed
        .sink_topics()
        .into_iter()
        .find(|t| sources.contains(t) && !original_loops.contains(t))
    {
        return Err(crate::ConfigError::Invalid {
            key: "topics".into(),
            message: format!("{t} would be both written and read by the topology"),
        }
        .into());
    }
    Ok(renamed)
}

/// Joins the application's group and processes records until SIGTERM or
/// Ctrl-C, then commits (or aborts) the open transactions and leaves the
/// group. Applies the configuration's topic renames first.
///
/// # Errors
/// A bad `[topics]` rename, a bad `WEIR_FAILPOINT`, a locked state dir,
/// missing topics, or a stream thread that failed.
pub fn run(config: Config, topology: Topology) -> Result<()> {
    let instance = start(config, topology)?;
    instance.stop_on_signals()?;
    instance.wait()
}

/// A running instance (see [`start`]): its stores for queries, and the
/// means to stop it.
pub struct Instance {
    shutdown: Arc<AtomicBool>,
    /// The monitoring reporter (when enabled) and the dead-letter size
    /// sampler; they stop with `shutdown`.
    helpers: Vec<std::thread::JoinHandle<()>>,
    handles: Vec<std::thread::JoinHandle<Result<()>>>,
    watches: Vec<Arc<CallWatch>>,
    stats: Arc<RuntimeStats>,
    queries: Arc<LocalStores>,
    identity: InstanceIdentity,
    /// The topology as configured (topics renamed).
    topology: Topology,
    threads: usize,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("instance_id", &self.identity.instance_id())
            .finish()
    }
}

impl Instance {
    /// The stores this instance holds, readable from any thread (committed
    /// state only; see [`LocalStores`]).
    pub fn stores(&self) -> Arc<LocalStores> {
        self.queries.clone()
    }

    /// The instance's counters.
    pub fn stats(&self) -> Arc<RuntimeStats> {
        self.stats.clone()
    }

    /// The topology it runs, with the configuration's topic renames.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether every stream thread has its assignment and no task is
    /// restoring.
    pub fn is_ready(&self) -> bool {
        self.stats.is_ready(self.threads)
    }

    /// Stops the instance on SIGTERM or SIGINT (what [`run`] does).
    ///
    /// # Errors
    /// [`Error::Usage`] when the handler cannot be installed.
    pub fn stop_on_signals(&self) -> Result<()> {
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, self.shutdown.clone())
                .map_err(|e| Error::Usage(format!("cannot install signal handler: {e}")))?;
        }
        Ok(())
    }

    /// This instance's id (stable across restarts on one state dir).
    pub fn instance_id(&self) -> &str {
        self.identity.instance_id()
    }

    /// Asks the stream threads to commit and stop; [`Instance::wait`] returns
    /// when they have.
    pub fn stop(&self) {
        self.shutdown
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether every stream thread has ended (stopped or failed).
    pub fn is_finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }

    /// Waits for the stream threads to end (after [`Instance::stop`], a
    /// signal handler setting the flag, or a failure).
    ///
    /// # Errors
    /// The first stream thread's error, or [`Error::HungCall`] when a
    /// transactional call hangs past its timeout (the threads are then
    /// left behind: exit the process).
    pub fn wait(self) -> Result<()> {
        let Instance {
            shutdown,
            helpers,
            handles,
            watches,
            stats,
            queries: _,
            identity,
            topology: _,
            threads: _,
        } = self;
        // Wait for the threads, watching for a transactional call that hangs
        // past its timeout: then stop without joining (see crate::watchdog).
        while !handles.iter().all(|h| h.is_finished()) {
            if let Some((thread, call)) = watches
                .iter()
                .enumerate()
                .find_map(|(i, w)| w.overdue().map(|c| (i, c)))
            {
                let e = Error::HungCall {
                    thread,
                    call,
                    grace_s: crate::watchdog::GRACE.as_secs(),
                };
                tracing::error!(error = %e, "exiting");
                eprintln!("weir: stopped: {}", stats.summary());
                return Err(e);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let mut first_error = None;
        for (index, h) in handles.into_iter().enumerate() {
            let result = h.join().unwrap_or_else(|_| {
                Err(Error::Thread {
                    thread: index,
                    message: "panicked".into(),
                })
            });
            if let Err(e) = result {
                tracing::error!(thread = index, error = %e, "stream thread failed");
                shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
                first_error.get_or_insert(e);
            }
        }
        // The reporter's last report carries the final counters.
        shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in helpers {
            let _ = h.join();
        }
        tracing::info!("stopped: {}", stats.summary());
        eprintln!("weir: stopped: {}", stats.summary());
        drop(identity);
        first_error.map_or(Ok(()), Err)
    }
}

/// Starts an instance: checks and creates topics, then starts the stream
/// threads, which join the application's group and process until
/// [`Instance::stop`]. Applies the configuration's topic renames first.
/// No signal handler is installed (see [`run`]).
///
/// # Errors
/// As [`run`], for what fails before the threads start.
pub fn start(config: Config, topology: Topology) -> Result<Instance> {
    let topology = configured_topology(&config, &topology)?;
    let cfg = Arc::new(config);
    let failpoints = Arc::new(Failpoints::from_env()?);
    let identity = InstanceIdentity::acquire(
        &cfg.state_dir,
        &cfg.application_id,
        cfg.instance_id.as_deref(),
    )?;
    let dead_letter_topic = cfg.dead_letter_topic(topology.dead_letter_topic());
    tracing::info!(
        application_id = %cfg.application_id,
        instance_id = identity.instance_id(),
        bootstrap = %cfg.bootstrap_servers,
        guarantee = ?cfg.processing_guarantee,
        dead_letter_topic = %dead_letter_topic,
        "starting"
    );
    let prepared = prepare_topics(&cfg, &topology, &dead_letter_topic)?;
    crate::schemas::attach(&cfg, &topology)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(RuntimeStats::default());
    let queries = Arc::new(LocalStores::new(prepared.store_partitions.clone()));
    let budget = weir_state::StateBudget::from_mb(cfg.state_memory_budget_mb);
    let tasks_dir = identity.dir().join("tasks");
    let watches: Vec<Arc<CallWatch>> = (0..cfg.num_stream_threads)
        .map(|_| Arc::new(CallWatch::default()))
        .collect();
    let handles: Vec<_> = (0..cfg.num_stream_threads)
        .map(|index| {
            let spec = ThreadSpec {
                cfg: cfg.clone(),
                topology: topology.clone(),
                index,
                instance_id: identity.instance_id().to_string(),
                dead_letter_topic: dead_letter_topic.clone(),
                shutdown: shutdown.clone(),
                stats: stats.clone(),
                failpoints: failpoints.clone(),
                tasks_dir: tasks_dir.clone(),
                budget: budget.clone(),
                watch: watches[index].clone(),
                cluster_id: prepared.cluster_id.clone(),
                queries: queries.clone(),
                repartition_partitions: prepared.repartition_partitions.clone(),
            };
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(format!("weir-stream-{index}"))
                .spawn(move || {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        stream_thread::run(spec)
                    }))
                    .unwrap_or_else(|_| {
                        Err(Error::Thread {
                            thread: index,
                            message: "panicked".into(),
                        })
                    });
                    if result.is_err() {
                        // One dead thread stops the instance: its partitions must move.
                        shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    result
                })
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::Usage(format!("cannot start stream threads: {e}")))?;
    let monitor = crate::monitoring::start(
        cfg.clone(),
        identity.instance_id().to_string(),
        stats.clone(),
        shutdown.clone(),
    );
    let dlq_size = crate::dlq_size::start(
        &cfg,
        identity.instance_id(),
        dead_letter_topic.clone(),
        stats.clone(),
        shutdown.clone(),
    );
    Ok(Instance {
        helpers: monitor.into_iter().chain(dlq_size).collect(),
        shutdown,
        handles,
        watches,
        stats,
        queries,
        identity,
        threads: cfg.num_stream_threads,
        topology,
    })
}

#[cfg(test)]
mod tests {
    use weir_core::Str;
    use weir_dsl::TopologyBuilder;

    use super::configured_topology;
    use crate::config::{Config, ConfigValue};

    fn renamed(topics: &[&str], var: &str) -> Result<Vec<String>, String> {
        renamed_by(topics, &[var])
    }

    fn renamed_by(topics: &[&str], vars: &[&str]) -> Result<Vec<String>, String> {
        let b = TopologyBuilder::new();
        let s = b.stream("in", Str, Str);
        for t in topics {
            s.to(*t);
        }
        let defaults = [("application_id".to_string(), ConfigValue::from("app"))].into();
        let env = vars
            .iter()
            .map(|v| (format!("WEIR_TOPICS__{v}"), "physical".to_string()));
        let config = Config::load(&defaults, None, env).map_err(|e| e.to_string())?;
        configured_topology(&config, &b.build().unwrap())
            .map(|t| t.sink_topics())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_variable_renames_a_topic_whatever_its_case_dots_and_dashes() {
        let mut got = renamed(&["orders.v1", "Payment-Events"], "ORDERS_V1").unwrap();
        got.sort();
        assert_eq!(got, ["Payment-Events", "physical"]);
        let mut got = renamed(&["orders.v1", "Payment-Events"], "PAYMENT_EVENTS").unwrap();
        got.sort();
        assert_eq!(got, ["orders.v1", "physical"]);
        let e = renamed(&["orders.v1", "orders-v1"], "ORDERS_V1").unwrap_err();
        assert!(
            e.contains("more than one") && e.contains("orders.v1") && e.contains("orders-v1"),
            "{e}"
        );
        let e = renamed(&["orders"], "REFUNDS").unwrap_err();
        assert!(e.contains("no topic"), "{e}");
        let e = renamed_by(&["orders-v1"], &["ORDERS_V1", "ORDERS-V1"]).unwrap_err();
        assert!(e.contains("a second time"), "{e}");
    }
}
