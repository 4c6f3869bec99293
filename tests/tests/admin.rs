//! The admin endpoint of an instance, over a real socket: `/health`,
//! `/ready` (503 with `Retry-After` until the instance has its assignment,
//! then 200), `/metrics` in the Prometheus text format with the per-node
//! counts of what was processed and store sizes (clean under `promtool
//! check metrics`), `/stores` (the partitions held), `/topology` as JSON and Mermaid, and JSON
//! errors for an unknown route, a wrong method and a bad format.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use weir::prelude::*;
use weir::App;
use weir_testkit::{create_topics, publish, TestBroker, TopicReader};
use weir_tests::http::{get, send};
use weir_tests::in_process_config;

/// One request: the status, the headers (lower-case names) and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, BTreeMap<String, String>, String) {
    let r = weir_tests::http::request(addr, method, path, &[]);
    (r.status, r.headers, r.body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The value of the sample `name` (a full series with labels) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

const TOKEN: &str = "s3cret-token";

#[test]
fn the_admin_endpoint_serves_health_readiness_metrics_and_the_topology() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("admin");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&bootstrap, &[(&input, 2)]).unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = in_process_config(
        &app,
        &bootstrap,
        state.path(),
        2,
        (&input, &output),
        &[
            ("WEIR_ADMIN_LISTEN", "127.0.0.1:0"),
            ("WEIR_ADMIN_TOKEN", TOKEN),
        ],
    );
    let b = Topology::builder();
    let upper = b
        .stream("in", Str, Str)
        .try_map_values(|v: String| {
            if v.starts_with("bad") {
                Err(OpError::permanent("refused"))
            } else {
                Ok(v.to_uppercase())
            }
        })
        .named("upper");
    upper.to("out");
    upper.group_by_key().count("per-key");
    upper
        .group_by_key()
        .windowed_by(weir::dsl::tumbling(Duration::from_secs(60)))
        .count("per-minute");
    upper
        .group_by_key()
        .windowed_by_session(weir::dsl::session(Duration::from_secs(3_600)))
        .count("per-session");
    b.dead_letter_fix("unbad", |r: &weir_core::Record| {
        let v = std::str::from_utf8(r.value.as_deref()?).ok()?;
        Some(weir_core::Record {
            value: Some(format!("un{v}").into_bytes()),
            ..r.clone()
        })
    });
    let running = App::builder()
        .with_config(config)
        .start(b.build().unwrap())
        .unwrap();
    let addr = running.admin_addr().expect("admin_listen was set");

    let (status, _, body) = http(addr, "GET", "/health");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "UP");

    // Ready once the group has assigned the partitions; 503 before.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, headers, body) = http(addr, "GET", "/ready");
        if status == 200 {
            assert_eq!(json(&body)["ready"], true);
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert_eq!(json(&body)["error"], "NOT_READY");
        assert_eq!(headers.get("retry-after").map(String::as_str), Some("1"));
        assert!(Instant::now() < deadline, "ready within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    let keys: Vec<String> = (0..40).map(|i| format!("k{}", i % 5)).collect();
    let values: Vec<String> = (0..40)
        .map(|i| {
            if i % 10 == 0 {
                format!("bad{i}")
            } else {
                format!("v{i}")
            }
        })
        .collect();
    publish(
        &bootstrap,
        &input,
        keys.iter()
            .zip(&values)
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let (status, headers, text) = http(addr, "GET", "/metrics");
        assert_eq!(status, 200);
        assert!(headers["content-type"].starts_with("text/plain; version=0.0.4"));
        // Both input partitions caught up (the lag is published every 500 ms).
        let caught_up = text
            .lines()
            .filter(|l| l.starts_with("weir_consumer_lag{") && l.contains(input.as_str()))
            .filter(|l| l.ends_with(" 0"))
            .count();
        // Processing times are folded in with the lag; the dead-letter
        // topic is counted as letters arrive: exactly its four letters (no
        // transaction markers).
        let timed = sample(&text, "weir_event_processing_time_seconds_count") >= Some(40.0);
        let dlq_sampled = sample(&text, "weir_dead_letter_queue_size") == Some(4.0);
        if sample(&text, "weir_records_consumed_total") == Some(40.0)
            && caught_up == 2
            && timed
            && dlq_sampled
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "40 records consumed and no lag within 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(sample(&text, "weir_records_dead_lettered_total"), Some(4.0));
    assert_eq!(
        sample(&text, r#"weir_node_records_in_total{node="upper"}"#),
        Some(40.0)
    );
    assert_eq!(
        sample(&text, r#"weir_node_records_out_total{node="upper"}"#),
        Some(36.0)
    );
    assert_eq!(
        sample(&text, r#"weir_node_dead_lettered_total{node="upper"}"#),
        Some(4.0)
    );
    // The event bus's four series, and the latency histograms.
    assert_eq!(sample(&text, "weir_event_delivery_success_rate"), Some(0.9));
    assert_eq!(sample(&text, "weir_queue_depth"), Some(0.0));
    assert_eq!(
        sample(
            &text,
            r#"weir_event_processing_time_seconds_bucket{le="+Inf"}"#
        ),
        sample(&text, "weir_event_processing_time_seconds_count")
    );
    assert!(sample(&text, "weir_event_processing_time_seconds_sum") > Some(0.0));
    assert!(sample(&text, "weir_commit_latency_seconds_count") >= Some(1.0));
    assert!(
        text.contains("# TYPE weir_commit_latency_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE weir_records_consumed_total counter"),
        "{text}"
    );

    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"weir_store_keys_approximate{store="per-key"} "#)),
        "{text}"
    );
    // The exposition passes Prometheus' own linter.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; `make deps` installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let (status, _, body) = http(addr, "GET", "/topology");
    assert_eq!(status, 200);
    let t = json(&body);
    let nodes: Vec<&str> = t["subtopologies"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(nodes.contains(&"upper"), "{body}");
    assert!(body.contains(&output), "the renamed output topic: {body}");
    let (status, _, body) = http(addr, "GET", "/topology?format=mermaid");
    assert_eq!(status, 200);
    assert!(body.starts_with("flowchart"), "{body}");
    let r = weir_tests::http::send(
        addr,
        "GET",
        "/topology",
        &[("Accept", "text/vnd.mermaid")],
        "",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("flowchart"), "{}", r.body);
    // Ingress is off here: the document describes only what is served.
    let (status, _, body) = http(addr, "GET", "/openapi.json");
    assert_eq!(status, 200);
    let doc = json(&body);
    assert!(doc["paths"]["/topology"]["get"].is_object(), "{body}");
    assert!(doc["paths"].get("/v1/events").is_none(), "{body}");

    let (status, _, body) = http(addr, "GET", "/stores");
    assert_eq!(status, 200);
    let stores = json(&body);
    let per_key = stores["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "per-key")
        .unwrap_or_else(|| panic!("the store is listed: {body}"));
    assert_eq!(per_key["partitions"], 2);
    let mut held: Vec<i64> = per_key["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(h["restoring"], false);
            h["partition"].as_i64().unwrap()
        })
        .collect();
    held.sort();
    assert_eq!(held, vec![0, 1], "one instance holds both partitions");
    assert!(per_key["approximate_keys"].is_u64(), "{body}");

    // The store, by key (served here: this instance holds every partition).
    let r = get(addr, "/stores/per-key/keys/k1");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["key"].as_str(), v["value"].as_i64()),
        (Some("k1"), Some(8)),
        "{v}"
    );
    assert!(v["served_by"].is_string());
    let r = get(addr, "/stores/per-key/range?from=k0&to=k2");
    assert_eq!(r.status, 200, "{}", r.body);
    let keys: Vec<String> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["k0", "k1", "k2"]);

    // A window store, by key and time: k1's windows hold its 8 records.
    let r = get(addr, "/stores/per-minute/windows?key=k1");
    assert_eq!(r.status, 200, "{}", r.body);
    let w = r.json();
    let windows = w["windows"].as_array().unwrap();
    assert!(!windows.is_empty(), "{w}");
    let total: i64 = windows.iter().map(|x| x["value"].as_i64().unwrap()).sum();
    assert_eq!(total, 8, "{w}");
    let start = windows[0]["start"].as_i64().unwrap();
    assert_eq!(start % 60_000, 0, "a tumbling window's start: {w}");
    let r = get(
        addr,
        &format!("/stores/per-minute/windows?key=k1&from={}", start + 1),
    );
    assert_eq!(
        r.json()["windows"].as_array().unwrap().len(),
        windows.len() - 1
    );
    // A session store, by key and time: k1's records, published together,
    // are one session of 8.
    let r = get(addr, "/stores/per-session/sessions?key=k1");
    assert_eq!(r.status, 200, "{}", r.body);
    let sv = r.json();
    let sessions = sv["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sv}");
    assert_eq!(sessions[0]["value"], 8, "{sv}");
    let (start, end) = (
        sessions[0]["start"].as_i64().unwrap(),
        sessions[0]["end"].as_i64().unwrap(),
    );
    assert!(start <= end, "{sv}");
    assert_eq!(sv["key"], "k1");
    for (query, n) in [
        (format!("from={end}&to={start}"), 1),
        (format!("from={start}&to={start}"), 1),
        (format!("from={end}&to={end}"), 1),
        (format!("from={}", end + 1), 0),
        (format!("to={}", start - 1), 0),
    ] {
        let r = get(
            addr,
            &format!("/stores/per-session/sessions?key=k1&{query}"),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["sessions"].as_array().unwrap().len(), n, "{query}");
    }
    // `weir query` of a key of a session or window store prints its
    // sessions or windows, within --from/--to (times) when given.
    let weir_query = |args: &[&str]| {
        let out = std::process::Command::new(weir_tests::binary("weir", "weir-cli"))
            .args(["query", "--admin", &format!("http://{addr}")])
            .args(args)
            .args(["--output", "json"])
            .env_remove("WEIR_ADMIN_URL")
            .output()
            .expect("run weir");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let printed = serde_json::from_slice::<serde_json::Value>(&out.stdout).ok();
        (out.status.success(), printed, stderr)
    };
    let (ok, printed, err) = weir_query(&["per-session", "k1"]);
    assert!(ok, "{err}");
    assert_eq!(printed.unwrap()["sessions"], sv["sessions"]);
    let after = (end + 1).to_string();
    let (ok, printed, err) = weir_query(&["per-session", "k1", "--from", &after]);
    assert!(ok, "{err}");
    assert_eq!(printed.unwrap()["sessions"], serde_json::json!([]));
    let (ok, printed, err) = weir_query(&["per-minute", "k1"]);
    assert!(ok, "{err}");
    assert_eq!(printed.unwrap()["windows"], w["windows"]);
    let later = (windows[0]["start"].as_i64().unwrap() + 1).to_string();
    let (ok, printed, err) = weir_query(&["per-minute", "k1", "--from", &later]);
    assert!(ok, "{err}");
    assert_eq!(
        printed.unwrap()["windows"].as_array().unwrap().len(),
        windows.len() - 1
    );
    let (ok, _, err) = weir_query(&["per-minute", "k1", "--to", "soon"]);
    assert!(!ok && err.contains("--to"), "{err}");
    let (ok, _, err) = weir_query(&["per-key", "k1", "--from", "k0"]);
    assert!(!ok && err.contains("key-value store"), "{err}");
    for (path, code, kind) in [
        (
            "/stores/per-session/windows?key=k1",
            "WRONG_STORE_KIND",
            "session",
        ),
        (
            "/stores/per-key/sessions?key=k1",
            "WRONG_STORE_KIND",
            "key-value",
        ),
        (
            "/stores/per-session/sessions?key=k1&limit=0",
            "BAD_REQUEST",
            "",
        ),
        ("/stores/per-minute/keys/k1", "WRONG_STORE_KIND", "window"),
        (
            "/stores/per-key/windows?key=k1",
            "WRONG_STORE_KIND",
            "key-value",
        ),
        ("/stores/per-minute/windows", "BAD_REQUEST", ""),
        (
            "/stores/per-minute/windows?key=k1&from=soon",
            "BAD_REQUEST",
            "",
        ),
    ] {
        let r = get(addr, path);
        let v = r.json();
        assert_eq!(
            (r.status, v["error"].as_str()),
            (400, Some(code)),
            "{path}: {}",
            r.body
        );
        // The store's own kind, for a client to follow.
        assert_eq!(v["kind"].as_str().unwrap_or(""), kind, "{path}: {v}");
    }

    // Dead letters: listed with their reasons; a replay needs the token.
    let r = get(addr, "/dlq");
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    assert_eq!(d["total"], 4, "{d}");
    assert_eq!(d["entries"][0]["node"], "upper", "{d}");
    assert!(
        d["entries"][0]["message"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{d}"
    );
    assert!(
        d["entries"][0]["record"]["value"]
            .as_str()
            .unwrap()
            .starts_with("bad"),
        "{d}"
    );
    let r = send(addr, "POST", "/dlq/replay", &[], "{}");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "UNAUTHORIZED");
    assert_eq!(
        r.headers.get("www-authenticate").map(String::as_str),
        Some("Bearer")
    );
    let wrong = [("Authorization", "Bearer s3cret-tokeX")];
    assert_eq!(send(addr, "POST", "/dlq/replay", &wrong, "").status, 401);
    let auth = [("Authorization", "Bearer s3cret-token")];
    let r = send(addr, "POST", "/dlq/replay", &auth, r#"{"kinds": "x"}"#);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{}",
        r.body
    );
    let kind = d["entries"][0]["kind"].clone();
    assert_eq!(d["by_kind"][kind.as_str().unwrap()], 4, "{d}");
    // A target topic that does not exist: 404 naming it, nothing replayed
    // (the replay below still finds all four letters waiting).
    let missing = format!("{app}-no-such-topic");
    let body = serde_json::json!({ "to": missing }).to_string();
    let r = send(addr, "POST", "/dlq/replay", &auth, &body);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("NOT_FOUND")),
        "{}",
        r.body
    );
    assert!(
        r.json()["message"].as_str().unwrap().contains(&missing),
        "{}",
        r.body
    );
    let body = serde_json::json!({ "kinds": [kind] }).to_string();
    let r = send(addr, "POST", "/dlq/replay", &auth, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["replayed"], 4, "{}", r.body);
    // Replayed to the input, they fail again: four more dead letters.
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(addr, "/dlq").json()["total"] != 8 {
        assert!(
            Instant::now() < deadline,
            "the replayed records dead-lettered again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Through a fix-up of the instance's topology: an unknown one is
    // refused naming those it has; `weir dlq replay --admin --fix` repairs
    // the four new letters (the kinds-filtered replay above had a group of
    // its own, so this one, under the default group, reads all eight and
    // leaves out the four already replayed).
    let r = send(addr, "POST", "/dlq/replay", &auth, r#"{"fix": "nope"}"#);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("UNKNOWN_FIX"))
    );
    assert!(r.body.contains("unbad"), "{}", r.body);
    let out = std::process::Command::new(weir_tests::binary("weir", "weir-cli"))
        .args([
            "dlq",
            "--admin",
            &format!("http://{addr}"),
            "--token",
            TOKEN,
        ])
        .args(["replay", "--fix", "unbad", "--output", "json"])
        .env_remove("WEIR_ADMIN_URL")
        .env_remove("WEIR_ADMIN_TOKEN")
        .output()
        .expect("run weir");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let sum: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (sum["replayed"].as_u64(), sum["already_replayed"].as_u64()),
        (Some(4), Some(4)),
        "{sum}"
    );
    let mut outputs = TopicReader::new(&bootstrap, &[&output], "read_committed").unwrap();
    let fixed = |r: &[weir_core::Record]| {
        r.iter()
            .filter(|r| r.value.as_deref().is_some_and(|v| v.starts_with(b"UNBAD")))
            .count()
    };
    assert!(
        outputs.read_until(Duration::from_secs(60), |r| fixed(r) >= 4),
        "the repaired letters reach the output"
    );
    outputs.read_for(Duration::from_secs(1));
    assert_eq!(fixed(outputs.records()), 4);

    // Event definitions: registering needs the token; read back.
    let def = r#"{"schema": {"type": "object", "required": ["id"]}, "owner": "ops"}"#;
    let ty = format!("{app}.Thing");
    let path = format!("/schemas/{ty}");
    assert_eq!(send(addr, "PUT", &path, &[], def).status, 401);
    let r = send(addr, "PUT", &path, &auth, def);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["version"], 1);
    let r = send(
        addr,
        "PUT",
        &path,
        &auth,
        r#"{"schema": {"type": "nonsense"}}"#,
    );
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("INVALID_DEFINITION")),
        "{}",
        r.body
    );
    let r = send(addr, "PUT", &path, &auth, "not json");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = get(addr, &format!("{path}?version=1"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["owner"], "ops");
    assert_eq!(get(addr, &format!("{path}?version=2")).status, 404);
    let r = get(addr, "/schemas");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&ty), "{}", r.body);

    for (method, path, want, code) in [
        ("GET", "/no/such/route", 404, "NOT_FOUND"),
        ("POST", "/health", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/topology?format=svg", 400, "BAD_REQUEST"),
    ] {
        let (status, _, body) = http(addr, method, path);
        assert_eq!(status, want, "{method} {path}: {body}");
        assert_eq!(json(&body)["error"], code, "{method} {path}");
        assert!(json(&body)["message"].is_string());
    }
    running.stop();
    running.wait().unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the endpoint stops with the instance"
    );
}

