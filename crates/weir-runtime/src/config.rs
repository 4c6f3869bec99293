//! Configuration: embedded defaults, then a TOML file, then `WEIR_*`
//! environment variables (DESIGN.md, "Configuration").
//!
//! Every top-level key `k` can be overridden by `WEIR_<K>`; a `[kafka]` key
//! `a.b.c` by `WEIR_KAFKA__A_B_C`; a `[topics]` entry by `WEIR_TOPICS__<NAME>`;
//! a topology parameter (`[params]`) by `WEIR_PARAMS__<NAME>`.
//! `WEIR_TEST_*` belongs to the tests and `WEIR_FAILPOINT` to crash testing;
//! any other unknown `WEIR_*` variable, unknown key or bad value fails at
//! start with a message naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// Environment variables with the `WEIR_` prefix that are not configuration.
const NOT_CONFIG: &[&str] = &["WEIR_FAILPOINT"];

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
                        "[kafka] key {k} must be a string, number or boolean, not {}",
                        other.type_str()
                    )))
                }
            };
            Ok((k, s))
        })
        .collect()
}

#[derive(Clone, Copy)]
enum KeyType {
    Str,
    Int,
    Bool,
}

/// Top-level scalar keys and their types, for parsing `WEIR_<KEY>` values.
const KEYS: &[(&str, KeyType)] = &[
    ("application_id", KeyType::Str),
    ("bootstrap_servers", KeyType::Str),
    ("processing_guarantee", KeyType::Str),
    ("commit_interval_ms", KeyType::Int),
    ("state_dir", KeyType::Str),
    ("instance_id", KeyType::Str),
    ("num_stream_threads", KeyType::Int),
    ("admin_listen", KeyType::Str),
    ("admin_advertised_url", KeyType::Str),
    ("admin_token", KeyType::Str),
    ("otlp_endpoint", KeyType::Str),
    ("state_memory_budget_mb", KeyType::Int),
    ("max_task_idle_ms", KeyType::Int),
    ("max_aborts_per_record", KeyType::Int),
    ("monitoring_enabled", KeyType::Bool),
    ("monitoring_interval_ms", KeyType::Int),
    ("auto_create_topics", KeyType::Bool),
    ("auto_create_partitions", KeyType::Int),
    ("replication_factor", KeyType::Int),
    ("repartition_purge_interval_ms", KeyType::Int),
    ("dlq_topic", KeyType::Str),
    ("ingress_enabled", KeyType::Bool),
    ("ingress_default_topic", KeyType::Str),
    ("ingress_key_field", KeyType::Str),
    ("ingress_max_body_bytes", KeyType::Int),
    ("ingress_idempotency_window_ms", KeyType::Int),
    ("ingress_idempotency_max_keys", KeyType::Int),
    ("ingress_produce_timeout_ms", KeyType::Int),
    ("ingress_token", KeyType::Str),
];

/// Tables a `WEIR_<NAME>` variable sets whole, as `a=b,c=d` (their keys,
/// event types, may hold characters a variable name cannot).
const PAIR_TABLES: &[&str] = &["ingress_topics", "ingress_keys"];

