//! Operations on the cluster behind an instance: dead letters and event
//! definitions.
//!
//! - `GET /dlq?limit=&pending=`: the dead-letter topic's records by kind,
//!   how many no replay wrote back (`pending`), and its first `limit`
//!   (default 100, at most 10,000) entries — with `pending=true` the first
//!   not replayed — each with its reason, source, record (key and value as
//!   text when UTF-8, else `{"hex": ..}`) and `replayed_to`;
//! - `POST /dlq/replay` (token): replays dead letters to their source topic
//!   (or `to`), optionally only some `kinds`, one `partition` or an
//!   offset range (`from_offset`, `to_offset`), through one of the
//!   topology's fix-ups (`fix`), exactly once (see
//!   `weir_runtime::replay_dead_letters`); body JSON, all fields optional;
//!   answers the summary;
//! - `GET /schemas`: the latest definition of every event type;
//!   `GET /schemas/{event_type}?version=`: one definition (latest by
//!   default); `PUT /schemas/{event_type}?compatibility=none|backward`
//!   (token): registers a new version (body: `schema`, `description`,
//!   `examples`, `owner`), 201 with the stored definition, 400 with the
//!   reason when refused.
//!
//! With `admin_token` set, the mutating routes need `Authorization: Bearer
//! <token>` (else 401 `UNAUTHORIZED` with `WWW-Authenticate: Bearer`).
//! Each call runs on a blocking thread: a slow broker never holds up the
//! endpoint's other routes.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use weir_runtime::{Config, ReplayOptions};
use weir_schema::{Compatibility, NewDefinition, SchemaError, SchemaRegistry};

use crate::openapi::ErrorBody;
use crate::query::ApiError;
use crate::{error, AdminState};

type QueryMap = std::collections::BTreeMap<String, String>;

/// What the operations routes need: the instance's configuration and
/// dead-letter topic; the definitions registry is connected on first use.
pub struct Operations {
    config: Config,
    dead_letter_topic: String,
    registry: OnceLock<Arc<SchemaRegistry>>,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations")
            .field("dead_letter_topic", &self.dead_letter_topic)
            .finish()
    }
}

impl Operations {
    /// Operations of the application `config` describes, whose dead
    /// letters go to `dead_letter_topic`.
    pub fn new(config: Config, dead_letter_topic: impl Into<String>) -> Self {
        Self {
            config,
            dead_letter_topic: dead_letter_topic.into(),
            registry: OnceLock::new(),
        }
    }

    fn registry(&self) -> Result<Arc<SchemaRegistry>, weir_runtime::Error> {
        if let Some(r) = self.registry.get() {
            return Ok(r.clone());
        }
        let r = Arc::new(weir_runtime::schema_registry(&self.config)?);
        Ok(self.registry.get_or_init(|| r).clone())
    }
}

/// 401 unless the request carries the token (when one is set).
pub(crate) fn authorize(s: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = s.token.as_deref() else {
        return Ok(());
    };
    if bearer_matches(headers, token) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "this route needs Authorization: Bearer <admin_token>",
    )
    .with_header(header::WWW_AUTHENTICATE, "Bearer"))
}

/// Whether `headers` carry `Authorization: Bearer <token>`.
pub(crate) fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 7235).
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .unwrap_or("");
    // Compared without an early exit, so the time taken tells nothing.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn ops(s: &AdminState) -> Result<Arc<Operations>, ApiError> {
    s.ops.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NOT_AVAILABLE",
            "this endpoint serves no cluster operations",
        )
    })
}

/// Runs blocking `f` off the endpoint's worker.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("the operation failed: {e}"),
        ))
    })
}

