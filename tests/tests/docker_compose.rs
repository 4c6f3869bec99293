//! The Docker deployment in `docker/`, checked without Docker or a broker:
//! `compose.yaml` parses and starts Kafka in KRaft mode, three instances each
//! of customer-totals and windowed-metrics (one application id per topology,
//! distinct instance ids, admin URLs naming their own service, only known
//! `WEIR_*` keys), Prometheus, Grafana and an OpenTelemetry collector; every
//! file it mounts exists under `docker/`; Prometheus scrapes exactly the six
//! instances; the collector receives OTLP; Grafana's provisioning points at
//! the right places; and the dashboard queries only metrics Weir exposes.
//!
//! The known configuration keys and metric names are read from the sources
//! (`crates/weir-runtime/src/config/layers.rs`'s key table, the table at the top of
//! `crates/weir-admin/src/metrics.rs`), so renaming one there fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// The topologies the compose file runs, three instances each.
const TOPOLOGIES: [&str; 2] = ["customer-totals", "windowed-metrics"];
const INSTANCES: usize = 3;
/// The admin endpoint's port inside each instance container.
const ADMIN_PORT: u16 = 9090;
/// The latency histograms and the event bus's four series: in metrics.rs's
/// table with these types, and each on the dashboard.
const HEADLINE_METRICS: [(&str, &str); 5] = [
    ("weir_event_processing_time_seconds", "histogram"),
    ("weir_commit_latency_seconds", "histogram"),
    ("weir_event_delivery_success_rate", "gauge"),
    ("weir_queue_depth", "gauge"),
    ("weir_dead_letter_queue_size", "gauge"),
];
/// The series Prometheus exposes for a histogram `h`: `h_bucket`, `h_sum`, `h_count`.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

// --- reading the files ------------------------------------------------------

/// The checkout under test. Cargo sets `CARGO_MANIFEST_DIR` when it runs a
/// test; the value compiled in is only a fallback, since a test binary may
/// be reused from a target directory shared with another checkout.
fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_path_buf()
}

fn docker_dir() -> PathBuf {
    repo().join("docker")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A YAML file, with `<<` merge keys applied (the compose file shares its
/// instance settings through anchors and merges).
fn yaml(path: &Path) -> Value {
    let mut v: Value = serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{}: bad merge key: {e}", path.display()));
    v
}

fn compose() -> Value {
    yaml(&docker_dir().join("compose.yaml"))
}

fn services(compose: &Value) -> &serde_yaml::Mapping {
    compose
        .get("services")
        .and_then(Value::as_mapping)
        .expect("compose.yaml has a `services` mapping")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    services(compose)
        .get(name)
        .unwrap_or_else(|| panic!("compose.yaml has no service `{name}`"))
}

/// A scalar as text (compose accepts numbers and booleans where it means strings).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A service's `environment`, in either of compose's forms (a mapping, or a
/// list of `NAME=value`).
fn environment(svc: &Value) -> BTreeMap<String, String> {
    match svc.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                let k = scalar(k).expect("environment names are strings");
                let v = scalar(v).unwrap_or_else(|| panic!("environment {k} is not a scalar"));
                (k, v)
            })
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let s = item.as_str().expect("environment entries are strings");
                let (k, v) = s.split_once('=').unwrap_or((s, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        Some(other) => panic!("unexpected environment: {other:?}"),
    }
}

fn env_var<'a>(env: &'a BTreeMap<String, String>, service: &str, name: &str) -> &'a str {
    env.get(name)
        .unwrap_or_else(|| panic!("service {service} does not set {name}"))
}

