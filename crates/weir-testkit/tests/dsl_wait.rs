//! `await_event` through the TopologyTestDriver: a property test over
//! random interleavings of As and Bs (duplicate keys, B before A, late Bs,
//! failed conditions, time jumps) against a naive model of the timestamp
//! rule — every wait resolves exactly once, matched iff the model finds
//! its B — and examples of each rule.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use weir_core::{Codec, Json, Record, Str};
use weir_dsl::{Outcome, Topology, TopologyBuilder, Wait};
use weir_testkit::TopologyTestDriver;

const TIMEOUT: i64 = 100;
const GRACE: i64 = 20;

/// A record of either side: its id (its position in the input) and an
/// amount the condition compares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Rec {
    id: usize,
    amount: i64,
}

/// What the topology writes per resolution: the A, and the B if matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Resolved {
    a: usize,
    b: Option<usize>,
}

/// What the topology writes for an outcome.
fn resolved(o: Outcome<Rec, Rec>) -> Resolved {
    match o {
        Outcome::Matched(a, b) => Resolved {
            a: a.id,
            b: Some(b.id),
        },
        Outcome::TimedOut(a) => Resolved { a: a.id, b: None },
    }
}

fn topology(resolve_all: bool, keep_early: bool) -> Topology {
    let b = TopologyBuilder::new();
    let a_stream = b.stream("a", Str, Json::<Rec>::new());
    let b_stream = b.stream("b", Str, Json::<Rec>::new());
    let mut wait = Wait::named("w")
        .when(|a: &Rec, b: &Rec| a.amount == b.amount)
        .timeout(Duration::from_millis(TIMEOUT as u64))
        .grace(Duration::from_millis(GRACE as u64));
    if resolve_all {
        wait = wait.resolve_all();
    }
    if !keep_early {
        wait = wait.ignore_early();
    }
    a_stream
        .await_event(&b_stream, wait)
        .map_values(resolved)
        .with_value_codec(Json::<Resolved>::new())
        .to("out");
    b.build().unwrap()
}

/// One input: side, key, timestamp, amount.
#[derive(Clone, Debug)]
struct Input {
    is_a: bool,
    key: String,
    ts: i64,
    amount: i64,
}

/// The model: processes the inputs in order with the rule of the module
/// docs of `await_event`; returns each A's resolution (the matching B's id,
/// or `None` for a timeout) and the B ids it matched.
fn model(inputs: &[Input], resolve_all: bool, keep_early: bool) -> BTreeMap<usize, Option<usize>> {
    struct P {
        id: usize,
        key: String,
        ts: i64,
        amount: i64,
    }
    let (mut waits, mut early): (Vec<P>, Vec<P>) = (Vec::new(), Vec::new());
    let mut resolved = BTreeMap::new();
    let mut stream: Option<i64> = None;
    let expire = |waits: &mut Vec<P>,
                  early: &mut Vec<P>,
                  resolved: &mut BTreeMap<usize, Option<usize>>,
                  st: i64| {
        waits.retain(|a| {
            let due = a.ts + TIMEOUT + GRACE < st;
            if due {
                resolved.insert(a.id, None);
            }
            !due
        });
        early.retain(|b| b.ts + TIMEOUT + GRACE >= st);
    };
    let in_time = |a_ts: i64, b_ts: i64| a_ts <= b_ts && b_ts <= a_ts + TIMEOUT;
    for (id, r) in inputs.iter().enumerate() {
        let st = stream.map_or(r.ts, |s| s.max(r.ts));
        stream = Some(st);
        expire(&mut waits, &mut early, &mut resolved, st);
        let p = P {
            id,
            key: r.key.clone(),
            ts: r.ts,
            amount: r.amount,
        };
        if r.is_a {
            let taken = early
                .iter()
                .enumerate()
                .filter(|(_, b)| b.key == p.key && in_time(p.ts, b.ts) && b.amount == p.amount)
                .min_by_key(|(_, b)| (b.ts, b.id))
                .map(|(i, _)| i);
            match taken {
                Some(i) if keep_early => {
                    let b = early.remove(i);
                    resolved.insert(p.id, Some(b.id));
                }
                _ => waits.push(p),
            }
        } else {
            let mut matching: Vec<usize> = waits
                .iter()
                .enumerate()
                .filter(|(_, a)| a.key == p.key && in_time(a.ts, p.ts) && a.amount == p.amount)
                .map(|(i, _)| i)
                .collect();
            matching.sort_by_key(|&i| (waits[i].ts, waits[i].id));
            if !resolve_all {
                matching.truncate(1);
            }
            if matching.is_empty() {
                if keep_early && p.ts + TIMEOUT + GRACE >= st {
                    early.push(p);
                }
            } else {
                matching.sort_unstable_by(|x, y| y.cmp(x));
                for i in matching {
                    let a = waits.remove(i);
                    resolved.insert(a.id, Some(p.id));
                }
            }
        }
        // Timers set in the past fire at once.
        expire(&mut waits, &mut early, &mut resolved, st);
    }
    for a in waits {
        resolved.insert(a.id, None);
    }
    resolved
}

