//! Windowed stream-stream joins through the TopologyTestDriver: a property
//! test of inner, left and outer joins over random interleavings (keys,
//! out-of-order and late records) against a naive model — every pair of
//! records that are not late and lie within the window joins exactly once,
//! none outside; an unjoined record is emitted once, after its window — and
//! examples of timestamps and lateness.

use std::time::Duration;

use proptest::prelude::*;
use weir_core::{Codec, Json, Record, Str};
use weir_dsl::{JoinWindows, Topology, TopologyBuilder};
use weir_testkit::TopologyTestDriver;

const BEFORE: i64 = 30;
const AFTER: i64 = 50;
const GRACE: i64 = 20;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

type Pair = (Option<usize>, Option<usize>);

/// A join of `l` and `r` into `out`; `by_ref` builds it with the
/// deprecated `*_windowed` methods (joiners taking references), which must
/// give the same results.
fn topology(kind: Kind, by_ref: bool) -> Topology {
    let b = TopologyBuilder::new();
    let l = b.stream("l", Str, Json::<usize>::new());
    let r = b.stream("r", Str, Json::<usize>::new());
    let w = JoinWindows::before_after(
        Duration::from_millis(BEFORE as u64),
        Duration::from_millis(AFTER as u64),
    )
    .grace(Duration::from_millis(GRACE as u64));
    let joined = match (kind, by_ref) {
        (Kind::Inner, false) => l.join((&r, "j", w), |a, b| (Some(a), Some(b))),
        (Kind::Left, false) => l.left_join((&r, "j", w), |a, b| (Some(a), b)),
        (Kind::Outer, false) => l.outer_join((&r, "j", w), |a, b| (a, b)),
        #[allow(deprecated)]
        (Kind::Inner, true) => {
            l.join_windowed(&r, "j", w, |a: &usize, b: &usize| (Some(*a), Some(*b)))
        }
        #[allow(deprecated)]
        (Kind::Left, true) => l.left_join_windowed(&r, "j", w, |a: &usize, b: Option<&usize>| {
            (Some(*a), b.copied())
        }),
        #[allow(deprecated)]
        (Kind::Outer, true) => {
            l.outer_join_windowed(&r, "j", w, |a: Option<&usize>, b: Option<&usize>| {
                (a.copied(), b.copied())
            })
        }
    };
    joined.with_value_codec(Json::<Pair>::new()).to("out");
    b.build().unwrap()
}

#[derive(Clone, Debug)]
struct Input {
    left: bool,
    key: &'static str,
    ts: i64,
}

fn model(inputs: &[Input], kind: Kind) -> Vec<Pair> {
    let mut st: Option<i64> = None;
    let mut kept: Vec<(usize, &Input)> = Vec::new();
    let mut joined = vec![false; inputs.len()];
    let mut out = Vec::new();
    for (id, x) in inputs.iter().enumerate() {
        let now = st.map_or(x.ts, |s| s.max(x.ts));
        st = Some(now);
        let own = if x.left { AFTER } else { BEFORE };
        if now > x.ts + own + GRACE {
            continue; // late
        }
        for &(pid, p) in &kept {
            if p.left == x.left || p.key != x.key {
                continue;
            }
            let (l, r) = if x.left { (x, p) } else { (p, x) };
            if l.ts - BEFORE <= r.ts && r.ts <= l.ts + AFTER {
                let (li, ri) = if x.left { (id, pid) } else { (pid, id) };
                out.push((Some(li), Some(ri)));
                joined[id] = true;
                joined[pid] = true;
            }
        }
        kept.push((id, x));
    }
    for (id, x) in kept {
        if joined[id] {
            continue;
        }
        match (kind, x.left) {
            (Kind::Left | Kind::Outer, true) => out.push((Some(id), None)),
            (Kind::Outer, false) => out.push((None, Some(id))),
            _ => {}
        }
    }
    out.sort();
    out
}

