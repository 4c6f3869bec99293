//! `GET /stores/{store}/range?from=&to=&limit=&scope=`: up to `limit`
//! (default 100, at most 10,000) entries with `from <= key <= to` (by
//! serialized key order; either bound may be left out) of every partition
//! of a key-value store.
//!
//! The asked instance reads the partitions it holds and asks each other
//! owner (by the instance directory) once, all at the same time, for the
//! partitions it owns: forwarded (`X-Weir-Forwarded`) with
//! `partitions=1,3`, which the owner reads and nothing else (a
//! forwarded request is answered from the partitions held here, and one
//! of those not held here is a 503 `NOT_OWNER`). Each source
//! answers its first `limit` keys of those partitions, so the first
//! `limit` of them all are the range's. A forwarded answer carries each
//! entry's serialized key (`raw_key`, hex) for the merge; the final answer
//! does not.
//!
//! An answer is complete or refused: a partition without a known or
//! reachable owner, one its owner no longer holds, or one restoring makes
//! the whole range a 503 with `Retry-After`. `scope=local` answers from the
//! partitions held here only (as a forwarded request does).
//!
//! `partitions=1,3` on any request restricts the range to those
//! partitions. An owner's answer other than 200, 500 or 503 (an older
//! version that refuses `partitions`, say) is a 503 `OWNER_UNREACHABLE`.
//!
//! Each entry is `{"key", "value", "partition", "served_by"}`: `partition`
//! is the partition it was read from, `served_by` the instance that read
//! it. Each partition is read as of its own last commit, on its owner:
//! entries of two partitions may come from two commits (as with Kafka
//! Streams' queries over several tasks).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use weir_dsl::StoreView;
use weir_state::KeyRange;

use crate::query::{
    bad_request, blocking, encode_segment, fresh, kv_view, query_err, render, unavailable,
    ApiError, FORWARDED, MAX_LIMIT,
};
use crate::AdminState;

/// One entry of the answer, with its serialized key for the merge.
type Row = (Vec<u8>, Value);

/// `GET /stores/{store}/range`.
#[utoipa::path(get, path = "/stores/{store}/range", tag = "stores", params(("store" = String, Path, description = "A key-value store"), ("from" = Option<String>, Query, description = "The lowest key"), ("to" = Option<String>, Query, description = "The highest key"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "At most this many entries (default 100)"), ("scope" = Option<crate::openapi::RangeScope>, Query, description = "all (the default): every partition, asking the instances that hold them; local: the partitions held here"), ("partitions" = Option<String>, Query, pattern = r"^[0-9]{1,9}(,[0-9]{1,9})*$", description = "Only these partitions (comma-separated, each below the store's partition count)"), ("X-Weir-Forwarded" = Option<String>, Header, description = "Set by an asking instance: answer from the partitions held here")), responses((status = 200, description = "The range's entries, in serialized key order", body = serde_json::Value), (status = 400, description = "A malformed request", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody), (status = 500, description = "A stored value does not decode with its codec", body = crate::openapi::ErrorBody), (status = 503, description = "Not answerable correctly now (restoring, rebalancing, an owner unreachable); retry", body = crate::openapi::ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn range(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let (Ok(Path(store)), Ok(Query(q))) = (path, query) else {
        return bad_request("the path or query string does not decode");
    };
    match answer(&s, &headers, &store, &q).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e,
    }
}

