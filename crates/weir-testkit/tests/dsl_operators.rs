//! The stateless DSL operators, run through the in-memory
//! [`TopologyTestDriver`] (no broker): what each operator emits, how records
//! that fail are dead-lettered, which graphs `build()` refuses, and how a
//! topology describes itself. Two proptest models check `flat_map` and
//! `branch` against plain iterator code.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proptest::collection::vec;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use weir_core::{dlq_headers as h, Bincode, Codec, CodecError, Headers, Json, Record, Str};
use weir_dsl::{BuildError, Topology, TopologyBuilder};
use weir_testkit::TopologyTestDriver;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: String,
    region: String,
    amount: i64,
}

fn order(id: &str, region: &str, amount: i64) -> Order {
    Order {
        id: id.to_string(),
        region: region.to_string(),
        amount,
    }
}

/// One output of the `flat_map` under test: which input value, which copy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Replica {
    value: i64,
    index: u32,
}

fn orders_stream(b: &TopologyBuilder, topic: &str) -> weir_dsl::Stream<String, Order> {
    b.stream(topic, Str, Json::<Order>::new())
}

fn driver(b: TopologyBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(b.build().expect("topology builds"))
}

fn pipe_orders(d: &TopologyTestDriver, topic: &str, orders: &[Order]) {
    let input = d.input_topic(topic, Str, Json::<Order>::new());
    for o in orders {
        input.pipe_input(o.id.clone(), o.clone());
    }
}

fn read_orders(d: &TopologyTestDriver, topic: &str) -> Vec<(String, Order)> {
    d.output_topic(topic, Str, Json::<Order>::new())
        .read_key_values_to_list()
}

fn ids(records: &[(String, Order)]) -> Vec<&str> {
    records.iter().map(|(_, o)| o.id.as_str()).collect()
}

fn header<'a>(r: &'a Record, name: &str) -> &'a str {
    r.headers
        .get_str(name)
        .unwrap_or_else(|| panic!("dead letter has no {name} header: {:?}", r.headers))
}

// ---------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------

#[test]
fn stream_and_to_copy_every_record_from_source_to_sink() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders").to("copy");
    let d = driver(b);
    let input = [order("o1", "eu", 5), order("o2", "us", 7)];
    pipe_orders(&d, "orders", &input);
    assert_eq!(
        read_orders(&d, "copy"),
        vec![
            ("o1".to_string(), input[0].clone()),
            ("o2".to_string(), input[1].clone())
        ]
    );
    // Reading takes the records: nothing is left, and nothing went elsewhere.
    assert!(read_orders(&d, "copy").is_empty());
    assert!(d.output_topics().is_empty());
    assert!(d.dead_letters().is_empty());
}

#[test]
fn filter_keeps_only_records_the_predicate_accepts() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders")
        .filter(|_, o| o.amount >= 10)
        .to("big");
    let d = driver(b);
    pipe_orders(
        &d,
        "orders",
        &[
            order("a", "eu", 9),
            order("b", "eu", 10),
            order("c", "eu", 1),
            order("d", "eu", 99),
        ],
    );
    assert_eq!(ids(&read_orders(&d, "big")), vec!["b", "d"]);
}

#[test]
fn map_replaces_key_and_value_and_needs_codecs_when_types_change() {
    let b = TopologyBuilder::new();
    let orders = orders_stream(&b, "orders");
    // Type-changing: key String -> String (region), value Order -> i64.
    orders
        .map(|_, o: Order| (o.region, o.amount))
        .with_codecs(Str, Json::<i64>::new())
        .to("amount-by-region");
    // Type-preserving map keeps the source's codecs: no with_codecs needed.
    orders
        .map(|k: String, mut o: Order| {
            o.amount *= 10;
            (format!("{k}!"), o)
        })
        .to("scaled");
    let d = driver(b);
    pipe_orders(&d, "orders", &[order("o1", "eu", 3), order("o2", "us", 4)]);
    assert_eq!(
        d.output_topic("amount-by-region", Str, Json::<i64>::new())
            .read_key_values_to_list(),
        vec![("eu".to_string(), 3), ("us".to_string(), 4)]
    );
    assert_eq!(
        read_orders(&d, "scaled"),
        vec![
            ("o1!".to_string(), order("o1", "eu", 30)),
            ("o2!".to_string(), order("o2", "us", 40)),
        ]
    );
}

