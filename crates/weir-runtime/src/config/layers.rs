//! Layering the configuration: embedded defaults, the TOML file, then
//! `WEIR_*` variables, with a message naming the key for every bad value.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Config, ConfigError, ConfigValue};

/// Environment variables with the `WEIR_` prefix that are not configuration.
/// (`WEIR_ADMIN_URL` and `WEIR_INGRESS_URL` belong to the `weir` command
/// line: where to find an instance, not how to run one.)
const NOT_CONFIG: &[&str] = &["WEIR_FAILPOINT", "WEIR_ADMIN_URL", "WEIR_INGRESS_URL"];

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
    ("max_upstream_idle_ms", KeyType::Int),
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
            for (k, mut v) in file_table {
                if k == "kafka" {
                    // `session.timeout.ms = 6000` unquoted is a nested table
                    // in TOML; librdkafka means the dotted name.
                    if let toml::Value::Table(t) = v {
                        v = toml::Value::Table(flatten(t).map_err(|key| ConfigError::Invalid {
                            key: format!("kafka.{key}"),
                            message: format!("is set twice in {} (quoted and not)", path.display()),
                        })?);
                    }
                }
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
                            key: name.clone(),
                            message: format!("{value:?} is not an integer (from {var})"),
                        }
                    })?),
                    KeyType::Bool => {
                        toml::Value::Boolean(match value.trim().to_ascii_lowercase().as_str() {
                            "true" | "1" => true,
                            "false" | "0" => false,
                            _ => {
                                return Err(ConfigError::Invalid {
                                    key: name.clone(),
                                    message: format!("{value:?} is not true or false (from {var})"),
                                })
                            }
                        })
                    }
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
        check_tables(&table)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.message().to_string()))?;
        config.validate(&origin)?;
        Ok(config)
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

/// Checks the tables of names: `[topics]`, `[ingress_topics]` and
/// `[ingress_keys]` map names to strings, `[kafka]` and `[params]` to
/// strings, numbers or booleans; a bad entry names its key
/// (`topics.events`).
fn check_tables(table: &toml::Table) -> Result<(), ConfigError> {
    let tables: [(&str, bool); 5] = [
        ("topics", false),
        ("ingress_topics", false),
        ("ingress_keys", false),
        ("kafka", true),
        ("params", true),
    ];
    for (name, scalars) in tables {
        let Some(value) = table.get(name) else {
            continue;
        };
        let Some(entries) = value.as_table() else {
            return Err(ConfigError::Invalid {
                key: name.to_string(),
                message: format!("expected a table, found {value}"),
            });
        };
        for (k, v) in entries {
            let ok = match v {
                toml::Value::String(_) => true,
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    scalars
                }
                _ => false,
            };
            if !ok {
                let expected = if scalars {
                    "a string, number or boolean"
                } else {
                    "a string"
                };
                return Err(ConfigError::Invalid {
                    key: format!("{name}.{k}"),
                    message: format!("expected {expected}, found {v}"),
                });
            }
        }
    }
    Ok(())
}

/// `{a = {b = 1}}` as `{"a.b" = 1}`, at any depth; `Err(key)` when a
/// dotted name is written twice (`"a.b" = 1` and `a.b = 2`).
fn flatten(table: toml::Table) -> Result<toml::Table, String> {
    let mut flat = toml::Table::new();
    let mut put = |k: String, v: toml::Value| match flat.insert(k.clone(), v) {
        Some(_) => Err(k),
        None => Ok(()),
    };
    for (k, v) in table {
        match v {
            toml::Value::Table(inner) => {
                for (ik, iv) in flatten(inner)? {
                    put(format!("{k}.{ik}"), iv)?;
                }
            }
            other => put(k, other)?,
        }
    }
    Ok(flat)
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