/// The port at the end of `host:port` or `scheme://host:port[/path]`.
fn port_of(addr: &str) -> u16 {
    let rest = addr.split_once("://").map_or(addr, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (_, port) = hostport
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {addr:?}"));
    port.parse()
        .unwrap_or_else(|_| panic!("bad port in {addr:?}"))
}

/// A service's volume mounts as (source, target); `source` is `None` for an
/// anonymous volume.
fn mounts(svc: &Value) -> Vec<(Option<String>, String)> {
    let Some(vols) = svc.get("volumes") else {
        return Vec::new();
    };
    vols.as_sequence()
        .expect("`volumes` of a service is a list")
        .iter()
        .map(|v| match v {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [target] => (None, target.to_string()),
                    [source, target] | [source, target, _] => {
                        (Some(source.to_string()), target.to_string())
                    }
                    _ => panic!("unexpected volume {s:?}"),
                }
            }
            Value::Mapping(_) => (
                v.get("source").and_then(Value::as_str).map(str::to_string),
                v.get("target")
                    .and_then(Value::as_str)
                    .expect("a long-syntax volume has a target")
                    .to_string(),
            ),
            other => panic!("unexpected volume {other:?}"),
        })
        .collect()
}

/// A bind mount's source: a path (relative to `docker/`), not a volume name.
fn is_bind(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// The instance services of one topology: `<topology>-<n>`.
fn instance_names(topology: &str) -> Vec<String> {
    (1..=INSTANCES).map(|i| format!("{topology}-{i}")).collect()
}

fn all_instance_names() -> Vec<String> {
    TOPOLOGIES.iter().flat_map(|t| instance_names(t)).collect()
}

// --- what Weir knows: configuration keys and metric names --------------------

/// The top-level configuration keys: `config.rs`'s `("<key>", KeyType::…)`
/// table, plus the keys being added.
fn known_config_keys() -> BTreeSet<String> {
    let src = read(&repo().join("crates/weir-runtime/src/config/layers.rs"));
    let keys: BTreeSet<String> = src
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("(\"")?;
            let (key, tail) = rest.split_once('"')?;
            tail.trim_start_matches(',')
                .trim_start()
                .starts_with("KeyType::")
                .then(|| key.to_string())
        })
        .collect();
    // The parser itself must have found the table.
    for k in [
        "application_id",
        "bootstrap_servers",
        "instance_id",
        "admin_listen",
    ] {
        assert!(
            keys.contains(k),
            "config/layers.rs key table not parsed: {k} missing from {keys:?}"
        );
    }
    keys
}

/// Metric name → type: the table at the top of `metrics.rs`, plus the
/// metrics being added.
fn known_metrics() -> BTreeMap<String, String> {
    let src = read(&repo().join("crates/weir-admin/src/metrics.rs"));
    let metrics: BTreeMap<String, String> = src
        .lines()
        .filter_map(|line| {
            let row = line.strip_prefix("//! |")?;
            let mut cols = row.split('|').map(str::trim);
            let name = cols.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = cols.next()?;
            name.starts_with("weir_")
                .then(|| (name.to_string(), kind.to_string()))
        })
        .collect();
    for m in [
        "weir_records_consumed_total",
        "weir_node_records_in_total",
        "weir_consumer_lag",
    ] {
        assert!(
            metrics.contains_key(m),
            "metrics.rs table not parsed: {m} missing from {metrics:?}"
        );
    }
    for (name, kind) in HEADLINE_METRICS {
        assert_eq!(
            metrics.get(name).map(String::as_str),
            Some(kind),
            "metrics.rs's table lists {name} as a {kind}"
        );
    }
    metrics
}

/// Every `weir_…` token in a text (a PromQL expression, a description).
fn weir_names(text: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(at) = rest.find("weir_") {
        let before = rest[..at].chars().next_back().or(prev);
        let tail = &rest[at..];
        let len = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
        if !before.is_some_and(ident) {
            out.push(tail[..len].to_string());
        }
        prev = tail[..len].chars().next_back();
        rest = &tail[len..];
    }
    out
}