#[test]
fn map_values_replaces_the_value_and_keeps_the_key() {
    let b = TopologyBuilder::new();
    let orders = orders_stream(&b, "orders");
    orders
        .map_values(|o: Order| format!("{}:{}", o.region, o.amount))
        .with_value_codec(Str)
        .to("labels");
    orders
        .map_values(|mut o: Order| {
            o.region = o.region.to_uppercase();
            o
        })
        .to("upper");
    let d = driver(b);
    pipe_orders(&d, "orders", &[order("o1", "eu", 3), order("o2", "us", -4)]);
    assert_eq!(
        d.output_topic("labels", Str, Str).read_key_values_to_list(),
        vec![
            ("o1".to_string(), "eu:3".to_string()),
            ("o2".to_string(), "us:-4".to_string()),
        ]
    );
    assert_eq!(
        read_orders(&d, "upper"),
        vec![
            ("o1".to_string(), order("o1", "EU", 3)),
            ("o2".to_string(), order("o2", "US", -4)),
        ]
    );
}

#[test]
fn flat_map_emits_zero_one_or_many_records_per_input() {
    let b = TopologyBuilder::new();
    b.stream("words", Str, Str)
        .flat_map(|k: String, line: String| {
            line.split_whitespace()
                .enumerate()
                .map(|(i, w)| (format!("{k}-{i}"), w.to_string()))
                .collect::<Vec<_>>()
        })
        .to("word");
    let d = driver(b);
    let input = d.input_topic("words", Str, Str);
    input.pipe_input("l1".into(), "a b c".into());
    input.pipe_input("l2".into(), "".into());
    input.pipe_input("l3".into(), "d".into());
    assert_eq!(
        d.output_topic("word", Str, Str).read_key_values_to_list(),
        vec![
            ("l1-0".to_string(), "a".to_string()),
            ("l1-1".to_string(), "b".to_string()),
            ("l1-2".to_string(), "c".to_string()),
            ("l3-0".to_string(), "d".to_string()),
        ]
    );
}

#[test]
fn peek_sees_every_record_and_forwards_it_unchanged() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let b = TopologyBuilder::new();
    let log = seen.clone();
    orders_stream(&b, "orders")
        .peek(move |k, o| log.lock().unwrap().push((k.clone(), o.amount)))
        .to("after-peek");
    let d = driver(b);
    let input = [order("o1", "eu", 1), order("o2", "eu", 2)];
    pipe_orders(&d, "orders", &input);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("o1".to_string(), 1), ("o2".to_string(), 2)]
    );
    assert_eq!(
        read_orders(&d, "after-peek"),
        vec![
            ("o1".to_string(), input[0].clone()),
            ("o2".to_string(), input[1].clone())
        ]
    );
}

#[test]
fn branch_sends_each_record_to_the_first_matching_arm_or_otherwise() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders")
        .branch()
        .when(|_, o| o.region == "eu", |s| s.to("eu"))
        // Overlaps the first arm: an EU order over 100 must still go to "eu" only.
        .when(|_, o| o.amount > 100, |s| s.to("big"))
        .otherwise(|s| s.to("other"));
    let d = driver(b);
    pipe_orders(
        &d,
        "orders",
        &[
            order("eu-small", "eu", 1),
            order("eu-big", "eu", 500),
            order("us-big", "us", 500),
            order("us-small", "us", 1),
        ],
    );
    assert_eq!(ids(&read_orders(&d, "eu")), vec!["eu-small", "eu-big"]);
    assert_eq!(ids(&read_orders(&d, "big")), vec!["us-big"]);
    assert_eq!(ids(&read_orders(&d, "other")), vec!["us-small"]);
    assert!(d.output_topics().is_empty());
}