fn run(inputs: &[Input], resolve_all: bool, keep_early: bool) -> Vec<Resolved> {
    let d = TopologyTestDriver::new(topology(resolve_all, keep_early));
    let a = d.input_topic("a", Str, Json::<Rec>::new());
    let b = d.input_topic("b", Str, Json::<Rec>::new());
    for (id, r) in inputs.iter().enumerate() {
        let topic = if r.is_a { &a } else { &b };
        topic.pipe_input_at(
            r.key.clone(),
            Rec {
                id,
                amount: r.amount,
            },
            r.ts,
        );
    }
    d.advance_stream_time(i64::MAX / 2);
    d.output_topic("out", Str, Json::<Resolved>::new())
        .read_values_to_list()
}

fn input() -> impl Strategy<Value = Input> {
    (
        any::<bool>(),
        prop_oneof![Just("k1"), Just("k2"), Just("k3")],
        0i64..400,
        0i64..3,
    )
        .prop_map(|(is_a, key, ts, amount)| Input {
            is_a,
            key: key.to_string(),
            ts,
            amount,
        })
}

fn check(inputs: &[Input], resolve_all: bool, keep_early: bool) -> Result<(), TestCaseError> {
    let got = run(inputs, resolve_all, keep_early);
    let mut by_a: BTreeMap<usize, Option<usize>> = BTreeMap::new();
    for r in &got {
        prop_assert!(
            by_a.insert(r.a, r.b).is_none(),
            "wait {} resolved twice: {:?}",
            r.a,
            got
        );
    }
    let want = model(inputs, resolve_all, keep_early);
    prop_assert_eq!(by_a, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_wait_resolves_once_as_the_timestamp_rule_says(
        inputs in proptest::collection::vec(input(), 1..60),
    ) {
        check(&inputs, false, true)?;
    }

    #[test]
    fn resolve_all_and_ignore_early_follow_the_model(
        inputs in proptest::collection::vec(input(), 1..60),
        resolve_all in any::<bool>(),
        keep_early in any::<bool>(),
    ) {
        check(&inputs, resolve_all, keep_early)?;
    }
}

fn rec(is_a: bool, key: &str, ts: i64, amount: i64) -> Input {
    Input {
        is_a,
        key: key.into(),
        ts,
        amount,
    }
}

#[test]
fn a_b_at_the_timeout_matches_even_once_the_deadline_is_due() {
    // Stream time reaches exactly a.ts + timeout with the B itself.
    let got = run(
        &[rec(true, "k", 0, 1), rec(false, "k", TIMEOUT, 1)],
        false,
        true,
    );
    assert_eq!(got, vec![Resolved { a: 0, b: Some(1) }]);
}

#[test]
fn the_oldest_matching_wait_is_resolved_first() {
    let got = run(
        &[
            rec(true, "k", 10, 1),
            rec(true, "k", 5, 1),
            rec(false, "k", 50, 1),
            rec(false, "k", 60, 1),
        ],
        false,
        true,
    );
    assert_eq!(
        got,
        vec![Resolved { a: 1, b: Some(2) }, Resolved { a: 0, b: Some(3) }]
    );
}

#[test]
fn a_b_before_its_a_is_kept_and_a_late_b_is_not() {
    let got = run(
        &[
            rec(false, "k", 100, 1),
            rec(true, "k", 50, 1),
            rec(true, "x", 1_000, 1),
            rec(false, "j", 100, 1), // stream time 1_000: past 100 + timeout + grace
            rec(true, "j", 90, 1),
        ],
        false,
        true,
    );
    assert_eq!(
        got,
        vec![
            Resolved { a: 1, b: Some(0) },
            Resolved { a: 4, b: None },
            Resolved { a: 2, b: None }
        ]
    );
}

#[test]
fn outcomes_carry_the_b_timestamp_or_the_deadline() {
    let d = TopologyTestDriver::new(topology(false, true));
    let a = d.input_topic("a", Str, Json::<Rec>::new());
    let b = d.input_topic("b", Str, Json::<Rec>::new());
    a.pipe_input_at("m".into(), Rec { id: 0, amount: 1 }, 1_000);
    a.pipe_input_at("t".into(), Rec { id: 1, amount: 1 }, 1_000);
    b.pipe_input_at("m".into(), Rec { id: 2, amount: 1 }, 1_030);
    b.pipe_input_at(
        "z".into(),
        Rec { id: 3, amount: 1 },
        1_000 + TIMEOUT + GRACE + 1,
    );
    let out = d.read_raw("out");
    let stamps: Vec<(String, i64)> = out
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.key.clone().unwrap()).unwrap(),
                r.timestamp,
            )
        })
        .collect();
    assert_eq!(
        stamps,
        vec![("m".to_string(), 1_030), ("t".to_string(), 1_000 + TIMEOUT)]
    );
    assert_eq!(d.stream_time("a"), Some(1_000 + TIMEOUT + GRACE + 1));
}

