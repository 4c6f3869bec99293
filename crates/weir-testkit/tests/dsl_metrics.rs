//! Per-node metrics through the TopologyTestDriver: records in, out and
//! dead-lettered per node; a retrying node's `retries` and
//! `retries_exhausted`; its breaker's `breaker_open` gauge; a wait's
//! `pending_waits` gauge, which follows only what was kept (a failed
//! record's change is dropped with its writes); and a property test: the
//! counts equal a recount of what the records did.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use weir_core::{Json, OpError, Str};
use weir_dsl::{
    CircuitBreaker, NodeCounts, Outcome, RetryPolicy, TaskMetrics, TopologyBuilder, Wait,
};
use weir_testkit::TopologyTestDriver;

fn counts(m: &TaskMetrics) -> BTreeMap<String, NodeCounts> {
    let mut out: BTreeMap<String, NodeCounts> = BTreeMap::new();
    for (n, c) in &m.nodes {
        let e = out.entry(n.clone()).or_default();
        e.records_in += c.records_in;
        e.records_out += c.records_out;
        e.dead_lettered += c.dead_lettered;
    }
    out
}

fn counter(m: &TaskMetrics, node: &str, name: &str) -> u64 {
    m.counters
        .iter()
        .filter(|(n, c, _)| n == node && *c == name)
        .map(|(_, _, v)| v)
        .sum()
}

fn gauge(m: &TaskMetrics, node: &str, name: &str) -> Option<i64> {
    m.gauges
        .iter()
        .find(|(n, g, _)| n == node && *g == name)
        .map(|(_, _, v)| *v)
}

/// `in` → `keep` (drops values starting with `-`) → `check` (fails
/// values starting with `bad`) → `out` and `copy` (one sink, two topics),
/// `doubled` (a flat_map that emits two records), and a branch (`a` to
/// `as`, the rest to `rest`).
fn counted() -> TopologyTestDriver {
    let b = TopologyBuilder::new();
    let checked = b
        .stream("in", Str, Str)
        .named("source")
        .filter(|_, v: &String| !v.starts_with('-'))
        .named("keep")
        .try_map_values(|v: String| {
            if v.starts_with("bad") {
                Err(OpError::permanent("refused"))
            } else {
                Ok(v)
            }
        })
        .named("check");
    checked.to_many(["out", "copy"]);
    checked
        .branch()
        .when(|_, v: &String| v == "a", |s| s.to("as"))
        .otherwise(|s| s.named("others").to("rest"));
    checked
        .flat_map(|k: String, v: String| vec![(k.clone(), v.clone()), (k, v)])
        .named("doubled")
        .to("twice");
    TopologyTestDriver::new(b.build().unwrap())
}

#[test]
fn nodes_count_what_they_receive_pass_on_and_dead_letter() {
    let d = counted();
    let input = d.input_topic("in", Str, Str);
    for v in ["a", "-b", "bad", "c"] {
        input.pipe_input("k".into(), v.into());
    }
    let c = counts(&d.take_metrics());
    let get = |n: &str| c.get(n).copied().unwrap_or_default();
    assert_eq!(
        get("source"),
        NodeCounts {
            records_in: 4,
            records_out: 4,
            dead_lettered: 0
        }
    );
    assert_eq!(
        get("keep"),
        NodeCounts {
            records_in: 4,
            records_out: 3,
            dead_lettered: 0
        }
    );
    assert_eq!(
        get("check"),
        NodeCounts {
            records_in: 3,
            records_out: 2,
            dead_lettered: 1
        }
    );
    assert_eq!(
        get("doubled"),
        NodeCounts {
            records_in: 2,
            records_out: 4,
            dead_lettered: 0
        }
    );
    // The branch passes each record to one arm (an arm is a node too).
    let mut branch: Vec<(u64, u64)> = c
        .iter()
        .filter(|(n, _)| n.starts_with("branch") || *n == "others")
        .map(|(_, c)| (c.records_in, c.records_out))
        .collect();
    branch.sort();
    assert_eq!(branch, vec![(1, 1), (1, 1), (2, 2)], "{c:?}");
    // The sinks: one writes each record to two topics.
    let mut sinks: Vec<(u64, u64)> = c
        .iter()
        .filter(|(n, _)| n.starts_with("sink"))
        .map(|(_, c)| (c.records_in, c.records_out))
        .collect();
    sinks.sort();
    assert_eq!(sinks, vec![(1, 1), (1, 1), (2, 4), (4, 4)], "{c:?}");
    assert_eq!(d.dead_letters().len(), 1);
    // Taking drains.
    assert!(d.take_metrics().nodes.is_empty());
}

