//! refund-fanout in the TopologyTestDriver, with the bundled definition in
//! a catalog: each team's projection, the audit trail, inventory only when
//! a replacement is wanted, and invalid requests dead-lettered with the
//! field.

use std::sync::Arc;

use refund_fanout::*;
use serde_json::{json, Value};
use weir::core::dlq_headers as h;
use weir::prelude::*;
use weir::schemas::{Catalog, Compatibility};
use weir_testkit::TopologyTestDriver;

fn driver() -> TopologyTestDriver {
    let mut catalog = Catalog::default();
    catalog.register(definition(), Compatibility::None).unwrap();
    let t = topology();
    t.use_event_schemas(Arc::new(catalog));
    TopologyTestDriver::new(t)
}

fn example() -> Value {
    definition().examples[0].clone()
}

fn read(d: &TopologyTestDriver, topic: &str) -> Vec<(String, Value)> {
    d.output_topic(topic, Str, Json::<Value>::new())
        .read_key_values_to_list()
}

#[test]
fn one_request_reaches_every_team_with_its_own_projection() {
    let d = driver();
    let input = d.input_topic(REFUND_REQUESTS, Bytes, Json::<Value>::new());
    input.pipe_input(b"any".to_vec(), example());
    let key = "rf-1001".to_string();
    assert_eq!(
        read(&d, SALES),
        vec![(
            key.clone(),
            json!({"refundId": "rf-1001", "orderId": "o-7781", "customerId": "c-42",
                   "refund": {"amount": 129.0, "currency": "EUR"}})
        )]
    );
    assert_eq!(
        read(&d, INVENTORY),
        vec![(
            key.clone(),
            json!({"refundId": "rf-1001", "sku": "X-200",
                   "address": "1 Canal St, Amsterdam", "method": "express"})
        )]
    );
    assert_eq!(
        read(&d, MANUFACTURING),
        vec![(
            key.clone(),
            json!({"refundId": "rf-1001", "serial": "SN-99812", "sku": "X-200",
                   "defect": "battery swelling", "warehouse": "AMS-3", "bin": "B-12"})
        )]
    );
    assert_eq!(
        read(&d, ACCOUNTING),
        vec![(
            key.clone(),
            json!({"refundId": "rf-1001", "cost": {"amount": 42.5, "currency": "EUR"},
                   "costCenter": "CC-RETURNS", "serial": "SN-99812"})
        )]
    );
    assert_eq!(
        read(&d, AUDIT),
        vec![(
            key,
            json!({"refundId": "rf-1001", "eventType": "RefundRequest",
                   "fannedOutTo": ["sales", "inventory", "manufacturing", "accounting"],
                   "event": example()})
        )]
    );
    assert!(d.dead_letters().is_empty());
}

#[test]
fn without_a_shipment_inventory_gets_nothing() {
    let d = driver();
    let mut e = example();
    e.as_object_mut().unwrap().remove("shipment");
    d.input_topic(REFUND_REQUESTS, Bytes, Json::<Value>::new())
        .pipe_input(b"k".to_vec(), e);
    assert!(read(&d, INVENTORY).is_empty());
    assert_eq!(read(&d, SALES).len(), 1);
    assert_eq!(
        read(&d, AUDIT)[0].1["fannedOutTo"],
        json!(["sales", "manufacturing", "accounting"])
    );
}

#[test]
fn invalid_requests_go_to_the_dead_letter_topic_with_the_field_and_nowhere_else() {
    let d = driver();
    let input = d.input_topic(REFUND_REQUESTS, Bytes, Json::<Value>::new());
    let mut bad_currency = example();
    bad_currency["cost"]["currency"] = json!("euro");
    let mut no_order = example();
    no_order.as_object_mut().unwrap().remove("order");
    let mut bad_method = example();
    bad_method["shipment"]["method"] = json!("drone");
    for e in [bad_currency, no_order, bad_method] {
        input.pipe_input(b"k".to_vec(), e);
    }
    for t in [SALES, INVENTORY, MANUFACTURING, ACCOUNTING, AUDIT] {
        assert!(read(&d, t).is_empty(), "{t} got nothing");
    }
    let fields: Vec<String> = d
        .dead_letters()
        .iter()
        .map(|r| {
            assert_eq!(r.headers.get_str(h::ERROR_KIND), Some("validation"));
            let body: Value =
                serde_json::from_str(r.headers.get_str(h::ERROR_DETAILS).unwrap()).unwrap();
            body["details"]["field"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(fields, vec!["cost.currency", "order", "shipment.method"]);
}

#[test]
fn the_bundled_definition_is_valid_and_its_example_conforms() {
    let mut c = Catalog::default();
    let d = c.register(definition(), Compatibility::None).unwrap();
    assert_eq!((d.event_type.as_str(), d.version), (EVENT_TYPE, 1));
}
