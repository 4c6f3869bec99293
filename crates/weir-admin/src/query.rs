//! Store queries over HTTP.
//!
//! - `GET /stores/{store}/keys/{key}`: the key (URL-encoded, read through
//!   the store's key codec: JSON for the key type, or the text as a
//!   string) lives in partition `murmur2(serialized key) mod partitions`.
//!   An instance holding that partition answers from its committed state;
//!   another forwards the request once to the owner named by the instance
//!   directory (`weir_runtime::Directory`), with the header
//!   `X-Weir-Forwarded: <its instance id>`. The answer is
//!   `{"store", "key", "value", "partition", "served_by"}` (`served_by` =
//!   the instance that read it). A forwarded request the target does not
//!   hold (running) is refused with 503, never forwarded again; so is a
//!   query whose partition restores, has no known owner, or whose owner
//!   does not answer: during a rebalance an answer is correct or a 503
//!   with `Retry-After`. An unknown key is a 404 `KEY_NOT_FOUND`.
//! - `GET /stores/{store}/range`: every partition's entries in a key
//!   range (module `range`).
//! - `GET /stores/{store}/windows` and `GET /stores/{store}/sessions`: a
//!   key over time, forwarded like key queries (module `timed`).
//! - `GET /waits/{wait}/{key}`: the records a wait (`await_event`) holds
//!   for a key, forwarded like key queries; none is an empty list.
//!
//! Every local read first checks that this instance was not paused past a
//! consumer session (`RuntimeStats::stalled`): a paused instance may have
//! lost its partitions without knowing it yet, so it answers 503 `STALLED`
//! until a poll after the pause has run the revocation.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use weir_dsl::{StoreKind, StoreView};
use weir_runtime::QueryError;

use crate::openapi::{ErrorBody, KeyAnswer};
use crate::{error, AdminState};

/// The header that marks a forwarded query.
pub const FORWARDED: &str = "x-weir-forwarded";

/// 503 while this instance's stores may be stale (see
/// `RuntimeStats::stalled`: a stream thread paused past a consumer session,
/// or just back from one).
pub(crate) fn fresh(s: &AdminState) -> Result<(), ApiError> {
    match s.stats.stalled() {
        Some(d) => Err(ApiError::unavailable(
            "STALLED",
            format!(
                "{} was paused (its oldest poll is {} ms old); its partitions may have moved",
                s.instance_id,
                d.as_millis()
            ),
        )),
        None => Ok(()),
    }
}

/// The most entries one range answer carries.
pub(crate) const MAX_LIMIT: usize = 10_000;

/// An error answer, before it becomes a [`Response`] (small enough to
/// return in a `Result`).
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// One header to add (`Retry-After`, `WWW-Authenticate`).
    header: Option<(header::HeaderName, &'static str)>,
    /// `WRONG_STORE_KIND`'s `kind` field: the store's own kind, for a
    /// client to follow.
    kind: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            header: None,
            kind: None,
        }
    }

    /// A 503 with `Retry-After: 1`.
    pub(crate) fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            header: Some((header::RETRY_AFTER, "1")),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    pub(crate) fn with_header(self, name: header::HeaderName, value: &'static str) -> Self {
        Self {
            header: Some((name, value)),
            ..self
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = match self.kind {
            None => error(self.status, self.code, self.message),
            Some(kind) => {
                let body = serde_json::json!({ "error": self.code, "message": self.message, "kind": kind });
                (self.status, axum::Json(body)).into_response()
            }
        };
        if let Some((name, value)) = self.header {
            r.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        r
    }
}

/// Runs a store read off the endpoint's one worker (RocksDB reads block),
/// so a long range never holds up `/health` or a peer's forwarded query.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("the read failed: {e}"),
        )
    })
}

/// A 503 with `Retry-After: 1`.
pub(crate) fn unavailable(code: &'static str, message: impl Into<String>) -> Response {
    ApiError::unavailable(code, message).into_response()
}

pub(crate) fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// The key-value view of `store`, or the error response.
pub(crate) fn kv_view<'a>(s: &'a AdminState, store: &str) -> Result<&'a StoreView, ApiError> {
    view_of(s, store, StoreKind::KeyValue)
}