#[test]
fn branch_without_otherwise_drops_records_that_match_no_arm() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders")
        .branch()
        .when(|_, o| o.region == "eu", |s| s.to("eu"))
        .when(|_, o| o.region == "us", |s| s.to("us"))
        .end();
    let d = driver(b);
    pipe_orders(
        &d,
        "orders",
        &[
            order("a", "eu", 1),
            order("b", "apac", 1),
            order("c", "us", 1),
            order("d", "latam", 1),
        ],
    );
    assert_eq!(d.output_topics(), vec!["eu".to_string(), "us".to_string()]);
    assert_eq!(ids(&read_orders(&d, "eu")), vec!["a"]);
    assert_eq!(ids(&read_orders(&d, "us")), vec!["c"]);
    // Dropped, not dead-lettered: matching no arm is not an error.
    assert!(d.dead_letters().is_empty());
}

#[test]
fn merge_interleaves_two_source_topics_in_arrival_order() {
    let b = TopologyBuilder::new();
    let web = orders_stream(&b, "web-orders");
    let shop = orders_stream(&b, "shop-orders");
    web.merge(&shop).to("all-orders");
    let topology = b.build().unwrap();
    assert_eq!(
        topology.subtopology_of("web-orders"),
        topology.subtopology_of("shop-orders")
    );
    let d = TopologyTestDriver::new(topology);
    pipe_orders(&d, "web-orders", &[order("w1", "eu", 1)]);
    pipe_orders(&d, "shop-orders", &[order("s1", "eu", 1)]);
    pipe_orders(&d, "web-orders", &[order("w2", "eu", 1)]);
    assert_eq!(ids(&read_orders(&d, "all-orders")), vec!["w1", "s1", "w2"]);
}

#[test]
fn to_many_writes_each_record_to_each_topic_exactly_once() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders").to_many(["audit", "archive", "search"]);
    let topology = b.build().unwrap();
    assert_eq!(topology.sink_topics(), vec!["archive", "audit", "search"]);
    let d = TopologyTestDriver::new(topology);
    pipe_orders(&d, "orders", &[order("o1", "eu", 1), order("o2", "us", 2)]);
    for topic in ["audit", "archive", "search"] {
        assert_eq!(
            ids(&read_orders(&d, topic)),
            vec!["o1", "o2"],
            "topic {topic}"
        );
    }
    assert!(d.output_topics().is_empty());
}

#[test]
fn to_dynamic_writes_each_record_to_the_topic_chosen_for_it() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders").to_dynamic(|_, o| format!("orders-{}", o.region));
    let topology = b.build().unwrap();
    // Chosen per record, so not known in advance.
    assert!(topology.sink_topics().is_empty());
    let d = TopologyTestDriver::new(topology);
    pipe_orders(
        &d,
        "orders",
        &[
            order("a", "eu", 1),
            order("b", "us", 1),
            order("c", "eu", 1),
        ],
    );
    assert_eq!(
        d.output_topics(),
        vec!["orders-eu".to_string(), "orders-us".to_string()]
    );
    assert_eq!(ids(&read_orders(&d, "orders-eu")), vec!["a", "c"]);
    assert_eq!(ids(&read_orders(&d, "orders-us")), vec!["b"]);
}

