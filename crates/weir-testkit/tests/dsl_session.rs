//! Session windows through the TopologyTestDriver: a property test of
//! session merging (and of emit-final) over random keys, out-of-order and
//! late records against a naive model, and an example of the timestamps.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use weir_core::{Json, Str};
use weir_dsl::{session, Suppressed, Topology, TopologyBuilder};
use weir_testkit::TopologyTestDriver;

const GAP: i64 = 10;
const GRACE: i64 = 15;

/// Per key: the sessions as (start, end) → count.
type Sessions = BTreeMap<(String, i64, i64), u64>;

fn topology(suppress: bool) -> Topology {
    let b = TopologyBuilder::new();
    let table = b
        .stream("in", Str, Str)
        .group_by_key()
        .windowed_by_session(
            session(Duration::from_millis(GAP as u64)).grace(Duration::from_millis(GRACE as u64)),
        )
        .count("sessions");
    let table = if suppress {
        table.suppress(Suppressed::until_window_closes())
    } else {
        table
    };
    table
        .to_stream()
        .map(|w, n| (format!("{}|{}|{}", w.key, w.window.start, w.window.end), n))
        .with_codecs(Str, Json::<Option<u64>>::new())
        .to("out");
    b.build().unwrap()
}

/// The sessions the records make, merging by the gap over every session
/// ever made (none is dropped), late records left out; and how many were late.
fn model(records: &[(&'static str, i64)]) -> (Sessions, u64) {
    let mut sessions: Vec<(String, i64, i64, u64)> = Vec::new();
    let (mut st, mut late) = (None::<i64>, 0);
    for &(key, t) in records {
        let now = st.map_or(t, |s: i64| s.max(t));
        st = Some(now);
        if now > t + GRACE {
            late += 1;
            continue;
        }
        let (mut start, mut end, mut n) = (t, t, 1);
        sessions.retain(|(k, s, e, c)| {
            let merge = k == key && *e >= t - GAP && *s <= t + GAP;
            if merge {
                start = start.min(*s);
                end = end.max(*e);
                n += c;
            }
            !merge
        });
        sessions.push((key.to_string(), start, end, n));
    }
    (
        sessions
            .into_iter()
            .map(|(k, s, e, n)| ((k, s, e), n))
            .collect(),
        late,
    )
}

fn parse(key: &str) -> (String, i64, i64) {
    let mut p = key.split('|');
    (
        p.next().unwrap().to_string(),
        p.next().unwrap().parse().unwrap(),
        p.next().unwrap().parse().unwrap(),
    )
}

fn records() -> impl Strategy<Value = Vec<(&'static str, i64)>> {
    proptest::collection::vec(
        (prop_oneof![Just("a"), Just("b"), Just("c")], 0i64..200),
        1..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The changes, folded (`None` removes a session), leave the model's
    /// sessions; the late counter counts the model's late records.
    #[test]
    fn session_changes_fold_into_the_model(records in records()) {
        let d = TopologyTestDriver::new(topology(false));
        let input = d.input_topic("in", Str, Str);
        for &(k, t) in &records {
            input.pipe_input_at(k.to_string(), String::new(), t);
        }
        let mut folded = Sessions::new();
        for (key, n) in d.output_topic("out", Str, Json::<Option<u64>>::new()).read_key_values_to_list() {
            match n {
                Some(n) => { folded.insert(parse(&key), n); }
                None => { prop_assert!(folded.remove(&parse(&key)).is_some(), "{} removed before it was made", key); }
            }
        }
        let (want, late) = model(&records);
        prop_assert_eq!(folded, want);
        prop_assert_eq!(d.late_records(), late);
    }

    /// Suppressed: each session once, when it closed, equal to the model's.
    #[test]
    fn suppressed_sessions_are_emitted_once_each_as_the_model_says(records in records()) {
        let d = TopologyTestDriver::new(topology(true));
        let input = d.input_topic("in", Str, Str);
        for &(k, t) in &records {
            input.pipe_input_at(k.to_string(), String::new(), t);
        }
        // A record far later closes every session but its own.
        input.pipe_input_at("zz".into(), String::new(), 10_000);
        let out = d.output_topic("out", Str, Json::<Option<u64>>::new()).read_key_values_to_list();
        let mut finals = Sessions::new();
        for (key, n) in out {
            let n = n.expect("a final result has a value");
            prop_assert!(finals.insert(parse(&key), n).is_none(), "{} emitted twice", key);
        }
        prop_assert_eq!(finals, model(&records).0);
    }
}

#[test]
fn a_final_session_is_stamped_with_its_end() {
    let d = TopologyTestDriver::new(topology(true));
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("k".into(), String::new(), 100);
    input.pipe_input_at("k".into(), String::new(), 108);
    input.pipe_input_at("x".into(), String::new(), 108 + GAP + GRACE); // not yet closed
    assert!(d.read_raw("out").is_empty());
    input.pipe_input_at("x".into(), String::new(), 108 + GAP + GRACE + 1);
    let out = d.read_raw("out");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key.as_deref(), Some(b"k|100|108".as_slice()));
    assert_eq!(out[0].timestamp, 108);
}
