//! The event-router's routing, through the TopologyTestDriver.

use event_router::{topology, Event, AUDIT, EVENTS, ORDERS, OTHER, PAYMENTS};
use proptest::prelude::*;
use weir::core::dlq_headers;
use weir::{Json, Str};
use weir_testkit::TopologyTestDriver;

fn event(id: &str, kind: &str, amount: f64) -> Event {
    serde_json::from_value(serde_json::json!({
        "id": id, "type": kind, "region": "eu-west", "amount": amount, "customer": "c-1"
    }))
    .unwrap()
}

#[test]
fn routes_by_type_and_audits_every_kept_event() {
    let d = TopologyTestDriver::new(topology());
    let input = d.input_topic(EVENTS, Str, Json::<Event>::new());
    input.pipe_input("1".into(), event("1", "order", 10.0));
    input.pipe_input("2".into(), event("2", "payment", 5.5));
    input.pipe_input("3".into(), event("3", "refund", 1.0));
    input.pipe_input("4".into(), event("4", "order", 0.0));
    input.pipe_input("5".into(), event("5", "payment", -3.0));
    let ids = |t: &str| -> Vec<String> {
        d.output_topic(t, Str, Json::<Event>::new())
            .read_values_to_list()
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(ids(ORDERS), vec!["1"]);
    assert_eq!(ids(PAYMENTS), vec!["2"]);
    assert_eq!(ids(OTHER), vec!["3"]);
    assert_eq!(ids(AUDIT), vec!["1", "2", "3"]);
    assert!(d.dead_letters().is_empty());
}

#[test]
fn enriches_and_keeps_unknown_fields() {
    let d = TopologyTestDriver::new(topology());
    d.input_topic(EVENTS, Str, Json::<Event>::new())
        .pipe_input(String::new(), event("7", "order", 2.0));
    let out = d
        .output_topic(ORDERS, Str, Json::<serde_json::Value>::new())
        .read_key_values_to_list();
    assert_eq!(out.len(), 1);
    let (key, v) = &out[0];
    assert_eq!(key, "7", "a missing key becomes the event id");
    assert_eq!(v["region"], "EU-WEST");
    assert_eq!(v["route"], "orders");
    assert_eq!(v["router"], "event-router");
    assert_eq!(v["customer"], "c-1");
}

#[test]
fn malformed_events_are_dead_lettered_with_the_reason() {
    let d = TopologyTestDriver::new(topology());
    let input = d.input_topic(EVENTS, Str, Json::<Event>::new());
    input.pipe_raw(Some(b"k".to_vec()), Some(b"{not json".to_vec()), 5);
    input.pipe_raw(
        Some(b"k".to_vec()),
        Some(br#"{"id":"x","amount":3}"#.to_vec()),
        6,
    );
    input.pipe_input("8".into(), event("8", "order", 1.0));
    let dlq = d.dead_letters();
    assert_eq!(dlq.len(), 2);
    assert_eq!(dlq[0].value.as_deref(), Some(&b"{not json"[..]));
    assert_eq!(
        dlq[0].headers.get_str(dlq_headers::ERROR_KIND),
        Some("decode")
    );
    assert_eq!(
        dlq[0].headers.get_str(dlq_headers::SOURCE_TOPIC),
        Some(EVENTS)
    );
    assert_eq!(
        dlq[0].headers.get_str(dlq_headers::SOURCE_OFFSET),
        Some("0")
    );
    assert!(dlq[1]
        .headers
        .get_str(dlq_headers::ERROR_MESSAGE)
        .unwrap()
        .contains("type"));
    assert_eq!(d.read_raw(ORDERS).len(), 1, "the partition moved on");
}

proptest! {
    /// Every kept event appears once in audit and once in exactly the topic
    /// its type routes to; dropped events appear nowhere.
    #[test]
    fn every_event_lands_exactly_once(events in proptest::collection::vec(
        (prop_oneof!["order", "payment", "refund", "shipment"], -5i32..20), 0..60)) {
        let d = TopologyTestDriver::new(topology());
        let input = d.input_topic(EVENTS, Str, Json::<Event>::new());
        for (i, (kind, amount)) in events.iter().enumerate() {
            input.pipe_input(i.to_string(), event(&i.to_string(), kind, f64::from(*amount)));
        }
        for topic in [ORDERS, PAYMENTS, OTHER, AUDIT] {
            let got: Vec<String> = d.output_topic(topic, Str, Json::<Event>::new())
                .read_values_to_list().into_iter().map(|e| e.id).collect();
            let want: Vec<String> = events.iter().enumerate()
                .filter(|(_, (k, a))| *a > 0 && (topic == AUDIT || event_router::route(k) == topic))
                .map(|(i, _)| i.to_string()).collect();
            prop_assert_eq!(got, want, "topic {}", topic);
        }
    }
}

#[test]
fn numeric_ids_are_routed_and_kept_as_numbers() {
    let d = TopologyTestDriver::new(topology());
    let input = d.input_topic(EVENTS, Str, Str);
    input.pipe_input(
        String::new(),
        r#"{"id": 42, "type": "order", "amount": 3}"#.into(),
    );
    input.pipe_input(
        String::new(),
        r#"{"id": "a-7", "type": "order", "amount": 3}"#.into(),
    );
    input.pipe_input(
        String::new(),
        r#"{"id": {"n": 1}, "type": "order", "amount": 3}"#.into(),
    );
    input.pipe_input(
        String::new(),
        r#"{"id": true, "type": "order", "amount": 3}"#.into(),
    );
    let out = d
        .output_topic(ORDERS, Str, Json::<serde_json::Value>::new())
        .read_key_values_to_list();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].0, "42", "the id is the key when the input has none");
    assert_eq!(
        out[0].1["id"],
        serde_json::json!(42),
        "written back as a number"
    );
    assert_eq!(out[1].1["id"], serde_json::json!("a-7"));
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 2, "an object or a boolean is no id");
    assert!(dead
        .iter()
        .all(|r| r.headers.get_str(dlq_headers::ERROR_KIND) == Some("decode")));
}
