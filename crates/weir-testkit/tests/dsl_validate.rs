//! `validate(event_type)` through the TopologyTestDriver: conforming
//! records pass, the others reach the DLQ with kind `validation`, the
//! field path and message, and a `SCHEMA_VALIDATION_ERROR` body; a new
//! version applies to the records after it.

use std::sync::{Arc, RwLock};

use serde_json::{json, Value};
use weir_core::{dlq_headers as h, EventSchemas, Json, SchemaViolation, Str};
use weir_dsl::{BuildError, TopologyBuilder};
use weir_schema::{Catalog, Compatibility, NewDefinition};
use weir_testkit::TopologyTestDriver;

/// A catalog the test can register into while the driver uses it.
#[derive(Clone, Default)]
struct Shared(Arc<RwLock<Catalog>>);

impl EventSchemas for Shared {
    fn check(&self, event_type: &str, payload: &Value) -> Result<(), SchemaViolation> {
        self.0.read().unwrap().check(event_type, payload)
    }
}

fn refund_schema() -> Value {
    json!({
        "type": "object",
        "required": ["refundId", "amount"],
        "properties": {
            "refundId": {"type": "string"},
            "amount": {"type": "number", "exclusiveMinimum": 0},
            "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
        }
    })
}

fn driver(catalog: &Shared) -> TopologyTestDriver {
    let b = TopologyBuilder::new();
    b.stream("refunds", Str, Json::<Value>::new())
        .validate("refund.requested")
        .to("valid");
    let t = b.build().unwrap();
    t.use_event_schemas(Arc::new(catalog.clone()));
    TopologyTestDriver::new(t)
}

fn header(r: &weir_core::Record, name: &str) -> String {
    r.headers.get_str(name).unwrap_or_default().to_string()
}

#[test]
fn conforming_records_pass_and_the_others_are_dead_lettered_with_the_field() {
    let catalog = Shared::default();
    catalog
        .0
        .write()
        .unwrap()
        .register(
            NewDefinition::new("refund.requested", refund_schema()),
            Compatibility::None,
        )
        .unwrap();
    let d = driver(&catalog);
    let input = d.input_topic("refunds", Str, Json::<Value>::new());
    let out = d.output_topic("valid", Str, Json::<Value>::new());
    input.pipe_input("r1".into(), json!({"refundId": "r1", "amount": 10}));
    input.pipe_input("r2".into(), json!({"refundId": "r2", "amount": -1}));
    input.pipe_input("r3".into(), json!({"amount": 3}));
    input.pipe_input(
        "r4".into(),
        json!({"refundId": "r4", "amount": 1, "lines": [{"sku": "a"}, {}]}),
    );
    input.pipe_input("r5".into(), json!({"refundId": "r5", "amount": 2.5}));
    let keys: Vec<String> = out
        .read_key_values_to_list()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec!["r1", "r5"]);

    let dead = d.dead_letters();
    let got: Vec<(String, String)> = dead
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(&header(r, h::ERROR_DETAILS)).unwrap();
            assert_eq!(header(r, h::ERROR_KIND), "validation");
            assert_eq!(body["errorCode"], "SCHEMA_VALIDATION_ERROR");
            assert_eq!(body["status"], "error");
            assert_eq!(body["version"], 1);
            assert!(body["message"]
                .as_str()
                .unwrap()
                .contains("refund.requested"));
            let field = body["details"]["field"].as_str().unwrap().to_string();
            let msg = header(r, h::ERROR_MESSAGE);
            assert!(msg.contains(&field), "{msg} names {field}");
            assert!(
                msg.contains(body["details"]["error"].as_str().unwrap()),
                "{msg}"
            );
            (String::from_utf8(r.key.clone().unwrap()).unwrap(), field)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("r2".to_string(), "amount".to_string()),
            ("r3".to_string(), "refundId".to_string()),
            ("r4".to_string(), "lines[1].sku".to_string()),
        ]
    );
    // The dead letter keeps the payload as read, for a replay.
    let v: Value = serde_json::from_slice(dead[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(v, json!({"refundId": "r2", "amount": -1}));
}

#[test]
fn the_latest_version_applies_and_an_unknown_type_is_dead_lettered() {
    let catalog = Shared::default();
    let d = driver(&catalog);
    let input = d.input_topic("refunds", Str, Json::<Value>::new());
    let out = d.output_topic("valid", Str, Json::<Value>::new());
    input.pipe_input("a".into(), json!({"refundId": "a", "amount": 1}));
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(
        header(&dead[0], h::ERROR_MESSAGE).contains("no definition"),
        "{}",
        header(&dead[0], h::ERROR_MESSAGE)
    );

    catalog
        .0
        .write()
        .unwrap()
        .register(
            NewDefinition::new("refund.requested", refund_schema()),
            Compatibility::None,
        )
        .unwrap();
    input.pipe_input(
        "b".into(),
        json!({"refundId": "b", "amount": 1, "currency": "EUR"}),
    );
    let mut v2 = refund_schema();
    v2["properties"]["currency"] = json!({"enum": ["USD"]});
    catalog
        .0
        .write()
        .unwrap()
        .register(
            NewDefinition::new("refund.requested", v2),
            Compatibility::None,
        )
        .unwrap();
    input.pipe_input(
        "c".into(),
        json!({"refundId": "c", "amount": 1, "currency": "EUR"}),
    );
    let keys: Vec<String> = out
        .read_key_values_to_list()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec!["b"]);
    // (`dead_letters` reads what arrived since the last call.)
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1);
    let body: Value = serde_json::from_str(&header(&dead[0], h::ERROR_DETAILS)).unwrap();
    assert_eq!(body["version"], 2);
    assert_eq!(body["details"]["field"], "currency");
}

#[test]
fn a_payload_that_is_not_json_is_a_validation_failure() {
    let catalog = Shared::default();
    catalog
        .0
        .write()
        .unwrap()
        .register(
            NewDefinition::new("line", json!({"type": "string"})),
            Compatibility::None,
        )
        .unwrap();
    let b = TopologyBuilder::new();
    b.stream("lines", Str, Str).validate("line").to("valid");
    let t = b.build().unwrap();
    t.use_event_schemas(Arc::new(catalog.clone()));
    let d = TopologyTestDriver::new(t);
    d.input_topic("lines", Str, Str)
        .pipe_input("k".into(), "plain text".into());
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], h::ERROR_KIND), "validation");
    assert!(header(&dead[0], h::ERROR_MESSAGE).contains("not JSON"));
}

#[test]
fn build_errors_name_the_node() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str).validate("bad type!").to("out");
    assert!(matches!(
        b.build(),
        Err(BuildError::InvalidEventType { .. })
    ));
}