#[test]
fn retries_and_the_breaker_are_counted() {
    let down: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    down.lock().unwrap().insert("a".into());
    let b = TopologyBuilder::new();
    let flaky = down.clone();
    b.stream("in", Str, Str)
        .with_retries("call", RetryPolicy::new(3).without_jitter())
        .with_breaker(CircuitBreaker::new(
            5,
            Duration::from_secs(10),
            Duration::from_millis(500),
        ))
        .try_map(move |k: String, v: String| {
            if flaky.lock().unwrap().contains(&k) {
                return Err(OpError::retryable("down"));
            }
            Ok((k, v))
        })
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    d.set_wall_clock(0);
    let input = d.input_topic("in", Str, Str);
    input.pipe_input("a".into(), "a1".into()); // fails: parked
    for _ in 0..100 {
        d.advance_wall_clock(100); // two retries, both fail: exhausted
    }
    let m = d.take_metrics();
    assert_eq!(counter(&m, "call", "retries"), 2);
    assert_eq!(counter(&m, "call", "retries_exhausted"), 1);
    assert_eq!(gauge(&m, "call", "breaker_open"), Some(0), "3 failures < 5");
    assert_eq!(counts(&m)["call"].dead_lettered, 1);
    // Five failures of other keys in the window open it (a later record
    // of a parked key would wait behind it, untried).
    for i in 0..5 {
        down.lock().unwrap().insert(format!("k{i}"));
        input.pipe_input(format!("k{i}"), format!("x{i}"));
    }
    let m = d.take_metrics();
    assert_eq!(gauge(&m, "call", "breaker_open"), Some(1));
    down.lock().unwrap().clear();
    for _ in 0..60 {
        d.advance_wall_clock(1_000);
    }
    let m = d.take_metrics();
    assert_eq!(
        gauge(&m, "call", "breaker_open"),
        Some(0),
        "the probe closed it"
    );
}

#[test]
fn pending_waits_follow_what_is_kept() {
    let b = TopologyBuilder::new();
    let orders = b.stream("orders", Str, Json::<i64>::new());
    let payments = b.stream("payments", Str, Json::<i64>::new());
    orders
        .await_event(
            &payments,
            Wait::named("w")
                .timeout(Duration::from_millis(100))
                .ignore_early(),
        )
        .try_map_values(|o: Outcome<i64, i64>| match o {
            // A downstream failure rolls the match back.
            Outcome::Matched(_, 13) => Err(OpError::permanent("unlucky")),
            Outcome::Matched(a, _) => Ok(a),
            Outcome::TimedOut(a) => Ok(-a),
        })
        .with_value_codec(Json::<i64>::new())
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let o = d.input_topic("orders", Str, Json::<i64>::new());
    let p = d.input_topic("payments", Str, Json::<i64>::new());
    o.pipe_input_at("a".into(), 1, 0);
    o.pipe_input_at("b".into(), 2, 0);
    o.pipe_input_at("c".into(), 3, 0);
    assert_eq!(gauge(&d.take_metrics(), "w", "pending_waits"), Some(3));
    p.pipe_input_at("a".into(), 10, 5); // matched
    p.pipe_input_at("b".into(), 13, 6); // matched, then refused downstream: b still waits
    assert_eq!(gauge(&d.take_metrics(), "w", "pending_waits"), Some(2));
    o.pipe_input_at("z".into(), 9, 500); // b and c time out; z waits
    assert_eq!(gauge(&d.take_metrics(), "w", "pending_waits"), Some(1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The counts equal a recount of what each value does.
    #[test]
    fn counts_match_a_recount(values in prop::collection::vec(prop_oneof!["-x", "bad", "ok"], 0..40)) {
        let d = counted();
        let input = d.input_topic("in", Str, Str);
        for v in &values {
            input.pipe_input("k".into(), v.to_string());
        }
        let c = counts(&d.take_metrics());
        let n = values.len() as u64;
        let kept = values.iter().filter(|v| *v != "-x").count() as u64;
        let bad = values.iter().filter(|v| *v == "bad").count() as u64;
        let get = |n: &str| c.get(n).copied().unwrap_or_default();
        prop_assert_eq!(get("source").records_in, n);
        prop_assert_eq!(get("keep").records_out, kept);
        prop_assert_eq!(get("check"), NodeCounts { records_in: kept, records_out: kept - bad, dead_lettered: bad });
        prop_assert_eq!(get("doubled").records_out, 2 * (kept - bad));
    }
}

#[test]
fn kept_bs_that_expire_are_counted() {
    let b = TopologyBuilder::new();
    let orders = b.stream("orders", Str, Json::<i64>::new());
    let payments = b.stream("payments", Str, Json::<i64>::new());
    orders
        .await_event(
            &payments,
            Wait::named("w").timeout(Duration::from_millis(100)),
        )
        .map_values(|o: Outcome<i64, i64>| match o {
            Outcome::Matched(a, _) => a,
            Outcome::TimedOut(a) => -a,
        })
        .with_value_codec(Json::<i64>::new())
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let o = d.input_topic("orders", Str, Json::<i64>::new());
    let p = d.input_topic("payments", Str, Json::<i64>::new());
    p.pipe_input_at("a".into(), 1, 0); // kept for an A until 100
    p.pipe_input_at("b".into(), 2, 0);
    o.pipe_input_at("b".into(), 7, 0); // takes b's at once
    assert_eq!(counter(&d.take_metrics(), "w", "early_dropped"), 0);
    o.pipe_input_at("z".into(), 9, 500); // a's expires
    assert_eq!(counter(&d.take_metrics(), "w", "early_dropped"), 1);
}