fn kafka_error(e: &weir_runtime::Error) -> ApiError {
    match e {
        weir_runtime::Error::Usage(m) => {
            ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", m.clone())
        }
        other => ApiError::unavailable("BROKER_UNAVAILABLE", other.to_string()),
    }
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// `GET /dlq`.
#[utoipa::path(get, path = "/dlq", tag = "dead letters", params(("limit" = Option<u32>, Query, minimum = 0, maximum = 10000, description = "Entries to list (default 100)"), ("pending" = Option<bool>, Query, description = "List only the dead letters no replay wrote back (default false)")), responses((status = 200, description = "Dead letters by kind, and the first entries", body = serde_json::Value), (status = 400, description = "A malformed request", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 501, description = "This endpoint serves no cluster operations", body = ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing, broker unavailable); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn dlq(
    State(s): State<Arc<AdminState>>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return bad_request("the query string does not parse");
    };
    if let Some(k) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "limit" | "pending"))
    {
        return bad_request(format!("unknown parameter {k:?}; use limit, pending"));
    }
    let pending_only = match q.get("pending").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return bad_request(format!("pending must be true or false, not {other:?}")),
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n <= 10_000 => n,
        Some(_) => return bad_request("limit must be 0..=10000"),
    };
    let ops = match ops(&s) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let listed = blocking(move || {
        weir_runtime::list_dead_letters_where(
            &ops.config,
            &ops.dead_letter_topic,
            limit,
            pending_only,
        )
        .map(|l| (ops.dead_letter_topic.clone(), l))
        .map_err(|e| kafka_error(&e))
    })
    .await;
    match listed {
        Ok((topic, l)) => Json(l.to_json(&topic)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The body of `POST /dlq/replay`.
#[derive(serde::Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    #[serde(default)]
    kinds: Vec<String>,
    #[schema(minimum = 0)]
    from_offset: Option<i64>,
    #[schema(minimum = 0)]
    to_offset: Option<i64>,
    /// Only dead letters of this partition of the dead-letter topic.
    #[schema(minimum = 0)]
    partition: Option<i32>,
    #[schema(min_length = 1)]
    to: Option<String>,
    /// The replay's consumer group (default `<application_id>-dlq-replay`;
    /// a filtered replay gets a group of its own, named after its filters,
    /// so the letters it leaves out stay replayable).
    #[schema(min_length = 1)]
    group: Option<String>,
    /// Pass each dead letter through the topology's fix-up of this name
    /// (it returns the record to write, or nothing to leave it out).
    fix: Option<String>,
}

/// The body of `PUT /schemas/{event_type}` as documented (read as a
/// `NewDefinition`, its `event_type` from the path).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct DefinitionBody {
    /// The payload's JSON Schema.
    schema: serde_json::Map<String, serde_json::Value>,
    description: Option<String>,
    /// Example payloads; each must conform to the schema.
    examples: Option<Vec<serde_json::Value>>,
    owner: Option<String>,
}

