//! Configuration: embedded defaults, then a TOML file, then `WEIR_*`
//! environment variables (the README, "Configuration").
//!
//! Every top-level key `k` can be overridden by `WEIR_<K>`; a `[kafka]` key
//! `a.b.c` by `WEIR_KAFKA__A_B_C`; a `[topics]` entry by `WEIR_TOPICS__<NAME>`;
//! a topology parameter (`[params]`) by `WEIR_PARAMS__<NAME>`.
//! `WEIR_TEST_*` belongs to the tests and `WEIR_FAILPOINT` to crash testing;
//! any other unknown `WEIR_*` variable, unknown key or bad value fails at
//! start with a message naming the key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Kafka settings that exactly-once processing sets itself; a user value
/// would silently break it, so they are refused under `exactly_once_v2`.
pub const EOS_RESERVED_KAFKA_KEYS: &[&str] = &[
    "isolation.level",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "transactional.id",
    "group.id",
    "partitioner",
];

/// Kafka settings Weir must own in every mode: co-partitioned tasks need
/// the range assignor and the classic group protocol; static membership
/// would need an id per stream thread (not supported yet).
pub const REFUSED_KAFKA_KEYS: &[&str] = &[
    "partition.assignment.strategy",
    "group.protocol",
    "group.instance.id",
];

/// A configuration error; the message always names the offending key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// An environment variable names no configuration key.
    #[error("unknown configuration key {var} (from the environment); known keys: {known}")]
    UnknownEnv {
        /// The variable.
        var: String,
        /// The keys that exist.
        known: String,
    },
    /// A key has a value outside its range.
    #[error("invalid value for {key}: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A `[kafka]` key that would break exactly-once.
    #[error("[kafka] key {key} is set by Weir under processing_guarantee = \"exactly_once_v2\" and must not be configured (from {origin})")]
    ReservedKafkaKey {
        /// The key.
        key: String,
        /// Where it was set.
        origin: String,
    },
}

/// An embedded default for a top-level configuration key (see
/// [`Config::load`]): text, an integer or a boolean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigValue {
    /// Text.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for ConfigValue {
    fn from(v: &str) -> Self {
        ConfigValue::Str(v.to_string())
    }
}

impl From<String> for ConfigValue {
    fn from(v: String) -> Self {
        ConfigValue::Str(v)
    }
}

impl From<i64> for ConfigValue {
    fn from(v: i64) -> Self {
        ConfigValue::Int(v)
    }
}

impl From<bool> for ConfigValue {
    fn from(v: bool) -> Self {
        ConfigValue::Bool(v)
    }
}

impl ConfigValue {
    fn to_toml(&self) -> toml::Value {
        match self {
            ConfigValue::Str(s) => toml::Value::String(s.clone()),
            ConfigValue::Int(i) => toml::Value::Integer(*i),
            ConfigValue::Bool(b) => toml::Value::Boolean(*b),
        }
    }
}

/// `processing_guarantee`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingGuarantee {
    /// Outputs, state and input offsets commit in one Kafka transaction.
    #[default]
    ExactlyOnceV2,
    /// Offsets commit after outputs are acknowledged; a crash may repeat outputs.
    AtLeastOnce,
}

