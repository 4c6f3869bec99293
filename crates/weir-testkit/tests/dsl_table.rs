//! Tables and stream-table joins in the TopologyTestDriver (the runtime's
//! own tests of them run on the broker: `tests/tests/table_join.rs`).

use weir_core::{Json, Str};
use weir_dsl::TopologyBuilder;
use weir_testkit::TopologyTestDriver;

#[test]
fn a_stream_meets_the_table_value_current_at_its_turn() {
    let b = TopologyBuilder::new();
    let tiers = b.table("customers", "tiers", Str, Str);
    let events = b.stream("events", Str, Json::<i64>::new());
    events
        .join(&tiers, |amount, tier| format!("{amount}@{tier}"))
        .with_value_codec(Str)
        .to("joined");
    events
        .left_join(&tiers, |amount, tier: Option<String>| {
            format!("{amount}@{}", tier.unwrap_or_else(|| "-".into()))
        })
        .with_value_codec(Str)
        .to("left-joined");
    tiers.to_stream().to("tier-updates");
    let t = b.build().unwrap();
    assert_eq!(t.subtopology_count(), 1, "a join reads its table's topic");
    assert_eq!(t.table_source("tiers"), Some("customers"));
    assert_eq!(t.stores(), vec!["tiers"]);

    let d = TopologyTestDriver::new(t);
    let customers = d.input_topic("customers", Str, Str);
    let input = d.input_topic("events", Str, Json::<i64>::new());
    input.pipe_input("c1".into(), 1); // no tier yet
    customers.pipe_input("c1".into(), "gold".into());
    input.pipe_input("c1".into(), 2);
    customers.pipe_input("c1".into(), "silver".into());
    input.pipe_input("c1".into(), 3);
    // A tombstone deletes the key.
    customers.pipe_raw(Some(b"c1".to_vec()), None, 0);
    input.pipe_input("c1".into(), 4);

    let joined = d.output_topic("joined", Str, Str).read_values_to_list();
    assert_eq!(joined, vec!["2@gold", "3@silver"]);
    let left = d
        .output_topic("left-joined", Str, Str)
        .read_values_to_list();
    assert_eq!(left, vec!["1@-", "2@gold", "3@silver", "4@-"]);
    let updates = d
        .output_topic("tier-updates", Str, Str)
        .read_values_to_list();
    assert_eq!(
        updates,
        vec!["gold", "silver"],
        "deletions are not forwarded"
    );
    assert!(d.dead_letters().is_empty());
}

#[test]
fn to_table_keeps_the_latest_value_and_feeds_joins() {
    let b = TopologyBuilder::new();
    let prices = b
        .stream("prices", Str, Json::<f64>::new())
        .to_table("prices");
    let store = prices.store().clone();
    b.stream("orders", Str, Json::<u32>::new())
        .join(&prices, |qty, price| f64::from(qty) * price)
        .with_value_codec(Json::<f64>::new())
        .to("order-values");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let p = d.input_topic("prices", Str, Json::<f64>::new());
    let o = d.input_topic("orders", Str, Json::<u32>::new());
    p.pipe_input("apple".into(), 2.0);
    p.pipe_input("apple".into(), 3.0);
    o.pipe_input("apple".into(), 2);
    o.pipe_input("pear".into(), 5); // no price: no output
    assert_eq!(d.store_get(&store, &"apple".to_string()), Some(3.0));
    let values = d
        .output_topic("order-values", Str, Json::<f64>::new())
        .read_key_values_to_list();
    assert_eq!(values, vec![("apple".to_string(), 6.0)]);
}

#[test]
fn an_undecodable_table_record_is_dead_lettered_and_changes_nothing() {
    let b = TopologyBuilder::new();
    let t = b.table("limits", "limits", Str, Json::<u64>::new());
    let store = t.store().clone();
    let d = TopologyTestDriver::new(b.build().unwrap());
    let limits = d.input_topic("limits", Str, Json::<u64>::new());
    limits.pipe_input("a".into(), 5);
    limits.pipe_raw(Some(b"a".to_vec()), Some(b"not json".to_vec()), 0);
    assert_eq!(d.store_get(&store, &"a".to_string()), Some(5));
    assert_eq!(d.dead_letters().len(), 1);
}
