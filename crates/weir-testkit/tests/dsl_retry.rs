//! Fallible operators and retries through the TopologyTestDriver: failure
//! classes reach the dead-letter topic with their kinds, a retryable
//! failure parks the record on a wall-clock timer without holding up other
//! keys, later records of its key wait behind it, and a property test over
//! random outages and clock moves: every record is delivered or
//! dead-lettered exactly once, in per-key order, and a key with nothing
//! parked is never delayed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use weir_core::{dlq_headers, OpError, Record, Str};
use weir_dsl::{CircuitBreaker, RetryPolicy, TopologyBuilder};
use weir_testkit::TopologyTestDriver;

/// Keys whose downstream service is down (their records fail, retryably).
type Down = Arc<Mutex<BTreeSet<String>>>;

/// `in` → a retrying node that fails retryably for keys that are down,
/// permanently for values starting with `bad`, validation for `invalid`
/// → `out`.
fn retrying(policy: RetryPolicy, down: Down) -> TopologyTestDriver {
    guarded(policy, None, down)
}

fn guarded(policy: RetryPolicy, breaker: Option<CircuitBreaker>, down: Down) -> TopologyTestDriver {
    let b = TopologyBuilder::new();
    let node = b.stream("in", Str, Str).with_retries("call", policy);
    let node = match breaker {
        Some(br) => node.with_breaker(br),
        None => node,
    };
    node.try_map(move |k: String, v: String| {
        if v.starts_with("bad") {
            return Err(OpError::permanent("refused"));
        }
        if v.starts_with("invalid") {
            return Err(OpError::validation("not a number").at_field("/amount"));
        }
        if down.lock().unwrap().contains(&k) {
            return Err(OpError::retryable("service down"));
        }
        Ok((k, v))
    })
    .to("out");
    TopologyTestDriver::new(b.build().unwrap())
}

fn policy() -> RetryPolicy {
    RetryPolicy::new(5).backoff(Duration::from_millis(100), Duration::from_millis(1_000))
}

fn values(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect()
}

fn header(r: &Record, name: &str) -> Option<String> {
    r.headers.get_str(name).map(str::to_string)
}

#[test]
fn failure_classes_are_dead_lettered_with_their_kinds() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .try_map_values(|v: String| match v.as_str() {
            "p" => Err(OpError::permanent("no such customer")),
            "v" => Err(OpError::validation("must be positive").at_field("/amount")),
            "r" => Err(OpError::retryable("timeout")),
            _ => Ok(v),
        })
        .named("check")
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let input = d.input_topic("in", Str, Str);
    for v in ["ok", "p", "v", "r"] {
        input.pipe_input("k".into(), v.into());
    }
    assert_eq!(values(&d.read_raw("out")), vec!["ok"]);
    let dlq = d.read_raw(&d.dead_letter_topic());
    let kinds: Vec<_> = dlq
        .iter()
        .map(|r| header(r, dlq_headers::ERROR_KIND).unwrap())
        .collect();
    assert_eq!(kinds, vec!["permanent", "validation", "retryable"]);
    assert_eq!(values(&dlq), vec!["p", "v", "r"]);
    assert_eq!(
        header(&dlq[1], dlq_headers::ERROR_MESSAGE).unwrap(),
        "node check: /amount: must be positive"
    );
    assert!(dlq
        .iter()
        .all(|r| header(r, dlq_headers::NODE).as_deref() == Some("check")));
}

#[test]
fn a_retried_record_waits_on_the_clock_and_its_key_waits_behind_it() {
    let down = Down::default();
    down.lock().unwrap().insert("b".into());
    let d = retrying(policy().without_jitter(), down.clone());
    let input = d.input_topic("in", Str, Str);
    for (k, v) in [("a", "a1"), ("b", "b1"), ("b", "b2"), ("a", "a2")] {
        input.pipe_input(k.into(), v.into());
    }
    // Other keys flow on; b2 waits behind b1 (not tried).
    let first = d.read_raw("out");
    assert_eq!(values(&first), vec!["a1", "a2"]);
    assert!(
        first
            .iter()
            .all(|r| header(r, dlq_headers::ATTEMPTS).as_deref() == Some("1")),
        "first tries say so"
    );
    d.advance_wall_clock(100); // second try of b1: still down
    assert!(d.read_raw("out").is_empty());
    down.lock().unwrap().clear();
    d.advance_wall_clock(199);
    assert!(d.read_raw("out").is_empty(), "the third try is due at 300");
    d.advance_wall_clock(1);
    let out = d.read_raw("out");
    assert_eq!(values(&out), vec!["b1", "b2"]);
    assert_eq!(header(&out[0], dlq_headers::ATTEMPTS).as_deref(), Some("3"));
    assert_eq!(header(&out[1], dlq_headers::ATTEMPTS).as_deref(), Some("1"));
    assert!(d.read_raw(&d.dead_letter_topic()).is_empty());
}

