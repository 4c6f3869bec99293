//! Windowed aggregation in the TopologyTestDriver: updates per record,
//! emit-final once per window when stream time passes end + grace, late
//! records counted (and dead-lettered when asked), expiry, hopping windows,
//! and a property test of emit-final against a naive recount.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use weir_core::{Json, Str};
use weir_dsl::{hopping, tumbling, Suppressed, TimeWindows, TopologyBuilder, Windowed};
use weir_testkit::TopologyTestDriver;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Counts per key in `windows`; finals only when `suppress`. Output key
/// `"<key>@<start>"`, value the count; dead letters on when `dlq` says so.
fn counting(windows: TimeWindows, suppress: bool, dlq: Arc<AtomicBool>) -> TopologyTestDriver {
    let b = TopologyBuilder::new();
    let table = b
        .stream("in", Str, Str)
        .group_by_key()
        .windowed_by(windows)
        .late_to_dead_letters(move || dlq.load(Ordering::SeqCst))
        .count("counts");
    let table = if suppress {
        table.suppress(Suppressed::until_window_closes())
    } else {
        table
    };
    table
        .to_stream()
        .map(|w: Windowed<String>, n| (format!("{}@{}", w.key, w.window.start), n))
        .with_codecs(Str, Json::<u64>::new())
        .to("out");
    TopologyTestDriver::new(b.build().unwrap())
}

fn out(d: &TopologyTestDriver) -> Vec<(String, u64)> {
    d.output_topic("out", Str, Json::<u64>::new())
        .read_key_values_to_list()
}

#[test]
fn every_update_is_forwarded_without_suppress() {
    let d = counting(tumbling(MS(10)).grace(MS(5)), false, Arc::default());
    let input = d.input_topic("in", Str, Str);
    for (k, t) in [
        ("a", 1),
        ("a", 9),
        ("b", 5),
        ("a", 10),
        ("a", 3),
        ("a", 15),
        ("a", 4),
    ] {
        input.pipe_input_at(k.into(), "x".into(), t);
    }
    assert_eq!(
        out(&d),
        vec![
            ("a@0".into(), 1),
            ("a@0".into(), 2),
            ("b@0".into(), 1),
            ("a@10".into(), 1),
            ("a@0".into(), 3), // out of order, within grace: [0,10) closes at 15
            ("a@10".into(), 2),
        ]
    );
    assert_eq!(
        d.late_records(),
        1,
        "the record at 4 came at stream time 15"
    );
}

#[test]
fn updates_carry_their_windows_largest_timestamp() {
    let d = counting(tumbling(MS(10)).grace(MS(5)), false, Arc::default());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("a".into(), "x".into(), 8);
    input.pipe_input_at("a".into(), "x".into(), 3); // out of order, within grace
    input.pipe_input_at("a".into(), "x".into(), 9);
    let stamps: Vec<i64> = d
        .output_topic("out", Str, Json::<u64>::new())
        .read_records()
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(stamps, vec![8, 8, 9]);
}

#[test]
fn a_record_that_fails_to_decode_moves_no_stream_time() {
    let d = counting(tumbling(MS(10)).grace(MS(5)), true, Arc::default());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("a".into(), "x".into(), 2);
    // Not UTF-8: the value codec refuses it.
    input.pipe_raw(Some(b"a".to_vec()), Some(vec![0xff, 0xfe]), 1_000);
    assert_eq!(d.dead_letters().len(), 1, "the bad record is dead-lettered");
    assert_eq!(d.stream_time("in"), Some(2));
    input.pipe_input_at("a".into(), "x".into(), 5);
    assert_eq!(d.late_records(), 0, "[0,10) is still open");
    assert!(out(&d).is_empty(), "nothing closed");
    input.pipe_input_at("b".into(), "x".into(), 15);
    assert_eq!(out(&d), vec![("a@0".into(), 2)]);
}

