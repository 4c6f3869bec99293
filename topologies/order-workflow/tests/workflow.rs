//! The order-workflow contract through the TopologyTestDriver: outcomes,
//! their keys, values and timestamps, the parameters, and dead letters.

use order_workflow::{topology, OrderOutcome, ORDERS, OUTCOMES, PAYMENTS};
use weir::core::{Json, Str};
use weir_testkit::TopologyTestDriver;

fn driver(timeout_ms: u64, grace_ms: u64) -> TopologyTestDriver {
    let t = topology();
    t.set_param("timeout_ms", &timeout_ms.to_string()).unwrap();
    t.set_param("grace_ms", &grace_ms.to_string()).unwrap();
    TopologyTestDriver::new(t)
}

fn order(d: &TopologyTestDriver, id: &str, amount: f64, ts: i64) {
    let v = serde_json::json!({"id": id, "amount": amount, "customer": "c-1"});
    d.input_topic(ORDERS, Str, Json::<serde_json::Value>::new())
        .pipe_input_at(id.into(), v, ts);
}

fn payment(d: &TopologyTestDriver, id: &str, amount: serde_json::Value, ts: i64) {
    let v = serde_json::json!({"order_id": id, "amount": amount});
    d.input_topic(PAYMENTS, Str, Json::<serde_json::Value>::new())
        .pipe_input_at(id.into(), v, ts);
}

fn outcomes(d: &TopologyTestDriver) -> Vec<(String, OrderOutcome, i64)> {
    d.read_raw(OUTCOMES)
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.unwrap()).unwrap(),
                serde_json::from_slice(&r.value.unwrap()).unwrap(),
                r.timestamp,
            )
        })
        .collect()
}

fn outcome(id: &str, outcome: &str, amount: f64) -> OrderOutcome {
    OrderOutcome {
        order_id: id.into(),
        outcome: outcome.into(),
        amount,
    }
}

#[test]
fn a_payment_in_time_confirms_at_its_timestamp_and_none_expires() {
    let d = driver(1_000, 0);
    order(&d, "o1", 25.0, 10_000);
    order(&d, "o2", 30.0, 10_100);
    payment(&d, "o1", serde_json::json!(25), 10_500); // 25 == 25.0: numbers
    payment(&d, "o2", serde_json::json!(31.0), 10_600); // wrong amount
    order(&d, "late", 1.0, 20_000); // moves stream time past both deadlines
    assert_eq!(
        outcomes(&d),
        vec![
            ("o1".into(), outcome("o1", "confirmed", 25.0), 10_500),
            ("o2".into(), outcome("o2", "expired", 30.0), 11_100),
        ]
    );
}

#[test]
fn a_payment_before_its_order_confirms_it() {
    let d = driver(1_000, 0);
    payment(&d, "o1", serde_json::json!(5), 10_500);
    order(&d, "o1", 5.0, 10_000);
    assert_eq!(
        outcomes(&d),
        vec![("o1".into(), outcome("o1", "confirmed", 5.0), 10_500)]
    );
}

#[test]
fn a_late_payment_finds_an_expired_order_unless_the_grace_covers_it() {
    for (grace, want) in [(0, "expired"), (5_000, "confirmed")] {
        let d = driver(1_000, grace);
        order(&d, "o1", 5.0, 10_000);
        order(&d, "other", 1.0, 13_000); // stream time 13_000
        payment(&d, "o1", serde_json::json!(5), 10_900); // in time by timestamp
        order(&d, "end", 1.0, 100_000);
        let got = outcomes(&d);
        let o1: Vec<_> = got.iter().filter(|(k, _, _)| k == "o1").collect();
        assert_eq!(o1.len(), 1, "grace {grace}: {got:?}");
        assert_eq!(o1[0].1.outcome, want, "grace {grace}");
    }
}

#[test]
fn exactly_one_outcome_per_order_and_the_default_timeout_is_15_minutes() {
    let d = TopologyTestDriver::new(topology());
    order(&d, "o1", 5.0, 0);
    payment(&d, "o1", serde_json::json!(5), 900_000);
    payment(&d, "o1", serde_json::json!(5), 900_001); // a second payment: no outcome
    order(&d, "o2", 5.0, 1_000_000);
    order(&d, "end", 1.0, 10_000_000);
    let got = outcomes(&d);
    assert_eq!(
        got[0],
        ("o1".into(), outcome("o1", "confirmed", 5.0), 900_000)
    );
    assert_eq!(got.iter().filter(|(k, _, _)| k == "o1").count(), 1);
    assert_eq!(
        got[1],
        ("o2".into(), outcome("o2", "expired", 5.0), 1_900_000)
    );
}

#[test]
fn undecodable_records_on_either_input_are_dead_lettered() {
    let d = driver(1_000, 0);
    let raw = |topic: &str, v: &[u8]| {
        d.pipe_raw(weir::core::Record {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            key: Some(b"o1".to_vec()),
            value: Some(v.to_vec()),
            headers: Default::default(),
            timestamp: 1,
        })
    };
    raw(ORDERS, b"not json");
    raw(ORDERS, br#"{"id": "o1"}"#); // no amount
    raw(PAYMENTS, br#"["o1", 5]"#); // not an object
    raw(PAYMENTS, br#"{"order_id": "o1", "amount": "5"}"#); // amount not a number
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 4);
    assert!(dead
        .iter()
        .all(|r| r.headers.get_str("weir.error.kind") == Some("decode")));
    assert!(outcomes(&d).is_empty());
}