#[test]
fn with_codecs_changes_how_a_sink_encodes() {
    let b = TopologyBuilder::new();
    let orders = orders_stream(&b, "orders");
    orders.to("as-json");
    // Both parts change: the key to a JSON string, the value to bincode.
    orders
        .with_codecs(Json::<String>::new(), Bincode::<Order>::new())
        .to("as-bincode");
    let d = driver(b);
    let o = order("o1", "eu", 42);
    pipe_orders(&d, "orders", std::slice::from_ref(&o));

    let json = d.read_raw("as-json");
    let bin = d.read_raw("as-bincode");
    assert_eq!(json[0].value, Some(serde_json::to_vec(&o).unwrap()));
    assert_eq!(
        bin[0].value,
        Some(Bincode::<Order>::new().encode(&o).unwrap())
    );
    assert_ne!(json[0].value, bin[0].value);
    assert_eq!(
        Bincode::<Order>::new()
            .decode(bin[0].value.as_ref().unwrap())
            .unwrap(),
        o
    );
    assert_eq!(json[0].key.as_deref(), Some(&b"o1"[..]));
    assert_eq!(bin[0].key.as_deref(), Some(&b"\"o1\""[..]));
}

#[test]
fn named_nodes_show_in_describe_and_in_dead_letters() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders")
        .named("read-orders")
        .map_values(|o: Order| {
            assert!(o.amount >= 0, "negative amount");
            o
        })
        .named("check-amount")
        .to("checked");
    let topology = b.build().unwrap();
    let text = topology.describe().to_string();
    assert!(
        text.contains("Source: read-orders (topics: [orders])"),
        "{text}"
    );
    assert!(text.contains("Processor: check-amount"), "{text}");
    assert!(!text.contains("map_values-1"), "default name kept: {text}");

    let d = TopologyTestDriver::new(topology);
    d.input_topic("orders", Str, Str)
        .pipe_raw(None, Some(b"{".to_vec()), 0);
    pipe_orders(&d, "orders", &[order("neg", "eu", -1)]);
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 2);
    assert_eq!(header(&dead[0], h::NODE), "read-orders");
    assert_eq!(header(&dead[1], h::NODE), "check-amount");
}

// ---------------------------------------------------------------------------
// Dead letters
// ---------------------------------------------------------------------------

#[test]
fn malformed_json_is_dead_lettered_with_its_bytes_and_weir_headers() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders").to("copy");
    let d = driver(b);
    d.set_wall_clock(1_700_000_000_000);
    pipe_orders(&d, "orders", &[order("before", "eu", 1)]);
    let mut bad = Record::new(
        "orders",
        Some(b"k-bad".to_vec()),
        Some(b"{\"id\": 7,".to_vec()),
        555,
    );
    bad.headers.push("trace-id", Some(b"t-1".to_vec()));
    d.pipe_raw(bad);
    pipe_orders(&d, "orders", &[order("after", "eu", 2)]);

    assert_eq!(ids(&read_orders(&d, "copy")), vec!["before", "after"]);
    assert_eq!(d.dead_letter_topic(), "test-dlq");
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let dl = &dead[0];
    assert_eq!(dl.topic, "test-dlq");
    assert_eq!(dl.key.as_deref(), Some(&b"k-bad"[..]));
    assert_eq!(dl.value.as_deref(), Some(&b"{\"id\": 7,"[..]));
    assert_eq!(dl.timestamp, 555);
    assert_eq!(header(dl, h::ERROR_KIND), "decode");
    assert!(header(dl, h::ERROR_MESSAGE).contains("json"), "{dl:?}");
    assert_eq!(header(dl, h::SOURCE_TOPIC), "orders");
    assert_eq!(header(dl, h::SOURCE_PARTITION), "0");
    assert_eq!(header(dl, h::SOURCE_OFFSET), "1");
    assert_eq!(header(dl, h::NODE), "source-0");
    assert_eq!(header(dl, h::ATTEMPTS), "1");
    assert_eq!(header(dl, h::FAILED_AT), "1700000000000");
    // The record's own headers travel with it.
    assert_eq!(header(dl, "trace-id"), "t-1");
}

#[test]
fn dead_letters_go_to_the_topic_the_topology_names() {
    let b = TopologyBuilder::new();
    b.dead_letter_topic("orders-dlq");
    orders_stream(&b, "orders").to("copy");
    let d = driver(b);
    d.input_topic("orders", Str, Str)
        .pipe_raw(Some(b"k".to_vec()), Some(b"nope".to_vec()), 0);
    assert_eq!(d.dead_letter_topic(), "orders-dlq");
    assert_eq!(d.read_raw("orders-dlq").len(), 1);
    assert!(d.read_raw("test-dlq").is_empty());
}