fn run(inputs: &[Input], kind: Kind, by_ref: bool) -> (Vec<Pair>, TopologyTestDriver) {
    let d = TopologyTestDriver::new(topology(kind, by_ref));
    let l = d.input_topic("l", Str, Json::<usize>::new());
    let r = d.input_topic("r", Str, Json::<usize>::new());
    for (id, x) in inputs.iter().enumerate() {
        let t = if x.left { &l } else { &r };
        t.pipe_input_at(x.key.to_string(), id, x.ts);
    }
    d.advance_stream_time(i64::MAX / 2);
    let mut got = d
        .output_topic("out", Str, Json::<Pair>::new())
        .read_values_to_list();
    got.sort();
    (got, d)
}

fn input() -> impl Strategy<Value = Input> {
    (any::<bool>(), prop_oneof![Just("a"), Just("b")], 0i64..300)
        .prop_map(|(left, key, ts)| Input { left, key, ts })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Inner), Just(Kind::Left), Just(Kind::Outer)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn joins_follow_the_naive_model(
        inputs in proptest::collection::vec(input(), 1..50),
        kind in kind(),
        by_ref in any::<bool>(),
    ) {
        let (got, _) = run(&inputs, kind, by_ref);
        prop_assert_eq!(got, model(&inputs, kind));
    }
}

fn at(left: bool, key: &'static str, ts: i64) -> Input {
    Input { left, key, ts }
}

#[test]
fn a_pair_is_stamped_with_the_later_time_and_a_late_record_is_counted() {
    let d = TopologyTestDriver::new(topology(Kind::Inner, false));
    let l = d.input_topic("l", Str, Json::<usize>::new());
    let r = d.input_topic("r", Str, Json::<usize>::new());
    l.pipe_input_at("k".into(), 0, 1_000);
    r.pipe_input_at("k".into(), 1, 1_040);
    r.pipe_input_at("k".into(), 2, 1_500); // stream time 1_500
    l.pipe_input_at("k".into(), 3, 1_000); // late: 1_000 + 50 + 20 < 1_500
    let out = d.read_raw("out");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].timestamp, 1_040);
    assert_eq!(d.late_records(), 1);
}

#[test]
fn an_unjoined_left_record_is_emitted_once_after_its_window() {
    let inputs = [at(true, "k", 100), at(false, "x", 150), at(false, "x", 400)];
    let (got, _) = run(&inputs, Kind::Left, false);
    assert_eq!(got, vec![(Some(0), None)]);
    let (got, _) = run(&inputs, Kind::Outer, false);
    assert_eq!(got, vec![(None, Some(1)), (None, Some(2)), (Some(0), None)]);
}

#[test]
fn an_unjoined_record_is_emitted_with_its_own_headers() {
    for by_ref in [false, true] {
        let d = TopologyTestDriver::new(topology(Kind::Outer, by_ref));
        let record = |topic: &str, offset: i64, ts: i64, id: &str| {
            let value = Json::<usize>::new().encode(&(offset as usize)).unwrap();
            let mut r = Record::new(topic, Some(b"k".to_vec()), Some(value), ts);
            (r.partition, r.offset) = (0, offset);
            r.headers
                .push("correlation-id", Some(id.as_bytes().to_vec()));
            r
        };
        d.pipe_raw(record("l", 0, 100, "left-0"));
        d.pipe_raw(record("r", 1, 1_000, "right-1"));
        d.advance_stream_time(10_000);
        let mut got: Vec<(Pair, String)> = d
            .read_raw("out")
            .into_iter()
            .map(|r| {
                let pair = Json::<Pair>::new()
                    .decode(r.value.as_deref().unwrap())
                    .unwrap();
                (
                    pair,
                    r.headers.get_str("correlation-id").unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ((None, Some(1)), "right-1".to_string()),
                ((Some(0), None), "left-0".to_string())
            ]
        );
    }
}
