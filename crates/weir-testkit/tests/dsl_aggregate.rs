//! Aggregations in the TopologyTestDriver: count, reduce and aggregate,
//! by the input key and by a new key (through the repartition topic).

use std::collections::BTreeMap;

use weir_core::{Json, Str};
use weir_dsl::{BuildError, TopologyBuilder};
use weir_testkit::TopologyTestDriver;

#[test]
fn group_by_counts_per_new_key_through_the_repartition_topic() {
    let b = TopologyBuilder::new();
    let table = b
        .stream("words", Str, Str)
        .group_by(|_, w: &String| w.to_lowercase(), Str)
        .count("word-counts");
    table.to_stream().to("counts");
    let store = table.store().clone();
    let t = b.build().unwrap();
    assert_eq!(
        t.repartition_topics(),
        vec![("word-counts-repartition".to_string(), None)]
    );
    assert_eq!(t.subtopology_count(), 2);
    let d = TopologyTestDriver::new(t);
    let input = d.input_topic("words", Str, Str);
    let words = ["a", "B", "b", "A", "c", "b"];
    for w in words {
        input.pipe_input("ignored".into(), w.into());
    }
    let out = d
        .output_topic("counts", Str, Json::<u64>::new())
        .read_key_values_to_list();
    let mut model: BTreeMap<String, u64> = BTreeMap::new();
    let want: Vec<(String, u64)> = words
        .iter()
        .map(|w| {
            let n = model.entry(w.to_lowercase()).or_default();
            *n += 1;
            (w.to_lowercase(), *n)
        })
        .collect();
    assert_eq!(out, want, "one update per record, in order");
    assert_eq!(d.store_get(&store, &"b".to_string()), Some(3));
    assert_eq!(d.store_entries(&store).len(), 3);
}

#[test]
fn reduce_and_aggregate_by_key() {
    let b = TopologyBuilder::new();
    let s = b.stream("n", Str, Json::<i64>::new());
    s.group_by_key()
        .reduce("max", |a, v| a.max(v))
        .to_stream()
        .to("max-out");
    s.group_by_key()
        .aggregate(
            "sum-count",
            || (0i64, 0u32),
            |_, v, (sum, n)| (sum + v, n + 1),
            Json::<(i64, u32)>::new(),
        )
        .to_stream()
        .to("sum-out");
    let t = b.build().unwrap();
    assert!(t.repartition_topics().is_empty(), "no key change");
    let d = TopologyTestDriver::new(t);
    let input = d.input_topic("n", Str, Json::<i64>::new());
    for (k, v) in [("x", 3), ("y", 1), ("x", -2), ("x", 7)] {
        input.pipe_input(k.into(), v);
    }
    assert_eq!(
        d.output_topic("max-out", Str, Json::<i64>::new())
            .read_key_values_to_list(),
        vec![
            ("x".into(), 3),
            ("y".into(), 1),
            ("x".into(), 3),
            ("x".into(), 7)
        ]
    );
    assert_eq!(
        d.output_topic("sum-out", Str, Json::<(i64, u32)>::new())
            .read_values_to_list(),
        vec![(3, 1), (1, 1), (1, 2), (8, 3)]
    );
}

#[test]
fn an_aggregation_without_a_key_codec_does_not_build() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .map(|k, v| (k.len(), v))
        .group_by_key()
        .count("by-len");
    assert!(matches!(
        b.build(),
        Err(BuildError::MissingCodec { part: "key", .. })
    ));
}
