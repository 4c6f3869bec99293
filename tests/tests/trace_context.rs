//! Trace context through a running instance on the broker: an input's W3C
//! `traceparent` continues in its outputs (same trace id and flags, a new
//! parent id for Weir's span), a `correlation-id` header is carried, and
//! an input without (or with a malformed) `traceparent` gets none made up
//! (or its own back, untouched).

use std::time::Duration;

use weir::prelude::*;
use weir::App;
use weir_core::Headers;
use weir_testkit::{publish_records, TestBroker, TopicReader};
use weir_tests::in_process_config;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[test]
fn outputs_continue_the_inputs_trace_and_carry_the_correlation_id() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("trace");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    broker.create_topic(&input, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = in_process_config(&app, &bootstrap, dir.path(), 2, (&input, &output), &[]);
    let b = Topology::builder();
    b.stream("in", Str, Str)
        .flat_map(|k: String, v: String| vec![(k.clone(), v.to_uppercase()), (k, v)])
        .to("out");
    let running = App::builder()
        .with_config(config)
        .start(b.build().unwrap())
        .unwrap();

    // Record i: a traceparent with parent id i (0: none; 1: malformed),
    // and a correlation id.
    let inputs: Vec<(String, String, Headers)> = (0..20)
        .map(|i| {
            let mut h = Headers::new();
            h.push("correlation-id", Some(format!("corr-{i}").into_bytes()));
            match i {
                0 => {}
                1 => h.push("traceparent", Some(b"00-not-a-trace-01".to_vec())),
                _ => h.push(
                    "traceparent",
                    Some(format!("00-{TRACE}-{i:016x}-01").into_bytes()),
                ),
            }
            (format!("k{i}"), format!("v{i}"), h)
        })
        .collect();
    publish_records(
        &bootstrap,
        &input,
        inputs
            .iter()
            .map(|(k, v, h)| (Some(k.as_bytes()), Some(v.as_bytes()), None, h.clone())),
    )
    .unwrap();
    let mut reader = TopicReader::new(&bootstrap, &[&output], "read_committed").unwrap();
    assert!(
        reader.read_until(Duration::from_secs(60), |r| r.len() >= 40),
        "40 outputs; got {}",
        reader.records().len()
    );
    running.stop();
    running.wait().unwrap();

    for r in reader.records() {
        let v = String::from_utf8(r.value.clone().unwrap()).unwrap();
        let i: usize = v[1..].parse().unwrap();
        let (_, _, sent) = &inputs[i];
        assert_eq!(
            r.headers.get_str("correlation-id"),
            Some(format!("corr-{i}").as_str()),
            "{v}"
        );
        let tp = r.headers.get_str("traceparent");
        match i {
            0 => assert_eq!(tp, None, "no trace made up for {v}"),
            1 => assert_eq!(
                tp,
                sent.get_str("traceparent"),
                "a malformed one is left as is"
            ),
            _ => {
                let tp = tp.unwrap_or_else(|| panic!("{v} has no traceparent"));
                let parts: Vec<&str> = tp.split('-').collect();
                assert_eq!(parts.len(), 4, "{tp}");
                assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE, "01"), "{tp}");
                assert_ne!(
                    parts[2],
                    format!("{i:016x}"),
                    "a new parent id: Weir's span"
                );
                assert_eq!(parts[2].len(), 16);
            }
        }
    }
}