#[test]
fn suppress_emits_each_window_once_when_it_closes_with_its_latest_timestamp() {
    let d = counting(tumbling(MS(10)).grace(MS(5)), true, Arc::default());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("a".into(), "x".into(), 2);
    input.pipe_input_at("b".into(), "x".into(), 7);
    input.pipe_input_at("a".into(), "x".into(), 12);
    input.pipe_input_at("a".into(), "x".into(), 4); // late for no one: [0,10) closes at 15
    assert!(out(&d).is_empty(), "nothing closed before stream time 15");
    input.pipe_input_at("c".into(), "x".into(), 15);
    let got = d
        .output_topic("out", Str, Json::<u64>::new())
        .read_records();
    let finals: Vec<(String, i64)> = got
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.key.clone().unwrap()).unwrap(),
                r.timestamp,
            )
        })
        .collect();
    assert_eq!(finals, vec![("a@0".into(), 4), ("b@0".into(), 7)]);
    assert_eq!(
        got.iter()
            .map(|r| serde_json::from_slice::<u64>(r.value.as_deref().unwrap()).unwrap())
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
    input.pipe_input_at("c".into(), "x".into(), 16);
    assert!(out(&d).is_empty(), "a closed window is never emitted again");
    input.pipe_input_at("a".into(), "x".into(), 40);
    assert_eq!(out(&d), vec![("a@10".into(), 1), ("c@10".into(), 2)]);
}

#[test]
fn late_records_are_counted_and_dead_lettered_when_asked() {
    let dlq = Arc::new(AtomicBool::new(false));
    let d = counting(tumbling(MS(10)).grace(MS(5)), true, dlq.clone());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("a".into(), "x".into(), 30);
    input.pipe_input_at("a".into(), "x".into(), 14); // [10,20) closed at 25
    assert_eq!(d.late_records(), 1);
    assert!(d.dead_letters().is_empty(), "only counted by default");
    dlq.store(true, Ordering::SeqCst);
    input.pipe_input_at("a".into(), "x".into(), 3);
    input.pipe_input_at("a".into(), "x".into(), 16); // [10,20) closes at 25 < 30: late
    input.pipe_input_at("a".into(), "x".into(), 21); // [20,30) closes at 35: on time
    assert_eq!(d.late_records(), 3);
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 2);
    for r in &dead {
        assert_eq!(r.headers.get_str("weir.error.kind"), Some("late"));
    }
    input.pipe_input_at("a".into(), "x".into(), 100);
    assert_eq!(
        out(&d),
        vec![("a@20".into(), 1), ("a@30".into(), 1)],
        "late records counted nowhere"
    );
}

#[test]
fn closed_windows_leave_the_store() {
    let b = TopologyBuilder::new();
    let table = b
        .stream("in", Str, Str)
        .group_by_key()
        .windowed_by(tumbling(MS(10)).grace(MS(5)))
        .count("counts");
    table
        .to_stream()
        .map(|w: Windowed<String>, n| (w.key, n))
        .with_codecs(Str, Json::<u64>::new())
        .to("out");
    let store = table.store().clone();
    let d = TopologyTestDriver::new(b.build().unwrap());
    let input = d.input_topic("in", Str, Str);
    for t in [1, 11, 21, 31] {
        input.pipe_input_at("a".into(), "x".into(), t);
    }
    // Stream time 31: [0,10) and [10,20) closed (end + 5 <= 31); [20,30) not.
    let starts: Vec<(i64, u64)> = d
        .window_entries(&store)
        .into_iter()
        .map(|(w, n)| (w.window.start, n))
        .collect();
    assert_eq!(starts, vec![(20, 1), (30, 1)]);
}

#[test]
fn hopping_windows_count_a_record_in_each_window_holding_it() {
    let d = counting(hopping(MS(10), MS(5)), false, Arc::default());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("a".into(), "x".into(), 7);
    input.pipe_input_at("a".into(), "x".into(), 12);
    assert_eq!(
        out(&d),
        vec![
            ("a@0".into(), 1),
            ("a@5".into(), 1),
            ("a@5".into(), 2),
            ("a@10".into(), 1)
        ]
    );
}