/// The view of `store` when it is of kind `want`, or the error response.
pub(crate) fn view_of<'a>(
    s: &'a AdminState,
    store: &str,
    want: StoreKind,
) -> Result<&'a StoreView, ApiError> {
    if !s.stores.stores().iter().any(|n| n == store) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "STORE_NOT_FOUND",
            format!(
                "the topology has no store {store}; its stores are {}",
                s.stores.stores().join(", ")
            ),
        ));
    }
    let Some(view) = s.topology.store_view(store) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "NOT_QUERYABLE",
            format!("store {store} is internal to its operator and has no key view"),
        ));
    };
    let name = |k: StoreKind| match k {
        StoreKind::KeyValue => "key-value",
        StoreKind::Window => "window",
        _ => "session",
    };
    if view.kind() == want {
        return Ok(view);
    }
    let route = match view.kind() {
        StoreKind::KeyValue => format!("/stores/{store}/keys/{{key}}"),
        StoreKind::Window => format!("/stores/{store}/windows?key="),
        _ => format!("/stores/{store}/sessions?key="),
    };
    Err(ApiError {
        kind: Some(name(view.kind())),
        ..ApiError::new(
            StatusCode::BAD_REQUEST,
            "WRONG_STORE_KIND",
            format!(
                "store {store} is a {} store, not a {} store ({route})",
                name(view.kind()),
                name(want)
            ),
        )
    })
}

fn query_error(e: &QueryError) -> Response {
    query_err(e).into_response()
}

pub(crate) fn render(
    view: &StoreView,
    store: &str,
    key: &[u8],
    value: &[u8],
) -> Result<(serde_json::Value, serde_json::Value), ApiError> {
    let unreadable = |e: weir_core::CodecError| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "STORED_VALUE_UNREADABLE",
            format!("store {store}: {e}"),
        )
    };
    Ok((
        view.render_key(key).map_err(unreadable)?,
        view.render_value(value).map_err(unreadable)?,
    ))
}

/// What [`read_key`] read: the store's view, the serialized key, its
/// partition and the read (`NotLocal` when another instance holds it).
type KeyRead<'a> = (
    &'a StoreView,
    Vec<u8>,
    i32,
    Result<Option<Vec<u8>>, QueryError>,
);

/// A local read of the serialized form of `text` in key-value store
/// `store`. `what` names the store in messages.
fn read_key<'a>(
    s: &'a AdminState,
    store: &str,
    text: &str,
    what: &str,
) -> Result<KeyRead<'a>, ApiError> {
    let view = kv_view(s, store)?;
    let key = view.parse_key(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_KEY",
            format!("{text:?} is not a key of {what}: {e}"),
        )
    })?;
    let partition = s
        .stores
        .partition_of(store, &key)
        .map_err(|e| query_err(&e))?;
    fresh(s)?;
    // A point read is one RocksDB get (microseconds: memtable or block
    // cache, one block read at worst), read here rather than handed to a
    // blocking thread: the hand-off cost more than the read. Ranges,
    // windows and sessions, which can be long, still go to `blocking`.
    let read = s.stores.get(store, &key);
    Ok((view, key, partition, read))
}

/// `GET /stores/{store}/keys/{key}`.
#[utoipa::path(get, path = "/stores/{store}/keys/{key}", tag = "stores", params(("store" = String, Path, description = "A key-value store"), ("key" = String, Path, description = "The key: JSON for the key type, or text for a string key"), ("X-Weir-Forwarded" = Option<String>, Header, description = "Set by a forwarding instance")), responses((status = 200, description = "The committed value and who served it", body = KeyAnswer), (status = 400, description = "A malformed request", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 500, description = "A stored value does not decode with its codec", body = ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing, broker unavailable); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn key(
    State(s): State<Arc<AdminState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path((store, text))) = path else {
        return bad_request("the path does not decode (a key must be URL-encoded UTF-8)");
    };
    let (view, key, partition, read) = match read_key(&s, &store, &text, &format!("store {store}"))
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match read {
        Ok(Some(value)) => match render(view, &store, &key, &value) {
            Ok((k, v)) => Json(serde_json::json!({
                "store": store,
                "key": k,
                "value": v,
                "partition": partition,
                "served_by": s.instance_id,
            }))
            .into_response(),
            Err(e) => e.into_response(),
        },
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "KEY_NOT_FOUND",
            format!(
                "store {store} has no key {text:?} (partition {partition}, served by {})",
                s.instance_id
            ),
        ),
        Err(QueryError::NotLocal { .. }) => {
            let path = format!(
                "/stores/{}/keys/{}",
                encode_segment(&store),
                encode_segment(&text)
            );
            forward(&s, &store, &path, partition, &headers).await
        }
        Err(e) => query_error(&e),
    }
}

