//! OTLP trace export (`otlp_endpoint`) of an instance running in the test
//! process, to a fake OTLP/gRPC collector in the same process: the
//! collector receives `commit` spans and the sampled `record` spans (input
//! offsets 0 and 64 of 100) with `service.name` = the application id and
//! `service.instance.id` = the instance id; while the collector is down
//! the instance keeps processing; `wait` flushes the spans not sent yet to
//! a collector that is back. An input whose `traceparent` is sampled gets
//! a `record` span that is a child of the producer's span, and its output
//! names that span as its parent. A bad endpoint fails the start, naming
//! the key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use weir::prelude::*;
use weir::App;
use weir_testkit::{create_topics, publish, publish_records, TestBroker, TopicReader};
use weir_tests::in_process_config;

/// A span as received: its name, its resource's `service.name` and
/// `service.instance.id`, and its attributes as text.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    service: Option<String>,
    instance: Option<String>,
    attributes: BTreeMap<String, String>,
    /// When it started (ns since the epoch).
    start_ns: u64,
    /// Trace, span and parent span ids, in hex.
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Clone, Default)]
struct Sink {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A fake OTLP/gRPC collector: the trace service on `addr`, on a runtime
/// of its own; it stores every request.
struct Collector {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    sink: Sink,
}

impl Collector {
    fn start(addr: SocketAddr) -> Collector {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let sink = Sink::default();
        let service = TraceServiceServer::new(sink.clone());
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Collector {
            runtime,
            addr,
            sink,
        }
    }

    /// Closes the port and every connection: the collector is down.
    fn stop(self) {
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }

    fn spans(&self) -> Vec<Received> {
        let requests = self.sink.requests.lock().unwrap();
        let mut out = Vec::new();
        for resource_spans in requests.iter().flat_map(|r| &r.resource_spans) {
            let resource = resource_spans
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                out.push(Received {
                    name: span.name.clone(),
                    service: resource.get("service.name").cloned(),
                    instance: resource.get("service.instance.id").cloned(),
                    attributes: attributes(&span.attributes),
                    start_ns: span.start_time_unix_nano,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                });
            }
        }
        out
    }

    /// The input offsets of the `record` spans received.
    fn record_offsets(&self) -> BTreeSet<String> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == "record")
            .filter_map(|s| s.attributes.get("offset").cloned())
            .collect()
    }

    fn commits(&self) -> usize {
        self.spans().iter().filter(|s| s.name == "commit").count()
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done()
}

fn records(from: usize, to: usize) -> Vec<(String, String)> {
    (from..to)
        .map(|i| (format!("k{}", i % 7), format!("v{i}")))
        .collect()
}

