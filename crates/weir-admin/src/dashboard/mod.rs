//! `GET /dashboard`: the operators' page, one self-contained HTML file
//! (compiled into the binary; no build step, nothing fetched from
//! elsewhere). Its script reads this endpoint's own routes every 2 s
//! (`?refresh=ms` to change): `/metrics` (totals, per-node rates, lag per
//! partition, restoration, pending waits, breakers), `/topology` (drawn as
//! a layered graph; its Mermaid source alongside), `/dlq?pending=true`
//! (dead letters with their reasons, each with a replay button that posts
//! `/dlq/replay` for that one letter under a group of its own, with the
//! admin token typed into the page), and `/stores/{store}/keys/{key}` for
//! a key lookup (forwarded to the owner). `GET /` redirects here.

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

const PAGE: &str = include_str!("index.html");

#[utoipa::path(get, path = "/dashboard", tag = "instance", responses((status = 200, description = "The operators' dashboard (HTML)", body = String, content_type = "text/html")))]
pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Everything it needs is inline or on this endpoint.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        PAGE,
    )
        .into_response()
}

pub(crate) async fn root() -> Redirect {
    Redirect::to("/dashboard")
}