/// The instance's configuration (Kafka Streams names).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The application id: consumer group, and prefix of internal topics.
    pub application_id: String,
    /// Kafka bootstrap servers.
    #[serde(default = "default_bootstrap")]
    pub bootstrap_servers: String,
    /// `exactly_once_v2` (default) or `at_least_once`.
    #[serde(default)]
    pub processing_guarantee: ProcessingGuarantee,
    /// How often a stream thread commits (ms, default 100).
    #[serde(default = "default_commit_interval")]
    pub commit_interval_ms: u64,
    /// Where instance identity (and later, state stores) live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// A fixed instance id; by default one is generated and persisted in the state dir.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Stream threads per instance (default 1).
    #[serde(default = "default_threads")]
    pub num_stream_threads: usize,
    /// Address of the admin HTTP endpoint (`host:port`; unset: none).
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// URL other instances use to reach this one's admin endpoint (default
    /// `http://` + the bound address).
    #[serde(default)]
    pub admin_advertised_url: Option<String>,
    /// A bearer token the admin endpoint's mutating routes require (unset:
    /// none required).
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Where to send traces over OTLP/gRPC (`http://collector:4317`; unset:
    /// no export).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// One memory budget in MiB for the block cache and memtables of every
    /// RocksDB store of the instance (default 256).
    #[serde(default = "default_memory_budget")]
    pub state_memory_budget_mb: u64,
    /// How long a task waits for an input partition with nothing buffered
    /// before processing the others (ms, default 0: never wait).
    #[serde(default)]
    pub max_task_idle_ms: u64,
    /// How long a task that writes repartition topics has nothing to do
    /// before it marks itself idle there, so that the tasks behind the
    /// topic stop waiting for its stream time (ms, default 30,000; 0: never).
    #[serde(default = "default_upstream_idle")]
    pub max_upstream_idle_ms: u64,
    /// Publish counters to `<application_id>-monitoring` (default false).
    #[serde(default)]
    pub monitoring_enabled: bool,
    /// How often (ms, default 10000) when `monitoring_enabled`.
    #[serde(default = "default_monitoring_interval")]
    pub monitoring_interval_ms: u64,
    /// After how many aborted transactions in a row an input record whose
    /// own outputs failed them is dead-lettered with kind `poison`
    /// (default 3; at least 1).
    #[serde(default = "default_max_aborts")]
    pub max_aborts_per_record: u32,
    /// Create missing input and output topics at start (default false).
    #[serde(default)]
    pub auto_create_topics: bool,
    /// Partitions of topics created by `auto_create_topics` (default 1).
    #[serde(default = "default_partitions")]
    pub auto_create_partitions: i32,
    /// Replication factor of the topics Weir creates (changelogs,
    /// repartition topics, the dead-letter topic; default 1; 3 on a real
    /// production cluster).
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// How often consumed records of repartition topics are deleted (ms,
    /// default 30,000; Kafka Streams' `repartition.purge.interval.ms`).
    #[serde(default = "default_purge_interval")]
    pub repartition_purge_interval_ms: u64,
    /// The dead-letter topic (default: the topology's, else `<application_id>-dlq`).
    #[serde(default)]
    pub dlq_topic: Option<String>,
    /// Renames a topology's topics for this deployment: logical name → topic.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
    /// Serve `POST /v1/events` (HTTP ingress) on the admin endpoint too
    /// (default false; `weir ingress` serves it on its own).
    #[serde(default)]
    pub ingress_enabled: bool,
    /// Ingress: the topic of each event type (`[ingress_topics]`, or
    /// `WEIR_INGRESS_TOPICS="user.created=users,order.placed=orders"`).
    #[serde(default)]
    pub ingress_topics: BTreeMap<String, String>,
    /// Ingress: the topic of event types without an `ingress_topics` entry
    /// (unset: such types are refused).
    #[serde(default)]
    pub ingress_default_topic: Option<String>,
    /// Ingress: the record key's field per event type, a dotted path into
    /// the event (`[ingress_keys]` or `WEIR_INGRESS_KEYS="order.placed=data.customerId"`).
    #[serde(default)]
    pub ingress_keys: BTreeMap<String, String>,
    /// Ingress: the record key's field of the other types (default `id`).
    #[serde(default = "default_ingress_key_field")]
    pub ingress_key_field: String,
    /// Ingress: the largest request body accepted, in bytes (default 1 MiB).
    #[serde(default = "default_ingress_max_body")]
    pub ingress_max_body_bytes: u64,
    /// Ingress: how long a retried event id (or `Idempotency-Key`) is
    /// answered with its first receipt instead of being written again (ms,
    /// default 86,400,000: a day).
    #[serde(default = "default_ingress_window")]
    pub ingress_idempotency_window_ms: u64,
    /// Ingress: at most this many idempotency keys are remembered (default
    /// 1,000,000; past it the oldest are forgotten first).
    #[serde(default = "default_ingress_max_keys")]
    pub ingress_idempotency_max_keys: u64,
    /// Ingress: how long a write may wait for the broker's acknowledgement
    /// before the request is answered 503 (ms, default 10,000).
    #[serde(default = "default_ingress_timeout")]
    pub ingress_produce_timeout_ms: u64,
    /// Ingress: a bearer token `POST /v1/events` requires (unset: none).
    #[serde(default)]
    pub ingress_token: Option<String>,
    /// Values of the topology's declared parameters (`WEIR_PARAMS__<NAME>`).
    #[serde(default, deserialize_with = "kafka_table")]
    pub params: BTreeMap<String, String>,
    /// librdkafka properties for every client.
    #[serde(default, deserialize_with = "kafka_table")]
    pub kafka: BTreeMap<String, String>,
}