async fn answer(
    s: &Arc<AdminState>,
    headers: &HeaderMap,
    store: &str,
    q: &BTreeMap<String, String>,
) -> Result<Value, Response> {
    let view = kv_view(s, store).map_err(IntoResponse::into_response)?;
    if let Some(unknown) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "from" | "to" | "limit" | "scope" | "partitions"))
    {
        return Err(bad_request(format!(
            "unknown parameter {unknown:?}; use from, to, limit, scope, partitions"
        )));
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return Err(bad_request(format!("limit must be 1..={MAX_LIMIT}"))),
    };
    let forwarded = headers.contains_key(FORWARDED);
    let local_only = match q.get("scope").map(String::as_str) {
        None | Some("all") => forwarded,
        Some("local") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "scope={other:?}: use all (the default) or local"
            )))
        }
    };
    let range = KeyRange {
        from: bound(view, store, q, "from").map_err(IntoResponse::into_response)?,
        to: bound(view, store, q, "to").map_err(IntoResponse::into_response)?,
    };
    fresh(s).map_err(IntoResponse::into_response)?;
    let err = |e: weir_runtime::QueryError| query_err(&e).into_response();
    let count = s.stores.partition_count(store).map_err(err)?;
    if count <= 0 {
        return Err(unavailable(
            "OWNER_UNKNOWN",
            format!("store {store}: its partition count is not known yet"),
        ));
    }
    let held = s.stores.held_partitions(store).map_err(err)?;
    let asked = q.contains_key("partitions");
    let wanted: Vec<i32> = match q.get("partitions") {
        None => (0..count).collect(),
        Some(list) => parse_partitions(list, count).map_err(bad_request)?,
    };
    let (here, mut elsewhere): (Vec<i32>, Vec<i32>) =
        wanted.into_iter().partition(|p| held.contains(p));
    if local_only {
        if let (true, Some(p)) = (asked, elsewhere.first()) {
            let why = if forwarded {
                "the assignment is moving"
            } else {
                "leave out scope=local to have its owner asked"
            };
            return Err(unavailable(
                "NOT_OWNER",
                format!(
                    "store {store}: partition {p} is not held by {}; {why}",
                    s.instance_id
                ),
            ));
        }
        elsewhere.clear();
    }

    // The partitions read here (each as of its last commit), while the
    // owners of the others are asked.
    let local = {
        let (stores, store, here) = (s.stores.clone(), store.to_string(), here.clone());
        blocking(move || stores.range_over(&store, &here, &range, limit))
    };
    let remote = async {
        if elsewhere.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut again = vec![format!("limit={limit}")];
        for name in ["from", "to"] {
            if let Some(v) = q.get(name) {
                again.push(format!("{name}={}", encode_segment(v)));
            }
        }
        gather(s, store, &again.join("&"), &elsewhere).await
    };
    let (read, gathered) = tokio::join!(local, remote);
    let read = read.map_err(IntoResponse::into_response)?.map_err(err)?;
    let (mut rows, theirs) = gathered?;
    for (partition, (k, v)) in read {
        let (key, value) = render(view, store, &k, &v).map_err(IntoResponse::into_response)?;
        let mut entry = serde_json::json!({
            "key": key, "value": value, "partition": partition, "served_by": s.instance_id,
        });
        if forwarded {
            entry["raw_key"] = Value::String(weir_core::to_hex(&k));
        }
        rows.push((k, entry));
    }
    let mut covered = here;
    covered.extend(theirs);
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.truncate(limit);
    covered.sort_unstable();
    Ok(serde_json::json!({
        "store": store,
        "served_by": s.instance_id,
        "partitions": covered,
        "entries": rows.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
    }))
}

/// The bound `name` of the range, read through the store's key codec.
fn bound(
    view: &StoreView,
    store: &str,
    q: &BTreeMap<String, String>,
    name: &str,
) -> Result<Bound<Vec<u8>>, ApiError> {
    let Some(text) = q.get(name) else {
        return Ok(Bound::Unbounded);
    };
    view.parse_key(text).map(Bound::Included).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_KEY",
            format!("{name}={text:?} is not a key of store {store}: {e}"),
        )
    })
}