#[test]
fn panic_in_an_operator_dead_letters_the_record_and_discards_its_outputs() {
    let b = TopologyBuilder::new();
    let orders = orders_stream(&b, "orders");
    // First child of the source: its output for the bad record is produced
    // before the sibling panics, and must be discarded with it.
    orders.to("audit");
    orders
        .map_values(|o: Order| {
            if o.amount == 13 {
                panic!("unlucky amount {}", o.amount);
            }
            o.amount * 2
        })
        .named("double")
        .with_value_codec(Json::<i64>::new())
        .to("doubled");
    let d = driver(b);
    pipe_orders(
        &d,
        "orders",
        &[
            order("o1", "eu", 1),
            order("o2", "eu", 13),
            order("o3", "eu", 3),
        ],
    );
    assert_eq!(ids(&read_orders(&d, "audit")), vec!["o1", "o3"]);
    assert_eq!(
        d.output_topic("doubled", Str, Json::<i64>::new())
            .read_key_values_to_list(),
        vec![("o1".to_string(), 2), ("o3".to_string(), 6)]
    );
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1);
    let dl = &dead[0];
    assert_eq!(header(dl, h::ERROR_KIND), "panic");
    assert_eq!(header(dl, h::NODE), "double");
    assert!(
        header(dl, h::ERROR_MESSAGE).contains("unlucky amount 13"),
        "{dl:?}"
    );
    assert_eq!(header(dl, h::SOURCE_OFFSET), "1");
    assert_eq!(header(dl, h::ATTEMPTS), "1");
    assert_eq!(
        dl.value,
        Some(serde_json::to_vec(&order("o2", "eu", 13)).unwrap())
    );
}

#[test]
fn panic_after_a_flat_map_discards_the_copies_already_written() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Json::<i64>::new())
        .flat_map(|k: String, n: i64| (0..n).map(move |i| (k.clone(), i)))
        // Default name: the DLQ must name this filter, not the flat_map.
        .filter(|_, i| {
            assert!(*i != 2, "copy 2 is poison");
            true
        })
        .to("copies");
    let d = driver(b);
    let input = d.input_topic("in", Str, Json::<i64>::new());
    input.pipe_input("a".into(), 2);
    input.pipe_input("b".into(), 4); // copies 0 and 1 are written, then copy 2 panics
    input.pipe_input("c".into(), 1);
    assert_eq!(
        d.output_topic("copies", Str, Json::<i64>::new())
            .read_key_values_to_list(),
        vec![
            ("a".to_string(), 0),
            ("a".to_string(), 1),
            ("c".to_string(), 0)
        ]
    );
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], h::ERROR_KIND), "panic");
    assert_eq!(header(&dead[0], h::NODE), "filter-2");
    assert_eq!(dead[0].key.as_deref(), Some(&b"b"[..]));
}

/// A codec of user code that panics on one input, as a buggy hand-written
/// codec would.
struct PanickyText;

impl Codec<String> for PanickyText {
    fn name(&self) -> &'static str {
        "panicky-text"
    }

    fn encode(&self, value: &String) -> Result<Vec<u8>, CodecError> {
        Ok(value.as_bytes().to_vec())
    }

    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        assert!(bytes != b"boom", "codec cannot handle boom");
        Str.decode(bytes)
    }
}

#[test]
fn panic_in_a_source_codec_is_dead_lettered_like_any_user_panic() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, PanickyText).to("out");
    let d = driver(b);
    let input = d.input_topic("in", Str, Str);
    input.pipe_input("k1".into(), "fine".into());
    input.pipe_input("k2".into(), "boom".into());
    input.pipe_input("k3".into(), "also fine".into());
    assert_eq!(
        d.output_topic("out", Str, Str).read_values_to_list(),
        vec!["fine", "also fine"]
    );
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], h::ERROR_KIND), "panic");
    assert_eq!(header(&dead[0], h::NODE), "source-0");
}

