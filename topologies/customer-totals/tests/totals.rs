//! customer-totals in the TopologyTestDriver: totals per customer against a
//! naive recount (property test), and what goes to the dead-letter topic.

use std::collections::BTreeMap;

use customer_totals::{topology, Totals, EVENTS, STORE, TOTALS};
use proptest::prelude::*;
use weir::prelude::*;
use weir_testkit::TopologyTestDriver;

fn pipe(d: &TopologyTestDriver, values: &[&str]) {
    let input = d.input_topic(EVENTS, Bytes, Bytes);
    for v in values {
        input.pipe_input(b"any-key".to_vec(), v.as_bytes().to_vec());
    }
}

#[test]
fn updates_carry_customer_count_and_total() {
    let d = TopologyTestDriver::new(topology());
    pipe(
        &d,
        &[
            r#"{"customer":"ann","amount":5,"note":"x"}"#,
            r#"{"customer":"bob","amount":-2.5}"#,
            r#"{"amount":0,"customer":"ann","nested":{"a":[1,2]}}"#,
        ],
    );
    let out = d.output_topic(TOTALS, Str, Json::<serde_json::Value>::new());
    let got = out.read_key_values_to_list();
    assert_eq!(
        got,
        vec![
            (
                "ann".into(),
                serde_json::json!({"customer":"ann","count":1,"total":5.0})
            ),
            (
                "bob".into(),
                serde_json::json!({"customer":"bob","count":1,"total":-2.5})
            ),
            (
                "ann".into(),
                serde_json::json!({"customer":"ann","count":2,"total":5.0})
            ),
        ]
    );
    assert!(d.dead_letters().is_empty());
}

#[test]
fn records_that_are_not_objects_with_customer_and_amount_are_dead_lettered() {
    let d = TopologyTestDriver::new(topology());
    let bad = [
        "not json",
        r#"["ann", 5]"#,
        r#"{"customer":"ann"}"#,
        r#"{"amount":5}"#,
        r#"{"customer":7,"amount":5}"#,
        r#"{"customer":"ann","amount":"5"}"#,
        "null",
    ];
    pipe(&d, &bad);
    pipe(&d, &[r#"{"customer":"ann","amount":1}"#]);
    let dead = d.dead_letters();
    assert_eq!(dead.len(), bad.len(), "each bad record dead-lettered once");
    for r in &dead {
        assert_eq!(r.headers.get_str("weir.error.kind"), Some("decode"));
    }
    let out = d
        .output_topic(TOTALS, Str, Json::<Totals>::new())
        .read_values_to_list();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].count, 1, "bad records are not counted");
}

proptest! {
    #[test]
    fn totals_equal_a_naive_recount(events in prop::collection::vec((0..5u8, -1000i64..1000), 1..200)) {
        let d = TopologyTestDriver::new(topology());
        let input = d.input_topic(EVENTS, Bytes, Bytes);
        let mut model: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        for (c, amount) in &events {
            let customer = format!("c{c}");
            let e = model.entry(customer.clone()).or_default();
            e.0 += 1;
            e.1 += *amount as f64;
            let v = serde_json::json!({"customer": customer, "amount": amount});
            input.pipe_input(Vec::new(), v.to_string().into_bytes());
        }
        let mut last: BTreeMap<String, Totals> = BTreeMap::new();
        for (k, t) in d.output_topic(TOTALS, Str, Json::<Totals>::new()).read_key_values_to_list() {
            let prev = last.get(&k).map_or(0, |p| p.count);
            prop_assert_eq!(t.count, prev + 1, "counts of {} increase by one", k);
            last.insert(k, t);
        }
        for (c, (n, total)) in &model {
            prop_assert_eq!(last[c].count, *n);
            prop_assert_eq!(last[c].total, *total);
        }
        let store_probe = Topology::builder().key_value_store(STORE, Str, Json::<Totals>::new());
        prop_assert_eq!(d.store_entries(&store_probe).len(), model.len());
    }
}