#[test]
fn a_hopping_record_late_for_some_windows_updates_the_others_and_counts_the_rest() {
    let d = counting(hopping(MS(10), MS(5)).grace(MS(2)), false, Arc::default());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("a".into(), "x".into(), 20);
    out(&d);
    // 13 is in [5,15) (closed: 15 + 2 <= 20) and [10,20) (open until 22).
    input.pipe_input_at("a".into(), "x".into(), 13);
    assert_eq!(out(&d), vec![("a@10".into(), 1)]);
    assert_eq!(d.late_records(), 0, "not late: a window took it");
    let late_windows: Vec<u64> = d
        .take_metrics()
        .counters
        .iter()
        .filter(|(_, c, _)| *c == "late_windows")
        .map(|(_, _, n)| *n)
        .collect();
    assert_eq!(late_windows, vec![1]);
}

proptest! {
    /// Emit-final against a naive recount: random keys and timestamps (out
    /// of order, some late); each window is emitted once, after it closed,
    /// with the count of its on-time records; late records are exactly
    /// those whose window had closed when they came.
    #[test]
    fn finals_equal_a_recount(
        records in prop::collection::vec((0..3u8, 0i64..400), 1..150),
        size in 5i64..60,
        grace in 0i64..30,
    ) {
        let w = tumbling(MS(size as u64)).grace(MS(grace as u64));
        let d = counting(w, true, Arc::default());
        let input = d.input_topic("in", Str, Str);
        let mut stream_time = i64::MIN;
        let mut counts: BTreeMap<(String, i64), u64> = BTreeMap::new();
        let mut late = 0;
        for (k, t) in &records {
            stream_time = stream_time.max(*t);
            let start = t - t.rem_euclid(size);
            if start + size + grace <= stream_time {
                late += 1;
            } else {
                *counts.entry((format!("k{k}"), start)).or_default() += 1;
            }
            input.pipe_input_at(format!("k{k}"), "x".into(), *t);
        }
        // A record far ahead closes every window so far.
        input.pipe_input_at("end".into(), "x".into(), 10_000);
        let mut got: BTreeMap<(String, i64), u64> = BTreeMap::new();
        for (k, n) in out(&d) {
            let (key, start) = k.split_once('@').unwrap();
            let prev = got.insert((key.to_string(), start.parse().unwrap()), n);
            prop_assert!(prev.is_none(), "window {} emitted twice", k);
        }
        prop_assert_eq!(got, counts);
        prop_assert_eq!(d.late_records(), late);
    }
}

#[test]
fn only_repartition_topics_read_by_time_aware_tasks_carry_markers() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .group_by(|_, v: &String| v.clone(), Str)
        .count("plain");
    b.stream("in2", Str, Str)
        .group_by(|_, v: &String| v.clone(), Str)
        .windowed_by(tumbling(MS(10)))
        .count("windowed");
    let t = b.build().unwrap();
    assert!(!t.carries_markers("plain-repartition"));
    assert!(t.carries_markers("windowed-repartition"));
    assert!(!t.carries_markers("in"), "not a repartition topic");
}

/// A marker written to a repartition topic that carries none now (by an
/// older version) is no record: not dead-lettered, not counted.
#[test]
fn a_stray_marker_is_skipped() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .group_by(|_, v: &String| v.clone(), Str)
        .count("plain")
        .to_stream()
        .with_value_codec(Json::<u64>::new())
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let marker = weir_core::StreamTimeMarker {
        time: 5,
        writer: "0.0".into(),
        writers: 1,
        idle: false,
    };
    d.pipe_raw(marker.to_record("plain-repartition"));
    assert!(d.dead_letters().is_empty());
    assert!(out(&d).is_empty(), "nothing counted");
}
