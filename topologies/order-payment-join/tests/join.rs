//! order-payment-join through the TopologyTestDriver: every pair of an
//! order and a payment with the same key at most 10 minutes apart is
//! joined exactly once, none further apart, whatever the arrival order.

use std::collections::BTreeSet;

use order_payment_join::{topology, ORDERS, ORDER_PAYMENTS, PAYMENTS};
use serde_json::{json, Value};
use weir::core::{Json, Str};
use weir_testkit::TopologyTestDriver;

const MIN: i64 = 60_000;

#[test]
fn every_in_window_pair_is_joined_once_and_none_outside() {
    let d = TopologyTestDriver::new(topology());
    let orders = d.input_topic(ORDERS, Str, Json::<Value>::new());
    let payments = d.input_topic(PAYMENTS, Str, Json::<Value>::new());
    let base = 1_000_000_000;
    // (is order, order id, minute offset): payments before and after their
    // order, two payments for one order, one too late, one too early.
    let inputs = [
        (true, "o1", 0),
        (false, "o1", 3),
        (false, "o1", 10), // exactly 10 minutes: joins
        (false, "o2", -5), // before its order
        (true, "o2", 0),
        (true, "o3", 1),
        (false, "o3", 12), // 11 minutes after: no
        (false, "o4", 2),
        (true, "o4", 13), // 11 minutes after its payment: no
        (true, "o5", 14),
        (false, "o1", 15), // 15 minutes after o1: no
    ];
    let mut want = BTreeSet::new();
    for (i, (is_order, id, minute)) in inputs.iter().enumerate() {
        let ts = base + minute * MIN;
        let v = json!({"n": i, "id": id});
        if *is_order {
            orders.pipe_input_at(id.to_string(), v, ts);
        } else {
            payments.pipe_input_at(id.to_string(), v, ts);
        }
        for (j, (other_order, other_id, m)) in inputs[..i].iter().enumerate() {
            if other_order != is_order && other_id == id && (m - minute).abs() <= 10 {
                let (o, p) = if *is_order { (i, j) } else { (j, i) };
                want.insert((id.to_string(), o, p, ts.max(base + m * MIN)));
            }
        }
    }
    let got: Vec<(String, usize, usize, i64)> = d
        .read_raw(ORDER_PAYMENTS)
        .into_iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.value.unwrap()).unwrap();
            (
                String::from_utf8(r.key.unwrap()).unwrap(),
                v["order"]["n"].as_u64().unwrap() as usize,
                v["payment"]["n"].as_u64().unwrap() as usize,
                r.timestamp,
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "once each: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    assert_eq!(want.len(), 3);
}

#[test]
fn undecodable_records_are_dead_lettered() {
    let d = TopologyTestDriver::new(topology());
    d.pipe_raw(weir::core::Record {
        topic: PAYMENTS.into(),
        partition: 0,
        offset: 0,
        key: Some(b"o1".to_vec()),
        value: Some(b"{not json".to_vec()),
        headers: Default::default(),
        timestamp: 5,
    });
    assert_eq!(d.dead_letters().len(), 1);
    assert!(d.read_raw(ORDER_PAYMENTS).is_empty());
}
