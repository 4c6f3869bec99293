//! Logging and trace export: [`init`] installs the process's tracing
//! subscriber — log lines to stderr filtered by `RUST_LOG` (default `info`)
//! and, when `otlp_endpoint` is set, Weir's spans exported over OTLP/gRPC.
//!
//! What is exported: the `commit` span around every commit (field `txn`)
//! and the `record` span around one input record in 64 and around every
//! input whose `traceparent` is sampled (`topic`, `partition`, `offset`;
//! such a span is a child of the producer's span, and the outputs'
//! `traceparent` names it as their parent), at debug level whatever `RUST_LOG` says — the
//! exporter has its own filter (targets `weir*` at debug), so the log stays
//! as quiet as configured. The resource names the service:
//! `service.name` = `application_id`, `service.instance.id` = the instance
//! id when known. Spans leave in batches from a background thread; an
//! unreachable collector is logged (`RUST_LOG` permitting) and never stops
//! processing. The usual `OTEL_EXPORTER_OTLP_*` variables (headers,
//! timeout) and `OTEL_BSP_*` (batching) apply; the endpoint is
//! `otlp_endpoint`.
//!
//! A process has one subscriber: the first [`init`] installs it, later ones
//! keep it (their [`Telemetry`] does nothing). [`crate::App`] calls it for
//! you; an embedder that runs [`weir_runtime::start`] itself can call it
//! and keep the guard until the instance has stopped.

use std::fmt;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};
use weir_runtime::{Config, Error, Result};

/// How long [`Telemetry::shutdown`] waits for the last spans to leave.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The targets whose spans are exported, at debug level and above (a
/// target prefix: `weir` also covers `weir_admin`, `weir_state`, …).
const EXPORTED_TARGETS: [&str; 3] = ["weir", "weir_runtime", "weir_dsl"];

/// The installed trace export, if any: flushes and shuts it down when
/// dropped or on [`Telemetry::shutdown`]. Without `otlp_endpoint` (or when
/// another subscriber was installed first) there is nothing to flush.
#[must_use = "dropping the guard stops the trace export"]
pub struct Telemetry {
    export: Option<Export>,
}

/// The tracer provider and the Tokio runtime its gRPC channel runs on
/// (the facade is synchronous; the batch processor has its own thread).
struct Export {
    provider: SdkTracerProvider,
    runtime: tokio::runtime::Runtime,
    endpoint: String,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("otlp_endpoint", &self.export.as_ref().map(|e| &e.endpoint))
            .finish()
    }
}

impl Telemetry {
    /// Whether this guard exports spans (`otlp_endpoint` set, and it
    /// installed the subscriber).
    pub fn is_exporting(&self) -> bool {
        self.export.is_some()
    }

    /// Exports the spans still buffered and stops the export (waiting at
    /// most 5 s for the collector). Spans that end later are not exported.
    /// Also done on drop.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(export) = self.export.take() {
            export.shutdown();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Export {
    fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(error = %e, endpoint = %self.endpoint, "OTLP trace export: spans may be lost at shutdown");
        }
        // Not `drop`: that blocks, and panics inside an async context.
        self.runtime.shutdown_background();
    }
}

/// Installs the process's tracing subscriber: the log (stderr, `RUST_LOG`,
/// default `info`) and, when `config.otlp_endpoint` is set, the OTLP/gRPC
/// export of Weir's spans with `service.name` = `application_id` and
/// `service.instance.id` = `instance_id` (when given). Keep the returned
/// guard while the instance runs; dropping it flushes the export.
///
/// If a subscriber is already installed (a second call, or the embedder's
/// own), it is kept and the returned guard does nothing.
///
/// # Errors
/// [`Error::Usage`] naming `otlp_endpoint` if it is not an `http://` URL
/// (checked before anything is installed). Nothing is connected here: an
/// unreachable collector is only logged, later.
pub fn init(config: &Config, instance_id: Option<&str>) -> Result<Telemetry> {
    let Some(raw) = config.otlp_endpoint.as_deref() else {
        // As before trace export existed: one global `RUST_LOG` filter.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(log_filter())
            .with_writer(std::io::stderr)
            .try_init();
        return Ok(Telemetry { export: None });
    };
    let export = Export::build(raw, &config.application_id, instance_id)?;
    let tracer = export.provider.tracer("weir");
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(export_filter());
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = tracing_subscriber::registry()
        .with(log.with_filter(log_filter()))
        .with(otel)
        .try_init();
    match installed {
        Ok(()) => {
            weir_runtime::set_span_parent(join_trace);
            tracing::info!(endpoint = %export.endpoint, service = %config.application_id, "exporting traces over OTLP/gRPC");
            Ok(Telemetry {
                export: Some(export),
            })
        }
        Err(_) => {
            tracing::warn!(endpoint = %export.endpoint, "a tracing subscriber was installed before: otlp_endpoint is ignored by this instance");
            export.shutdown();
            Ok(Telemetry { export: None })
        }
    }
}

