//! Bad configuration and a shared state dir fail at start with a message
//! naming the problem — never a panic, never a silent start.

use std::time::Duration;

use weir_tests::{binary, Scenario, TopologyProcess};

fn run_expecting_failure(s: &Scenario, extra: &[(&str, &str)], args: &[&str]) -> String {
    let mut env = s.router_env(0);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let dir = tempfile::tempdir().unwrap();
    let mut p = TopologyProcess::spawn(
        &binary("event-router", "event-router"),
        args,
        &env,
        &dir.path().join("log"),
    );
    let status = p
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("did not fail at start:\n{}", p.log_text()));
    let log = p.log_text();
    assert!(!status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    log
}

#[test]
fn an_unknown_or_invalid_key_is_named() {
    let s = Scenario::new("err-config", 1);
    let log = run_expecting_failure(&s, &[("WEIR_COMIT_INTERVAL_MS", "5")], &["run"]);
    assert!(log.contains("WEIR_COMIT_INTERVAL_MS"), "{log}");
    let log = run_expecting_failure(&s, &[("WEIR_COMMIT_INTERVAL_MS", "soon")], &["run"]);
    assert!(log.contains("WEIR_COMMIT_INTERVAL_MS"), "{log}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(&file, "num_stream_thread = 2\n").unwrap();
    let log = run_expecting_failure(&s, &[], &["--config", file.to_str().unwrap(), "run"]);
    assert!(log.contains("num_stream_thread"), "{log}");
}

#[test]
fn type_errors_name_the_key() {
    let s = Scenario::new("err-types", 1);
    let log = run_expecting_failure(&s, &[("WEIR_PROCESSING_GUARANTEE", "maybe")], &["run"]);
    assert!(log.contains("processing_guarantee"), "{log}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(&file, "commit_interval_ms = \"x\"\n").unwrap();
    let log = run_expecting_failure(&s, &[], &["--config", file.to_str().unwrap(), "run"]);
    assert!(log.contains("commit_interval_ms"), "{log}");
}

#[test]
fn assignment_and_membership_keys_are_refused() {
    let s = Scenario::new("err-membership", 1);
    for (var, key) in [
        ("WEIR_KAFKA__GROUP_INSTANCE_ID", "group.instance.id"),
        (
            "WEIR_KAFKA__PARTITION_ASSIGNMENT_STRATEGY",
            "partition.assignment.strategy",
        ),
        ("WEIR_KAFKA__GROUP_PROTOCOL", "group.protocol"),
    ] {
        let log = run_expecting_failure(&s, &[(var, "x")], &["run"]);
        assert!(log.contains(key), "{log}");
    }
}

#[test]
fn an_unreachable_cluster_is_named_within_seconds() {
    let s = Scenario::new("err-unreachable", 1);
    let started = std::time::Instant::now();
    let log = run_expecting_failure(&s, &[("WEIR_BOOTSTRAP_SERVERS", "127.0.0.1:9")], &["run"]);
    assert!(
        log.contains("127.0.0.1:9") && log.contains("bootstrap_servers"),
        "{log}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_kafka_key_that_breaks_exactly_once_is_refused() {
    let s = Scenario::new("err-eos", 1);
    let log = run_expecting_failure(
        &s,
        &[("WEIR_KAFKA__ISOLATION_LEVEL", "read_uncommitted")],
        &["run"],
    );
    assert!(log.contains("isolation.level"), "{log}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(&file, "[kafka]\n\"enable.auto.commit\" = true\n").unwrap();
    let log = run_expecting_failure(&s, &[], &["--config", file.to_str().unwrap()]);
    assert!(log.contains("enable.auto.commit"), "{log}");
}

#[test]
fn a_second_process_on_the_same_state_dir_is_refused() {
    let s = Scenario::new("err-lock", 1);
    let mut first = s.start_router(0, &[]);
    assert!(
        first.wait_for_log("partitions assigned", Duration::from_secs(60)),
        "{}",
        first.log_text()
    );
    let log = run_expecting_failure(&s, &[], &["run"]);
    assert!(log.contains("in use by another Weir process"), "{log}");
    assert!(first.stop().success());
}

#[test]
fn a_missing_topic_is_named_unless_auto_created() {
    let s = Scenario::new("err-topic", 1);
    let log = run_expecting_failure(&s, &[("WEIR_AUTO_CREATE_TOPICS", "false")], &["run"]);
    assert!(log.contains(&s.topics["orders"]), "{log}");
    assert!(log.contains("auto_create_topics"), "{log}");
}

#[test]
fn describe_prints_the_renamed_topology() {
    let s = Scenario::new("describe", 1);
    let dir = tempfile::tempdir().unwrap();
    for (format, marker) in [("text", "Sub-topology"), ("mermaid", "flowchart")] {
        let mut p = TopologyProcess::spawn(
            &binary("event-router", "event-router"),
            &["describe", "--format", format],
            &s.router_env(0),
            &dir.path().join(format),
        );
        assert!(p
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|st| st.success()));
        let out = p.log_text();
        assert!(out.contains(marker), "{out}");
        assert!(out.contains(&s.topics["events"]), "{out}");
        assert!(out.contains(&s.topics["audit"]), "{out}");
    }
}

#[test]
fn the_weir_command_line_takes_config_after_its_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "comit_interval_ms = 5\n").unwrap();
    for args in [
        vec!["dlq", "list", "--config"],
        vec!["schema", "list", "--config"],
        vec!["dlq", "--config"],
    ] {
        for (file, needle) in [(&missing, "missing.toml"), (&bad, "comit_interval_ms")] {
            let out = std::process::Command::new(binary("weir", "weir-cli"))
                .args(&args)
                .arg(file)
                .args(if args.len() == 2 {
                    &["list"][..]
                } else {
                    &[][..]
                })
                .env_remove("WEIR_ADMIN_URL")
                .output()
                .expect("run weir");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?}: {err}");
            assert!(err.contains(needle), "{args:?} {needle}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}
