//! HTTP ingress: `POST /v1/events`, the event bus's Publish Event contract.
//!
//! The request is an event `{eventType, source, id, timestamp, data,
//! metadata}`. It is checked (JSON, the envelope's fields, then the latest
//! registered definition of `eventType`), written as received to the topic
//! configured for its type (`ingress_topics`, else
//! `ingress_default_topic`) with key = the configured field (`ingress_keys`,
//! else `ingress_key_field`, default `id`), timestamp = the event's, and
//! headers `correlation-id` (from `metadata.correlationId`) and
//! `traceparent` (the request's, else a new trace), and answered
//! `202 {"status": "accepted", "eventId", "timestamp", "receipt"}` once the
//! broker acknowledged the write. The receipt names where it landed:
//! `rcpt-<topic>-<partition>-<offset>`.
//!
//! Refusals have the contract's shape `{"status": "error", "errorCode",
//! "message", "details": {"field", "error"}}`:
//!
//! | status | `errorCode` | when |
//! |---|---|---|
//! | 400 | `INVALID_JSON` | the body is not JSON |
//! | 400 | `INVALID_EVENT` | a field of the envelope is missing or of the wrong type |
//! | 400 | `SCHEMA_VALIDATION_ERROR` | the event does not conform to its definition |
//! | 401 | `UNAUTHORIZED` | `ingress_token` is set and not given |
//! | 409 | `IDEMPOTENCY_CONFLICT` | its key was accepted for a different event |
//! | 413 | `PAYLOAD_TOO_LARGE` | the body is over `ingress_max_body_bytes` |
//! | 415 | `UNSUPPORTED_MEDIA_TYPE` | a `Content-Type` that is not JSON |
//! | 404 | `UNKNOWN_EVENT_TYPE` | no definition, or no topic, for `eventType` |
//! | 422 | `RECORD_REJECTED` | the broker refused the record |
//! | 500 | `INTERNAL` | the request failed inside the endpoint; retry |
//! | 503 | `BROKER_UNAVAILABLE` | not acknowledged within `ingress_produce_timeout_ms` (with `Retry-After`) |
//!
//! A request whose idempotency key (`Idempotency-Key`, else the event's
//! type and `id`) was accepted within `ingress_idempotency_window_ms` for
//! the same event (its type, `id` and `data`) is answered with the first answer and
//! writes nothing; for another event it is a 409. Concurrent requests with
//! one key are written once. A 503 means not acknowledged: in an outage
//! the event was not written; if the broker wrote it and only the
//! acknowledgement was lost, a retry writes it again (consumers deduplicate
//! by `id`). At most `ingress_idempotency_max_keys` keys are kept (the
//! oldest go first). Across instances see
//! [`weir_runtime::IngressSink`]. Each outcome is counted in
//! `weir_ingress_requests_total{outcome}`.

mod envelope;
mod fingerprint;
mod seen;
pub(crate) mod time;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_core::EventSchemas;
use weir_runtime::{Config, Histogram, IngressSink, SinkError};
use weir_schema::SchemaRegistry;

use envelope::Envelope;
pub(crate) use envelope::PublishBody;
use fingerprint::fingerprint;
use seen::Seen;

/// The answer to an accepted event (the contract's 202 body).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// `accepted`.
    pub status: String,
    /// The event's `id`.
    pub event_id: String,
    /// When it was accepted (RFC 3339, UTC).
    pub timestamp: String,
    /// Where it was written: `rcpt-<topic>-<partition>-<offset>`.
    pub receipt: String,
}

/// A refused request (the contract's error body).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// `error`.
    pub status: ErrorStatus,
    /// A stable code (see the module docs).
    pub error_code: String,
    /// What is wrong, for a person.
    pub message: String,
    /// The offending field and what is wrong with it.
    pub details: RefusalDetails,
    /// The HTTP status.
    #[serde(skip)]
    pub http_status: u16,
}

/// The `status` of a [`Refusal`]: always `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErrorStatus {
    /// `error`.
    Error,
}