// ---------------------------------------------------------------------------
// Build errors
// ---------------------------------------------------------------------------

#[test]
fn sink_after_a_type_changing_map_without_codecs_is_missing_codec() {
    let b = TopologyBuilder::new();
    // source-0 -> map-1 -> sink-2: the key becomes an i64 nobody can encode.
    orders_stream(&b, "orders")
        .map(|k, o: Order| (o.amount, k))
        .to("out");
    let err = b.build().unwrap_err();
    assert_eq!(
        err,
        BuildError::MissingCodec {
            node: "sink-2".into(),
            part: "key"
        }
    );
    assert!(err.to_string().contains("sink-2"), "{err}");

    let b = TopologyBuilder::new();
    // Only the value type changes: the key codec is kept, the value's is missing.
    orders_stream(&b, "orders")
        .map_values(|o: Order| o.amount)
        .to("out");
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::MissingCodec {
            node: "sink-2".into(),
            part: "value"
        }
    );
}

#[test]
fn a_topic_read_twice_is_duplicate_source() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders").to("a");
    orders_stream(&b, "orders").to("b");
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::DuplicateSource {
            topic: "orders".into()
        }
    );
}

#[test]
fn a_topology_without_sources_is_no_source() {
    assert_eq!(
        TopologyBuilder::new().build().unwrap_err(),
        BuildError::NoSource
    );
    assert_eq!(
        Topology::builder().build().unwrap_err(),
        BuildError::NoSource
    );
}

#[test]
fn to_many_without_topics_is_empty_topic() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders").to_many(Vec::<String>::new());
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::EmptyTopic {
            node: "sink-1".into()
        }
    );

    let b = TopologyBuilder::new();
    orders_stream(&b, "orders").to_many(["ok", ""]);
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::EmptyTopic {
            node: "sink-1".into()
        }
    );
}

// ---------------------------------------------------------------------------
// Timestamps, headers, order
// ---------------------------------------------------------------------------

#[test]
fn outputs_keep_the_input_timestamp_and_headers() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Json::<i64>::new())
        .map_values(|v: i64| v + 1)
        .flat_map(|k: String, v: i64| [(k.clone(), v), (k, -v)])
        .to_many(["x", "y"]);
    let d = driver(b);
    let mut headers = Headers::new();
    headers.push("trace-id", Some(b"abc".to_vec()));
    headers.push("trace-id", Some(b"def".to_vec()));
    headers.push("null-header", None);
    let mut record = Record::new("in", Some(b"k".to_vec()), Some(b"41".to_vec()), 1_234_567);
    record.headers = headers.clone();
    d.pipe_raw(record);

    for topic in ["x", "y"] {
        let out = d.read_raw(topic);
        let values: Vec<_> = out.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(
            values,
            vec![b"42".to_vec(), b"-42".to_vec()],
            "topic {topic}"
        );
        for r in &out {
            assert_eq!(r.timestamp, 1_234_567, "topic {topic}");
            assert_eq!(r.headers, headers, "topic {topic}");
        }
    }
}

#[test]
fn per_key_order_is_kept_through_fan_out() {
    let b = TopologyBuilder::new();
    let s = b.stream("in", Str, Json::<u32>::new());
    s.filter(|_, n| n % 5 != 0).to("kept");
    s.map_values(|n: u32| n * 10).to("scaled");
    let d = driver(b);
    let input = d.input_topic("in", Str, Json::<u32>::new());
    let keys = ["a", "b", "c"];
    for n in 0..60u32 {
        input.pipe_input_at(keys[(n * 7 % 3) as usize].to_string(), n, i64::from(60 - n));
    }
    let by_key = |records: Vec<(String, u32)>| {
        let mut m: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (k, v) in records {
            m.entry(k).or_default().push(v);
        }
        m
    };
    let kept = by_key(
        d.output_topic("kept", Str, Json::<u32>::new())
            .read_key_values_to_list(),
    );
    let scaled = by_key(
        d.output_topic("scaled", Str, Json::<u32>::new())
            .read_key_values_to_list(),
    );
    for (i, k) in keys.iter().enumerate() {
        let sent: Vec<u32> = (0..60u32).filter(|n| (n * 7 % 3) as usize == i).collect();
        // Decreasing timestamps: order is arrival order, not timestamp order.
        assert_eq!(
            kept[*k],
            sent.iter()
                .copied()
                .filter(|n| n % 5 != 0)
                .collect::<Vec<_>>(),
            "key {k}"
        );
        assert_eq!(
            scaled[*k],
            sent.iter().map(|n| n * 10).collect::<Vec<_>>(),
            "key {k}"
        );
    }
}

