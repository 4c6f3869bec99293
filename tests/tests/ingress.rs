//! HTTP ingress (`weir ingress`, `POST /v1/events`) on the broker: 1,000
//! valid events, some retried (concurrently, later, and at a second
//! instance), are each in their topic exactly once (read_committed); a
//! reused key with another event is a 409, an id reused by another event
//! type a new event; 100
//! invalid ones and the other refusals get the contract's error shape and
//! write nothing; with the broker stopped no request is answered 202, and
//! after it restarts none of the refused events is in the topic, while a
//! write whose client hung up is completed once; and
//! `weir publish` writes through an ingress and straight to Kafka.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use weir::schemas::NewDefinition;
use weir::Config;
use weir_testkit::{create_topics, BrokerProcess, TestBroker, TopicReader};
use weir_tests::http::{get, send, HttpResponse};
use weir_tests::{binary, listening_addr, TopologyProcess};

fn config(bootstrap: &str, app: &str) -> Config {
    let vars = vec![
        ("WEIR_APPLICATION_ID".to_string(), app.to_string()),
        ("WEIR_BOOTSTRAP_SERVERS".to_string(), bootstrap.to_string()),
    ];
    Config::load(&BTreeMap::new(), None, vars).unwrap()
}

/// Registers `event_type`: `data` needs a string `userId` and an `email`
/// (JSON Schema's `format`, which the definitions check).
fn register(bootstrap: &str, event_type: &str) {
    let registry = weir::runtime::schema_registry(&config(bootstrap, "ingress-defs")).unwrap();
    registry
        .register(
            NewDefinition::new(
                event_type,
                json!({
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {
                        "type": "object",
                        "required": ["userId", "email"],
                        "properties": {
                            "userId": {"type": "string"},
                            "email": {"type": "string", "format": "email"}
                        }
                    }}
                }),
            ),
            weir::schemas::Compatibility::None,
        )
        .unwrap();
}

/// Starts `weir ingress` on `127.0.0.1:0` and answers its address.
fn start_ingress(
    bootstrap: &str,
    app: &str,
    event_type: &str,
    topic: &str,
    dir: &std::path::Path,
    log: &str,
    extra: &[(&str, &str)],
) -> (TopologyProcess, SocketAddr) {
    let mut env: Vec<(String, String)> = vec![
        ("WEIR_APPLICATION_ID".into(), app.into()),
        ("WEIR_BOOTSTRAP_SERVERS".into(), bootstrap.into()),
        (
            "WEIR_INGRESS_TOPICS".into(),
            format!("{event_type}={topic}"),
        ),
        ("WEIR_INGRESS_MAX_BODY_BYTES".into(), "4096".into()),
        ("RUST_LOG".into(), "info,librdkafka=off,rdkafka=off".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut p = TopologyProcess::spawn(
        &binary("weir", "weir-cli"),
        &["ingress", "--listen", "127.0.0.1:0"],
        &env,
        &dir.join(log),
    );
    assert!(
        p.wait_for_log("admin endpoint listening", Duration::from_secs(60)),
        "weir ingress did not start:\n{}",
        p.log_text()
    );
    let addr = listening_addr(&p.log_text()).expect("the address in the log");
    (p, addr)
}

fn event(event_type: &str, id: &str, email: &str) -> String {
    json!({
        "eventType": event_type,
        "source": "user-service",
        "id": id,
        "timestamp": "2023-05-20T13:45:30Z",
        "data": {"userId": format!("usr-{id}"), "email": email, "name": "A"},
        "metadata": {"correlationId": format!("corr-{id}")}
    })
    .to_string()
}

fn post(addr: SocketAddr, body: &str, extra: &[(&str, &str)]) -> HttpResponse {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    send(addr, "POST", "/v1/events", &headers, body)
}

/// The counter `weir_ingress_requests_total{outcome=..}` (or another
/// unlabelled series) in `/metrics`.
fn metric(addr: SocketAddr, series: &str) -> u64 {
    let text = get(addr, "/metrics").body;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}")) as u64
}

fn outcome(addr: SocketAddr, outcome: &str) -> u64 {
    metric(
        addr,
        &format!("weir_ingress_requests_total{{outcome=\"{outcome}\"}}"),
    )
}

/// Runs `f` for each item on 16 threads; answers the results in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let chunk = items.len().div_ceil(16).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn assert_refusal(r: &HttpResponse, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    let b = r.json();
    assert_eq!(b["status"], "error", "{b}");
    assert_eq!(b["errorCode"], code, "{b}");
    assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    assert!(b["details"]["field"].is_string(), "{b}");
    assert!(b["details"]["error"].is_string(), "{b}");
    b
}