/// `details` of a [`Refusal`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefusalDetails {
    /// A dotted path into the event (`data.email`); empty for the request
    /// as a whole.
    pub field: String,
    /// What is wrong with it.
    pub error: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status: ErrorStatus::Error,
            error_code: code.into(),
            message: message.into(),
            details: RefusalDetails {
                field: String::new(),
                error: String::new(),
            },
            http_status: status.as_u16(),
        }
    }

    fn field(mut self, field: &str, error: impl Into<String>) -> Self {
        self.details = RefusalDetails {
            field: field.into(),
            error: error.into(),
        };
        self
    }

    fn outcome(&self) -> Outcome {
        match self.error_code.as_str() {
            "INVALID_JSON" => Outcome::MalformedJson,
            "SCHEMA_VALIDATION_ERROR" => Outcome::SchemaInvalid,
            "UNAUTHORIZED" => Outcome::Unauthorized,
            "PAYLOAD_TOO_LARGE" => Outcome::TooLarge,
            "UNSUPPORTED_MEDIA_TYPE" => Outcome::MediaType,
            "UNKNOWN_EVENT_TYPE" => Outcome::UnknownType,
            "RECORD_REJECTED" => Outcome::Rejected,
            "BROKER_UNAVAILABLE" => Outcome::Unavailable,
            "IDEMPOTENCY_CONFLICT" => Outcome::Conflict,
            _ => Outcome::InvalidEvent,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, Json(&self)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

/// How a request ended, for `weir_ingress_requests_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written.
    Accepted,
    /// Answered from an earlier acceptance of its key.
    Duplicate,
    /// Its key was accepted for a different event.
    Conflict,
    /// Not JSON.
    MalformedJson,
    /// An envelope field missing or wrong.
    InvalidEvent,
    /// Does not conform to its definition.
    SchemaInvalid,
    /// No definition or topic for its type.
    UnknownType,
    /// Over the body limit.
    TooLarge,
    /// Not JSON by its `Content-Type`.
    MediaType,
    /// Without the token.
    Unauthorized,
    /// Refused by the broker.
    Rejected,
    /// Not acknowledged in time.
    Unavailable,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 12] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::Conflict,
        Outcome::MalformedJson,
        Outcome::InvalidEvent,
        Outcome::SchemaInvalid,
        Outcome::UnknownType,
        Outcome::TooLarge,
        Outcome::MediaType,
        Outcome::Unauthorized,
        Outcome::Rejected,
        Outcome::Unavailable,
    ];

    /// Its label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Conflict => "conflict",
            Outcome::MalformedJson => "malformed_json",
            Outcome::InvalidEvent => "invalid_event",
            Outcome::SchemaInvalid => "schema_invalid",
            Outcome::UnknownType => "unknown_type",
            Outcome::TooLarge => "too_large",
            Outcome::MediaType => "unsupported_media_type",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Rejected => "rejected",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// A publishing endpoint's state: the sink, the definitions, the keys seen
/// and the counters.
pub struct Ingress {
    config: Config,
    sink: IngressSink,
    registry: Arc<SchemaRegistry>,
    seen: Arc<Seen>,
    claims_read: Arc<AtomicU64>,
    counts: [AtomicU64; Outcome::ALL.len()],
    latency: Histogram,
    /// When a refused event last made the registry load again (see
    /// [`Ingress::reload_for`]).
    reloaded: std::sync::Mutex<Option<std::time::Instant>>,
}

/// At most one extra registry load per this interval (the registry's own
/// reader polls about as often).
const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

impl std::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress").field("sink", &self.sink).finish()
    }
}

/// What a key's slot keeps once the key was accepted: the answer, and
/// the fingerprint of the event it was given for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct First {
    accepted: Accepted,
    fingerprint: u64,
}

/// A claim in the shared ids topic: the first answer, and when.
#[derive(Serialize, Deserialize)]
struct Claim {
    #[serde(flatten)]
    first: First,
    at_ms: i64,
}

impl Ingress {
    /// Connects to the cluster `config` names: the definitions registry,
    /// the event topics and the shared ids topic.
    ///
    /// # Errors
    /// As [`weir_runtime::IngressSink::start`] and
    /// [`weir_runtime::schema_registry`].
    pub fn start(config: &Config) -> Result<Arc<Self>, weir_runtime::Error> {
        let registry = Arc::new(weir_runtime::schema_registry(config)?);
        let seen = Arc::new(Seen::new(
            config.ingress_idempotency_window_ms,
            config.ingress_idempotency_max_keys,
        ));
        let claims_read = Arc::new(AtomicU64::new(0));
        let (learner, read) = (seen.clone(), claims_read.clone());
        let sink = IngressSink::start(config, move |key, value| {
            read.fetch_add(1, Ordering::Relaxed);
            match serde_json::from_slice::<Claim>(value) {
                Ok(c) => learner.learn(key, c.at_ms, c.first, time::now_ms()),
                Err(e) => tracing::debug!(%key, error = %e, "an ingress claim does not parse"),
            }
        })?;
        Ok(Arc::new(Self {
            config: config.clone(),
            sink,
            registry,
            seen,
            claims_read,
            counts: Default::default(),
            latency: Histogram::default(),
            reloaded: Default::default(),
        }))
    }

