//! Sliding windows through the TopologyTestDriver: property tests of the
//! updates and of emit-final over random keys, out-of-order and late
//! records against a naive model (every window the records define,
//! recounted from scratch), and an example of the windows and timestamps.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use weir_core::{Json, Str};
use weir_dsl::{sliding, Suppressed, Topology, TopologyBuilder, Windowed};
use weir_testkit::TopologyTestDriver;

const MAX_DIFF: i64 = 10;
const GRACE: i64 = 15;

/// Per (key, start, end): (records, sum of their values).
type Windows = BTreeMap<(String, i64, i64), (u64, u64)>;

fn windows() -> weir_dsl::SlidingWindows {
    sliding(Duration::from_millis(MAX_DIFF as u64)).grace(Duration::from_millis(GRACE as u64))
}

fn key_of(w: &Windowed<String>) -> String {
    format!("{}|{}|{}", w.key, w.window.start, w.window.end)
}

/// (count, sum) per window of the values (numbers as text); finals only
/// when `suppress`.
fn summing(suppress: bool) -> Topology {
    let b = TopologyBuilder::new();
    let table = b
        .stream("in", Str, Str)
        .group_by_key()
        .windowed_by_sliding(windows())
        .aggregate(
            "sums",
            || (0u64, 0u64),
            |_, v: String, (n, s)| (n + 1, s + v.parse::<u64>().unwrap()),
            Json::<(u64, u64)>::new(),
        );
    let table = if suppress {
        table.suppress(Suppressed::until_window_closes())
    } else {
        table
    };
    table
        .to_stream()
        .map(|w, a| (key_of(&w), a))
        .with_codecs(Str, Json::<(u64, u64)>::new())
        .to("out");
    b.build().unwrap()
}

/// The windows the records that are not late define — each record's left
/// window `[t - d, t]` and its right window `[t + 1, t + d + 1]` when that
/// holds a record — each recounted over every such record in it; and how
/// many records were late.
fn model(records: &[(&'static str, i64, u64)]) -> (Windows, u64) {
    let mut kept: Vec<(&str, i64, u64)> = Vec::new();
    let (mut st, mut late) = (i64::MIN, 0);
    for &(k, t, v) in records {
        st = st.max(t);
        if st > t + GRACE {
            late += 1;
        } else {
            kept.push((k, t, v));
        }
    }
    let mut starts = BTreeSet::new();
    for &(k, t, _) in &kept {
        starts.insert((k, t - MAX_DIFF));
        if kept
            .iter()
            .any(|&(k2, t2, _)| k2 == k && t2 > t && t2 <= t + 1 + MAX_DIFF)
        {
            starts.insert((k, t + 1));
        }
    }
    let windows = starts
        .into_iter()
        .map(|(k, s)| {
            let (n, sum) = kept
                .iter()
                .filter(|&&(k2, t, _)| k2 == k && (s..=s + MAX_DIFF).contains(&t))
                .fold((0, 0), |(n, sum), &(_, _, v)| (n + 1, sum + v));
            ((k.to_string(), s, s + MAX_DIFF + 1), (n, sum))
        })
        .collect();
    (windows, late)
}

fn parse(key: &str) -> (String, i64, i64) {
    let mut p = key.split('|');
    (
        p.next().unwrap().to_string(),
        p.next().unwrap().parse().unwrap(),
        p.next().unwrap().parse().unwrap(),
    )
}

fn records() -> impl Strategy<Value = Vec<(&'static str, i64, u64)>> {
    proptest::collection::vec(
        (
            prop_oneof![Just("a"), Just("b"), Just("c")],
            0i64..150,
            1u64..100,
        ),
        1..60,
    )
}

fn pipe(d: &TopologyTestDriver, records: &[(&'static str, i64, u64)]) {
    let input = d.input_topic("in", Str, Str);
    for &(k, t, v) in records {
        input.pipe_input_at(k.to_string(), v.to_string(), t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The last update of each window is the model's window, every model
    /// window was forwarded, and the late counter counts the model's late
    /// records.
    #[test]
    fn sliding_updates_end_at_the_model(records in records()) {
        let d = TopologyTestDriver::new(summing(false));
        pipe(&d, &records);
        let mut last = Windows::new();
        for (key, a) in d.output_topic("out", Str, Json::<(u64, u64)>::new()).read_key_values_to_list() {
            last.insert(parse(&key), a);
        }
        let (want, late) = model(&records);
        prop_assert_eq!(last, want);
        prop_assert_eq!(d.late_records(), late);
    }

    /// Suppressed: each window once, when it closed, equal to the model's.
    #[test]
    fn suppressed_sliding_windows_are_emitted_once_each(records in records()) {
        let d = TopologyTestDriver::new(summing(true));
        pipe(&d, &records);
        // A record far later closes every window but its own.
        d.input_topic("in", Str, Str).pipe_input_at("zz".into(), "0".into(), 10_000);
        let mut finals = Windows::new();
        for (key, a) in d.output_topic("out", Str, Json::<(u64, u64)>::new()).read_key_values_to_list() {
            prop_assert!(finals.insert(parse(&key), a).is_none(), "{} emitted twice", key);
        }
        prop_assert_eq!(finals, model(&records).0);
    }
}

#[test]
fn a_record_makes_its_left_window_and_the_right_window_before_it() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .group_by_key()
        .windowed_by_sliding(windows())
        .count("counts")
        .to_stream()
        .map(|w, n| (key_of(&w), n))
        .with_codecs(Str, Json::<u64>::new())
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("k".into(), String::new(), 10);
    input.pipe_input_at("k".into(), String::new(), 15);
    let out = d.read_raw("out");
    let got: Vec<(String, u64, i64)> = out
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.key.clone().unwrap()).unwrap(),
                serde_json::from_slice(r.value.as_deref().unwrap()).unwrap(),
                r.timestamp,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            // The first record's left window [0, 10].
            ("k|0|11".to_string(), 1, 10),
            // The second's left window [5, 15] holds both.
            ("k|5|16".to_string(), 2, 15),
            // The first record's right window [11, 21] now holds the second.
            ("k|11|22".to_string(), 1, 15),
        ]
    );
}

#[test]
fn late_records_change_nothing_and_are_counted() {
    let d = TopologyTestDriver::new(summing(false));
    pipe(&d, &[("k", 100, 1), ("k", 100 - GRACE - 1, 5)]);
    let out = d
        .output_topic("out", Str, Json::<(u64, u64)>::new())
        .read_key_values_to_list();
    assert_eq!(out, vec![("k|90|101".to_string(), (1, 1))]);
    assert_eq!(d.late_records(), 1);
}

#[test]
fn aggregate_without_a_value_codec_does_not_build() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .map_values(|v| v.len())
        .group_by_key()
        .windowed_by_sliding(windows())
        .aggregate("sums", || 0usize, |_, v, a| a + v, Json::<usize>::new())
        .to_stream()
        .map(|w, n| (key_of(&w), n))
        .with_codecs(Str, Json::<usize>::new())
        .to("out");
    let e = b.build().unwrap_err().to_string();
    assert!(e.contains("sums"), "{e}");
}
