//! Topic preparation at start: inputs and outputs must exist (or are created
//! under `auto_create_topics`); internal topics (the DLQ now, changelogs and
//! repartition topics later) are created by Weir, where "already exists" is
//! success once its partition count and cleanup policy are checked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use weir_dsl::Topology;

use crate::changelog::changelog_topic;
use crate::config::Config;
use crate::kafka::admin_config;

/// A topic is missing, misshapen, or the cluster could not be asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Topics the topology needs do not exist.
    #[error("topic(s) {} do not exist on {bootstrap}: create them, or set auto_create_topics = true", topics.join(", "))]
    Missing {
        /// The missing topics.
        topics: Vec<String>,
        /// The cluster.
        bootstrap: String,
    },
    /// An existing internal topic has the wrong shape.
    #[error("topic {topic}: {message}")]
    Mismatch {
        /// The topic.
        topic: String,
        /// What is wrong.
        message: String,
    },
    /// Source topics of one sub-topology differ in partition count.
    #[error("topics {} are read together (sub-topology {subtopology}) and must have the same number of partitions, but have {}", topics.join(", "), counts.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "))]
    NotCoPartitioned {
        /// The sub-topology.
        subtopology: usize,
        /// Its source topics.
        topics: Vec<String>,
        /// Their partition counts.
        counts: Vec<i32>,
    },
    /// Talking to the cluster failed.
    #[error("cluster {bootstrap}: {message}")]
    Admin {
        /// The cluster.
        bootstrap: String,
        /// What failed.
        message: String,
    },
}

struct Admin<'a> {
    cfg: &'a Config,
    client: AdminClient<DefaultClientContext>,
    rt: tokio::runtime::Runtime,
}