/// `POST /dlq/replay`.
#[utoipa::path(post, path = "/dlq/replay", tag = "dead letters", request_body(content = Option<ReplayBody>, description = "Which dead letters, and where to (all optional)", content_type = "application/json"), security(("bearer" = [])), responses((status = 200, description = "What was replayed", body = serde_json::Value), (status = 400, description = "A malformed request", body = ErrorBody), (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody, headers(("WWW-Authenticate" = String, description = "Bearer"))), (status = 404, description = "Not found", body = ErrorBody), (status = 501, description = "This endpoint serves no cluster operations", body = ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing, broker unavailable); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn replay(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authorize(&s, &headers) {
        return e.into_response();
    }
    // No body, or `null`: every dead letter, to its source topic.
    let req: ReplayBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayBody::default()
    } else {
        match serde_json::from_slice::<Option<ReplayBody>>(&body) {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => return bad_request(format!("the body is not a replay request: {e}")),
        }
    };
    if req.to.as_deref().is_some_and(str::is_empty) {
        return bad_request("to must be a topic name");
    }
    if req.group.as_deref().is_some_and(str::is_empty) {
        return bad_request("group must be a consumer group name");
    }
    let fix = match req.fix.as_deref() {
        None => None,
        Some(name) => match s.topology.dead_letter_fix(name) {
            Some(f) => Some(f),
            None => {
                let fixes = s.topology.dead_letter_fixes();
                let message = if fixes.is_empty() {
                    format!("no fix-up {name:?}: this topology registers none")
                } else {
                    format!("no fix-up {name:?}; this topology has {}", fixes.join(", "))
                };
                return ApiError::new(StatusCode::NOT_FOUND, "UNKNOWN_FIX", message)
                    .into_response();
            }
        },
    };
    let ops = match ops(&s) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let done = blocking(move || {
        let mut opts = ReplayOptions::new(&ops.config, ops.dead_letter_topic.clone());
        opts.kinds = req.kinds;
        opts.from_offset = req.from_offset;
        opts.to_offset = req.to_offset;
        opts.partition = req.partition;
        opts.to = req.to;
        opts.choose_group(req.group, req.fix.as_deref());
        let fix = fix.as_deref().map(|f| f as weir_runtime::FixUp<'_>);
        weir_runtime::replay_dead_letters(&ops.config, &opts, fix, &mut |_, _| {})
            .map(|summary| (opts.topic, summary))
            .map_err(|e| kafka_error(&e))
    })
    .await;
    match done {
        Ok((topic, sum)) => {
            tracing::info!(%topic, replayed = sum.replayed, "dead letters replayed over the admin endpoint");
            Json(sum.to_json(&topic)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn schema_error(e: &SchemaError) -> ApiError {
    match e {
        SchemaError::Kafka(_) | SchemaError::Timeout(_) => {
            ApiError::unavailable("BROKER_UNAVAILABLE", e.to_string())
        }
        SchemaError::Incompatible { .. } => {
            ApiError::new(StatusCode::CONFLICT, "INCOMPATIBLE_SCHEMA", e.to_string())
        }
        _ => ApiError::new(StatusCode::BAD_REQUEST, "INVALID_DEFINITION", e.to_string()),
    }
}

/// `GET /schemas`.
#[utoipa::path(get, path = "/schemas", tag = "event definitions", responses((status = 200, description = "The latest definition of every event type", body = serde_json::Value), (status = 501, description = "This endpoint serves no cluster operations", body = ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing, broker unavailable); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn schemas(State(s): State<Arc<AdminState>>) -> Response {
    let ops = match ops(&s) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let listed = blocking(move || {
        let r = ops.registry().map_err(|e| kafka_error(&e))?;
        r.refresh().map_err(|e| schema_error(&e))?;
        Ok(r.list())
    })
    .await;
    match listed {
        Ok(list) => Json(serde_json::json!({ "definitions": list })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /schemas/{event_type}`.
#[utoipa::path(get, path = "/schemas/{event_type}", tag = "event definitions", params(("event_type" = String, Path, description = "The event type"), ("version" = Option<u32>, Query, minimum = 1, description = "A version (default: the latest)")), responses((status = 200, description = "The definition", body = serde_json::Value), (status = 400, description = "A malformed request", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 501, description = "This endpoint serves no cluster operations", body = ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing, broker unavailable); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn schema(
    State(s): State<Arc<AdminState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> Response {
    let (Ok(Path(event_type)), Ok(Query(q))) = (path, query) else {
        return bad_request("the path or query string does not decode");
    };
    if let Some(k) = q.keys().find(|k| k.as_str() != "version") {
        return bad_request(format!("unknown parameter {k:?}; use version"));
    }
    let version = match q.get("version").map(|v| v.parse::<u32>()) {
        None => None,
        Some(Ok(v)) if v >= 1 => Some(v),
        Some(_) => return bad_request("version must be a positive integer"),
    };
    let ops = match ops(&s) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let found = blocking(move || {
        let r = ops.registry().map_err(|e| kafka_error(&e))?;
        r.refresh().map_err(|e| schema_error(&e))?;
        r.get(&event_type, version).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "SCHEMA_NOT_FOUND",
                match version {
                    Some(v) => format!("event type {event_type} has no version {v}"),
                    None => format!("no definition of event type {event_type}"),
                },
            )
        })
    })
    .await;
    match found {
        Ok(d) => Json(d).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PUT /schemas/{event_type}`.
#[utoipa::path(put, path = "/schemas/{event_type}", tag = "event definitions", params(("event_type" = String, Path, pattern = "^[A-Za-z0-9._-]{1,200}$", description = "The event type"), ("compatibility" = Option<crate::openapi::CompatibilityParam>, Query, description = "none (default) or backward")), request_body(content = DefinitionBody, description = "The definition (its event_type is the path's)", content_type = "application/json"), security(("bearer" = [])), responses((status = 201, description = "The stored definition", body = serde_json::Value), (status = 400, description = "A malformed request", body = ErrorBody), (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody, headers(("WWW-Authenticate" = String, description = "Bearer"))), (status = 409, description = "Not backward compatible", body = ErrorBody), (status = 501, description = "This endpoint serves no cluster operations", body = ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing, broker unavailable); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn put_schema(
    State(s): State<Arc<AdminState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authorize(&s, &headers) {
        return e.into_response();
    }
    let (Ok(Path(event_type)), Ok(Query(q))) = (path, query) else {
        return bad_request("the path or query string does not decode");
    };
    if let Some(k) = q.keys().find(|k| k.as_str() != "compatibility") {
        return bad_request(format!("unknown parameter {k:?}; use compatibility"));
    }
    let compat = match q.get("compatibility").map(String::as_str) {
        None | Some("none") => Compatibility::None,
        Some("backward") => Compatibility::Backward,
        Some(other) => {
            return bad_request(format!(
                "compatibility {other:?} is not one of none, backward"
            ))
        }
    };
    let mut json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => return bad_request("the body must be a JSON object with a schema"),
        Err(e) => return bad_request(format!("the body is not JSON: {e}")),
    };
    if !json.get("schema").is_some_and(serde_json::Value::is_object) {
        return bad_request("schema must be a JSON Schema object");
    }
    // An optional field given as null is left out.
    if let Some(fields) = json.as_object_mut() {
        fields.retain(|k, v| {
            !(v.is_null() && matches!(k.as_str(), "description" | "examples" | "owner"))
        });
    }
    match json.get("event_type") {
        None => {
            json["event_type"] = serde_json::Value::String(event_type.clone());
        }
        Some(t) if *t == serde_json::Value::String(event_type.clone()) => {}
        Some(t) => {
            return bad_request(format!(
                "the body's event_type {t} is not the path's {event_type:?}"
            ))
        }
    }
    let new: NewDefinition = match serde_json::from_value(json) {
        Ok(d) => d,
        Err(e) => return bad_request(format!("the body is not an event definition: {e}")),
    };
    let ops = match ops(&s) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let stored = blocking(move || {
        let r = ops.registry().map_err(|e| kafka_error(&e))?;
        r.register(new, compat).map_err(|e| schema_error(&e))
    })
    .await;
    match stored {
        Ok(d) => {
            tracing::info!(event_type = %d.event_type, version = d.version, "event definition registered over the admin endpoint");
            (StatusCode::CREATED, Json(d)).into_response()
        }
        Err(e) => e.into_response(),
    }
}
