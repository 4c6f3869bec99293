//! The operators' dashboard (`GET /dashboard`) in headless Chromium against
//! a running customer-totals instance: the numbers it shows are those of
//! `/metrics`, the topology is drawn, a key lookup answers through the
//! page, a replay without the token is refused, and a dead letter
//! replayed from the page leaves the dead-letter view and arrives in its
//! source topic. The instance serves ingress too: an event posted to it is
//! counted on the page. A screenshot is saved in the target directory's
//! `tmp/`.

mod browser;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use browser::Browser;
use weir_testkit::{create_topics, publish, TestBroker, TopicReader};
use weir_tests::http::get;
use weir_tests::{binary, listening_addr, TopologyProcess};

/// Unlabelled series and `weir_node_records_in_total` by node, from
/// `/metrics`.
fn metrics(addr: SocketAddr) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let text = get(addr, "/metrics").body;
    let (mut plain, mut nodes) = (BTreeMap::new(), BTreeMap::new());
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        if let Some(node) = series
            .strip_prefix("weir_node_records_in_total{node=\"")
            .and_then(|r| r.strip_suffix("\"}"))
        {
            nodes.insert(node.to_string(), v);
        } else if !series.contains('{') {
            plain.insert(series.to_string(), v);
        }
    }
    (plain, nodes)
}

