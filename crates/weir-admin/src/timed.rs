//! Queries of one key over time: a window store's windows
//! (`GET /stores/{store}/windows`) and a session store's sessions
//! (`GET /stores/{store}/sessions`), both answered by the key's owner as key
//! queries are (forwarded once when another instance holds the partition).
//! Committed state only, as every query.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use weir_dsl::{StoreKind, StoreView};
use weir_runtime::QueryError;
use weir_state::KeyRange;

use crate::openapi::ErrorBody;
use crate::query::{
    bad_request, blocking, encode_segment, forward, fresh, query_err, view_of, ApiError, MAX_LIMIT,
};
use crate::AdminState;

/// The tag of window entries in a window store (see `weir_state::window`).
const WINDOW_TAG: u8 = 0x01;

/// What both routes take: `key`, the bounds `from` and `to` (ms, either
/// left out), `limit`.
struct Span {
    /// The answer's list: `windows` or `sessions`.
    field: &'static str,
    key: Vec<u8>,
    from: i64,
    to: i64,
    limit: usize,
    partition: i32,
}

/// Reads one store's answer for a query string.
type Reader = fn(&AdminState, &str, &BTreeMap<String, String>) -> Result<Answer, ApiError>;

/// An answer, or the partition whose owner answers.
enum Answer {
    Here(serde_json::Value),
    Elsewhere(i32),
}

fn bad(m: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", m)
}

/// Reads the query string against `store`'s view of kind `kind`: the key
/// parsed, the bounds and limit checked, and the key's partition.
fn span_of<'a>(
    s: &'a AdminState,
    store: &str,
    kind: StoreKind,
    q: &BTreeMap<String, String>,
) -> Result<(&'a StoreView, Span), ApiError> {
    let view = view_of(s, store, kind)?;
    if let Some(k) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "key" | "from" | "to" | "limit"))
    {
        return Err(bad(format!(
            "unknown parameter {k:?}; use key, from, to, limit"
        )));
    }
    let text = q.get("key").ok_or_else(|| bad("key is required".into()))?;
    let time = |name: &str, default: i64| -> Result<i64, ApiError> {
        q.get(name).map_or(Ok(default), |t| {
            t.parse()
                .map_err(|_| bad(format!("{name}={t:?} is not a time in ms")))
        })
    };
    let (from, to) = (time("from", i64::MIN)?, time("to", i64::MAX)?);
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return Err(bad(format!("limit must be 1..={MAX_LIMIT}"))),
    };
    let key = view.parse_key(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_KEY",
            format!("{text:?} is not a key of store {store}: {e}"),
        )
    })?;
    fresh(s)?;
    let partition = s
        .stores
        .partition_of(store, &key)
        .map_err(|e| query_err(&e))?;
    let route = match kind {
        StoreKind::Window => "windows",
        _ => "sessions",
    };
    Ok((
        view,
        Span {
            field: route,
            key,
            from,
            to,
            limit,
            partition,
        },
    ))
}

/// The answer for `span`'s key: what was `found`, and who served it.
fn here(
    s: &AdminState,
    store: &str,
    view: &StoreView,
    span: &Span,
    found: Vec<serde_json::Value>,
) -> Result<Answer, ApiError> {
    let key_json = view
        .render_key(&span.key)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "BAD_KEY", e.to_string()))?;
    Ok(Answer::Here(serde_json::json!({
        "store": store,
        "key": key_json,
        "partition": span.partition,
        "served_by": s.instance_id,
        span.field: found,
    })))
}

fn unreadable(store: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "STORED_VALUE_UNREADABLE",
        format!("store {store}: {e}"),
    )
}