/// `1,3` → `[1, 3]`: partitions of a store with `count` of them, each
/// once, in order.
fn parse_partitions(list: &str, count: i32) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for item in list.split(',') {
        match item.trim().parse::<i32>() {
            Ok(p) if (0..count).contains(&p) => out.push(p),
            _ => {
                return Err(format!(
                    "partitions={list:?}: comma-separated partitions 0..{count}"
                ))
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The range's entries of the `elsewhere` partitions of `store`: each
/// owner is asked once (all at the same time) for the partitions it owns,
/// with `query` (limit and bounds). Answers the rows and the partitions
/// they cover, or the 503 (or the owner's refusal) that makes the whole
/// range one.
async fn gather(
    s: &Arc<AdminState>,
    store: &str,
    query: &str,
    elsewhere: &[i32],
) -> Result<(Vec<Row>, Vec<i32>), Response> {
    let Some(directory) = s.directory.as_ref() else {
        return Err(unavailable(
            "OWNER_UNKNOWN",
            format!(
                "store {store}: partitions {elsewhere:?} are held elsewhere and this instance has no directory of the others"
            ),
        ));
    };
    // Owner id → (its URL, the partitions asked of it).
    let mut asked: BTreeMap<String, (String, Vec<i32>)> = BTreeMap::new();
    for &partition in elsewhere {
        let owner = directory
            .owner(store, partition)
            .filter(|o| o.instance_id != s.instance_id);
        let Some(owner) = owner else {
            return Err(unavailable(
                "OWNER_UNKNOWN",
                format!(
                    "store {store}: no instance holds partition {partition} now (rebalancing?)"
                ),
            ));
        };
        let Some(url) = owner.admin_advertised_url.clone() else {
            return Err(unavailable(
                "OWNER_UNREACHABLE",
                format!(
                    "store {store}: partition {partition} is held by {}, which has no admin endpoint",
                    owner.instance_id
                ),
            ));
        };
        asked
            .entry(owner.instance_id)
            .or_insert_with(|| (url, Vec::new()))
            .1
            .push(partition);
    }
    let mut calls = tokio::task::JoinSet::new();
    for (id, (url, partitions)) in asked {
        let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
        let path = format!(
            "/stores/{}/range?{query}&partitions={}",
            encode_segment(store),
            list.join(",")
        );
        let (s, store) = (s.clone(), store.to_string());
        calls.spawn(async move {
            let answer = s.forwarder.fetch(&url, &path, &s.instance_id).await;
            rows_of(&store, &id, &url, &partitions, answer)
                .map(|rows| (rows, partitions))
                .map_err(|refusal| *refusal)
        });
    }
    let (mut rows, mut covered) = (Vec::new(), Vec::new());
    while let Some(done) = calls.join_next().await {
        let (more, partitions) = done.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                format!("a forwarded range failed: {e}"),
            )
            .into_response()
        })??;
        rows.extend(more);
        covered.extend(partitions);
    }
    Ok((rows, covered))
}

/// The rows of owner `id`'s answer for `partitions`; a 503 when it did
/// not answer, or answered for other partitions; its refusal as is.
fn rows_of(
    store: &str,
    id: &str,
    url: &str,
    partitions: &[i32],
    answer: Result<(axum::http::response::Parts, axum::body::Bytes), String>,
) -> Result<Vec<Row>, Box<Response>> {
    let unreachable = |why: String| {
        Box::new(unavailable(
            "OWNER_UNREACHABLE",
            format!("store {store}: partitions {partitions:?} are held by {id} at {url}: {why}"),
        ))
    };
    let (head, body) = answer.map_err(&unreachable)?;
    match head.status {
        StatusCode::OK => {}
        // Its own 503 (restoring, moving, stalled) or unreadable value.
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::INTERNAL_SERVER_ERROR => {
            return Err(Box::new(crate::forward::relay(&head, body)))
        }
        // Anything else (an older version that refuses `partitions`, a
        // store it does not have) says nothing of this request: retry.
        other => {
            return Err(unreachable(format!(
                "it answered {other}: {}",
                String::from_utf8_lossy(&body)
            )))
        }
    }
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|e| unreachable(format!("the answer is not JSON: {e}")))?;
    let theirs: Option<Vec<i64>> = answer["partitions"]
        .as_array()
        .map(|ps| ps.iter().map(Value::as_i64).collect())
        .unwrap_or_default();
    let mine: Vec<i64> = partitions.iter().map(|&p| i64::from(p)).collect();
    if theirs.as_ref() != Some(&mine) {
        return Err(Box::new(unavailable(
            "NOT_OWNER",
            format!("store {store}: {id} answered for partitions {theirs:?}, not {mine:?}; the assignment is moving"),
        )));
    }
    let mut rows = Vec::new();
    for entry in answer["entries"].as_array().into_iter().flatten() {
        let key = entry["raw_key"]
            .as_str()
            .and_then(weir_core::from_hex)
            .ok_or_else(|| unreachable(format!("an entry without its raw key: {entry}")))?;
        let mut entry = entry.clone();
        if let Some(fields) = entry.as_object_mut() {
            fields.remove("raw_key");
        }
        rows.push((key, entry));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_lists_parse_within_the_count() {
        assert_eq!(parse_partitions("3,1,3", 8), Ok(vec![1, 3]));
        assert_eq!(parse_partitions(" 0 ", 1), Ok(vec![0]));
        for bad in ["", "8", "-1", "1,,2", "x"] {
            assert!(parse_partitions(bad, 8).is_err(), "{bad}");
        }
    }
}