fn publish_all(bootstrap: &str, topic: &str, records: &[(String, String)]) {
    publish(
        bootstrap,
        topic,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
}

#[test]
fn spans_are_exported_over_otlp_with_the_application_as_service() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("otlp");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    // One partition: its offsets 0 and 64 are the sampled records.
    create_topics(&bootstrap, &[(&input, 1)]).unwrap();
    let collector = Collector::start("127.0.0.1:0".parse().unwrap());
    let endpoint = format!("http://{}", collector.addr);
    let state = tempfile::tempdir().unwrap();
    let config = in_process_config(
        &app,
        &bootstrap,
        state.path(),
        1,
        (&input, &output),
        &[
            ("WEIR_OTLP_ENDPOINT", &endpoint),
            ("WEIR_ADMIN_LISTEN", "127.0.0.1:0"),
        ],
    );
    let b = Topology::builder();
    b.stream("in", Str, Str)
        .map_values(|v: String| v.to_uppercase())
        .to("out");
    let running = App::builder()
        .with_config(config)
        .start(b.build().unwrap())
        .unwrap();
    let instance_id = weir_tests::http::get(running.admin_addr().unwrap(), "/health").json()
        ["instance_id"]
        .as_str()
        .expect("/health names the instance")
        .to_string();

    // 1. The collector is up: commits and the sampled records arrive
    //    (batches leave every 5 s).
    publish_all(&bootstrap, &input, &records(0, 100));
    let mut reader = TopicReader::new(&bootstrap, &[&output], "read_committed").unwrap();
    assert!(
        reader.read_until(Duration::from_secs(60), |r| r.len() >= 100),
        "100 outputs; got {}",
        reader.records().len()
    );
    let want: BTreeSet<String> = ["0".to_string(), "64".to_string()].into();
    assert!(
        wait_for(Duration::from_secs(30), || collector.commits() > 0
            && collector.record_offsets() == want),
        "commit spans and record spans for offsets 0 and 64; got {:?}",
        collector
            .spans()
            .iter()
            .map(|s| (&s.name, s.attributes.get("offset")))
            .collect::<Vec<_>>()
    );
    let spans = collector.spans();
    for s in &spans {
        assert_eq!(s.service.as_deref(), Some(app.as_str()), "{s:?}");
        assert_eq!(s.instance.as_deref(), Some(instance_id.as_str()), "{s:?}");
    }
    let record = spans.iter().find(|s| s.name == "record").unwrap();
    assert_eq!(record.attributes.get("topic"), Some(&input), "{record:?}");
    assert_eq!(
        record.attributes.get("partition").map(String::as_str),
        Some("0")
    );

    // 1b. Inputs with a trace context: the sampled one (offset 100) gets a
    //     `record` span in the producer's trace, under the producer's span,
    //     and its output's parent is that span; the unsampled one (offset
    //     101, not a multiple of 64) gets none.
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PRODUCER_SPAN: &str = "00f067aa0ba902b7";
    let traced = |flags: &str| {
        let mut h = weir_core::Headers::new();
        let tp = format!("00-{TRACE}-{PRODUCER_SPAN}-{flags}");
        h.push("traceparent", Some(tp.into_bytes()));
        h
    };
    publish_records(
        &bootstrap,
        &input,
        [
            (Some(&b"t"[..]), Some(&b"sampled"[..]), None, traced("01")),
            (Some(&b"t"[..]), Some(&b"unsampled"[..]), None, traced("00")),
        ],
    )
    .unwrap();
    assert!(
        reader.read_until(Duration::from_secs(60), |r| r.len() >= 102),
        "102 outputs; got {}",
        reader.records().len()
    );
    let out_parent = |value: &[u8]| {
        let r = reader
            .records()
            .iter()
            .find(|r| r.value.as_deref() == Some(value))
            .unwrap_or_else(|| panic!("{:?} is out", String::from_utf8_lossy(value)));
        let tp = r
            .headers
            .get_str("traceparent")
            .expect("a traceparent")
            .to_string();
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts[1], TRACE, "{tp}");
        parts[2].to_string()
    };
    let sampled_parent = out_parent(b"SAMPLED");
    let joined = |c: &Collector| {
        c.spans().into_iter().find(|s| {
            s.name == "record" && s.attributes.get("offset").map(String::as_str) == Some("100")
        })
    };
    assert!(
        wait_for(Duration::from_secs(30), || joined(&collector).is_some()),
        "a record span for the sampled input; got {:?}",
        collector.record_offsets()
    );
    let span = joined(&collector).unwrap();
    assert_eq!(
        (span.trace_id.as_str(), span.parent_span_id.as_str()),
        (TRACE, PRODUCER_SPAN),
        "{span:?}"
    );
    assert_eq!(
        span.span_id, sampled_parent,
        "the output's parent is the record's span"
    );
    assert_ne!(
        out_parent(b"UNSAMPLED"),
        PRODUCER_SPAN,
        "a new parent id all the same"
    );
    // Spans leave in order: once a commit that started after the unsampled
    // record was out has been received, a span of that record would have
    // been too.
    let out_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    publish_all(&bootstrap, &input, &[("t".into(), "after".into())]);
    assert!(
        wait_for(Duration::from_secs(30), || collector
            .spans()
            .iter()
            .any(|s| s.name == "commit" && s.start_ns > out_at)),
        "a later commit's span"
    );
    assert!(
        !collector.record_offsets().contains("101"),
        "the unsampled input has no span"
    );
    let addr = collector.addr;
    collector.stop();

    // 2. The collector is down for longer than a batch interval: the
    //    exports fail (logged) and processing goes on.
    publish_all(&bootstrap, &input, &records(100, 200));
    assert!(
        reader.read_until(Duration::from_secs(60), |r| r.len() >= 200),
        "200 outputs with the collector down; got {}",
        reader.records().len()
    );
    std::thread::sleep(Duration::from_secs(6));
    assert!(!running.is_finished(), "export errors stopped the instance");

    // 3. The collector is back: more records, then stop at once — `wait`
    //    flushes what the batch interval has not sent yet (the record at
    //    offset 256 among them), however soon after the commit it is.
    let collector = Collector::start(addr);
    publish_all(&bootstrap, &input, &records(200, 300));
    assert!(
        reader.read_until(Duration::from_secs(60), |r| r.len() >= 300),
        "300 outputs; got {}",
        reader.records().len()
    );
    let sent_before_stop = collector.record_offsets().contains("256");
    let started = Instant::now();
    running.stop();
    running.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stop and flush took {:?}",
        started.elapsed()
    );
    assert!(
        collector.commits() > 0 && collector.record_offsets().contains("256"),
        "the spans since the collector is back are flushed by wait (the batch timer sent them first: {sent_before_stop}); got {:?}",
        collector.spans()
    );
    for s in collector.spans() {
        assert_eq!(s.service.as_deref(), Some(app.as_str()), "{s:?}");
    }
    collector.stop();
}

#[test]
fn an_endpoint_that_is_not_a_url_fails_the_start_naming_the_key() {
    let state = tempfile::tempdir().unwrap();
    // Nothing is reached before the endpoint is checked: no broker needed.
    let config = in_process_config(
        "otlp-bad-endpoint",
        "127.0.0.1:1",
        state.path(),
        1,
        ("in", "out"),
        &[("WEIR_OTLP_ENDPOINT", "otel-collector:4317")],
    );
    let b = Topology::builder();
    b.stream("in", Str, Str).to("out");
    let err = App::builder()
        .with_config(config)
        .start(b.build().unwrap())
        .expect_err("a bad otlp_endpoint is refused");
    assert!(matches!(err, weir::Error::Usage(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("otlp_endpoint"), "{message}");
    assert!(message.contains("otel-collector:4317"), "{message}");
}