    /// How many requests ended with each outcome.
    pub fn counts(&self) -> Vec<(Outcome, u64)> {
        Outcome::ALL
            .iter()
            .zip(&self.counts)
            .map(|(o, c)| (*o, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// How many records of the shared ids topic this instance has read
    /// (its own claims included).
    pub fn claims_read(&self) -> u64 {
        self.claims_read.load(Ordering::Relaxed)
    }

    /// Latencies of accepted requests (to the broker's acknowledgement).
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    fn count(&self, outcome: Outcome) {
        let i = Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("every outcome is listed");
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Checks and writes one event (`body`, as received); answers the 202
    /// body and whether it was a duplicate, or the refusal. Counts the
    /// outcome. The work runs as a task of its own: a client that goes away
    /// cannot stop a write half-way (its slot would be left without the
    /// answer of a record that the broker still writes).
    ///
    /// # Errors
    /// A [`Refusal`] (see the module docs).
    pub async fn publish(
        self: &Arc<Self>,
        body: axum::body::Bytes,
        idempotency_key: Option<String>,
        traceparent: Option<String>,
    ) -> Result<(Accepted, bool), Refusal> {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = this
                .publish_inner(&body, idempotency_key.as_deref(), traceparent.as_deref())
                .await;
            match &result {
                Ok((_, true)) => this.count(Outcome::Duplicate),
                Ok((_, false)) => {
                    this.count(Outcome::Accepted);
                    this.latency.observe(started.elapsed());
                }
                Err(r) => this.count(r.outcome()),
            }
            result
        });
        task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "an ingress request failed");
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "the request failed; it may be retried",
            ))
        })
    }

    async fn publish_inner(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<(Accepted, bool), Refusal> {
        let event: Value = serde_json::from_slice(body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "INVALID_JSON",
                "the body is not JSON",
            )
            .field("", e.to_string())
        })?;
        let envelope = Envelope::read(&event)?;
        // Keys of the header and of event ids never meet; an id counts per
        // event type.
        let (key, key_field) = match idempotency_key.filter(|k| !k.is_empty()) {
            Some(k) if k.chars().count() > 256 => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_EVENT",
                    "Idempotency-Key must have at most 256 characters",
                )
                .field("Idempotency-Key", "must have at most 256 characters"))
            }
            Some(k) => (format!("key:{k}"), "Idempotency-Key"),
            None => (format!("id:{}/{}", envelope.event_type, envelope.id), "id"),
        };
        let print = fingerprint(&event);
        let repeat = |first: &First| {
            if first.fingerprint == print {
                Ok((first.accepted.clone(), true))
            } else {
                Err(Refusal::new(
                    StatusCode::CONFLICT,
                    "IDEMPOTENCY_CONFLICT",
                    format!(
                        "{key_field} was accepted for a different event ({}); send a new one",
                        first.accepted.receipt
                    ),
                )
                .field(key_field, "already used for a different event"))
            }
        };
        // An answer given already: no checks (a definition may have changed
        // since), no write.
        if let Some(slot) = self.seen.get(&key, time::now_ms()) {
            let answer = slot.lock().await.clone();
            drop(slot);
            if let Some(first) = answer {
                return repeat(&first);
            }
            // The request it waited for was not accepted: its slot goes
            // back (unless another request holds it).
            self.seen.forget_if_empty(&key);
        }
        let topic = match self.check(&envelope, &event) {
            Ok(t) => t,
            Err(refused) if self.reload_for(envelope.event_type) => {
                // A definition registered or changed a moment ago (on any
                // instance) may not be loaded here yet: load what the
                // registry holds, then check again.
                let registry = self.registry.clone();
                match tokio::task::spawn_blocking(move || registry.refresh()).await {
                    Ok(Ok(())) => self.check(&envelope, &event)?,
                    _ => return Err(refused),
                }
            }
            Err(refused) => return Err(refused),
        };
        let record_key = self.record_key(envelope.event_type, &event)?;
        let mut headers: Vec<(&str, &[u8])> = Vec::with_capacity(2);
        if let Some(c) = envelope.correlation_id {
            headers.push(("correlation-id", c.as_bytes()));
        }
        let trace = match traceparent.filter(|t| weir_runtime::valid_traceparent(t.as_bytes())) {
            Some(t) => t.to_string(),
            None => new_traceparent(),
        };
        headers.push((weir_runtime::TRACEPARENT, trace.as_bytes()));
        // Only a checked event takes a slot; one that is not accepted
        // gives it back.
        let slot = self.seen.slot(&key, time::now_ms());
        let mut held = slot.clone().lock_owned().await;
        if let Some(first) = held.as_ref() {
            return repeat(first);
        }
        let sent = self
            .sink
            .send(topic, &record_key, body, &headers, envelope.timestamp_ms)
            .await;
        let written = match sent {
            Ok(w) => w,
            Err(e) => {
                drop(held);
                drop(slot);
                self.seen.forget_if_empty(&key);
                return Err(match e {
                    SinkError::Unavailable(m) => Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "BROKER_UNAVAILABLE",
                        format!("the broker did not acknowledge the event; retry later: {m}"),
                    ),
                    SinkError::Rejected(m) => Refusal::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "RECORD_REJECTED",
                        format!("the broker refused the event: {m}"),
                    ),
                });
            }
        };
        let at_ms = time::now_ms();
        let accepted = Accepted {
            status: "accepted".into(),
            event_id: envelope.id.to_string(),
            timestamp: time::format(at_ms),
            receipt: format!(
                "rcpt-{}-{}-{}",
                written.topic, written.partition, written.offset
            ),
        };
        let first = First {
            accepted: accepted.clone(),
            fingerprint: print,
        };
        *held = Some(first.clone());
        drop(held);
        if let Ok(v) = serde_json::to_vec(&Claim { first, at_ms }) {
            self.sink.claim(&key, &v);
        }
        Ok((accepted, false))
    }

    /// Whether an event of `event_type` that was refused should make the
    /// registry load again: its type has a topic here (a load cannot give
    /// it one), and it has no definition yet, or no load was made in the
    /// last [`RELOAD_INTERVAL`] (a stream of invalid events costs the
    /// broker little).
    fn reload_for(&self, event_type: &str) -> bool {
        let has_topic = self.config.ingress_topics.contains_key(event_type)
            || self.config.ingress_default_topic.is_some();
        if !has_topic {
            return false;
        }
        if self.registry.get(event_type, None).is_none() {
            return true;
        }
        let mut last = self.reloaded.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < RELOAD_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The event's topic, once its type is known and it conforms.
    fn check<'c>(&'c self, envelope: &Envelope<'_>, event: &Value) -> Result<&'c str, Refusal> {
        let unknown = |why: &str| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "UNKNOWN_EVENT_TYPE",
                format!("event type '{}' {why}", envelope.event_type),
            )
            .field("eventType", why)
        };
        let topic = self
            .config
            .ingress_topics
            .get(envelope.event_type)
            .or(self.config.ingress_default_topic.as_ref())
            .ok_or_else(|| unknown("has no topic configured for ingress"))?;
        if self.registry.get(envelope.event_type, None).is_none() {
            return Err(unknown("has no registered definition"));
        }
        self.registry
            .check(envelope.event_type, event)
            .map_err(|v| {
                let body = v.body();
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "SCHEMA_VALIDATION_ERROR",
                    body["message"].as_str().unwrap_or_default(),
                )
                .field(&v.field, v.error)
            })?;
        Ok(topic)
    }

    /// The record key: the configured field of the event.
    fn record_key(&self, event_type: &str, event: &Value) -> Result<Vec<u8>, Refusal> {
        let path = self
            .config
            .ingress_keys
            .get(event_type)
            .unwrap_or(&self.config.ingress_key_field);
        let missing = |why: &str| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "INVALID_EVENT",
                format!("the record key field {path} {why}"),
            )
            .field(path, why)
        };
        let value = path
            .split('.')
            .try_fold(event, |v, part| v.get(part))
            .ok_or_else(|| missing("is missing"))?;
        match value {
            Value::String(s) => Ok(s.clone().into_bytes()),
            Value::Number(n) => Ok(n.to_string().into_bytes()),
            Value::Bool(b) => Ok(b.to_string().into_bytes()),
            _ => Err(missing("must be a string, number or boolean")),
        }
    }

    /// Waits up to `timeout` for writes in flight (at shutdown).
    pub fn flush(&self, timeout: std::time::Duration) {
        self.sink.flush(timeout);
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.config
            .ingress_token
            .as_deref()
            .filter(|t| !t.is_empty())
    }
}