#[test]
fn correlate_takes_the_key_from_each_value_through_repartition_topics() {
    let b = TopologyBuilder::new();
    let orders = b.stream("orders", Str, Json::<serde_json::Value>::new());
    let payments = b.stream("payments", Str, Json::<serde_json::Value>::new());
    orders
        .await_event(
            &payments,
            Wait::named("pay")
                .correlate(
                    |o: &serde_json::Value| o["id"].as_str().unwrap_or("").to_string(),
                    |p: &serde_json::Value| p["order"].as_str().unwrap_or("").to_string(),
                )
                .timeout(Duration::from_millis(100)),
        )
        .map_values(|o| match o {
            Outcome::Matched(..) => "matched".to_string(),
            Outcome::TimedOut(_) => "timed out".to_string(),
        })
        .with_value_codec(Str)
        .to("out");
    let t = b.build().unwrap();
    let mut topics: Vec<String> = t.repartition_topics().into_iter().map(|(t, _)| t).collect();
    topics.sort();
    assert_eq!(topics, vec!["pay-a-repartition", "pay-b-repartition"]);
    let d = TopologyTestDriver::new(t);
    let o = d.input_topic("orders", Str, Json::<serde_json::Value>::new());
    let p = d.input_topic("payments", Str, Json::<serde_json::Value>::new());
    // Record keys say nothing: the values carry the correlation key.
    o.pipe_input_at("x".into(), serde_json::json!({"id": "o1"}), 1_000);
    o.pipe_input_at("y".into(), serde_json::json!({"id": "o2"}), 1_000);
    p.pipe_input_at("z".into(), serde_json::json!({"order": "o1"}), 1_050);
    p.pipe_input_at("z".into(), serde_json::json!({"order": "o3"}), 1_500);
    let out = d.output_topic("out", Str, Str);
    // Behind the repartition topics stream time is the slower input's:
    // the orders are still at 1,000, so o2 has not timed out yet.
    assert_eq!(
        out.read_key_values_to_list(),
        vec![("o1".to_string(), "matched".to_string())]
    );
    o.pipe_input_at("x".into(), serde_json::json!({"id": "o4"}), 1_500);
    assert_eq!(
        out.read_key_values_to_list(),
        vec![("o2".to_string(), "timed out".to_string())]
    );
}