/// Why a metric name the dashboard uses is not one Weir exposes, if it is
/// not. In a PromQL expression (`strict`) a histogram must be queried through
/// one of its series; elsewhere its bare name is fine.
fn unknown_metric(name: &str, known: &BTreeMap<String, String>, strict: bool) -> Option<String> {
    if let Some(kind) = known.get(name) {
        return (strict && kind == "histogram")
            .then(|| format!("{name} is a histogram: query {name}_bucket, _sum or _count"));
    }
    for suffix in HISTOGRAM_SUFFIXES {
        if let Some(base) = name.strip_suffix(suffix) {
            match known.get(base).map(String::as_str) {
                Some("histogram") => return None,
                Some(kind) => {
                    return Some(format!("{base} is a {kind}, it has no {suffix} series"))
                }
                None => {}
            }
        }
    }
    Some(format!("{name} is not a metric Weir exposes"))
}

// --- compose.yaml ----------------------------------------------------------

#[test]
fn compose_starts_every_service() {
    let c = compose();
    let names: BTreeSet<String> = services(&c)
        .keys()
        .map(|k| k.as_str().expect("service names are strings").to_string())
        .collect();
    let mut expected: BTreeSet<String> = ["kafka", "prometheus", "grafana", "otel-collector"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    expected.extend(all_instance_names());
    assert_eq!(names, expected, "compose.yaml's services");
    for name in &names {
        let svc = service(&c, name);
        assert!(
            svc.get("image").is_some() || svc.get("build").is_some(),
            "service {name} has neither an image nor a build"
        );
    }
}

/// Kafka: one node, broker and controller (KRaft), its own quorum voter on
/// its controller listener, single-replica internal topics, a healthcheck.
#[test]
fn kafka_runs_in_kraft_mode() {
    let c = compose();
    let kafka = service(&c, "kafka");
    let env = environment(kafka);
    let var = |name: &str| env_var(&env, "kafka", name);

    let roles: BTreeSet<&str> = var("KAFKA_PROCESS_ROLES")
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from(["broker", "controller"]),
        "KAFKA_PROCESS_ROLES"
    );

    let node_id = var("KAFKA_NODE_ID");
    let controller_listener = var("KAFKA_CONTROLLER_LISTENER_NAMES");
    let controller_port = var("KAFKA_LISTENERS")
        .split(',')
        .find_map(|l| l.trim().strip_prefix(&format!("{controller_listener}://")))
        .map(port_of)
        .unwrap_or_else(|| panic!("KAFKA_LISTENERS has no {controller_listener} listener"));
    let voters: Vec<&str> = var("KAFKA_CONTROLLER_QUORUM_VOTERS").split(',').collect();
    assert_eq!(
        voters,
        vec![format!("{node_id}@kafka:{controller_port}")],
        "the quorum is this node, on its controller listener"
    );

    for name in [
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ] {
        assert_eq!(var(name), "1", "{name} on a single broker");
    }

    let test = kafka
        .get("healthcheck")
        .and_then(|h| h.get("test"))
        .expect("kafka has a healthcheck");
    assert!(
        !matches!(test, Value::Sequence(s) if s.is_empty()),
        "kafka's healthcheck runs something"
    );
}

/// The `host:port`s Kafka advertises, by listener name.
fn kafka_advertised(c: &Value) -> BTreeMap<String, String> {
    let env = environment(service(c, "kafka"));
    env_var(&env, "kafka", "KAFKA_ADVERTISED_LISTENERS")
        .split(',')
        .map(|l| {
            let (name, addr) = l
                .trim()
                .split_once("://")
                .unwrap_or_else(|| panic!("bad advertised listener {l:?}"));
            (name.to_string(), addr.to_string())
        })
        .collect()
}