impl Config {
    /// Loads the configuration: `defaults`, then the TOML file `file` (if
    /// any), then `env` (`WEIR_*` pairs, normally `std::env::vars()`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad key.
    pub fn load(
        defaults: &BTreeMap<String, ConfigValue>,
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = defaults
            .iter()
            .map(|(k, v)| (k.clone(), v.to_toml()))
            .collect();
        let mut origin: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let file_table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError::Parse(format!("{}: {e}", path.display()))
            })?;
            for (k, v) in file_table {
                if let (Some(toml::Value::Table(old)), toml::Value::Table(new)) =
                    (table.get_mut(&k), &v)
                {
                    for (nk, nv) in new {
                        old.insert(nk.clone(), nv.clone());
                        origin.insert(format!("{k}.{nk}"), path.display().to_string());
                    }
                } else {
                    if let toml::Value::Table(t) = &v {
                        for nk in t.keys() {
                            origin.insert(format!("{k}.{nk}"), path.display().to_string());
                        }
                    }
                    origin.insert(k.clone(), path.display().to_string());
                    table.insert(k, v);
                }
            }
        }
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("WEIR_") && !k.starts_with("WEIR_TEST_"))
            .filter(|(k, _)| !NOT_CONFIG.contains(&k.as_str()))
            .collect();
        env.sort();
        for (var, value) in env {
            let name = var["WEIR_".len()..].to_ascii_lowercase();
            if let Some(rest) = name.strip_prefix("kafka__") {
                let key = rest.replace('_', ".");
                sub_table(&mut table, "kafka").insert(key.clone(), toml::Value::String(value));
                origin.insert(format!("kafka.{key}"), var);
            } else if let Some(rest) = name.strip_prefix("params__") {
                sub_table(&mut table, "params")
                    .insert(rest.to_string(), toml::Value::String(value));
                origin.insert(format!("params.{rest}"), var);
            } else if let Some(rest) = name.strip_prefix("topics__") {
                sub_table(&mut table, "topics")
                    .insert(rest.to_string(), toml::Value::String(value));
            } else if PAIR_TABLES.contains(&name.as_str()) {
                let mut t = toml::Table::new();
                for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once('=')
                        .map(|(k, v)| (k.trim(), v.trim()))
                        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                        .ok_or_else(|| ConfigError::Invalid {
                            key: var.clone(),
                            message: format!("{pair:?} is not name=value (write a=b,c=d)"),
                        })?;
                    t.insert(k.to_string(), toml::Value::String(v.to_string()));
                }
                origin.insert(name.clone(), var.clone());
                table.insert(name, toml::Value::Table(t));
            } else if let Some((_, ty)) = KEYS.iter().find(|(k, _)| *k == name) {
                let v = match ty {
                    KeyType::Str => toml::Value::String(value),
                    KeyType::Int => toml::Value::Integer(value.trim().parse().map_err(|_| {
                        ConfigError::Invalid {
                            key: var.clone(),
                            message: format!("{value:?} is not an integer"),
                        }
                    })?),
                    KeyType::Bool => toml::Value::Boolean(match value.trim() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(ConfigError::Invalid {
                                key: var.clone(),
                                message: format!("{value:?} is not true or false"),
                            })
                        }
                    }),
                };
                origin.insert(name.clone(), var.clone());
                table.insert(name, v);
            } else {
                let known = KEYS
                    .iter()
                    .map(|(k, _)| format!("WEIR_{}", k.to_ascii_uppercase()))
                    .chain([
                        "WEIR_KAFKA__<KEY>".into(),
                        "WEIR_TOPICS__<NAME>".into(),
                        "WEIR_PARAMS__<NAME>".into(),
                    ])
                    .chain(
                        PAIR_TABLES
                            .iter()
                            .map(|k| format!("WEIR_{}", k.to_ascii_uppercase())),
                    )
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ConfigError::UnknownEnv { var, known });
            }
        }
        check_types(&table, &origin)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.message().to_string()))?;
        config.validate(&origin)?;
        Ok(config)
    }

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

/// Checks the type of every top-level scalar key, so a bad value names its
/// key (toml's own errors do not say which key they are about).
fn check_types(table: &toml::Table, origin: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, ty) in KEYS {
        let Some(value) = table.get(*key) else {
            continue;
        };
        let from = origin
            .get(*key)
            .map(|o| format!(" (from {o})"))
            .unwrap_or_default();
        let ok = match ty {
            KeyType::Str => value.is_str(),
            KeyType::Int => value.as_integer().is_some_and(|i| i >= 0),
            KeyType::Bool => value.is_bool(),
        };
        if !ok {
            let expected = match ty {
                KeyType::Str => "a string",
                KeyType::Int => "a non-negative integer",
                KeyType::Bool => "true or false",
            };
            return Err(ConfigError::Invalid {
                key: key.to_string(),
                message: format!("expected {expected}, found {value}{from}"),
            });
        }
        if *key == "processing_guarantee" {
            let v = value.as_str().unwrap_or_default();
            if !matches!(v, "exactly_once_v2" | "at_least_once") {
                return Err(ConfigError::Invalid {
                    key: key.to_string(),
                    message: format!(
                        "{v:?} is not one of \"exactly_once_v2\", \"at_least_once\"{from}"
                    ),
                });
            }
        }
    }
    Ok(())
}

