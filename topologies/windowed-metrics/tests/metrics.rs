//! windowed-metrics in the TopologyTestDriver: one final result per (type,
//! region, window) equal to a naive recount, late records counted (and
//! dead-lettered with `late_to_dlq`), undecodable ones dead-lettered.

use std::collections::BTreeMap;

use proptest::prelude::*;
use weir::prelude::*;
use weir_testkit::TopologyTestDriver;
use windowed_metrics::{metric_key, topology, Metric, EVENTS, METRICS};

fn event(kind: &str, region: &str, amount: f64) -> Vec<u8> {
    serde_json::json!({"type": kind, "region": region, "amount": amount, "id": 1})
        .to_string()
        .into_bytes()
}

fn driver(params: &[(&str, &str)]) -> TopologyTestDriver {
    let t = topology();
    for (k, v) in params {
        t.set_param(k, v).unwrap();
    }
    TopologyTestDriver::new(t)
}

fn metrics(d: &TopologyTestDriver) -> Vec<(String, Metric)> {
    d.output_topic(METRICS, Str, Json::<Metric>::new())
        .read_key_values_to_list()
}

#[test]
fn a_window_is_emitted_once_when_stream_time_passes_its_end_and_grace() {
    let d = driver(&[("window_ms", "1000"), ("grace_ms", "200")]);
    let input = d.input_topic(EVENTS, Bytes, Bytes);
    let pipe =
        |k: &str, r: &str, a: f64, t: i64| input.pipe_input_at(b"x".to_vec(), event(k, r, a), t);
    pipe("order", "eu", 5.0, 100);
    pipe("order", "eu", -2.5, 900);
    pipe("order", "EU", 1.0, 950);
    pipe("order", "eu", 0.0, 1100); // the next window
    pipe("order", "eu", 1.0, 1150); // stream time 1150 < 1000 + 200: still open
    assert!(metrics(&d).is_empty());
    pipe("pay", "us", 1.0, 1200);
    assert_eq!(
        metrics(&d),
        vec![
            (
                metric_key("order", "EU", 0),
                Metric {
                    kind: "order".into(),
                    region: "EU".into(),
                    window_start: 0,
                    window_end: 1000,
                    count: 1,
                    total: 1.0
                }
            ),
            (
                metric_key("order", "eu", 0),
                Metric {
                    kind: "order".into(),
                    region: "eu".into(),
                    window_start: 0,
                    window_end: 1000,
                    count: 2,
                    total: 2.5
                }
            ),
        ]
    );
    let r = d.output_topic(METRICS, Str, Json::<Metric>::new());
    assert!(r.read_records().is_empty(), "emitted once");
}

#[test]
fn late_and_undecodable_records() {
    let d = driver(&[("window_ms", "1000"), ("grace_ms", "0")]);
    let input = d.input_topic(EVENTS, Bytes, Bytes);
    input.pipe_input_at(b"x".to_vec(), event("a", "b", 1.0), 5_000);
    input.pipe_input_at(b"x".to_vec(), event("a", "b", 1.0), 3_000);
    assert_eq!(d.late_records(), 1);
    assert!(d.dead_letters().is_empty(), "late_to_dlq is off by default");
    for bad in [
        &br#"{"type":"a","region":"b"}"#[..],
        br#"{"type":"a","region":7,"amount":1}"#,
        br#"["a","b",1]"#,
        b"nope",
    ] {
        input.pipe_input_at(b"x".to_vec(), bad.to_vec(), 5_000);
    }
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 4);
    assert!(dead
        .iter()
        .all(|r| r.headers.get_str("weir.error.kind") == Some("decode")));

    let d = driver(&[
        ("window_ms", "1000"),
        ("grace_ms", "0"),
        ("late_to_dlq", "true"),
    ]);
    let input = d.input_topic(EVENTS, Bytes, Bytes);
    input.pipe_input_at(b"x".to_vec(), event("a", "b", 1.0), 5_000);
    input.pipe_input_at(b"x".to_vec(), event("a", "b", 1.0), 3_000);
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].headers.get_str("weir.error.kind"), Some("late"));
}

proptest! {
    /// In-order timestamps plus some late ones: one final per window, equal
    /// to a naive recount of the on-time events; late = the records whose
    /// window closed before they came.
    #[test]
    fn finals_equal_a_naive_recount(
        events in prop::collection::vec((0..3u8, 0..2u8, -5i64..20, 0i64..50, prop::bool::weighted(0.1)), 1..200),
    ) {
        let (window, grace) = (100i64, 30i64);
        let d = driver(&[("window_ms", "100"), ("grace_ms", "30")]);
        let input = d.input_topic(EVENTS, Bytes, Bytes);
        let (mut t, mut stream_time) = (0i64, i64::MIN);
        let mut want: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        let mut late = 0;
        for (k, r, amount, step, old) in events {
            t += step;
            let ts = if old { t - 300 } else { t };
            stream_time = stream_time.max(ts);
            let (kind, region) = (format!("t{k}"), format!("r{r}"));
            let start = ts - ts.rem_euclid(window);
            if start + window + grace <= stream_time {
                late += 1;
            } else {
                let e = want.entry(metric_key(&kind, &region, start)).or_default();
                e.0 += 1;
                e.1 += amount as f64;
            }
            input.pipe_input_at(b"x".to_vec(), event(&kind, &region, amount as f64), ts);
        }
        input.pipe_input_at(b"x".to_vec(), event("end", "end", 0.0), t + 1_000);
        let mut got: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        for (key, m) in metrics(&d) {
            prop_assert_eq!(&key, &metric_key(&m.kind, &m.region, m.window_start));
            prop_assert_eq!(m.window_end, m.window_start + window);
            prop_assert!(got.insert(key, (m.count, m.total)).is_none(), "one final per window");
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(d.late_records(), late);
    }
}