/// Each topology's instances: built from the Dockerfile for that topology,
/// one application id per topology, distinct instance ids, their own admin
/// URL, their own state volume, Kafka's in-network listener, the collector,
/// started once Kafka is healthy.
#[test]
fn topology_instances_are_configured_consistently() {
    let c = compose();
    let advertised = kafka_advertised(&c);
    let otel = otel_config();
    let grpc_port = port_of(
        otel["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
            .as_str()
            .expect("the otlp receiver has a gRPC endpoint"),
    );
    let mut instance_ids = BTreeSet::new();
    let mut app_ids = BTreeSet::new();
    let mut state_volumes = BTreeSet::new();

    for topology in TOPOLOGIES {
        let mut topology_app_ids = BTreeSet::new();
        for name in instance_names(topology) {
            let svc = service(&c, &name);
            let arg = svc
                .get("build")
                .and_then(|b| b.get("args"))
                .and_then(|a| a.get("TOPOLOGY"))
                .and_then(scalar);
            assert_eq!(arg.as_deref(), Some(topology), "{name}: build arg TOPOLOGY");

            let env = environment(svc);
            let var = |key: &str| env_var(&env, &name, key);

            topology_app_ids.insert(var("WEIR_APPLICATION_ID").to_string());
            assert!(
                instance_ids.insert(var("WEIR_INSTANCE_ID").to_string()),
                "{name}: WEIR_INSTANCE_ID {} is used twice",
                var("WEIR_INSTANCE_ID")
            );

            let bootstrap = var("WEIR_BOOTSTRAP_SERVERS");
            assert!(
                bootstrap.split(',').all(|b| advertised.values().any(|a| a == b)),
                "{name}: WEIR_BOOTSTRAP_SERVERS {bootstrap} is not a listener Kafka advertises ({advertised:?})"
            );

            assert_eq!(
                port_of(var("WEIR_ADMIN_LISTEN")),
                ADMIN_PORT,
                "{name}: WEIR_ADMIN_LISTEN"
            );
            assert_eq!(
                var("WEIR_ADMIN_ADVERTISED_URL"),
                format!("http://{name}:{ADMIN_PORT}"),
                "{name}: WEIR_ADMIN_ADVERTISED_URL names the instance's own service"
            );
            assert_eq!(var("WEIR_AUTO_CREATE_TOPICS"), "true", "{name}");
            assert_eq!(
                var("WEIR_OTLP_ENDPOINT"),
                format!("http://otel-collector:{grpc_port}"),
                "{name}: WEIR_OTLP_ENDPOINT is the collector's gRPC receiver"
            );

            let state_dir = var("WEIR_STATE_DIR");
            let volume = mounts(svc)
                .into_iter()
                .find(|(_, target)| target == state_dir)
                .and_then(|(source, _)| source)
                .unwrap_or_else(|| panic!("{name}: no volume mounted at {state_dir}"));
            assert!(!is_bind(&volume), "{name}: the state dir is a named volume");
            assert!(
                state_volumes.insert(volume.clone()),
                "{name}: state volume {volume} is shared with another instance"
            );

            let kafka_condition = svc
                .get("depends_on")
                .and_then(|d| d.get("kafka"))
                .and_then(|k| k.get("condition"))
                .and_then(Value::as_str);
            assert_eq!(
                kafka_condition,
                Some("service_healthy"),
                "{name} starts once Kafka is healthy"
            );
        }
        assert_eq!(
            topology_app_ids.len(),
            1,
            "{topology}'s instances share one WEIR_APPLICATION_ID: {topology_app_ids:?}"
        );
        app_ids.extend(topology_app_ids);
    }
    assert_eq!(
        app_ids.len(),
        TOPOLOGIES.len(),
        "each topology has an application id of its own: {app_ids:?}"
    );
    assert_eq!(instance_ids.len(), TOPOLOGIES.len() * INSTANCES);
}

/// Every `WEIR_*` variable an instance sets is configuration Weir accepts:
/// a top-level key, or a `[kafka]`, `[topics]` or `[params]` entry.
#[test]
fn instance_variables_are_known_config_keys() {
    let keys = known_config_keys();
    let c = compose();
    for name in all_instance_names() {
        let env = environment(service(&c, &name));
        let weir_vars: Vec<&String> = env.keys().filter(|k| k.starts_with("WEIR_")).collect();
        assert!(!weir_vars.is_empty(), "{name} sets no WEIR_* variable");
        for var in weir_vars {
            let key = var["WEIR_".len()..].to_ascii_lowercase();
            let section = ["kafka__", "topics__", "params__"]
                .iter()
                .any(|p| key.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
            assert!(
                section || keys.contains(&key),
                "{name}: {var} is not a configuration key (known: {keys:?})"
            );
        }
    }
}

/// Every file or directory bind-mounted, and the build's context and
/// Dockerfile, exist inside `docker/` (the context: the repository); every
/// named volume is declared.
#[test]
fn mounted_files_exist_in_docker_dir() {
    let dir = docker_dir().canonicalize().expect("docker/ exists");
    let c = compose();
    let declared: BTreeSet<String> = c
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(scalar).collect())
        .unwrap_or_default();
    let mut binds = 0;
    for (name, svc) in services(&c) {
        let name = name.as_str().unwrap();
        for (source, target) in mounts(svc) {
            let Some(source) = source else { continue };
            if is_bind(&source) {
                let path = dir.join(&source);
                let real = path.canonicalize().unwrap_or_else(|_| {
                    panic!(
                        "{name}: mounts {source} at {target}, but {} does not exist",
                        path.display()
                    )
                });
                assert!(
                    real.starts_with(&dir),
                    "{name}: mounts {source}, outside docker/"
                );
                binds += 1;
            } else {
                assert!(
                    declared.contains(&source),
                    "{name}: volume {source} is not declared under `volumes`"
                );
            }
        }
        if let Some(build) = svc.get("build") {
            let context = build.get("context").and_then(Value::as_str).unwrap_or(".");
            let context = dir.join(context);
            let dockerfile = build
                .get("dockerfile")
                .and_then(Value::as_str)
                .unwrap_or("Dockerfile");
            assert!(
                context.join(dockerfile).is_file(),
                "{name}: no Dockerfile at {}",
                context.join(dockerfile).display()
            );
            assert!(
                context.join("Cargo.toml").is_file(),
                "{name}: the build context {} is not the workspace root",
                context.display()
            );
        }
    }
    // prometheus.yml, the collector's config, Grafana's provisioning and dashboards.
    assert!(binds >= 4, "only {binds} files mounted");
}

/// The Dockerfile builds the topology named by `TOPOLOGY`, and each name
/// the compose file passes is a topology package with a binary of that name.
#[test]
fn dockerfile_builds_the_named_topology() {
    let dockerfile = read(&docker_dir().join("Dockerfile"));
    for needle in [
        "ARG TOPOLOGY",
        "FROM rust:1-bookworm",
        "FROM debian:bookworm-slim",
        "-p \"${TOPOLOGY}\" --bin \"${TOPOLOGY}\"",
        "EXPOSE 9090",
        "USER weir",
    ] {
        assert!(
            dockerfile.contains(needle),
            "the Dockerfile lacks {needle:?}"
        );
    }
    let c = compose();
    for name in all_instance_names() {
        let svc = service(&c, &name);
        let env = environment(svc);
        let state_dir = env_var(&env, &name, "WEIR_STATE_DIR");
        assert!(
            dockerfile.contains(&format!("VOLUME [\"{state_dir}\"]")),
            "{name}: the image's volume is not WEIR_STATE_DIR {state_dir}"
        );
        let topology = svc["build"]["args"]["TOPOLOGY"].as_str().unwrap();
        let manifest = read(&repo().join("topologies").join(topology).join("Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{topology}\"")),
            "{name}: topologies/{topology} is not the package {topology}"
        );
        assert!(
            repo()
                .join("topologies")
                .join(topology)
                .join("src/main.rs")
                .is_file(),
            "{name}: package {topology} has no binary"
        );
    }
}