/// Forwards a key query once to the owner of `partition`.
pub(crate) async fn forward(
    s: &AdminState,
    store: &str,
    path: &str,
    partition: i32,
    headers: &HeaderMap,
) -> Response {
    if let Some(from) = headers.get(FORWARDED) {
        return unavailable(
            "NOT_OWNER",
            format!(
                "store {store}: partition {partition} is not held by {} (forwarded by {}); the assignment is moving",
                s.instance_id,
                from.to_str().unwrap_or("?")
            ),
        );
    }
    let owner = s.directory.as_ref().and_then(|d| d.owner(store, partition));
    let Some(owner) = owner.filter(|o| o.instance_id != s.instance_id) else {
        return unavailable(
            "OWNER_UNKNOWN",
            format!("store {store}: no instance holds partition {partition} now (rebalancing?)"),
        );
    };
    let Some(url) = owner.admin_advertised_url.as_deref() else {
        return unavailable(
            "OWNER_UNREACHABLE",
            format!(
                "store {store}: partition {partition} is held by {}, which has no admin endpoint",
                owner.instance_id
            ),
        );
    };
    match s.forwarder.get(url, path, &s.instance_id).await {
        Ok(relayed) => relayed,
        Err(message) => unavailable(
            "OWNER_UNREACHABLE",
            format!(
                "store {store}: partition {partition} is held by {} at {url}: {message}",
                owner.instance_id
            ),
        ),
    }
}

/// Percent-encodes one path segment.
pub(crate) fn encode_segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_encoded_so_that_it_decodes_back() {
        assert_eq!(encode_segment("c-17"), "c-17");
        assert_eq!(encode_segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }
}

pub(crate) fn query_err(e: &QueryError) -> ApiError {
    match e {
        QueryError::UnknownStore { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "STORE_NOT_FOUND", e.to_string())
        }
        QueryError::NotLocal { .. } => ApiError::unavailable("NOT_OWNER", e.to_string()),
        QueryError::Restoring { .. } => ApiError::unavailable("RESTORING", e.to_string()),
        QueryError::Codec { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "STORED_VALUE_UNREADABLE",
            e.to_string(),
        ),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "STORE", e.to_string()),
    }
}

/// `GET /waits/{wait}/{key}`: what the wait named `wait` (an
/// `await_event`) holds for a key — its pending records, oldest first —
/// answered by the key's owner as key queries are. No pending record is an
/// empty list.
#[utoipa::path(get, path = "/waits/{wait}/{key}", tag = "stores", params(("wait" = String, Path, description = "The wait's name"), ("key" = String, Path, description = "The key: JSON for the key type, or text for a string key"), ("X-Weir-Forwarded" = Option<String>, Header, description = "Set by a forwarding instance")), responses((status = 200, description = "The key's pending records and who served them", body = serde_json::Value), (status = 400, description = "A malformed request", body = ErrorBody), (status = 404, description = "No such wait", body = ErrorBody), (status = 500, description = "A stored value does not decode with its codec", body = ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn waits(
    State(s): State<Arc<AdminState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path((wait, text))) = path else {
        return bad_request("the path does not decode (a key must be URL-encoded UTF-8)");
    };
    let store = format!("{wait}-waits");
    let known = s.stores.stores();
    if !known.contains(&store) || s.topology.store_view(&store).is_none() {
        let waits: Vec<&str> = known
            .iter()
            .filter_map(|n| n.strip_suffix("-waits"))
            .collect();
        return error(
            StatusCode::NOT_FOUND,
            "WAIT_NOT_FOUND",
            format!(
                "the topology has no wait {wait}; its waits are {}",
                waits.join(", ")
            ),
        );
    }
    let (view, key, partition, read) = match read_key(&s, &store, &text, &format!("wait {wait}")) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let pending = match read {
        Ok(Some(value)) => match render(view, &store, &key, &value) {
            Ok((_, v)) => v,
            Err(e) => return e.into_response(),
        },
        Ok(None) => serde_json::json!([]),
        Err(QueryError::NotLocal { .. }) => {
            let path = format!("/waits/{}/{}", encode_segment(&wait), encode_segment(&text));
            return forward(&s, &store, &path, partition, &headers).await;
        }
        Err(e) => return query_error(&e),
    };
    let key_json = match view.render_key(&key) {
        Ok(k) => k,
        Err(e) => return bad_request(e.to_string()),
    };
    Json(serde_json::json!({
        "wait": wait,
        "key": key_json,
        "pending": pending,
        "partition": partition,
        "served_by": s.instance_id,
    }))
    .into_response()
}