#[test]
fn the_dashboard_shows_the_metrics_and_replays_a_dead_letter() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("dashboard");
    let (events, totals) = (format!("{app}-events"), format!("{app}-totals"));
    let ingress_topic = format!("{app}-published");
    create_topics(broker.bootstrap(), &[(&events, 2), (&ingress_topic, 1)]).unwrap();
    let event_type = format!("note.posted.{app}");
    weir::runtime::schema_registry(
        &weir::Config::load(
            &[
                ("application_id".to_string(), "dashboard-defs".into()),
                ("bootstrap_servers".to_string(), broker.bootstrap().into()),
            ]
            .into(),
            None,
            Vec::<(String, String)>::new(),
        )
        .unwrap(),
    )
    .unwrap()
    .register(
        weir::schemas::NewDefinition::new(&event_type, serde_json::json!({"type": "object"})),
        weir::schemas::Compatibility::None,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let env: Vec<(String, String)> = [
        ("WEIR_APPLICATION_ID", app.as_str()),
        ("WEIR_BOOTSTRAP_SERVERS", broker.bootstrap()),
        ("WEIR_STATE_DIR", state.as_str()),
        ("WEIR_AUTO_CREATE_TOPICS", "true"),
        ("WEIR_TOPICS__EVENTS", events.as_str()),
        ("WEIR_TOPICS__CUSTOMER_TOTALS", totals.as_str()),
        ("WEIR_ADMIN_LISTEN", "127.0.0.1:0"),
        ("WEIR_ADMIN_TOKEN", "op-token"),
        // Ingress inside the topology's admin endpoint.
        ("WEIR_INGRESS_ENABLED", "true"),
        ("WEIR_INGRESS_DEFAULT_TOPIC", ingress_topic.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut p = TopologyProcess::spawn(
        &binary("customer-totals", "customer-totals"),
        &["run"],
        &env,
        &dir.path().join("log"),
    );
    assert!(
        p.wait_for_log("admin endpoint listening", Duration::from_secs(60)),
        "{}",
        p.log_text()
    );
    let addr = listening_addr(&p.log_text()).unwrap();

    // 200 purchases over 10 customers, and 5 that do not decode.
    let mut records: Vec<(String, String)> = (0..200)
        .map(|i| {
            let c = format!("cust-{}", i % 10);
            (c.clone(), format!(r#"{{"customer":"{c}","amount":{i}}}"#))
        })
        .collect();
    records.extend((0..5).map(|i| (format!("bad-{i}"), format!("not json {i}"))));
    publish(
        broker.bootstrap(),
        &events,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    // Until every record went through both sub-topologies (the count has
    // stopped moving) and the five dead letters are listed.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = -1.0;
    let consumed = loop {
        let (m, _) = metrics(addr);
        let dlq = get(addr, "/dlq?pending=true");
        let consumed = m.get("weir_records_consumed_total").copied().unwrap_or(0.0);
        let pending = if dlq.status == 200 {
            dlq.json()["pending"].as_u64().unwrap_or(0)
        } else {
            0
        };
        if consumed >= 405.0 && consumed == last && pending == 5 {
            break consumed;
        }
        last = consumed;
        assert!(
            Instant::now() < deadline,
            "consumed {consumed}, pending {pending}:\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(1_000));
    };

    // One event through the instance's own ingress.
    let posted = weir_tests::http::send(
        addr,
        "POST",
        "/v1/events",
        &[("Content-Type", "application/json")],
        &serde_json::json!({"eventType": event_type, "source": "ops", "id": "n-1",
            "timestamp": "2026-12-02T10:00:00Z", "data": {"text": "hello"}})
        .to_string(),
    );
    assert_eq!(posted.status, 202, "{}", posted.body);

    let mut page = Browser::launch(&format!("http://{addr}/dashboard?refresh=700"));
    page.wait_for(
        &format!("document.querySelector('[data-metric=\"weir_records_consumed_total\"]')?.dataset.value === '{consumed}'"),
        Duration::from_secs(30),
    );

    // The numbers shown are /metrics' (the stable ones: nothing arrives now).
    let shown = page.eval(
        "Object.fromEntries([...document.querySelectorAll('[data-metric]')].map(e => [e.dataset.metric, Number(e.textContent)]))",
    );
    let shown_nodes = page.eval(
        "Object.fromEntries([...document.querySelectorAll('[data-node-in]')].map(e => [e.dataset.nodeIn, Number(e.textContent)]))",
    );
    let (m, nodes) = metrics(addr);
    for name in [
        "weir_records_consumed_total",
        "weir_records_produced_total",
        "weir_records_dead_lettered_total",
        "weir_queue_depth",
        "weir_tasks_restoring",
        "weir_event_delivery_success_rate",
    ] {
        assert_eq!(
            shown[name].as_f64(),
            m.get(name).copied(),
            "{name}: page {shown}"
        );
    }
    assert_eq!(shown["weir_records_dead_lettered_total"], 5.0);
    assert_eq!(shown["weir_ingress_requests_total"], 1.0, "{shown}");
    assert!(!nodes.is_empty());
    for (node, n) in &nodes {
        assert_eq!(
            shown_nodes[node].as_f64(),
            Some(*n),
            "{node}: page {shown_nodes}"
        );
    }
    // The topology: every node of /topology is drawn; the Mermaid source is there.
    let drawn = page.wait_for(
        "document.querySelectorAll('[data-graph-node]').length",
        Duration::from_secs(10),
    );
    let topology = get(addr, "/topology").json();
    let node_names: Vec<String> = topology["subtopologies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|st| st["nodes"].as_array().unwrap().iter())
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        drawn.as_u64().unwrap() as usize > node_names.len(),
        "nodes and topics"
    );
    for n in &node_names {
        let q = format!(
            "!!document.querySelector('[data-graph-node=\"{}\"]')",
            n.replace('"', "\\\"")
        );
        assert_eq!(page.eval(&q), true, "{n} drawn");
    }
    assert!(page
        .eval("document.getElementById('mermaid').textContent")
        .as_str()
        .unwrap()
        .starts_with("flowchart LR"));
    // The lag table has the input's two partitions.
    page.wait_for(
        &format!("document.querySelector('[data-lag=\"{events}/1\"]')?.textContent === '0'"),
        Duration::from_secs(10),
    );

    // A key lookup through the page (answered by the owner: here, this one).
    let direct = get(addr, "/stores/customer-totals/keys/cust-3").json();
    page.eval(
        "document.getElementById('store').value = 'customer-totals';
         document.getElementById('key').value = 'cust-3';
         document.getElementById('lookup').requestSubmit(); true",
    );
    let looked = page.wait_for(
        "document.getElementById('lookup-result').dataset.status === '200' && document.getElementById('lookup-result').textContent",
        Duration::from_secs(10),
    );
    let looked = looked.as_str().unwrap();
    assert!(
        looked.contains(&format!("\"count\": {}", direct["value"]["count"])),
        "{looked} vs {direct}"
    );
    assert!(
        looked.contains(direct["served_by"].as_str().unwrap()),
        "{looked}"
    );

    // The dead letters waiting, with their reasons.
    page.wait_for(
        "document.querySelectorAll('[data-dead-letter]').length === 5",
        Duration::from_secs(10),
    );
    let first = page.eval("document.querySelector('[data-dead-letter]').dataset.deadLetter");
    let first = first.as_str().unwrap().to_string();
    let reason =
        page.eval("document.querySelector('[data-dead-letter] td:nth-child(3)').textContent");
    assert!(!reason.as_str().unwrap().is_empty());
    // Without the token: refused, and the letter stays.
    page.eval(&format!(
        "document.querySelector('[data-replay=\"{first}\"]').click(); true"
    ));
    page.wait_for(
        "document.getElementById('replay-status').dataset.replayStatus === '401'",
        Duration::from_secs(30),
    );
    assert_eq!(
        page.eval("document.querySelectorAll('[data-dead-letter]').length"),
        5
    );
    // With it: replayed, gone from the view.
    page.eval(
        "const t = document.getElementById('token'); t.value = 'op-token';
         t.dispatchEvent(new Event('change')); true",
    );
    page.eval(&format!(
        "document.querySelector('[data-replay=\"{first}\"]').click(); true"
    ));
    page.wait_for(
        "document.getElementById('replay-status').dataset.replayStatus === '200'",
        Duration::from_secs(60),
    );
    page.wait_for(
        &format!("!document.querySelector('[data-dead-letter=\"{first}\"]')"),
        Duration::from_secs(30),
    );
    // It arrived in its source topic, saying where it came from.
    let dlq = get(addr, "/dlq").json();
    let dlq_topic = dlq["topic"].as_str().unwrap().to_string();
    let mut reader = TopicReader::new(broker.bootstrap(), &[&events], "read_committed").unwrap();
    let from = format!("{dlq_topic}/{first}");
    let arrived = reader.read_until(Duration::from_secs(30), |rs| {
        rs.iter()
            .any(|r| r.headers.get_str("weir.replayed_from") == Some(from.as_str()))
    });
    assert!(arrived, "no record replayed from {from} in {events}");
    reader.read_for(Duration::from_secs(2));
    let replayed: Vec<_> = reader
        .records()
        .iter()
        .filter(|r| r.headers.get_str("weir.replayed_from") == Some(from.as_str()))
        .cloned()
        .collect();
    assert_eq!(replayed.len(), 1, "exactly once");
    // A replay of everything under the default group leaves the marked
    // letter out.
    let all = weir_tests::http::send(
        addr,
        "POST",
        "/dlq/replay",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer op-token"),
        ],
        "{}",
    );
    assert_eq!(all.status, 200, "{}", all.body);
    let all = all.json();
    assert_eq!(all["already_replayed"], 1, "{all}");
    assert!(all["replayed"].as_u64().unwrap() >= 4, "{all}");
    reader.read_for(Duration::from_secs(2));
    assert_eq!(
        reader
            .records()
            .iter()
            .filter(|r| r.headers.get_str("weir.replayed_from") == Some(from.as_str()))
            .count(),
        1,
        "not written again"
    );
    let entry = dlq["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| format!("{}/{}", e["partition"], e["offset"]) == first)
        .unwrap()
        .clone();
    assert_eq!(entry["replayed_to"], events.as_str(), "{entry}");
    assert_eq!(
        replayed[0].value.as_deref(),
        entry["record"]["value"].as_str().map(str::as_bytes)
    );

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    page.screenshot(&shot);
    eprintln!("dashboard screenshot: {}", shot.display());
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    drop(page);
    assert!(p.stop().success(), "{}", p.log_text());
}