// --- prometheus.yml ------------------------------------------------------------

/// Prometheus scrapes `/metrics` of exactly the six instances, on the admin
/// port, one job per topology (the dashboard's `job` is the topology).
#[test]
fn prometheus_scrapes_exactly_the_instances() {
    let prom = yaml(&docker_dir().join("prometheus/prometheus.yml"));
    let configs = prom["scrape_configs"]
        .as_sequence()
        .expect("prometheus.yml has scrape_configs");
    let mut targets = Vec::new();
    for sc in configs {
        let job = sc["job_name"]
            .as_str()
            .expect("a scrape config has a job_name");
        let path = sc
            .get("metrics_path")
            .and_then(Value::as_str)
            .unwrap_or("/metrics");
        assert_eq!(path, "/metrics", "job {job}");
        for st in sc["static_configs"].as_sequence().expect("static_configs") {
            for t in st["targets"].as_sequence().expect("targets") {
                let t = t.as_str().expect("a target is a string").to_string();
                assert!(
                    t.starts_with(&format!("{job}-")),
                    "target {t} is not an instance of job {job}'s topology"
                );
                targets.push(t);
            }
        }
    }
    targets.sort();
    let mut expected: Vec<String> = all_instance_names()
        .into_iter()
        .map(|s| format!("{s}:{ADMIN_PORT}"))
        .collect();
    expected.sort();
    assert_eq!(targets, expected, "Prometheus' targets");
    let c = compose();
    assert!(
        mounts(service(&c, "prometheus"))
            .iter()
            .any(|(s, _)| s.as_deref() == Some("./prometheus/prometheus.yml")),
        "the prometheus service mounts prometheus/prometheus.yml"
    );
}