/// `ms` since the epoch as the contract's RFC 3339 timestamp (UTC, ms).
pub fn format_timestamp(ms: i64) -> String {
    time::format(ms)
}

/// A new W3C trace: random trace and parent ids, sampled.
fn new_traceparent() -> String {
    let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
    let parent = uuid::Uuid::new_v4().as_u64_pair().0.max(1);
    format!("00-{a:016x}{b:016x}-{parent:016x}-01")
}

/// `POST /v1/events` with `ingress` as its state.
pub fn router(ingress: Arc<Ingress>) -> Router {
    Router::new()
        .route("/v1/events", post(publish_route))
        .with_state(ingress)
}

/// What `weir ingress` serves: `POST /v1/events`, `GET /health`,
/// `GET /metrics` (the ingress series) and `GET /openapi.json` (these
/// routes).
pub fn standalone(ingress: Arc<Ingress>) -> Router {
    let metrics = ingress.clone();
    let token = ingress.token().is_some();
    Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({ "status": "UP" })) }),
        )
        .route(
            "/openapi.json",
            get(move || async move { crate::openapi::ingress_document(token) }),
        )
        .route(
            "/metrics",
            get(move || {
                let i = metrics.clone();
                async move {
                    match crate::metrics::render_ingress(&i) {
                        Ok(text) => (
                            [(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            text,
                        )
                            .into_response(),
                        Err(e) => crate::error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "METRICS",
                            e.to_string(),
                        ),
                    }
                }
            }),
        )
        .merge(router(ingress))
        .fallback(crate::not_found)
        .method_not_allowed_fallback(crate::method_not_allowed)
}