impl<'a> Admin<'a> {
    fn connect(cfg: &'a Config) -> Result<Self, TopicError> {
        let err = |message: String| TopicError::Admin {
            bootstrap: cfg.bootstrap_servers.clone(),
            message,
        };
        let client: AdminClient<DefaultClientContext> =
            admin_config(cfg).create().map_err(|e| err(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(Admin { cfg, client, rt })
    }

    fn err(&self, message: impl Into<String>) -> TopicError {
        TopicError::Admin {
            bootstrap: self.cfg.bootstrap_servers.clone(),
            message: message.into(),
        }
    }

    /// Partition counts of every topic in the cluster.
    fn partitions(&self) -> Result<BTreeMap<String, i32>, TopicError> {
        let md = self
            .client
            .inner()
            .fetch_metadata(None, Duration::from_secs(15))
            .map_err(|e| {
                self.err(format!(
                    "no answer to a metadata request within 15 s ({e}); is bootstrap_servers right and the cluster up?"
                ))
            })?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    fn create(&self, topics: &[(String, i32)], cleanup: &str) -> Result<(), TopicError> {
        self.create_with(topics, &[("cleanup.policy", cleanup)])
    }

    fn create_with(
        &self,
        topics: &[(String, i32)],
        configs: &[(&str, &str)],
    ) -> Result<(), TopicError> {
        if topics.is_empty() {
            return Ok(());
        }
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|(t, p)| {
                configs.iter().fold(
                    NewTopic::new(t, *p, TopicReplication::Fixed(self.cfg.replication_factor)),
                    |n, (k, v)| n.set(k, v),
                )
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = self
            .rt
            .block_on(self.client.create_topics(&new, &opts))
            .map_err(|e| self.err(format!("create topics: {e}")))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => return Err(self.err(format!("create topic {t}: {code}"))),
            }
        }
        // Wait until metadata shows them, so clients do not race creation.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let have = self.partitions()?;
            if topics.iter().all(|(t, _)| have.contains_key(t)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.err("created topics did not appear in metadata within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn cleanup_policy(&self, topic: &str) -> Result<Option<String>, TopicError> {
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
        let res = self
            .rt
            .block_on(
                self.client
                    .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts),
            )
            .map_err(|e| self.err(format!("describe {topic}: {e}")))?;
        Ok(res
            .into_iter()
            .flatten()
            .flat_map(|r| r.entries)
            .find(|e| e.name == "cleanup.policy")
            .and_then(|e| e.value))
    }
}

/// What [`prepare_topics`] learnt of the cluster.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The cluster's id, when it reports one.
    pub cluster_id: Option<String>,
    /// Partitions (tasks) of every store.
    pub store_partitions: BTreeMap<String, i32>,
    /// Every repartition topic: where stream-time markers go.
    pub repartition_partitions: BTreeMap<String, RepartitionTopic>,
}

/// A repartition topic, for stream-time markers ([`crate::markers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RepartitionTopic {
    /// Its partitions (each gets every marker).
    pub partitions: i32,
    /// How many tasks write it (a reader waits for a marker of each).
    pub writers: u32,
}

/// Creates `topic` with `partitions` and `configs` unless the cluster has
/// it; answers its partition count.
///
/// # Errors
/// [`TopicError::Admin`] when the cluster cannot be asked or refuses.
pub(crate) fn ensure_topic(
    cfg: &Config,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<i32, TopicError> {
    let admin = Admin::connect(cfg)?;
    if let Some(&n) = admin.partitions()?.get(topic) {
        return Ok(n);
    }
    tracing::info!(%topic, partitions, "creating topic");
    admin.create_with(&[(topic.to_string(), partitions)], configs)?;
    Ok(partitions)
}

/// Whether the cluster has `topic`.
///
/// # Errors
/// [`TopicError::Admin`] when the cluster cannot be asked.
pub(crate) fn topic_exists(cfg: &Config, topic: &str) -> Result<bool, TopicError> {
    let admin = Admin::connect(cfg)?;
    Ok(admin.partitions()?.contains_key(topic))
}

/// Checks (and where allowed creates) every topic the topology and the
/// runtime need: inputs and outputs, the dead-letter topic, and each
/// store's changelog (compacted, one partition per task).
///
/// # Errors
/// [`TopicError`] naming what is missing or wrong.
pub(crate) fn prepare_topics(
    cfg: &Config,
    topology: &Topology,
    dead_letter_topic: &str,
) -> Result<Prepared, TopicError> {
    let admin = Admin::connect(cfg)?;
    let mut have = admin.partitions()?;

    // Repartition topics first: they are sources and sinks of the topology.
    let mut repartition = Vec::new();
    for (topic, set) in topology.repartition_topics() {
        let upstream = topology
            .writers_of(&topic)
            .into_iter()
            .flat_map(|st| topology.subtopology_sources(st))
            .filter_map(|t| have.get(&t).copied())
            .max();
        let partitions = set.or(upstream).unwrap_or(cfg.auto_create_partitions);
        match have.get(&topic) {
            Some(&n) if n != partitions => {
                return Err(TopicError::Mismatch {
                    topic,
                    message: format!(
                        "the repartition topic has {n} partitions, the topology wants {partitions}"
                    ),
                })
            }
            Some(_) => {}
            None => repartition.push((topic, partitions)),
        }
    }
    if !repartition.is_empty() {
        tracing::info!(topics = ?repartition, "creating repartition topics");
        // Records keep their input timestamps, which may be old: no time
        // retention (consumed records are deleted by the purge), as Kafka
        // Streams creates them.
        admin.create_with(
            &repartition,
            &[("cleanup.policy", "delete"), ("retention.ms", "-1")],
        )?;
        have = admin.partitions()?;
    }

    let mut wanted: Vec<String> = topology.source_topics();
    wanted.extend(topology.sink_topics());
    wanted.sort();
    wanted.dedup();
    let missing: Vec<String> = wanted
        .into_iter()
        .filter(|t| !have.contains_key(t))
        .collect();
    if !missing.is_empty() {
        if !cfg.auto_create_topics {
            return Err(TopicError::Missing {
                topics: missing,
                bootstrap: cfg.bootstrap_servers.clone(),
            });
        }
        let create: Vec<(String, i32)> = missing
            .into_iter()
            .map(|t| (t, cfg.auto_create_partitions))
            .collect();
        tracing::info!(topics = ?create, "creating missing topics (auto_create_topics)");
        admin.create(&create, "delete")?;
        have = admin.partitions()?;
    }

    let sources: BTreeMap<String, i32> = topology
        .source_topics()
        .into_iter()
        .map(|t| {
            let n = have[&t];
            (t, n)
        })
        .collect();
    for st in 0..topology.subtopology_count() {
        let topics = topology.subtopology_sources(st);
        let counts: Vec<i32> = topics.iter().map(|t| sources[t]).collect();
        if counts.windows(2).any(|w| w[0] != w[1]) {
            return Err(TopicError::NotCoPartitioned {
                subtopology: st,
                topics,
                counts,
            });
        }
    }

    // The DLQ: any partition count will do (records keep their keys), but it
    // must not be compacted, or dead letters with equal keys would vanish.
    if have.contains_key(dead_letter_topic) {
        if let Some(policy) = admin.cleanup_policy(dead_letter_topic)? {
            if policy.contains("compact") {
                return Err(TopicError::Mismatch {
                    topic: dead_letter_topic.to_string(),
                    message: format!(
                        "the dead-letter topic has cleanup.policy={policy}; it must be delete, or dead letters would be compacted away"
                    ),
                });
            }
        }
    } else {
        let partitions = sources.values().copied().max().unwrap_or(1);
        tracing::info!(
            topic = dead_letter_topic,
            partitions,
            "creating the dead-letter topic"
        );
        admin.create(&[(dead_letter_topic.to_string(), partitions)], "delete")?;
    }

    // The monitoring topic, when enabled: reports of every instance.
    if cfg.monitoring_enabled {
        let topic = crate::monitoring::monitoring_topic(&cfg.application_id);
        if !have.contains_key(&topic) {
            tracing::info!(%topic, "creating the monitoring topic");
            admin.create(&[(topic, 1)], "delete")?;
        }
    }

    // The instance directory, when instances serve queries (compacted: the
    // latest record of each instance).
    if cfg.admin_listen.is_some() {
        let topic = crate::directory::instances_topic(&cfg.application_id);
        if !have.contains_key(&topic) {
            tracing::info!(%topic, "creating the instance directory topic");
            admin.create(&[(topic, 1)], "compact")?;
        }
    }

    // Changelogs: one partition per task of the store's sub-topology.
    let mut changelogs = Vec::new();
    let mut store_partitions = BTreeMap::new();
    for st in 0..topology.subtopology_count() {
        let tasks = topology
            .subtopology_sources(st)
            .first()
            .map_or(1, |t| sources[t]);
        for store in topology.subtopology_stores(st) {
            store_partitions.insert(store.clone(), tasks);
            if topology.table_source(store).is_some() {
                continue; // a table read from a topic: that topic is its changelog
            }
            let topic = changelog_topic(&cfg.application_id, store);
            match have.get(&topic) {
                Some(&n) if n != tasks => {
                    return Err(TopicError::Mismatch {
                        topic,
                        message: format!(
                            "the changelog of store {store} has {n} partitions but its sub-topology has {tasks} tasks (input partitions); \
                             a changelog's partitions cannot change: delete it (and the state dirs) to start the store over"
                        ),
                    });
                }
                Some(_) => {}
                None => changelogs.push((topic, tasks)),
            }
        }
    }
    if !changelogs.is_empty() {
        tracing::info!(topics = ?changelogs, "creating changelog topics");
        admin.create(&changelogs, "compact")?;
    }
    let cluster_id = admin
        .client
        .inner()
        .fetch_cluster_id(Duration::from_secs(15));
    let tasks_of = |st: usize| {
        topology
            .subtopology_sources(st)
            .first()
            .map_or(1, |t| sources[t])
    };
    let repartition_partitions = topology
        .repartition_topics()
        .into_iter()
        .filter_map(|(t, _)| {
            let partitions = *sources.get(&t)?;
            let writers = topology
                .writers_of(&t)
                .into_iter()
                .map(|st| tasks_of(st) as u32)
                .sum();
            Some((
                t,
                RepartitionTopic {
                    partitions,
                    writers,
                },
            ))
        })
        .collect();
    Ok(Prepared {
        cluster_id,
        store_partitions,
        repartition_partitions,
    })
}