// ---------------------------------------------------------------------------
// Describe and sub-topologies
// ---------------------------------------------------------------------------

#[test]
fn describe_lists_sources_processors_and_sinks_and_mermaid_every_topic() {
    let b = TopologyBuilder::new();
    let orders = orders_stream(&b, "orders"); // source-0
    orders
        .filter(|_, o| o.amount > 100) // filter-1
        .named("big-orders")
        .to("big"); // sink-2
    orders
        .map_values(|o: Order| o.amount) // map_values-3
        .with_value_codec(Json::<i64>::new())
        .to_many(["audit", "archive"]); // sink-4
    orders_stream(&b, "refunds") // source-5
        .to_dynamic(|_, o| format!("refunds-{}", o.region)); // dynamic_sink-6
    let topology = b.build().unwrap();
    assert_eq!(topology.subtopology_count(), 2);

    let description = topology.describe();
    let text = description.to_string();
    for line in [
        "Sub-topology: 0",
        "Sub-topology: 1",
        "Source: source-0 (topics: [orders])",
        "--> big-orders, map_values-3",
        "Processor: big-orders (filter)",
        "Sink: sink-2 (topics: [big])",
        "Sink: sink-4 (topics: [audit, archive])",
        "<-- map_values-3",
        "Source: source-5 (topics: [refunds])",
        "dynamic_sink-6",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert_eq!(description.subtopologies[0].nodes.len(), 5);
    assert_eq!(description.subtopologies[1].nodes.len(), 2);

    let mermaid = description.to_mermaid();
    assert!(mermaid.starts_with("flowchart"), "{mermaid}");
    for topic in ["orders", "big", "audit", "archive", "refunds"] {
        assert!(
            mermaid.contains(&format!("([\"{topic}\"])")),
            "no topic {topic} in\n{mermaid}"
        );
    }
    assert!(
        mermaid.contains("big_orders[\"big-orders (filter)\"]"),
        "{mermaid}"
    );
    assert!(mermaid.contains("topic_orders --> source_0"), "{mermaid}");
    assert!(mermaid.contains("sink_4 --> topic_archive"), "{mermaid}");
}

#[test]
fn describe_reports_the_documented_kind_of_each_node() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "orders")
        .map_values(|o: Order| o)
        .map(|k: String, o: Order| (k, o))
        .to("out");
    let kinds: Vec<String> = b.build().unwrap().describe().subtopologies[0]
        .nodes
        .iter()
        .map(|n| n.kind.clone())
        .collect();
    assert_eq!(kinds, vec!["source", "map_values", "map", "sink"]);
}

#[test]
fn node_names_are_unique_within_a_built_topology() {
    let b = TopologyBuilder::new();
    let orders = orders_stream(&b, "orders");
    orders.filter(|_, o| o.amount > 0).named("step").to("a");
    orders.filter(|_, o| o.amount < 0).named("step").to("b");
    assert!(matches!(
        b.build(),
        Err(weir_dsl::BuildError::DuplicateName { ref name }) if name == "step"
    ));
    let b = TopologyBuilder::new();
    let orders = orders_stream(&b, "orders");
    orders.filter(|_, o| o.amount > 0).to("a");
    orders.filter(|_, o| o.amount < 0).to("b");
    if let Ok(topology) = b.build() {
        let mut names: Vec<String> = topology
            .describe()
            .subtopologies
            .iter()
            .flat_map(|st| st.nodes.iter().map(|n| n.name.clone()))
            .collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate node names: {names:?}");
    }
}