#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "ingress",
    request_body(content = PublishBody, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, max_length = 256, description = "Deduplicates retries (default: the event's type and id); empty: not given")),
    responses(
        (status = 202, description = "Written and acknowledged by the broker", body = Accepted),
        (status = 400, description = "Not JSON, a bad envelope, or not conforming to its definition", body = Refusal),
        (status = 401, description = "ingress_token is set and not given", body = Refusal),
        (status = 413, description = "Over ingress_max_body_bytes", body = Refusal),
        (status = 409, description = "The idempotency key was accepted for a different event", body = Refusal),
        (status = 415, description = "Not JSON by its Content-Type", body = Refusal),
        (status = 404, description = "No definition or no topic for its type", body = Refusal),
        (status = 422, description = "Refused by the broker", body = Refusal),
        (status = 500, description = "The request failed inside the endpoint; it may be retried", body = Refusal),
        (status = 503, description = "Not acknowledged in time; retry", body = Refusal, headers(("Retry-After" = String, description = "Seconds to wait"))),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn publish_route(
    State(ingress): State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let refuse = |r: Refusal| {
        ingress.count(r.outcome());
        r.into_response()
    };
    if let Some(token) = ingress.token() {
        if !crate::ops::bearer_matches(&headers, token) {
            return refuse(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "POST /v1/events needs Authorization: Bearer <ingress_token>",
            ));
        }
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let json = ct
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !json {
            return refuse(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the event as application/json",
            ));
        }
    }
    let limit = usize::try_from(ingress.config.ingress_max_body_bytes).unwrap_or(usize::MAX);
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return refuse(if too_large {
                Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    format!("the body is over {limit} bytes (ingress_max_body_bytes)"),
                )
            } else {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_JSON",
                    format!("the body could not be read: {e}"),
                )
            });
        }
    };
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) => Some(k.to_string()),
        Some(Err(_)) => {
            return refuse(
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_EVENT",
                    "Idempotency-Key must be visible ASCII",
                )
                .field("Idempotency-Key", "must be visible ASCII"),
            )
        }
    };
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match ingress.publish(bytes, key, traceparent).await {
        Ok((accepted, _)) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
        Err(r) => r.into_response(),
    }
}