#[test]
fn valid_events_are_written_exactly_once_and_invalid_ones_refused() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("ingress");
    let event_type = format!("user.created.{app}");
    let topic = format!("{app}-users");
    create_topics(broker.bootstrap(), &[(&topic, 3)]).unwrap();
    register(broker.bootstrap(), &event_type);
    let dir = tempfile::tempdir().unwrap();
    let (mut one, a) = start_ingress(
        broker.bootstrap(),
        &app,
        &event_type,
        &topic,
        dir.path(),
        "one.log",
        &[("WEIR_INGRESS_DEFAULT_TOPIC", &topic)],
    );
    // Its document describes its own routes.
    let doc = get(a, "/openapi.json").json();
    assert!(doc["paths"]["/v1/events"]["post"].is_object(), "{doc}");
    assert!(doc["paths"]["/health"]["get"].is_object(), "{doc}");
    assert!(doc["paths"].get("/stores").is_none(), "{doc}");

    // 1,000 valid events, each posted once from 16 clients.
    let ids: Vec<String> = (0..1_000).map(|i| format!("evt-{i:04}")).collect();
    let first: Vec<HttpResponse> = parallel(&ids, |id| {
        post(
            a,
            &event(&event_type, id, &format!("{id}@example.com")),
            &[],
        )
    });
    let mut receipts = BTreeMap::new();
    for (id, r) in ids.iter().zip(&first) {
        assert_eq!(r.status, 202, "{id}: {}", r.body);
        let b = r.json();
        assert_eq!(b["status"], "accepted");
        assert_eq!(b["eventId"], id.as_str());
        assert!(
            b["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{b}"
        );
        let receipt = b["receipt"].as_str().unwrap().to_string();
        assert!(receipt.starts_with(&format!("rcpt-{topic}-")), "{receipt}");
        receipts.insert(id.clone(), receipt);
    }
    let distinct: BTreeSet<&String> = receipts.values().collect();
    assert_eq!(distinct.len(), 1_000, "one record each");

    // Retries: 100 ids again, twice at once each — each answered with the
    // first receipt, writing nothing.
    let retried: Vec<&String> = ids.iter().step_by(10).collect();
    let twice: Vec<&String> = retried.iter().flat_map(|id| [*id, *id]).collect();
    let again = parallel(&twice, |id| {
        post(
            a,
            &event(&event_type, id, &format!("{id}@example.com")),
            &[],
        )
    });
    for (id, r) in twice.iter().zip(&again) {
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.json()["receipt"].as_str(), Some(receipts[*id].as_str()));
    }
    // Concurrent first attempts with one key: written once.
    let same: Vec<usize> = (0..8).collect();
    let racing = parallel(&same, |_| {
        post(
            a,
            &event(&event_type, "evt-race", "race@example.com"),
            &[("Idempotency-Key", "race-key")],
        )
    });
    let race_receipts: BTreeSet<String> = racing
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{}", r.body);
            r.json()["receipt"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(race_receipts.len(), 1, "{race_receipts:?}");
    // The key again with the event stamped again (timestamp, source,
    // metadata): a retry, answered with the first receipt.
    let race: Value =
        serde_json::from_str(&event(&event_type, "evt-race", "race@example.com")).unwrap();
    let mut restamped = race.clone();
    restamped["timestamp"] = json!("2023-05-20T13:46:00.250+01:00");
    restamped["source"] = json!("user-service-retry");
    restamped["metadata"] = json!({"correlationId": "corr-retry"});
    let r = post(
        a,
        &restamped.to_string(),
        &[("Idempotency-Key", "race-key")],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(race_receipts.contains(r.json()["receipt"].as_str().unwrap()));
    // The key again with another event — one field of its data, or only
    // its id, changed: a conflict, not a silent drop.
    let mut other_data = race.clone();
    other_data["data"]["email"] = json!("other@example.com");
    let mut other_id = race.clone();
    other_id["id"] = json!("evt-other");
    for other in [other_data, other_id] {
        let b = assert_refusal(
            &post(a, &other.to_string(), &[("Idempotency-Key", "race-key")]),
            409,
            "IDEMPOTENCY_CONFLICT",
        );
        assert_eq!(b["details"]["field"], "Idempotency-Key");
    }
    // An id counts per event type: another type's event with a used id is
    // a new event (to the default topic, here the same one). Its type is
    // registered just before: the ingress loads it when asked for it.
    let other_type = format!("user.deleted.{app}");
    register(broker.bootstrap(), &other_type);
    let r = post(a, &event(&other_type, "evt-0000", "x@example.com"), &[]);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_ne!(
        r.json()["receipt"].as_str(),
        Some(receipts["evt-0000"].as_str())
    );

    // 100 invalid events: refused with the contract's shape, naming the field.
    let bad_ids: Vec<String> = (0..100).map(|i| format!("bad-{i:03}")).collect();
    let refused = parallel(&bad_ids, |id| {
        post(a, &event(&event_type, id, "not-an-email"), &[])
    });
    for r in &refused {
        let b = assert_refusal(r, 400, "SCHEMA_VALIDATION_ERROR");
        assert_eq!(b["details"]["field"], "data.email", "{b}");
        assert_eq!(
            b["details"]["error"], "must be a valid email address",
            "{b}"
        );
    }
    // Retrying an invalid one is refused again.
    assert_refusal(
        &post(a, &event(&event_type, "bad-000", "still-wrong"), &[]),
        400,
        "SCHEMA_VALIDATION_ERROR",
    );

    // The other refusals, each with its own code.
    assert_refusal(&post(a, "{not json", &[]), 400, "INVALID_JSON");
    let no_id = json!({"eventType": event_type, "source": "s", "timestamp": "2023-05-20T13:45:30Z", "data": {}});
    let b = assert_refusal(&post(a, &no_id.to_string(), &[]), 400, "INVALID_EVENT");
    assert_eq!(b["details"]["field"], "id");
    let bad_time = json!({"eventType": event_type, "source": "s", "id": "x", "timestamp": "yesterday", "data": {}});
    let b = assert_refusal(&post(a, &bad_time.to_string(), &[]), 400, "INVALID_EVENT");
    assert_eq!(b["details"]["field"], "timestamp");
    assert_refusal(
        &post(a, &event("nobody.defined.this", "u-1", "a@b"), &[]),
        404,
        "UNKNOWN_EVENT_TYPE",
    );
    let huge = event(&event_type, "huge", &format!("{}@x", "a".repeat(5_000)));
    assert_refusal(&post(a, &huge, &[]), 413, "PAYLOAD_TOO_LARGE");
    let r = send(
        a,
        "POST",
        "/v1/events",
        &[("Content-Type", "text/plain")],
        &event(&event_type, "text", "t@x"),
    );
    assert_refusal(&r, 415, "UNSUPPORTED_MEDIA_TYPE");

    // A second instance of the same application answers a retry of an
    // event the first accepted with the first answer, once it has read
    // the shared claims (1,002 of them).
    let (mut two, b) = start_ingress(
        broker.bootstrap(),
        &app,
        &event_type,
        &topic,
        dir.path(),
        "two.log",
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(b, "weir_ingress_claims_read_total") < 1_002 {
        assert!(Instant::now() < deadline, "{}", two.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    for id in ids.iter().skip(5).step_by(50) {
        let r = post(
            b,
            &event(&event_type, id, &format!("{id}@example.com")),
            &[],
        );
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.json()["receipt"].as_str(), Some(receipts[id].as_str()));
    }
    assert_eq!(outcome(b, "duplicate"), 20);
    assert_eq!(outcome(b, "accepted"), 0);

    // The topic, read_committed: every valid event exactly once, keyed by
    // its id, with its timestamp and the correlation and trace headers.
    let mut reader = TopicReader::new(broker.bootstrap(), &[&topic], "read_committed").unwrap();
    assert!(reader.read_until(Duration::from_secs(60), |r| r.len() >= 1_002));
    reader.read_for(Duration::from_secs(2));
    let records = reader.records();
    assert_eq!(
        records.len(),
        1_002,
        "1,000 events, the raced one and the other type's"
    );
    let mut seen = BTreeMap::new();
    let mut other = 0;
    for r in records {
        let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        if v["eventType"] == other_type.as_str() {
            other += 1;
            continue;
        }
        assert_eq!(r.key.as_deref(), Some(id.as_bytes()));
        assert_eq!(r.timestamp, 1_684_590_330_000);
        assert_eq!(
            r.headers.get_str("correlation-id"),
            Some(format!("corr-{id}").as_str())
        );
        assert!(r
            .headers
            .get_str("traceparent")
            .is_some_and(|t| t.len() == 55 && t.starts_with("00-")));
        *seen.entry(id).or_insert(0) += 1;
    }
    assert_eq!(other, 1);
    assert!(seen.values().all(|&n| n == 1), "duplicates written");
    assert_eq!(seen.len(), 1_001);
    assert!(ids.iter().all(|id| seen.contains_key(id)));
    assert!(!seen.keys().any(|id| id.starts_with("bad-")));

    // Every outcome counted.
    assert_eq!(outcome(a, "accepted"), 1_002);
    assert_eq!(outcome(a, "duplicate"), 200 + 7 + 1);
    assert_eq!(outcome(a, "conflict"), 2);
    assert_eq!(outcome(a, "schema_invalid"), 101);
    assert_eq!(outcome(a, "malformed_json"), 1);
    assert_eq!(outcome(a, "invalid_event"), 2);
    assert_eq!(outcome(a, "unknown_type"), 1);
    assert_eq!(outcome(a, "too_large"), 1);
    assert_eq!(outcome(a, "unsupported_media_type"), 1);
    two.stop();
    one.stop();
}

#[test]
fn no_event_is_accepted_while_the_broker_is_stopped() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start_on_free_loopback(&data.path().join("broker")).unwrap();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("ingress-down");
    let event_type = format!("user.created.{app}");
    let topic = format!("{app}-users");
    create_topics(&bootstrap, &[(&topic, 1)]).unwrap();
    register(&bootstrap, &event_type);
    let dir = tempfile::tempdir().unwrap();
    let (mut p, a) = start_ingress(
        &bootstrap,
        &app,
        &event_type,
        &topic,
        dir.path(),
        "ingress.log",
        &[
            ("WEIR_INGRESS_PRODUCE_TIMEOUT_MS", "3000"),
            ("WEIR_INGRESS_TOKEN", "s3cret"),
        ],
    );
    // A second instance, with a long produce timeout.
    let (mut q, b) = start_ingress(
        &bootstrap,
        &app,
        &event_type,
        &topic,
        dir.path(),
        "ingress-patient.log",
        &[
            ("WEIR_INGRESS_PRODUCE_TIMEOUT_MS", "60000"),
            ("WEIR_INGRESS_TOKEN", "s3cret"),
        ],
    );
    let auth = [("Authorization", "Bearer s3cret")];
    assert_refusal(
        &post(a, &event(&event_type, "e-0", "a@b"), &[]),
        401,
        "UNAUTHORIZED",
    );
    let r = post(a, &event(&event_type, "e-0", "a@b"), &auth);
    assert_eq!(r.status, 202, "{}", r.body);

    broker.stop();
    let ids: Vec<String> = (1..=16).map(|i| format!("e-{i}")).collect();
    let answers = parallel(&ids, |id| post(a, &event(&event_type, id, "a@b"), &auth));
    for r in &answers {
        let b = assert_refusal(r, 503, "BROKER_UNAVAILABLE");
        assert_eq!(
            r.headers.get("retry-after").map(String::as_str),
            Some("5"),
            "{b}"
        );
    }
    // A retry of a refused id is refused too (it was never accepted).
    assert_refusal(
        &post(a, &event(&event_type, "e-1", "a@b"), &auth),
        503,
        "BROKER_UNAVAILABLE",
    );
    assert_eq!(outcome(a, "accepted"), 1);
    assert_eq!(outcome(a, "unavailable"), 17);

    // A client of the second instance gives up after 1 s while its event
    // waits for the broker, and hangs up.
    let hung = event(&event_type, "e-hung", "a@b");
    assert_no_answer_in(b, &hung, Duration::from_secs(1));

    // The broker comes back with its data: the write the client left goes
    // on and is recorded as accepted; the client's retry gets that answer
    // without a second write.
    broker.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while outcome(b, "accepted") < 1 {
        assert!(
            Instant::now() < deadline,
            "the hung-up request's write was not completed:\n{}",
            q.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = post(b, &hung, &auth);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(outcome(b, "duplicate"), 1);
    assert_eq!(outcome(b, "accepted"), 1);
    // The first instance accepts again once its producer reconnects; a
    // refused id is a new write.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tries = 0;
    loop {
        tries += 1;
        let r = post(a, &event(&event_type, "e-1", "a@b"), &auth);
        if r.status == 202 {
            break;
        }
        assert_refusal(&r, 503, "BROKER_UNAVAILABLE");
        assert!(
            Instant::now() < deadline,
            "no 202 after the broker came back:\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200)); // a client's back-off
    }

    // None of the refused events was written while the broker was away,
    // or after it came back; e-0 and e-hung are there once. (A 503 after
    // the broker is back may hide a write whose acknowledgement was lost,
    // so e-1 is there at least once, at most once per try.)
    let end = high_watermark(&bootstrap, &topic);
    let mut reader = TopicReader::new(&bootstrap, &[&topic], "read_committed").unwrap();
    assert!(reader.read_until(Duration::from_secs(30), |r| r.len() as i64 >= end));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in reader.records() {
        *counts
            .entry(String::from_utf8(r.key.clone().unwrap()).unwrap())
            .or_default() += 1;
    }
    let e1 = counts.remove("e-1").unwrap_or(0);
    assert!((1..=tries).contains(&e1), "e-1 {e1} times in {tries} tries");
    assert_eq!(
        counts,
        BTreeMap::from([("e-0".to_string(), 1), ("e-hung".into(), 1)]),
        "{topic} holds refused events"
    );
    q.stop();
    p.stop();
}

/// Sends `body` to `addr`'s `POST /v1/events` with the token and asserts
/// that no answer comes within `patience`; then hangs up.
fn assert_no_answer_in(addr: SocketAddr, body: &str, patience: Duration) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s.set_read_timeout(Some(patience)).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!(
            "an answer (or a close) while the broker was stopped: {other:?} {:?}",
            String::from_utf8_lossy(&buf)
        ),
    }
    drop(s);
}

/// The end offset of partition 0 of `topic` (every record and no
/// transaction markers: ingress does not write transactionally).
fn high_watermark(bootstrap: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    c.fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap()
        .1
}

#[test]
fn weir_publish_goes_through_an_ingress_or_straight_to_kafka() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("publish");
    let event_type = format!("user.created.{app}");
    let topic = format!("{app}-users");
    create_topics(broker.bootstrap(), &[(&topic, 1)]).unwrap();
    register(broker.bootstrap(), &event_type);
    let dir = tempfile::tempdir().unwrap();
    let (mut p, a) = start_ingress(
        broker.bootstrap(),
        &app,
        &event_type,
        &topic,
        dir.path(),
        "ingress.log",
        &[],
    );
    let publish = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(binary("weir", "weir-cli"))
            .arg("publish")
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .output()
            .expect("run weir publish");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let url = format!("http://{a}");
    let data = r#"{"userId":"u-1","email":"u1@example.com"}"#;
    let (ok, out, err) = publish(
        &[
            "--ingress",
            &url,
            "--type",
            &event_type,
            "--id",
            "via-http",
            "--data",
            data,
            "--correlation-id",
            "c-1",
        ],
        &[],
    );
    assert!(ok, "{out}{err}");
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["eventId"], "via-http");

    // Straight to Kafka: the same checks, here from a file of events.
    let file = dir.path().join("events.jsonl");
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n",
            event(&event_type, "via-kafka", "k@example.com"),
            event(&event_type, "refused", "no-at-sign")
        ),
    )
    .unwrap();
    let (ok, out, err) = publish(
        &["--file", file.to_str().unwrap()],
        &[
            ("WEIR_APPLICATION_ID", &app),
            ("WEIR_BOOTSTRAP_SERVERS", broker.bootstrap()),
            ("WEIR_INGRESS_TOPICS", &format!("{event_type}={topic}")),
        ],
    );
    assert!(!ok, "one event was refused: {out}{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["status"], "accepted");
    assert_eq!(lines[1]["errorCode"], "SCHEMA_VALIDATION_ERROR");
    assert!(err.contains("1 of 2"), "{err}");

    let mut reader = TopicReader::new(broker.bootstrap(), &[&topic], "read_committed").unwrap();
    assert!(reader.read_until(Duration::from_secs(30), |r| r.len() >= 2));
    reader.read_for(Duration::from_secs(1));
    let ids: BTreeSet<String> = reader
        .records()
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap()).into_owned())
        .collect();
    assert_eq!(ids, ["via-http", "via-kafka"].map(String::from).into());
    let via_http = reader
        .records()
        .iter()
        .find(|r| r.key.as_deref() == Some(b"via-http"))
        .unwrap();
    assert_eq!(via_http.headers.get_str("correlation-id"), Some("c-1"));
    p.stop();
}