#[test]
fn used_up_retries_are_dead_lettered_and_the_key_moves_on() {
    let down = Down::default();
    down.lock().unwrap().insert("b".into());
    let d = retrying(RetryPolicy::new(3).without_jitter(), down.clone());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("b".into(), "b1".into(), 42);
    input.pipe_input("b".into(), "bad".into());
    d.advance_wall_clock(100);
    down.lock().unwrap().clear();
    input.pipe_input("b".into(), "b3".into());
    // b1 failed its second try (at 100) and succeeds its third (at 300);
    // then the records behind it: "bad" fails for good, b3 is delivered.
    d.advance_wall_clock(200);
    assert_eq!(values(&d.read_raw("out")), vec!["b1", "b3"]);
    let dlq = d.read_raw(&d.dead_letter_topic());
    assert_eq!(values(&dlq), vec!["bad"]);
    assert_eq!(
        header(&dlq[0], dlq_headers::ERROR_KIND).as_deref(),
        Some("permanent")
    );
    assert_eq!(header(&dlq[0], dlq_headers::ATTEMPTS).as_deref(), Some("1"));
    assert_eq!(
        header(&dlq[0], dlq_headers::SOURCE_TOPIC).as_deref(),
        Some("in")
    );

    // Down for good: three tries, then retries-exhausted.
    down.lock().unwrap().insert("c".into());
    input.pipe_input_at("c".into(), "c1".into(), 7);
    d.advance_wall_clock(100);
    d.advance_wall_clock(200);
    let dlq = d.read_raw(&d.dead_letter_topic());
    assert_eq!(values(&dlq), vec!["c1"]);
    assert_eq!(
        header(&dlq[0], dlq_headers::ERROR_KIND).as_deref(),
        Some("retries-exhausted")
    );
    assert_eq!(header(&dlq[0], dlq_headers::ATTEMPTS).as_deref(), Some("3"));
    assert_eq!(dlq[0].timestamp, 7);
}

#[test]
fn later_records_may_pass_by_option() {
    let down = Down::default();
    down.lock().unwrap().insert("b".into());
    let d = retrying(policy().let_later_records_pass(), down.clone());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input("b".into(), "b1".into());
    down.lock().unwrap().clear();
    input.pipe_input("b".into(), "b2".into());
    assert_eq!(values(&d.read_raw("out")), vec!["b2"]);
    d.advance_wall_clock(1_000);
    assert_eq!(values(&d.read_raw("out")), vec!["b1"]);
}

#[test]
fn an_open_breaker_holds_records_back_without_charging_or_dead_lettering_them() {
    let down = Down::default();
    for k in ["a", "b", "c"] {
        down.lock().unwrap().insert(k.into());
    }
    let breaker = CircuitBreaker::new(2, Duration::from_secs(1), Duration::from_millis(500));
    let d = guarded(
        RetryPolicy::new(2).without_jitter(),
        Some(breaker),
        down.clone(),
    );
    let input = d.input_topic("in", Str, Str);
    input.pipe_input("a".into(), "a1".into()); // fails: parked (1 try)
    input.pipe_input("b".into(), "b1".into()); // fails: the breaker opens, b1 waits
    input.pipe_input("c".into(), "c1".into()); // behind b1 in the task
    d.advance_wall_clock(100); // a1's retry is put off, not charged
    assert!(d.read_raw("out").is_empty());
    d.advance_wall_clock(399);
    assert!(d.read_raw("out").is_empty(), "still open");
    down.lock().unwrap().clear();
    d.advance_wall_clock(1); // 500: the probe (b1) succeeds, the rest follows
    let mut got = values(&d.read_raw("out"));
    got.sort();
    assert_eq!(got, vec!["a1", "b1", "c1"]);
    assert!(
        d.read_raw(&d.dead_letter_topic()).is_empty(),
        "a1 had 2 tries at most, and one was put off: nothing dead-lettered"
    );
}