#[test]
fn outcomes_carry_the_headers_of_their_records() {
    let d = TopologyTestDriver::new(topology(false, true));
    let record =
        |topic: &str, offset: i64, key: &str, ts: i64, amount: i64, hs: &[(&str, &str)]| {
            let value = Json::<Rec>::new()
                .encode(&Rec {
                    id: offset as usize,
                    amount,
                })
                .unwrap();
            let mut r = Record::new(topic, Some(key.as_bytes().to_vec()), Some(value), ts);
            (r.partition, r.offset) = (0, offset);
            for (k, v) in hs {
                r.headers.push(*k, Some(v.as_bytes().to_vec()));
            }
            r
        };
    // A payment without a correlation id matches an order with one: the
    // match carries the payment's headers, then the order's it lacks.
    d.pipe_raw(record(
        "a",
        0,
        "k1",
        1_000,
        5,
        &[("correlation-id", "order-1"), ("traceparent", "a")],
    ));
    d.pipe_raw(record("b", 0, "k1", 1_010, 5, &[("traceparent", "b")]));
    // An order that times out keeps its own.
    d.pipe_raw(record(
        "a",
        1,
        "k2",
        1_020,
        7,
        &[("correlation-id", "order-2")],
    ));
    // A payment (later in time) that came before its order: kept, then
    // the order completes the match.
    d.pipe_raw(record(
        "b",
        1,
        "k3",
        1_050,
        9,
        &[("payment-id", "p-3"), ("correlation-id", "pay")],
    ));
    d.pipe_raw(record(
        "a",
        2,
        "k3",
        1_040,
        9,
        &[("correlation-id", "order-3")],
    ));
    d.advance_stream_time(10_000);
    let got: BTreeMap<String, Vec<(String, String)>> = d
        .read_raw("out")
        .into_iter()
        .map(|r| {
            let hs = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.key.clone(),
                        String::from_utf8(h.value.clone().unwrap()).unwrap(),
                    )
                })
                .collect();
            (String::from_utf8(r.key.unwrap()).unwrap(), hs)
        })
        .collect();
    let pairs = |hs: &[(&str, &str)]| -> Vec<(String, String)> {
        hs.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got["k1"],
        pairs(&[("traceparent", "b"), ("correlation-id", "order-1")])
    );
    assert_eq!(got["k2"], pairs(&[("correlation-id", "order-2")]));
    assert_eq!(
        got["k3"],
        pairs(&[("correlation-id", "order-3"), ("payment-id", "p-3")])
    );
}

/// A timeout that a node downstream refuses resolves its wait all the
/// same: A is dead-lettered (with the reason) and the wait is gone — a
/// later matching B finds nothing to resolve a second time.
#[test]
fn a_timeout_refused_downstream_dead_letters_its_a_and_resolves_the_wait() {
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
            Outcome::TimedOut(13) => Err(weir_core::OpError::permanent("unlucky")),
            Outcome::TimedOut(a) => Ok(-a),
            Outcome::Matched(a, _) => Ok(a),
        })
        .with_value_codec(Json::<i64>::new())
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let o = d.input_topic("orders", Str, Json::<i64>::new());
    let p = d.input_topic("payments", Str, Json::<i64>::new());
    let out = d.output_topic("out", Str, Json::<i64>::new());
    o.pipe_input_at("a".into(), 13, 0);
    o.pipe_input_at("b".into(), 2, 0);
    o.pipe_input_at("z".into(), 9, 500); // a and b time out
    assert_eq!(out.read_key_values_to_list(), vec![("b".to_string(), -2)]);
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].value.as_deref(), Some(&b"13"[..]), "A's value");
    assert_eq!(dead[0].key.as_deref(), Some(&b"a"[..]));
    assert!(
        dead[0]
            .headers
            .get_str("weir.error.message")
            .is_some_and(|m| m.contains("unlucky")),
        "{:?}",
        dead[0].headers
    );
    // In a's window by its timestamp: a lingering wait would match it.
    p.pipe_input_at("a".into(), 13, 50);
    assert!(out.read_key_values_to_list().is_empty(), "resolved once");
    assert!(d.dead_letters().is_empty(), "nothing more is dead-lettered");
}