#[test]
fn the_admin_endpoint_shows_what_a_wait_holds_for_a_key() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("admin-waits");
    let (orders, outcomes, payments) = (
        format!("{app}-orders"),
        format!("{app}-outcomes"),
        format!("{app}-payments"),
    );
    create_topics(&bootstrap, &[(&orders, 2), (&payments, 2)]).unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = in_process_config(
        &app,
        &bootstrap,
        state.path(),
        2,
        (&orders, &outcomes),
        &[
            ("WEIR_ADMIN_LISTEN", "127.0.0.1:0"),
            ("WEIR_TOPICS__PAYMENTS", &payments),
        ],
    );
    let b = Topology::builder();
    let paid = b.stream("payments", Str, Json::<f64>::new());
    b.stream("in", Str, Json::<f64>::new())
        .await_event(
            &paid,
            weir::dsl::Wait::named("payment")
                .when(|order: &f64, paid: &f64| order == paid)
                .timeout(Duration::from_secs(3600)),
        )
        .map_values(|o| format!("{o:?}"))
        .with_value_codec(Str)
        .to("out");
    let running = App::builder()
        .with_config(config)
        .start(b.build().unwrap())
        .unwrap();
    let addr = running.admin_addr().unwrap();
    publish(
        &bootstrap,
        &orders,
        [("o1", "10.0"), ("o1", "20.0"), ("o2", "5.0")]
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let r = get(addr, "/waits/payment/o1");
        if r.status == 200 && r.json()["pending"].as_array().is_some_and(|p| p.len() == 2) {
            break r.json();
        }
        assert!(
            Instant::now() < deadline,
            "o1's two orders pending within 60 s: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let values: Vec<f64> = held["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [10.0, 20.0], "{held}");
    assert_eq!(held["key"], "o1");
    assert!(held["pending"][0]["timestamp"].is_i64(), "{held}");
    let r = get(addr, "/waits/payment/o2");
    assert_eq!(
        r.json()["pending"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    let r = get(addr, "/waits/payment/nobody");
    assert_eq!(
        (r.status, r.json()["pending"].clone()),
        (200, serde_json::json!([]))
    );
    let r = get(addr, "/waits/no-such-wait/o1");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("WAIT_NOT_FOUND")),
        "{}",
        r.body
    );
    running.stop();
    running.wait().unwrap();
}