#[test]
fn a_failure_downstream_of_a_retry_dead_letters_the_record_and_frees_its_key() {
    let down = Down::default();
    down.lock().unwrap().insert("b".into());
    let d = {
        let down = down.clone();
        let b = TopologyBuilder::new();
        b.stream("in", Str, Str)
            .with_retries("call", RetryPolicy::new(5).without_jitter())
            .try_map(move |k: String, v: String| {
                if down.lock().unwrap().contains(&k) {
                    return Err(OpError::retryable("down"));
                }
                Ok((k, v))
            })
            .try_map_values(|v: String| {
                if v == "b1" {
                    Err(OpError::permanent("downstream refuses"))
                } else {
                    Ok(v)
                }
            })
            .to("out");
        TopologyTestDriver::new(b.build().unwrap())
    };
    let input = d.input_topic("in", Str, Str);
    input.pipe_input("b".into(), "b1".into());
    input.pipe_input("b".into(), "b2".into());
    down.lock().unwrap().clear();
    d.advance_wall_clock(100);
    assert_eq!(values(&d.read_raw("out")), vec!["b2"], "the key moved on");
    let dlq = d.read_raw(&d.dead_letter_topic());
    assert_eq!(values(&dlq), vec!["b1"]);
    assert_eq!(
        header(&dlq[0], dlq_headers::ERROR_KIND).as_deref(),
        Some("permanent")
    );
    assert_eq!(
        header(&dlq[0], dlq_headers::SOURCE_TOPIC).as_deref(),
        Some("in")
    );
    assert_eq!(header(&dlq[0], dlq_headers::ATTEMPTS).as_deref(), Some("2"));
}

#[test]
fn a_dead_letter_after_retries_carries_the_input_as_read() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .map_values(|v: String| v.to_uppercase())
        .with_value_codec(Str)
        .with_retries("call", RetryPolicy::new(2).without_jitter())
        .try_map_values(|_: String| -> Result<String, OpError> { Err(OpError::retryable("down")) })
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    d.input_topic("in", Str, Str)
        .pipe_input("k".into(), "lower".into());
    d.advance_wall_clock(100);
    let dlq = d.read_raw(&d.dead_letter_topic());
    assert_eq!(
        values(&dlq),
        vec!["lower"],
        "not the node's upper-cased input"
    );
    assert_eq!(
        header(&dlq[0], dlq_headers::ERROR_KIND).as_deref(),
        Some("retries-exhausted")
    );
}

#[derive(Clone, Debug)]
enum Step {
    Pipe(&'static str),
    Down(&'static str),
    Up(&'static str),
    Wait(i64),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let key = || prop_oneof![Just("a"), Just("b"), Just("c")];
    proptest::collection::vec(
        prop_oneof![
            4 => key().prop_map(Step::Pipe),
            1 => key().prop_map(Step::Down),
            1 => key().prop_map(Step::Up),
            2 => (0i64..700).prop_map(Step::Wait),
        ],
        1..80,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_record_is_settled_once_in_key_order(steps in steps()) {
        let down = Down::default();
        let d = retrying(policy(), down.clone());
        let input = d.input_topic("in", Str, Str);
        let mut piped: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        // Per key: delivered (in output order) and dead-lettered indexes.
        let mut delivered: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut dead: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let index = |r: &Record| {
            let k = String::from_utf8(r.key.clone().unwrap()).unwrap();
            let v = String::from_utf8(r.value.clone().unwrap()).unwrap();
            (k, v[1..].parse::<usize>().unwrap())
        };
        let settle = |d: &TopologyTestDriver, delivered: &mut BTreeMap<String, Vec<usize>>, dead: &mut BTreeMap<String, Vec<usize>>| {
            for r in d.read_raw("out") {
                let (k, i) = index(&r);
                delivered.entry(k).or_default().push(i);
            }
            for r in d.read_raw(&d.dead_letter_topic()) {
                let (k, i) = index(&r);
                dead.entry(k).or_default().push(i);
            }
        };
        let count = |m: &BTreeMap<String, Vec<usize>>, k: &str| m.get(k).map_or(0, Vec::len);
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Pipe(k) => {
                    let clear = count(&delivered, k) + count(&dead, k) == count(&piped, k);
                    let is_down = down.lock().unwrap().contains(*k);
                    piped.entry(k.to_string()).or_default().push(i);
                    input.pipe_input(k.to_string(), format!("{k}{i}"));
                    let before = count(&delivered, k);
                    settle(&d, &mut delivered, &mut dead);
                    if clear && !is_down {
                        // Nothing parked for the key: delivered at once.
                        prop_assert_eq!(&delivered[*k][before..], &[i][..]);
                    }
                }
                Step::Down(k) => { down.lock().unwrap().insert(k.to_string()); }
                Step::Up(k) => { down.lock().unwrap().remove(*k); }
                Step::Wait(ms) => {
                    d.advance_wall_clock(*ms);
                    settle(&d, &mut delivered, &mut dead);
                }
            }
        }
        down.lock().unwrap().clear();
        d.advance_wall_clock(10_000);
        settle(&d, &mut delivered, &mut dead);
        for (k, want) in &piped {
            let out = delivered.get(k).cloned().unwrap_or_default();
            // Delivered in the key's order...
            prop_assert!(out.windows(2).all(|w| w[0] < w[1]), "{}: {:?}", k, out);
            // ...and each record settled exactly once.
            let mut all = out;
            all.extend(dead.get(k).cloned().unwrap_or_default());
            all.sort_unstable();
            prop_assert_eq!(&all, want);
        }
    }
}
