//! event-enricher in the TopologyTestDriver: tiers joined by customer,
//! updates and deletions of the table, and what goes to the dead-letter
//! topic.

use event_enricher::{topology, CUSTOMERS, ENRICHED, EVENTS, NO_TIER};
use serde_json::{json, Value};
use weir::prelude::*;
use weir_testkit::TopologyTestDriver;

fn enriched(d: &TopologyTestDriver) -> Vec<(String, Value)> {
    d.output_topic(ENRICHED, Str, Json::<Value>::new())
        .read_key_values_to_list()
}

#[test]
fn events_carry_the_tier_current_at_their_turn() {
    let d = TopologyTestDriver::new(topology());
    let customers = d.input_topic(CUSTOMERS, Str, Bytes);
    let events = d.input_topic(EVENTS, Bytes, Bytes);
    customers.pipe_input("ann".into(), br#"{"tier":"gold"}"#.to_vec());
    events.pipe_input(
        b"e1".to_vec(),
        br#"{"customer":"ann","amount":5,"id":"e1"}"#.to_vec(),
    );
    events.pipe_input(b"e2".to_vec(), br#"{"customer":"bob","id":"e2"}"#.to_vec());
    customers.pipe_input("ann".into(), br#"{"tier":"silver"}"#.to_vec());
    events.pipe_input(b"e3".to_vec(), br#"{"id":"e3","customer":"ann"}"#.to_vec());
    assert_eq!(
        enriched(&d),
        vec![
            (
                "ann".into(),
                json!({"customer":"ann","amount":5,"id":"e1","tier":"gold"})
            ),
            (
                "bob".into(),
                json!({"customer":"bob","id":"e2","tier":NO_TIER})
            ),
            (
                "ann".into(),
                json!({"customer":"ann","id":"e3","tier":"silver"})
            ),
        ]
    );
    assert!(d.dead_letters().is_empty());
}

#[test]
fn a_tombstone_removes_the_customer() {
    let d = TopologyTestDriver::new(topology());
    let customers = d.input_topic(CUSTOMERS, Str, Bytes);
    customers.pipe_input("ann".into(), br#"{"tier":"gold"}"#.to_vec());
    customers.pipe_raw(Some(b"ann".to_vec()), None, 0);
    d.input_topic(EVENTS, Bytes, Bytes)
        .pipe_input(b"e1".to_vec(), br#"{"customer":"ann"}"#.to_vec());
    assert_eq!(
        enriched(&d),
        vec![("ann".into(), json!({"customer":"ann","tier":NO_TIER}))]
    );
}

#[test]
fn events_without_a_string_customer_and_bad_tiers_are_dead_lettered() {
    let d = TopologyTestDriver::new(topology());
    let events = d.input_topic(EVENTS, Bytes, Bytes);
    let bad = [
        "not json",
        r#"["ann"]"#,
        r#"{"amount":5}"#,
        r#"{"customer":7}"#,
    ];
    for b in bad {
        events.pipe_input(b"k".to_vec(), b.as_bytes().to_vec());
    }
    d.input_topic(CUSTOMERS, Str, Bytes)
        .pipe_input("ann".into(), br#"{"level":"gold"}"#.to_vec());
    let dead = d.dead_letters();
    assert_eq!(
        dead.len(),
        bad.len() + 1,
        "each bad record dead-lettered once"
    );
    for r in &dead {
        assert_eq!(r.headers.get_str("weir.error.kind"), Some("decode"));
    }
    assert!(enriched(&d).is_empty());
}