fn sub_table<'a>(table: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    let entry = table
        .entry(name.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    match entry {
        toml::Value::Table(t) => t,
        _ => unreachable!("just made it a table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn defaults() -> BTreeMap<String, ConfigValue> {
        [("application_id".to_string(), ConfigValue::from("app"))].into()
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(
            &file,
            "commit_interval_ms = 500\nbootstrap_servers = \"b:1\"\n[kafka]\n\"transaction.timeout.ms\" = 5000\n",
        )
        .unwrap();
        let c = Config::load(
            &defaults(),
            Some(&file),
            env(&[
                ("WEIR_COMMIT_INTERVAL_MS", "2000"),
                ("WEIR_KAFKA__SESSION_TIMEOUT_MS", "6000"),
                ("WEIR_TOPICS__EVENTS", "my-events"),
                ("WEIR_PARAMS__ORDER_TIMEOUT_MS", "900000"),
                ("WEIR_TEST_BOOTSTRAP", "ignored:1"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.application_id, "app");
        assert_eq!(c.bootstrap_servers, "b:1");
        assert_eq!(c.commit_interval_ms, 2000);
        assert_eq!(c.kafka["transaction.timeout.ms"], "5000");
        assert_eq!(c.kafka["session.timeout.ms"], "6000");
        assert_eq!(c.topics["events"], "my-events");
        assert_eq!(c.params["order_timeout_ms"], "900000");
        assert_eq!(c.processing_guarantee, ProcessingGuarantee::ExactlyOnceV2);
        assert_eq!(c.dead_letter_topic(None), "app-dlq");
    }

    #[test]
    fn ingress_tables_come_from_pairs_in_one_variable() {
        let c = Config::load(
            &defaults(),
            None,
            env(&[
                (
                    "WEIR_INGRESS_TOPICS",
                    "user.created=users, order.placed=orders",
                ),
                ("WEIR_INGRESS_KEYS", "order.placed=data.customerId"),
            ]),
        )
        .unwrap();
        assert_eq!(c.ingress_topics["user.created"], "users");
        assert_eq!(c.ingress_topics["order.placed"], "orders");
        assert_eq!(c.ingress_keys["order.placed"], "data.customerId");
        assert_eq!(c.ingress_key_field, "id");
        let e =
            Config::load(&defaults(), None, env(&[("WEIR_INGRESS_TOPICS", "users")])).unwrap_err();
        assert!(e.to_string().contains("WEIR_INGRESS_TOPICS"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::load(&defaults(), None, env(&[("WEIR_COMMIT_INTERVAL", "5")])).unwrap_err();
        assert!(e.to_string().contains("WEIR_COMMIT_INTERVAL"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(&file, "comit_interval_ms = 5\n").unwrap();
        let e = Config::load(&defaults(), Some(&file), env(&[])).unwrap_err();
        assert!(e.to_string().contains("comit_interval_ms"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::load(
            &defaults(),
            None,
            env(&[("WEIR_COMMIT_INTERVAL_MS", "soon")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("WEIR_COMMIT_INTERVAL_MS"), "{e}");
        let e = Config::load(
            &defaults(),
            None,
            env(&[("WEIR_PROCESSING_GUARANTEE", "maybe")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
        let e =
            Config::load(&defaults(), None, env(&[("WEIR_COMMIT_INTERVAL_MS", "0")])).unwrap_err();
        assert!(e.to_string().contains("commit_interval_ms"), "{e}");
        let e = Config::load(
            &defaults(),
            None,
            env(&[("WEIR_INGRESS_IDEMPOTENCY_MAX_KEYS", "0")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("ingress_idempotency_max_keys"),
            "{e}"
        );
        let e = Config::load(&BTreeMap::new(), None, env(&[])).unwrap_err();
        assert!(e.to_string().contains("application_id"), "{e}");
    }

    /// Type errors name the key, from the environment and from a file.
    #[test]
    fn type_errors_name_the_key() {
        let e = Config::load(
            &defaults(),
            None,
            env(&[("WEIR_PROCESSING_GUARANTEE", "maybe")]),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("processing_guarantee") && m.contains("WEIR_PROCESSING_GUARANTEE"),
            "{m}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(&file, "commit_interval_ms = \"x\"\n").unwrap();
        let m = Config::load(&defaults(), Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("commit_interval_ms") && m.contains("weir.toml"),
            "{m}"
        );
        std::fs::write(&file, "auto_create_topics = 3\n").unwrap();
        let m = Config::load(&defaults(), Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(m.contains("auto_create_topics"), "{m}");
    }

    #[test]
    fn assignment_and_membership_keys_are_refused_in_every_mode() {
        for key in REFUSED_KAFKA_KEYS {
            let var = format!("WEIR_KAFKA__{}", key.replace('.', "_").to_ascii_uppercase());
            for guarantee in ["exactly_once_v2", "at_least_once"] {
                let e = Config::load(
                    &defaults(),
                    None,
                    env(&[(&var, "x"), ("WEIR_PROCESSING_GUARANTEE", guarantee)]),
                )
                .unwrap_err();
                assert!(e.to_string().contains(key), "{e}");
            }
        }
    }

    #[test]
    fn reserved_kafka_keys_are_refused_only_under_eos() {
        for key in EOS_RESERVED_KAFKA_KEYS {
            let var = format!("WEIR_KAFKA__{}", key.replace('.', "_").to_ascii_uppercase());
            let e = Config::load(&defaults(), None, env(&[(&var, "x")])).unwrap_err();
            assert!(
                matches!(&e, ConfigError::ReservedKafkaKey { key: k, .. } if k == key),
                "{e}"
            );
            assert!(e.to_string().contains(key));
            let ok = Config::load(
                &defaults(),
                None,
                env(&[(&var, "x"), ("WEIR_PROCESSING_GUARANTEE", "at_least_once")]),
            );
            assert!(ok.is_ok(), "{key} is allowed at least once");
        }
    }
}
