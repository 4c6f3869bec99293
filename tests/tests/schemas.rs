//! Event definitions on the broker: registered, updated, listed and read
//! through `_weir_event_definitions` from the CLI and the library; a second
//! registry sees what the first registered; invalid and incompatible
//! schemas are refused; a running instance's `validate` node dead-letters
//! invalid payloads with the field path and message, and picks up a new
//! version while it runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use weir::core::dlq_headers as h;
use weir::prelude::*;
use weir::schemas::{Compatibility, EventDefinition, NewDefinition};
use weir::{App, Config};
use weir_testkit::{create_topics, publish, TestBroker, TopicReader};
use weir_tests::binary;

fn config(bootstrap: &str, app: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("WEIR_APPLICATION_ID".into(), app.into()),
        ("WEIR_BOOTSTRAP_SERVERS".into(), bootstrap.into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::load(&BTreeMap::new(), None, vars).unwrap()
}

fn weir_cli(bootstrap: &str, args: &[&str]) -> Output {
    Command::new(binary("weir", "weir-cli"))
        .args(args)
        .env("WEIR_BOOTSTRAP_SERVERS", bootstrap)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run weir")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn refund_schema() -> Value {
    json!({
        "type": "object",
        "required": ["refundId", "amount"],
        "properties": {
            "refundId": {"type": "string"},
            "amount": {"type": "number", "minimum": 0},
            "reason": {"type": "string"}
        }
    })
}

fn write_definition(dir: &Path, name: &str, def: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, def.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn definitions_round_trip_through_the_broker_and_the_cli() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let event_type = format!("{}.requested", TestBroker::unique("refund"));
    let dir = tempfile::tempdir().unwrap();

    // Register version 1 from the CLI.
    let v1 = write_definition(
        dir.path(),
        "v1.json",
        &json!({"event_type": event_type, "schema": refund_schema(), "owner": "payments",
                "description": "a customer asks for money back",
                "examples": [{"refundId": "r-1", "amount": 12.5}]}),
    );
    let out = weir_cli(&bootstrap, &["schema", "register", &v1]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("registered {event_type} version 1")),
        "{}",
        text(&out.stdout)
    );

    // A registry connected afterwards loads it; a second one sees what the
    // first registers.
    let cfg = config(&bootstrap, "schemas-a", &[]);
    let first = weir::runtime::schema_registry(&cfg).unwrap();
    let second = weir::runtime::schema_registry(&cfg).unwrap();
    let got = first.get(&event_type, None).expect("version 1 is loaded");
    assert_eq!((got.version, got.owner.as_str()), (1, "payments"));
    assert_eq!(got.schema, refund_schema());

    let mut looser = refund_schema();
    looser["properties"]["amount"]["minimum"] = json!(-1000);
    let v2 = first
        .register(
            NewDefinition::new(&event_type, looser.clone()).owner("payments"),
            Compatibility::Backward,
        )
        .unwrap();
    assert_eq!(v2.version, 2);
    second.refresh().unwrap();
    assert_eq!(second.get(&event_type, None).unwrap().schema, looser);
    assert_eq!(second.versions(&event_type).len(), 2);

    // The CLI lists and gets them.
    let out = weir_cli(&bootstrap, &["schema", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&event_type))
        .map(String::from)
        .unwrap_or_else(|| panic!("{event_type} listed: {}", text(&out.stdout)));
    assert!(
        line.starts_with(&format!("{event_type}\t2\tpayments")),
        "{line}"
    );
    // As JSON, the admin endpoint's shape (`GET /schemas`).
    let out = weir_cli(&bootstrap, &["schema", "list", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours: Vec<&Value> = listed["definitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event_type"] == event_type.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{listed}");
    assert_eq!(
        (ours[0]["version"].as_u64(), ours[0]["owner"].as_str()),
        (Some(2), Some("payments"))
    );
    let out = weir_cli(
        &bootstrap,
        &["schema", "get", &event_type, "--version", "1"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["version"], 1);
    assert_eq!(got["schema"], refund_schema());
    let out = weir_cli(&bootstrap, &["schema", "get", &event_type, "--all"]);
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.len(), 2);

    // An invalid schema is refused with the reason, and nothing is written.
    let bad = write_definition(
        dir.path(),
        "bad.json",
        &json!({"event_type": event_type, "schema": {"type": "objekt"}}),
    );
    let out = weir_cli(&bootstrap, &["schema", "register", &bad]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a valid JSON Schema"),
        "{}",
        text(&out.stderr)
    );
    // So is an incompatible one when compatibility is asked for.
    let mut stricter = looser.clone();
    stricter["required"] = json!(["refundId", "amount", "reason"]);
    let strict = write_definition(
        dir.path(),
        "strict.json",
        &json!({"event_type": event_type, "schema": stricter}),
    );
    let out = weir_cli(
        &bootstrap,
        &["schema", "register", &strict, "--compatibility", "backward"],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("not backward compatible") && err.contains("reason"),
        "{err}"
    );
    first.refresh().unwrap();
    assert_eq!(first.get(&event_type, None).unwrap().version, 2);
    // An unknown type is a clear error.
    let out = weir_cli(&bootstrap, &["schema", "get", "no.such.type"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no definition"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_running_instance_dead_letters_invalid_payloads_and_follows_new_versions() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("validate");
    let event_type = format!("{app}.refund");
    let (input, output, dlq) = (
        format!("{app}-in"),
        format!("{app}-out"),
        format!("{app}-dlq"),
    );
    create_topics(&bootstrap, &[(&input, 2)]).unwrap();
    let state = tempfile::tempdir().unwrap();
    let cfg = config(
        &bootstrap,
        &app,
        &[
            ("WEIR_STATE_DIR", &state.path().display().to_string()),
            ("WEIR_AUTO_CREATE_TOPICS", "true"),
            ("WEIR_AUTO_CREATE_PARTITIONS", "2"),
            ("WEIR_COMMIT_INTERVAL_MS", "100"),
            ("WEIR_TOPICS__IN", &input),
            ("WEIR_TOPICS__OUT", &output),
        ],
    );
    let registry = weir::runtime::schema_registry(&cfg).unwrap();
    registry
        .register(
            NewDefinition::new(&event_type, refund_schema()),
            Compatibility::None,
        )
        .unwrap();

    let b = Topology::builder();
    b.stream("in", Str, Json::<serde_json::Value>::new())
        .validate(&event_type)
        .to("out");
    let running = App::builder()
        .with_config(cfg)
        .start(b.build().unwrap())
        .unwrap();

    // 100 refunds: every 10th has a negative amount, every 25th no id.
    let payload = |i: usize| {
        if i.is_multiple_of(25) {
            json!({"amount": 1})
        } else if i.is_multiple_of(10) {
            json!({"refundId": format!("r{i}"), "amount": -5})
        } else {
            json!({"refundId": format!("r{i}"), "amount": i})
        }
    };
    let events: Vec<(String, String)> = (0..100)
        .map(|i| (format!("r{i}"), payload(i).to_string()))
        .collect();
    publish(
        &bootstrap,
        &input,
        events
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let bad: Vec<usize> = (0..100)
        .filter(|&i: &usize| i.is_multiple_of(10) || i.is_multiple_of(25))
        .collect();
    let mut reader = TopicReader::new(&bootstrap, &[&output, &dlq], "read_committed").unwrap();
    let count = |rs: &[weir::Record], t: &str| rs.iter().filter(|r| r.topic == t).count();
    assert!(
        reader.read_until(Duration::from_secs(60), |rs| {
            count(rs, &output) == 100 - bad.len() && count(rs, &dlq) == bad.len()
        }),
        "all 100 refunds settled within 60 s"
    );
    reader.read_for(Duration::from_millis(500));
    let by_topic = reader.by_topic();
    assert_eq!(by_topic[&output].len(), 100 - bad.len(), "no duplicates");
    let mut dead: Vec<(usize, String)> = Vec::new();
    for r in &by_topic[&dlq] {
        let hd = |n| r.headers.get_str(n).unwrap_or_default().to_string();
        assert_eq!(hd(h::ERROR_KIND), "validation");
        let body: Value = serde_json::from_str(&hd(h::ERROR_DETAILS)).unwrap();
        assert_eq!(body["errorCode"], "SCHEMA_VALIDATION_ERROR");
        assert_eq!(body["version"], 1);
        let field = body["details"]["field"].as_str().unwrap().to_string();
        let error = body["details"]["error"].as_str().unwrap();
        assert!(
            hd(h::ERROR_MESSAGE).contains(&field),
            "{}",
            hd(h::ERROR_MESSAGE)
        );
        assert!(
            hd(h::ERROR_MESSAGE).contains(error),
            "{}",
            hd(h::ERROR_MESSAGE)
        );
        let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
        dead.push((key[1..].parse().unwrap(), field));
    }
    dead.sort();
    let want: Vec<(usize, String)> = bad
        .iter()
        .map(|&i| {
            (
                i,
                if i.is_multiple_of(25) {
                    "refundId"
                } else {
                    "amount"
                }
                .to_string(),
            )
        })
        .collect();
    assert_eq!(dead, want);

    // Version 2 requires a reason: the running instance follows the topic,
    // so a refund without one is dead-lettered against version 2 soon.
    let mut v2 = refund_schema();
    v2["required"] = json!(["refundId", "amount", "reason"]);
    registry
        .register(NewDefinition::new(&event_type, v2), Compatibility::None)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    let seen_v2 = loop {
        n += 1;
        let v = json!({"refundId": format!("late{n}"), "amount": 1}).to_string();
        publish(
            &bootstrap,
            &input,
            [(Some(&b"late"[..]), Some(v.as_bytes()))],
        )
        .unwrap();
        let found = reader.read_until(Duration::from_secs(2), |rs| {
            rs.iter().any(|r| {
                r.topic == dlq
                    && r.headers
                        .get_str(h::ERROR_DETAILS)
                        .and_then(|d| serde_json::from_str::<Value>(d).ok())
                        .is_some_and(|b| b["version"] == 2 && b["details"]["field"] == "reason")
            })
        });
        if found || Instant::now() > deadline {
            break found;
        }
    };
    assert!(
        seen_v2,
        "a refund without a reason was dead-lettered against version 2 within 30 s"
    );
    running.stop();
    running.wait().unwrap();
}

#[test]
fn concurrent_registrations_get_distinct_versions_every_registry_agrees_on() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let event_type = format!("{}.race", TestBroker::unique("race"));
    let cfg = config(&bootstrap, "schemas-race", &[]);
    let registries: Vec<_> = (0..3)
        .map(|_| weir::runtime::schema_registry(&cfg).unwrap())
        .collect();
    let start = std::sync::Barrier::new(registries.len());
    let got: Vec<EventDefinition> = std::thread::scope(|s| {
        let writers: Vec<_> = registries
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (start, event_type) = (&start, &event_type);
                s.spawn(move || {
                    start.wait();
                    let schema = json!({"type": "object", "title": format!("writer {i}")});
                    r.register(NewDefinition::new(event_type, schema), Compatibility::None)
                        .unwrap()
                })
            })
            .collect();
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut versions: Vec<u32> = got.iter().map(|d| d.version).collect();
    versions.sort();
    assert_eq!(versions, vec![1, 2, 3], "each registration its own version");
    // Every registry, and one connected afterwards, holds each version as
    // the registration that was told it got it.
    let fresh = weir::runtime::schema_registry(&cfg).unwrap();
    for r in registries.iter().chain([&fresh]) {
        r.refresh().unwrap();
        for d in &got {
            assert_eq!(
                r.get(&event_type, Some(d.version)).unwrap().schema,
                d.schema
            );
        }
    }
    // A shipped definition is not registered again when the type exists.
    let kept = fresh
        .register_if_absent(NewDefinition::new(&event_type, json!(true)))
        .unwrap();
    assert_eq!(kept.version, 3);
    fresh.refresh().unwrap();
    assert_eq!(fresh.versions(&event_type).len(), 3);
}