/// Runs `read` off the endpoint's worker and answers, or forwards to the
/// owner with the same query string.
async fn serve(
    s: Arc<AdminState>,
    route: &'static str,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    read: Reader,
) -> Response {
    let (Ok(Path(store)), Ok(Query(q))) = (path, query) else {
        return bad_request("the path or query string does not decode");
    };
    let answer = {
        let (s, store, q) = (s.clone(), store.clone(), q.clone());
        blocking(move || read(&s, &store, &q)).await
    };
    match answer.and_then(|a| a) {
        Ok(Answer::Here(v)) => Json(v).into_response(),
        Ok(Answer::Elsewhere(partition)) => {
            let query: Vec<String> = q
                .iter()
                .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
                .collect();
            let path = format!(
                "/stores/{}/{route}?{}",
                encode_segment(&store),
                query.join("&")
            );
            forward(&s, &store, &path, partition, &headers).await
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /stores/{store}/windows?key=&from=&to=&limit=`: a window store's
/// windows of one key with `from <= start <= to` (either bound may be left
/// out), oldest first, answered by the key's owner as key queries are.
#[utoipa::path(get, path = "/stores/{store}/windows", tag = "stores", params(("store" = String, Path, description = "A window store (a windowed aggregation)"), ("key" = String, Query, description = "The key: JSON for the key type, or text for a string key"), ("from" = Option<i64>, Query, description = "The earliest window start (ms)"), ("to" = Option<i64>, Query, description = "The latest window start (ms)"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "At most this many windows (default 100)"), ("X-Weir-Forwarded" = Option<String>, Header, description = "Set by a forwarding instance")), responses((status = 200, description = "The key's committed windows and who served them", body = serde_json::Value), (status = 400, description = "A malformed request", body = ErrorBody), (status = 404, description = "No such store", body = ErrorBody), (status = 500, description = "A stored value does not decode with its codec", body = ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn windows(
    State(s): State<Arc<AdminState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    serve(s, "windows", path, query, headers, windows_of).await
}

/// `GET /stores/{store}/sessions?key=&from=&to=&limit=`: a session store's
/// sessions of one key that overlap `[from, to]` (end at or after `from`,
/// start at or before `to`; either bound may be left out), oldest first,
/// each with its start, end and value.
#[utoipa::path(get, path = "/stores/{store}/sessions", tag = "stores", params(("store" = String, Path, description = "A session store (a session-windowed aggregation)"), ("key" = String, Query, description = "The key: JSON for the key type, or text for a string key"), ("from" = Option<i64>, Query, description = "Sessions that end at or after this time (ms)"), ("to" = Option<i64>, Query, description = "Sessions that start at or before this time (ms)"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "At most this many sessions (default 100)"), ("X-Weir-Forwarded" = Option<String>, Header, description = "Set by a forwarding instance")), responses((status = 200, description = "The key's committed sessions and who served them", body = serde_json::Value), (status = 400, description = "A malformed request", body = ErrorBody), (status = 404, description = "No such store", body = ErrorBody), (status = 500, description = "A stored value does not decode with its codec", body = ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn sessions(
    State(s): State<Arc<AdminState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    serve(s, "sessions", path, query, headers, sessions_of).await
}

fn sessions_of(
    s: &AdminState,
    store: &str,
    q: &BTreeMap<String, String>,
) -> Result<Answer, ApiError> {
    let (view, span) = span_of(s, store, StoreKind::Session, q)?;
    // A key's sessions never overlap: in end order they are in start order
    // too, so the first `limit` that end from `from` on, cut at `to`, are
    // the answer.
    let range = weir_state::session_range(&span.key, span.from);
    let entries = match s.stores.range_in(store, span.partition, &range, span.limit) {
        Ok(e) => e,
        Err(QueryError::NotLocal { .. }) => return Ok(Answer::Elsewhere(span.partition)),
        Err(e) => return Err(query_err(&e)),
    };
    let mut found = Vec::new();
    for (k, v) in entries {
        let Some((start, end)) = weir_state::decode_session_key(&span.key, &k) else {
            continue;
        };
        if start > span.to {
            break;
        }
        let value = view.render_value(&v).map_err(|e| unreadable(store, e))?;
        found.push(serde_json::json!({ "start": start, "end": end, "value": value }));
    }
    here(s, store, view, &span, found)
}

fn windows_of(
    s: &AdminState,
    store: &str,
    q: &BTreeMap<String, String>,
) -> Result<Answer, ApiError> {
    let (view, span) = span_of(s, store, StoreKind::Window, q)?;
    let (from, to, limit, partition) = (span.from, span.to, span.limit, span.partition);
    let segment_ms = view.segment_ms().unwrap_or(1).max(1);
    let engine = |e: QueryError| match e {
        QueryError::NotLocal { .. } => None,
        other => Some(query_err(&other)),
    };
    // Segment by segment (a handful: retention / segment span), each a
    // short range of this key's windows.
    let mut out = Vec::new();
    let (first_segment, last_segment) = (from.div_euclid(segment_ms), to.div_euclid(segment_ms));
    let mut cursor = vec![WINDOW_TAG];
    cursor.extend_from_slice(&weir_state::time_key(first_segment));
    while out.len() < limit {
        let probe = KeyRange {
            from: Bound::Included(cursor.clone()),
            to: Bound::Excluded(vec![WINDOW_TAG + 1]),
        };
        let first = match s.stores.range_in(store, partition, &probe, 1) {
            Ok(f) => f,
            Err(e) => return engine(e).map_or(Ok(Answer::Elsewhere(partition)), Err),
        };
        let Some((k, _)) = first.first() else { break };
        let Some(segment) = k.get(1..9).and_then(weir_state::from_time_key) else {
            break;
        };
        if segment > last_segment {
            break;
        }
        let seg_start = segment.checked_mul(segment_ms).unwrap_or(i64::MIN);
        let seg_end = segment
            .checked_add(1)
            .and_then(|n| n.checked_mul(segment_ms))
            .map_or(i64::MAX, |e| e - 1);
        let (lo, hi) = (from.max(seg_start), to.min(seg_end));
        if lo <= hi {
            let mine = KeyRange::inclusive(
                &weir_state::window_key(segment_ms, &span.key, lo),
                &weir_state::window_key(segment_ms, &span.key, hi),
            );
            let entries = s
                .stores
                .range_in(store, partition, &mine, limit - out.len())
                .map_err(|e| query_err(&e))?;
            for (k, v) in entries {
                let Some((_, start)) = weir_state::decode_window_key(&k) else {
                    continue;
                };
                let (latest, value) = view
                    .render_window_slot(&v)
                    .map_err(|e| unreadable(store, e))?;
                out.push(serde_json::json!({
                    "start": start,
                    "value": value,
                    "latest_timestamp": latest,
                }));
            }
        }
        let Some(next) = segment.checked_add(1) else {
            break;
        };
        cursor = vec![WINDOW_TAG];
        cursor.extend_from_slice(&weir_state::time_key(next));
    }
    here(s, store, view, &span, out)
}
