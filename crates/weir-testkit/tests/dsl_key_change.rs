//! A key change (`map`, `flat_map`, `try_map`, `try_flat_map`) before a
//! stateful operator keyed by the record key: the grouping, `to_table`,
//! windowed joins and waits repartition on their own (through topics named
//! after their stores); a stream-table join refuses to build; operators that
//! keep keys, and an explicit `repartition`, add nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_core::{Json, OpError, Str};
use weir_dsl::{BuildError, JoinWindows, RetryPolicy, Topology, TopologyBuilder, Wait};
use weir_testkit::TopologyTestDriver;

fn topics(t: &Topology) -> Vec<String> {
    t.repartition_topics().into_iter().map(|(t, _)| t).collect()
}

#[test]
fn group_by_key_after_a_map_repartitions_by_the_new_key() {
    let b = TopologyBuilder::new();
    let counts = b
        .stream("words", Str, Str)
        .map(|_, w: String| (w.to_lowercase(), w))
        .group_by_key()
        .count("word-counts");
    counts.to_stream().to("counts");
    let t = b.build().unwrap();
    assert_eq!(topics(&t), ["word-counts-repartition"]);
    assert_eq!(t.subtopology_count(), 2);
    // The driver has one partition: the counts check the path through the
    // repartition topic, the topics above that there is one.
    let d = TopologyTestDriver::new(t);
    let input = d.input_topic("words", Str, Str);
    for w in ["a", "B", "b", "A", "c", "b"] {
        input.pipe_input("ignored".into(), w.into());
    }
    let latest: BTreeMap<String, u64> = d
        .output_topic("counts", Str, Json::<u64>::new())
        .read_key_values_to_list()
        .into_iter()
        .collect();
    let want: BTreeMap<String, u64> = [("a", 2), ("b", 3), ("c", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    assert_eq!(latest, want);
}

#[test]
fn every_key_changing_operator_counts_and_a_merge_inherits_it() {
    let b = TopologyBuilder::new();
    let words = b.stream("words", Str, Str);
    words
        .flat_map(|_, line: String| {
            line.split(' ')
                .map(|w| (w.to_string(), w.to_string()))
                .collect::<Vec<_>>()
        })
        .group_by_key()
        .count("flat");
    words
        .try_map(|_, w: String| Ok::<_, OpError>((w.clone(), w)))
        .group_by_key()
        .count("tried");
    words
        .try_flat_map(|_, w: String| Ok::<_, OpError>(Some((w.clone(), w))))
        .group_by_key()
        .count("tried-flat");
    words
        .with_retries("retried", RetryPolicy::new(3))
        .try_map(|_, w: String| Ok((w.clone(), w)))
        .group_by_key()
        .count("retried-counts");
    let other = b.stream("other", Str, Str);
    other
        .merge(&words.map(|_, w: String| (w.clone(), w)))
        .filter(|_, _| true)
        .group_by_key()
        .count("merged");
    let t = b.build().unwrap();
    assert_eq!(
        topics(&t),
        [
            "flat-repartition",
            "merged-repartition",
            "retried-counts-repartition",
            "tried-flat-repartition",
            "tried-repartition"
        ]
    );
}

#[test]
fn operators_that_keep_keys_and_an_explicit_repartition_add_nothing() {
    let b = TopologyBuilder::new();
    let words = b.stream("words", Str, Str);
    words
        .map_values(|w: String| w.len().to_string())
        .filter(|_, _| true)
        .peek(|_, _| {})
        .try_map_values(|v: String| Ok::<_, OpError>(v))
        .process("keeps", &[], |ctx, k: String, v: String| {
            ctx.forward(k, v);
            Ok(())
        })
        .with_codecs(Str, Str)
        .group_by_key()
        .count("kept");
    words
        .map(|_, w: String| (w.to_uppercase(), w))
        .repartition("upper")
        .group_by_key()
        .count("upper-counts");
    let t = b.build().unwrap();
    assert_eq!(topics(&t), ["upper-repartition"]);
}

#[test]
fn a_table_join_after_a_key_change_does_not_build_until_repartitioned() {
    let b = TopologyBuilder::new();
    let tiers = b.table("customers", "tiers", Str, Str);
    b.stream("orders", Str, Str)
        .map(|_, customer: String| (customer.clone(), customer))
        .join(&tiers, |o, t| format!("{o}:{t}"))
        .to("enriched");
    let Err(BuildError::JoinAfterKeyChange { table, .. }) = b.build() else {
        panic!("a join after a key change must not build");
    };
    assert_eq!(table, "tiers");

    let b = TopologyBuilder::new();
    let tiers = b.table("customers", "tiers", Str, Str);
    b.stream("orders", Str, Str)
        .map(|_, customer: String| (customer.clone(), customer))
        .repartition("by-customer")
        .join(&tiers, |o, t| format!("{o}:{t}"))
        .to("enriched");
    assert_eq!(topics(&b.build().unwrap()), ["by-customer-repartition"]);
}

#[test]
fn to_table_a_windowed_join_and_a_wait_repartition_a_rekeyed_side() {
    let b = TopologyBuilder::new();
    let left = b.stream("left", Str, Str);
    let right = b.stream("right", Str, Str);
    let upper = left.map(|_, v: String| (v.to_uppercase(), v));
    upper.to_table("latest");
    upper
        .join(
            (&right, "pairs", JoinWindows::of(Duration::from_secs(1))),
            |l, r| format!("{l}{r}"),
        )
        .with_value_codec(Str)
        .to("joined");
    right.await_event(&upper, Wait::named("wait").timeout(Duration::from_secs(1)));
    let t = b.build().unwrap();
    assert_eq!(
        topics(&t),
        [
            "latest-repartition",
            "pairs-left-repartition",
            "wait-b-repartition"
        ]
    );
}

#[test]
fn only_the_rekeyed_side_of_a_join_or_a_wait_is_repartitioned() {
    let b = TopologyBuilder::new();
    let left = b.stream("left", Str, Str);
    let right = b.stream("right", Str, Str);
    let upper = right.map(|_, v: String| (v.to_uppercase(), v));
    left.join(
        (&upper, "pairs", JoinWindows::of(Duration::from_secs(1))),
        |l, r| format!("{l}{r}"),
    )
    .with_value_codec(Str)
    .to("joined");
    upper.await_event(&left, Wait::named("wait").timeout(Duration::from_secs(1)));
    let t = b.build().unwrap();
    assert_eq!(
        topics(&t),
        ["pairs-right-repartition", "wait-a-repartition"]
    );
}

#[test]
fn a_rekeyed_stream_without_codecs_is_one_clear_error() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .map(|_, v: String| (v.len() as u64, v))
        .to_table("by-length");
    assert!(matches!(
        b.build(),
        Err(BuildError::MissingCodec { part: "key", .. })
    ));
}