// --- the OpenTelemetry collector ------------------------------------------------

fn otel_config() -> Value {
    yaml(&docker_dir().join("otel-collector/config.yaml"))
}

/// The collector receives OTLP over gRPC and HTTP, and every pipeline uses
/// only components it defines.
#[test]
fn otel_collector_receives_otlp() {
    let otel = otel_config();
    let protocols = &otel["receivers"]["otlp"]["protocols"];
    for p in ["grpc", "http"] {
        assert!(
            protocols[p]["endpoint"].as_str().is_some(),
            "the otlp receiver has no {p} endpoint"
        );
    }
    assert_eq!(
        port_of(protocols["grpc"]["endpoint"].as_str().unwrap()),
        4317
    );
    assert_eq!(
        port_of(protocols["http"]["endpoint"].as_str().unwrap()),
        4318
    );

    let pipelines = otel["service"]["pipelines"]
        .as_mapping()
        .expect("the collector has pipelines");
    assert!(!pipelines.is_empty(), "no pipeline");
    let mut otlp_used = false;
    for (name, p) in pipelines {
        for kind in ["receivers", "processors", "exporters"] {
            for component in p[kind].as_sequence().into_iter().flatten() {
                let component = component.as_str().unwrap();
                assert!(
                    otel[kind].get(component).is_some(),
                    "pipeline {name:?} uses {kind} {component}, which is not defined"
                );
                otlp_used |= kind == "receivers" && component == "otlp";
            }
        }
        assert!(
            p["exporters"].as_sequence().is_some_and(|e| !e.is_empty()),
            "pipeline {name:?} exports nowhere"
        );
    }
    assert!(otlp_used, "no pipeline takes the otlp receiver");
}

// --- Grafana -------------------------------------------------------------------

fn dashboard() -> serde_json::Value {
    let path = docker_dir().join("grafana/dashboards/weir.json");
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// The provisioned data source is the compose Prometheus; the dashboard
/// provider reads the directory the dashboards are mounted at; every panel
/// queries the provisioned data source.
#[test]
fn grafana_is_provisioned() {
    let dir = docker_dir().join("grafana/provisioning");
    let ds = yaml(&dir.join("datasources/prometheus.yaml"));
    let ds = &ds["datasources"][0];
    assert_eq!(ds["type"].as_str(), Some("prometheus"));
    let url = ds["url"].as_str().expect("the data source has a url");
    assert_eq!(
        url, "http://prometheus:9090",
        "the data source is the compose Prometheus"
    );
    let uid = ds["uid"].as_str().expect("the data source has a uid");

    let c = compose();
    let grafana_mounts = mounts(service(&c, "grafana"));
    let mounted_at = |source: &str| {
        grafana_mounts
            .iter()
            .find(|(s, _)| s.as_deref() == Some(source))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("grafana does not mount {source}"))
    };
    assert_eq!(
        mounted_at("./grafana/provisioning"),
        "/etc/grafana/provisioning"
    );

    let providers = yaml(&dir.join("dashboards/weir.yaml"));
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("the dashboard provider has a path");
    assert_eq!(
        path,
        mounted_at("./grafana/dashboards"),
        "the provider reads where the dashboards are mounted"
    );

    let d = dashboard();
    let mut checked = 0;
    walk_json(&d, &mut |v| {
        if let Some(obj) = v.as_object() {
            if let Some(ds) = obj.get("datasource") {
                assert_eq!(
                    ds["uid"].as_str(),
                    Some(uid),
                    "a panel, query or variable uses another data source: {ds}"
                );
                checked += 1;
            }
        }
    });
    assert!(checked > 0, "the dashboard names no data source");
}