/// Two waits (or two kept Bs) made from one input record share its id and
/// deadline: resolving one must not cancel the other's timer, and the
/// timer resolves (or drops) every one of them.
#[test]
fn waits_made_from_one_record_each_resolve_once() {
    let b = TopologyBuilder::new();
    // Each record becomes two (ids 10n and 10n + 1); a B's second copy
    // takes the amount's absolute value.
    let a_stream = b
        .stream("a", Str, Json::<Rec>::new())
        .process("a-twice", &[], |ctx, k: String, r: Rec| {
            ctx.forward(k.clone(), Rec { id: r.id * 10, ..r });
            ctx.forward(
                k,
                Rec {
                    id: r.id * 10 + 1,
                    ..r
                },
            );
            Ok(())
        })
        .with_codecs(Str, Json::<Rec>::new());
    let b_stream = b
        .stream("b", Str, Json::<Rec>::new())
        .process("b-twice", &[], |ctx, k: String, r: Rec| {
            ctx.forward(k.clone(), Rec { id: r.id * 10, ..r });
            let amount = r.amount.abs();
            ctx.forward(
                k,
                Rec {
                    id: r.id * 10 + 1,
                    amount,
                },
            );
            Ok(())
        })
        .with_codecs(Str, Json::<Rec>::new());
    a_stream
        .await_event(
            &b_stream,
            Wait::named("w")
                .when(|a: &Rec, b: &Rec| a.amount == b.amount)
                .timeout(Duration::from_millis(TIMEOUT as u64))
                .grace(Duration::from_millis(GRACE as u64)),
        )
        .map_values(resolved)
        .with_value_codec(Json::<Resolved>::new())
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let a = d.input_topic("a", Str, Json::<Rec>::new());
    let bs = d.input_topic("b", Str, Json::<Rec>::new());
    // "m": two waits, then two Bs that take them one by one.
    a.pipe_input_at("m".into(), Rec { id: 1, amount: 1 }, 1_000);
    bs.pipe_input_at("m".into(), Rec { id: 2, amount: 1 }, 1_020);
    // "t": two waits and no B: both time out.
    a.pipe_input_at("t".into(), Rec { id: 3, amount: 1 }, 1_000);
    // "e": two Bs kept before their A; the A's two waits take them.
    bs.pipe_input_at("e".into(), Rec { id: 4, amount: 1 }, 1_010);
    a.pipe_input_at("e".into(), Rec { id: 5, amount: 1 }, 1_005);
    // "h": two Bs kept (amounts -3 and 3); the first wait takes the second
    // B, the other wait times out, and the first B expires.
    bs.pipe_input_at("h".into(), Rec { id: 6, amount: -3 }, 1_060);
    a.pipe_input_at("h".into(), Rec { id: 7, amount: 3 }, 1_050);
    // "g": two Bs kept that no wait takes: both expire.
    bs.pipe_input_at("g".into(), Rec { id: 8, amount: 1 }, 1_070);
    // Stream time past every deadline.
    a.pipe_input_at("x".into(), Rec { id: 9, amount: 9 }, 2_000);
    let mut got = d
        .output_topic("out", Str, Json::<Resolved>::new())
        .read_values_to_list();
    got.sort_by_key(|r| r.a);
    let r = |a, b| Resolved { a, b };
    assert_eq!(
        got,
        vec![
            r(10, Some(20)),
            r(11, Some(21)),
            r(30, None),
            r(31, None),
            r(50, Some(40)),
            r(51, Some(41)),
            r(70, Some(61)),
            r(71, None),
        ]
    );
    let early_dropped: u64 = d
        .take_metrics()
        .counters
        .iter()
        .filter(|(_, c, _)| *c == "early_dropped")
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(early_dropped, 3, "the kept Bs 60, 80 and 81 expired");
}