/// Makes `span` a child of the remote span `traceparent` names (valid:
/// the runtime checked it) and returns `span`'s id, now that it is started.
fn join_trace(span: &tracing::Span, traceparent: &str) -> Option<u64> {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let mut parts = traceparent.split('-').skip(1);
    let trace = TraceId::from_hex(parts.next()?).ok()?;
    let parent = SpanId::from_hex(parts.next()?).ok()?;
    let flags = u8::from_str_radix(parts.next()?.get(..2)?, 16).ok()?;
    let remote = SpanContext::new(
        trace,
        parent,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
        .ok()?;
    // Only a span the sampler keeps may be the outputs' parent (the
    // `OTEL_TRACES_SAMPLER` variables can drop it).
    let cx = span.context();
    let own = cx.span().span_context().clone();
    (own.is_valid() && own.is_sampled()).then(|| u64::from_be_bytes(own.span_id().to_bytes()))
}

fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn export_filter() -> Targets {
    EXPORTED_TARGETS.iter().fold(Targets::new(), |t, target| {
        t.with_target(*target, LevelFilter::DEBUG)
    })
}

impl Export {
    /// The provider exporting to `raw` (validated), its channel on a
    /// runtime of its own. Connects lazily: nothing is reached here.
    fn build(raw: &str, application_id: &str, instance_id: Option<&str>) -> Result<Export> {
        let endpoint = check_endpoint(raw)?;
        let bad = |e: &dyn fmt::Display| {
            Error::Usage(format!(
                "otlp_endpoint (WEIR_OTLP_ENDPOINT) {raw:?}: {e}; expected the URL of an OTLP/gRPC collector, e.g. http://otel-collector:4317"
            ))
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-otlp")
            .enable_all()
            .build()
            .map_err(|e| Error::Usage(format!("otlp_endpoint: cannot start the exporter: {e}")))?;
        let exporter = {
            // tonic's channel spawns its worker on the current runtime.
            let _rt = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| bad(&e))?
        };
        let mut resource = Resource::builder().with_service_name(application_id.to_string());
        if let Some(id) = instance_id {
            resource =
                resource.with_attribute(KeyValue::new("service.instance.id", id.to_string()));
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        Ok(Export {
            provider,
            runtime,
            endpoint,
        })
    }
}

/// `raw` trimmed, if it is an `http://host[:port][/…]` URL.
fn check_endpoint(raw: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "otlp_endpoint (WEIR_OTLP_ENDPOINT) {raw:?}: {why}; expected the URL of an OTLP/gRPC collector, e.g. http://otel-collector:4317"
        ))
    };
    let endpoint = raw.trim();
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return Err(bad("not a URL"));
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(bad("https (TLS) is not supported; use http://"));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("not an http:// URL"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err(bad("no closing ] after an IPv6 address"));
        };
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad("bad port")),
        }
    } else if authority.matches(':').count() > 1 {
        return Err(bad("an IPv6 address needs brackets: http://[::1]:4317"));
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(bad("bad port"));
    }
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '@') {
        return Err(bad("no host"));
    }
    Ok(endpoint.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_must_be_an_http_url() {
        for ok in [
            "http://otel-collector:4317",
            " http://127.0.0.1:4317/ ",
            "HTTP://localhost:4317",
            "http://[::1]:4317",
            "http://collector",
        ] {
            assert_eq!(check_endpoint(ok).unwrap(), ok.trim(), "{ok}");
        }
        for bad in [
            "",
            "not a url",
            "otel-collector:4317",
            "grpc://collector:4317",
            "https://collector:4317",
            "http://",
            "http://:4317",
            "http://collector:port",
            "http://collector:99999",
            "http://bad host:4317",
            "http://::1:4317",
            "http://[::1:4317",
            "http://[::1]4317",
        ] {
            let e = check_endpoint(bad).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}: {e}");
            assert!(e.to_string().contains("otlp_endpoint"), "{bad}: {e}");
        }
    }

    #[test]
    fn building_the_export_reaches_nothing_and_shuts_down_quickly() {
        // Port 9 (discard) on loopback: nothing listens; the channel is lazy.
        let export = Export::build("http://127.0.0.1:9", "app", Some("i-1")).unwrap();
        let started = std::time::Instant::now();
        export.shutdown();
        assert!(started.elapsed() < SHUTDOWN_TIMEOUT + Duration::from_secs(1));
        let e = Export::build("http://collector:4317/a b", "app", None)
            .err()
            .expect("a space is not a URL");
        assert!(e.to_string().contains("otlp_endpoint"), "{e}");
    }
}