fn walk_json(v: &serde_json::Value, f: &mut impl FnMut(&serde_json::Value)) {
    f(v);
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| walk_json(i, f)),
        serde_json::Value::Object(m) => m.values().for_each(|i| walk_json(i, f)),
        _ => {}
    }
}

/// Every panel queries something, and every `weir_*` name in the dashboard
/// is a metric Weir exposes (a histogram through its `_bucket`, `_sum` or
/// `_count` series in queries); each of the metrics added with this
/// deployment has a panel.
#[test]
fn dashboard_uses_only_known_metrics() {
    let known = known_metrics();
    let d = dashboard();
    let panels = d["panels"].as_array().expect("the dashboard has panels");
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    let mut queries = 0;
    for p in panels {
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap_or("?");
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or("");
            let names = weir_names(expr);
            assert!(
                !names.is_empty(),
                "panel {title:?}: {expr:?} queries no Weir metric"
            );
            for n in names {
                if let Some(why) = unknown_metric(&n, &known, true) {
                    problems.push(format!("panel {title:?}: {why}"));
                }
                used.insert(n);
            }
            queries += 1;
        }
    }
    // Variables' queries, descriptions and anything else.
    walk_json(&d, &mut |v| {
        if let Some(s) = v.as_str() {
            for n in weir_names(s) {
                if let Some(why) = unknown_metric(&n, &known, false) {
                    problems.push(format!("{s:?}: {why}"));
                }
            }
        }
    });
    assert!(
        problems.is_empty(),
        "unknown metrics:\n{}",
        problems.join("\n")
    );
    assert!(queries >= 10, "only {queries} queries");
    for (name, kind) in HEADLINE_METRICS {
        let covered = if kind == "histogram" {
            HISTOGRAM_SUFFIXES
                .iter()
                .any(|s| used.contains(&format!("{name}{s}")))
        } else {
            used.contains(name)
        };
        assert!(covered, "no panel shows {name}");
    }
}

/// The helpers above, on inputs with a known answer.
#[test]
fn helpers_find_what_they_should() {
    assert_eq!(
        weir_names("sum(rate(weir_a_total{x=\"y\"}[1m])) / xweir_b + weir_c_bucket"),
        vec!["weir_a_total", "weir_c_bucket"]
    );
    let known = BTreeMap::from([
        ("weir_h_seconds".to_string(), "histogram".to_string()),
        ("weir_g".to_string(), "gauge".to_string()),
    ]);
    assert_eq!(unknown_metric("weir_h_seconds_bucket", &known, true), None);
    assert_eq!(unknown_metric("weir_g", &known, true), None);
    assert_eq!(unknown_metric("weir_h_seconds", &known, false), None);
    assert!(unknown_metric("weir_h_seconds", &known, true).is_some());
    assert!(unknown_metric("weir_g_count", &known, true).is_some());
    assert!(unknown_metric("weir_nope", &known, false).is_some());
    assert_eq!(port_of("http://otel-collector:4317"), 4317);
    assert_eq!(port_of("0.0.0.0:9090"), 9090);
}