#[test]
fn disconnected_sources_are_two_subtopologies_until_merged() {
    let b = TopologyBuilder::new();
    orders_stream(&b, "a").to("a-out");
    orders_stream(&b, "b").to("b-out");
    let apart = b.build().unwrap();
    assert_eq!(apart.subtopology_count(), 2);
    assert_ne!(apart.subtopology_of("a"), apart.subtopology_of("b"));
    assert_eq!(apart.subtopology_sources(0), vec!["a"]);
    assert_eq!(apart.subtopology_sources(1), vec!["b"]);

    let b = TopologyBuilder::new();
    orders_stream(&b, "a")
        .merge(&orders_stream(&b, "b"))
        .to("both");
    let merged = b.build().unwrap();
    assert_eq!(merged.subtopology_count(), 1);
    assert_eq!(merged.subtopology_sources(0), vec!["a", "b"]);
}

// ---------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------

/// Which topic the branch under test sends `v` to: the first matching arm.
fn model_route(v: i64) -> &'static str {
    if v % 2 == 0 {
        "even"
    } else if v > 10 {
        "big"
    } else if v % 3 == 0 {
        "three"
    } else {
        "rest"
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn flat_map_emits_every_inputs_copies_exactly_once_in_order(
        input in vec(("[a-d]", any::<i64>()), 0..40)
    ) {
        let b = TopologyBuilder::new();
        b.stream("in", Str, Json::<i64>::new())
            .flat_map(|k: String, v: i64| {
                (0..v.rem_euclid(4)).map(move |i| (k.clone(), Replica { value: v, index: i as u32 }))
            })
            .with_value_codec(Json::<Replica>::new())
            .to("copies");
        let d = driver(b);
        let topic = d.input_topic("in", Str, Json::<i64>::new());
        for (k, v) in &input {
            topic.pipe_input(k.clone(), *v);
        }
        let expected: Vec<(String, Replica)> = input
            .iter()
            .flat_map(|(k, v)| {
                (0..v.rem_euclid(4)).map(move |i| (k.clone(), Replica { value: *v, index: i as u32 }))
            })
            .collect();
        let got = d.output_topic("copies", Str, Json::<Replica>::new()).read_key_values_to_list();
        prop_assert_eq!(got, expected);
        prop_assert!(d.dead_letters().is_empty());
    }

    #[test]
    fn branch_routes_every_record_to_exactly_the_first_matching_arm(
        values in vec(-40i64..40, 0..60)
    ) {
        let b = TopologyBuilder::new();
        b.stream("in", Str, Json::<i64>::new())
            .branch()
            .when(|_, v| v % 2 == 0, |s| s.to("even"))
            .when(|_, v| *v > 10, |s| s.to("big"))
            .when(|_, v| v % 3 == 0, |s| s.to("three"))
            .otherwise(|s| s.to("rest"));
        let d = driver(b);
        let topic = d.input_topic("in", Str, Json::<i64>::new());
        // Keys number the records, so a duplicate or a loss shows.
        for (i, v) in values.iter().enumerate() {
            topic.pipe_input(i.to_string(), *v);
        }
        let mut routed = 0;
        for arm in ["even", "big", "three", "rest"] {
            let expected: Vec<(String, i64)> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| model_route(**v) == arm)
                .map(|(i, v)| (i.to_string(), *v))
                .collect();
            let got = d.output_topic(arm, Str, Json::<i64>::new()).read_key_values_to_list();
            routed += got.len();
            prop_assert_eq!(got, expected, "arm {}", arm);
        }
        prop_assert_eq!(routed, values.len());
        prop_assert!(d.output_topics().is_empty());
    }
}