fn default_ingress_key_field() -> String {
    "id".into()
}
fn default_ingress_max_body() -> u64 {
    1024 * 1024
}
fn default_ingress_window() -> u64 {
    86_400_000
}
fn default_ingress_max_keys() -> u64 {
    1_000_000
}
fn default_ingress_timeout() -> u64 {
    10_000
}
fn default_upstream_idle() -> u64 {
    30_000
}
fn default_purge_interval() -> u64 {
    30_000
}
fn default_replication() -> i32 {
    1
}
fn default_bootstrap() -> String {
    "localhost:9092".into()
}
fn default_commit_interval() -> u64 {
    100
}
fn default_state_dir() -> PathBuf {
    std::env::temp_dir().join("weir")
}
fn default_threads() -> usize {
    1
}
fn default_memory_budget() -> u64 {
    256
}
fn default_partitions() -> i32 {
    1
}

fn default_max_aborts() -> u32 {
    3
}

fn default_monitoring_interval() -> u64 {
    10_000
}

fn kafka_table<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, toml::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let s = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "key {k} must be a string, number or boolean, not {}",
                        other.type_str()
                    )))
                }
            };
            Ok((k, s))
        })
        .collect()
}

impl Config {
    fn validate(&self, origin: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_string(),
            message: message.to_string(),
        };
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if !id_ok(&self.application_id) {
            return Err(invalid(
                "application_id",
                "must be non-empty and use only letters, digits, '.', '_' and '-' (it names topics and the group)",
            ));
        }
        if let Some(id) = &self.instance_id {
            if !id_ok(id) {
                return Err(invalid(
                    "instance_id",
                    "must be non-empty and use only letters, digits, '.', '_' and '-'",
                ));
            }
        }
        if self.bootstrap_servers.trim().is_empty() {
            return Err(invalid("bootstrap_servers", "must not be empty"));
        }
        if self.commit_interval_ms == 0 {
            return Err(invalid("commit_interval_ms", "must be at least 1"));
        }
        if !(1..=64).contains(&self.num_stream_threads) {
            return Err(invalid("num_stream_threads", "must be between 1 and 64"));
        }
        if self.max_aborts_per_record == 0 {
            return Err(invalid("max_aborts_per_record", "must be at least 1"));
        }
        if self.monitoring_interval_ms < 100 {
            return Err(invalid("monitoring_interval_ms", "must be at least 100"));
        }
        if self.state_memory_budget_mb == 0 {
            return Err(invalid("state_memory_budget_mb", "must be at least 1"));
        }
        if self.auto_create_partitions < 1 {
            return Err(invalid("auto_create_partitions", "must be at least 1"));
        }
        if self.replication_factor < 1 {
            return Err(invalid("replication_factor", "must be at least 1"));
        }
        if self.ingress_key_field.trim().is_empty() {
            return Err(invalid("ingress_key_field", "must not be empty"));
        }
        if self.ingress_produce_timeout_ms == 0 {
            return Err(invalid("ingress_produce_timeout_ms", "must be at least 1"));
        }
        if self.ingress_idempotency_max_keys == 0 {
            return Err(invalid(
                "ingress_idempotency_max_keys",
                "must be at least 1",
            ));
        }
        for key in self.kafka.keys() {
            if REFUSED_KAFKA_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::Invalid {
                    key: format!("kafka.{key}"),
                    message: format!(
                        "is set by Weir (range assignment, classic protocol, dynamic membership) and must not be configured (from {})",
                        origin.get(&format!("kafka.{key}")).map_or("defaults", String::as_str)
                    ),
                });
            }
        }
        if self.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2 {
            for key in self.kafka.keys() {
                if EOS_RESERVED_KAFKA_KEYS.contains(&key.as_str()) {
                    return Err(ConfigError::ReservedKafkaKey {
                        key: key.clone(),
                        origin: origin
                            .get(&format!("kafka.{key}"))
                            .cloned()
                            .unwrap_or_else(|| "defaults".into()),
                    });
                }
            }
        }
        Ok(())
    }

    /// The dead-letter topic: configured, else the topology's, else `<application_id>-dlq`.
    pub fn dead_letter_topic(&self, topology_default: Option<&str>) -> String {
        self.dlq_topic
            .clone()
            .or_else(|| topology_default.map(str::to_string))
            .unwrap_or_else(|| format!("{}-dlq", self.application_id))
    }
}

mod layers;
#[cfg(test)]
mod tests;
