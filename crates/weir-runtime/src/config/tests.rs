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
    let e = Config::load(&defaults(), None, env(&[("WEIR_INGRESS_TOPICS", "users")])).unwrap_err();
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
    assert!(e.to_string().contains("commit_interval_ms"), "{e}");
    let e = Config::load(&defaults(), None, env(&[("WEIR_AUTO_CREATE_TOPICS", "ja")])).unwrap_err();
    assert!(e.to_string().contains("auto_create_topics"), "{e}");
    let c = Config::load(
        &defaults(),
        None,
        env(&[("WEIR_AUTO_CREATE_TOPICS", "TRUE")]),
    )
    .unwrap();
    assert!(c.auto_create_topics);
    // Entries of the tables of names name their key.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    for (text, key) in [
        ("[topics]\nevents = 5\n", "topics.events"),
        (
            "[ingress_topics]\n\"user.created\" = [1]\n",
            "ingress_topics.user.created",
        ),
        ("[kafka]\n\"linger.ms\" = [5]\n", "kafka.linger.ms"),
        ("[params]\nwindow_ms = {a = 1}\n", "params.window_ms"),
        ("kafka = 5\n", "kafka"),
    ] {
        std::fs::write(&file, text).unwrap();
        let e = Config::load(&defaults(), Some(&file), env(&[])).unwrap_err();
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
    let e = Config::load(
        &defaults(),
        None,
        env(&[("WEIR_PROCESSING_GUARANTEE", "maybe")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("maybe"), "{e}");
    let e = Config::load(&defaults(), None, env(&[("WEIR_COMMIT_INTERVAL_MS", "0")])).unwrap_err();
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
    for (var, value, key) in [
        ("WEIR_MAX_ABORTS_PER_RECORD", "0", "max_aborts_per_record"),
        (
            "WEIR_MONITORING_INTERVAL_MS",
            "99",
            "monitoring_interval_ms",
        ),
        ("WEIR_STATE_MEMORY_BUDGET_MB", "0", "state_memory_budget_mb"),
    ] {
        let e = Config::load(&defaults(), None, env(&[(var, value)])).unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
    }
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

#[test]
fn kafka_keys_may_be_written_unquoted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(
        &file,
        "[kafka]\nsession.timeout.ms = 6000\n\"linger.ms\" = 5\nclient.id = \"x\"\nacks = \"all\"\n",
    )
    .unwrap();
    // The `weir` command line's own variables are not configuration.
    let c = Config::load(
        &defaults(),
        Some(&file),
        env(&[
            ("WEIR_ADMIN_URL", "http://a:1"),
            ("WEIR_INGRESS_URL", "http://b:2"),
        ]),
    )
    .unwrap();
    assert_eq!(c.kafka["session.timeout.ms"], "6000");
    assert_eq!(c.kafka["linger.ms"], "5");
    assert_eq!(c.kafka["client.id"], "x");
    assert_eq!(c.kafka["acks"], "all");
    assert_eq!(c.kafka.len(), 4, "{:?}", c.kafka);
    std::fs::write(
        &file,
        "[kafka]\npartition.assignment.strategy = \"range\"\n",
    )
    .unwrap();
    let e = Config::load(&defaults(), Some(&file), env(&[])).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("kafka.partition.assignment.strategy") && m.contains("weir.toml"),
        "{m}"
    );
    std::fs::write(&file, "[kafka]\n\"linger.ms\" = 5\nlinger.ms = 6\n").unwrap();
    let e = Config::load(&defaults(), Some(&file), env(&[])).unwrap_err();
    assert!(e.to_string().contains("kafka.linger.ms"), "{e}");
}
