//! The admin HTTP endpoint of a Weir instance (axum), one listener per
//! instance at `admin_listen`:
//!
//! - `GET /health`: 200 `{"status": "UP", "instance_id": ..}` while the
//!   process serves;
//! - `GET /ready`: 200 while every stream thread has its assignment (no
//!   rebalance in progress) and no task is restoring, else 503 with
//!   `Retry-After` (Kafka Streams' RUNNING state);
//! - `GET /metrics`: the instance's registry in the Prometheus text format
//!   (names in [`metrics`]);
//! - `GET /topology`: the topology as JSON, or `?format=mermaid`;
//! - `GET /stores`: the topology's stores, the partitions of each this
//!   instance holds (restoring or not), and an estimate of their keys;
//! - `GET /stores/{store}/keys/{key}` (answered here or by the key's owner)
//!   `GET /stores/{store}/range`, `GET /waits/{wait}/{key}`: see
//!   [`query`]; `GET /stores/{store}/windows` and `.../sessions` (a key
//!   over time): see `timed`;
//! - `GET /openapi.json`: this API's OpenAPI document;
//! - `GET /dashboard` (and `/`, redirected): the operators' page (see
//!   `dashboard`);
//! - `POST /v1/events` when `ingress_enabled`: HTTP ingress (see
//!   [`ingress`]);
//! - `GET /dlq`, `POST /dlq/replay`, `GET /schemas`,
//!   `GET|PUT /schemas/{event_type}`: see [`ops`] (the mutating ones need
//!   the bearer token `admin_token` when it is set).
//!
//! Errors are JSON `{"error": CODE, "message": ..}` with their status: an
//! unknown route is 404 `NOT_FOUND`, a wrong method 405
//! `METHOD_NOT_ALLOWED`, a bad query 400 `BAD_REQUEST`; a query that
//! cannot be answered correctly now (restoring, rebalancing) 503 with
//! `Retry-After`.
//!
//! The runtime does not depend on this crate; the `weir` facade starts it
//! beside an instance. It runs on a small tokio runtime of its own, so a
//! slow scrape never holds up a stream thread.

pub mod client;
mod dashboard;
pub mod forward;
pub mod ingress;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod query;
mod range;
mod timed;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openapi::ErrorBody;
use weir_dsl::Topology;
use weir_runtime::{Directory, LocalStores, RuntimeStats};

/// What the endpoint serves.
#[derive(Clone)]
pub struct AdminState {
    /// The instance's id.
    pub instance_id: String,
    /// Its counters.
    pub stats: Arc<RuntimeStats>,
    /// The topology it runs (topics renamed).
    pub topology: Topology,
    /// Whether it is ready (see `/ready`).
    pub ready: Arc<dyn Fn() -> bool + Send + Sync>,
    /// The stores it holds.
    pub stores: Arc<LocalStores>,
    /// Who holds which store partition, for forwarding key queries
    /// (`None`: never forward; a key held elsewhere is a 503).
    pub directory: Option<Arc<Directory>>,
    /// Dead letters and event definitions (`None`: those routes answer
    /// 501).
    pub ops: Option<Arc<ops::Operations>>,
    /// `admin_token`: required on mutating routes when set.
    pub token: Option<String>,
    /// HTTP ingress (`POST /v1/events`), when `ingress_enabled`.
    pub ingress: Option<Arc<ingress::Ingress>>,
    /// Connections kept to other instances for forwarded queries
    /// (`Default::default()`: none yet).
    pub forwarder: Arc<forward::Forwarder>,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `admin_listen` is not `host:port`, or cannot be bound.
    #[error("admin_listen {listen}: {message}")]
    Listen {
        /// The address given.
        listen: String,
        /// Why.
        message: String,
    },
    /// What the endpoint serves could not be set up.
    #[error("admin endpoint: {0}")]
    State(String),
}

/// A running admin endpoint; stops when dropped.
pub struct AdminServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl AdminServer {
    /// Binds `listen` (`host:port`; port 0 picks a free one) and serves
    /// `state` until dropped.
    ///
    /// # Errors
    /// [`AdminError::Listen`] when the address does not parse or cannot be
    /// bound.
    pub fn start(listen: &str, state: AdminState) -> Result<Self, AdminError> {
        Self::start_with(listen, |_| Ok(state))
    }

    /// As [`AdminServer::start`], with the state made once the address is
    /// bound (`make` gets it: with port 0, the port picked).
    ///
    /// # Errors
    /// [`AdminError::Listen`], or `make`'s error as [`AdminError::State`].
    pub fn start_with(
        listen: &str,
        make: impl FnOnce(SocketAddr) -> Result<AdminState, String>,
    ) -> Result<Self, AdminError> {
        Self::serve(listen, |addr| make(addr).map(router))
    }

    /// Binds `listen` and serves the routes `make` gives once the address
    /// is bound (as [`AdminServer::start_with`], for any routes: `weir
    /// ingress` serves [`ingress::standalone`]).
    ///
    /// # Errors
    /// [`AdminError::Listen`], or `make`'s error as [`AdminError::State`].
    pub fn serve(
        listen: &str,
        make: impl FnOnce(SocketAddr) -> Result<Router, String>,
    ) -> Result<Self, AdminError> {
        Self::serve_on(listen, 1, make)
    }

    /// [`AdminServer::serve`] on `workers` tokio worker threads (at least
    /// one): a topology's endpoint keeps to one beside its stream threads;
    /// `weir ingress`, which serves nothing else, takes one per core.
    ///
    /// # Errors
    /// As [`AdminServer::serve`].
    pub fn serve_on(
        listen: &str,
        workers: usize,
        make: impl FnOnce(SocketAddr) -> Result<Router, String>,
    ) -> Result<Self, AdminError> {
        let err = |message: String| AdminError::Listen {
            listen: listen.to_string(),
            message,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("weir-admin")
            .enable_all()
            .build()
            .map_err(|e| err(format!("cannot start a runtime: {e}")))?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(listen))
            .map_err(|e| err(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| err(e.to_string()))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = make(addr).map_err(AdminError::State)?;
        let thread = std::thread::Builder::new()
            .name("weir-admin".into())
            .spawn(move || {
                let served = rt.block_on(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await
                });
                if let Err(e) = served {
                    tracing::error!(error = %e, "admin endpoint stopped");
                }
            })
            .map_err(|e| err(format!("cannot start its thread: {e}")))?;
        tracing::info!(%addr, "admin endpoint listening");
        Ok(Self {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The routes (public for tests that serve it on their own listener).
pub fn router(state: AdminState) -> Router {
    let ingress = state.ingress.clone();
    let admin = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(prometheus_text))
        .route("/topology", get(topology))
        .route("/stores", get(stores))
        .route("/stores/{store}/keys/{key}", get(query::key))
        .route("/stores/{store}/range", get(range::range))
        .route("/stores/{store}/windows", get(timed::windows))
        .route("/stores/{store}/sessions", get(timed::sessions))
        .route("/waits/{wait}/{key}", get(query::waits))
        .route("/dlq", get(ops::dlq))
        .route("/dlq/replay", post(ops::replay))
        .route("/schemas", get(ops::schemas))
        .route(
            "/schemas/{event_type}",
            get(ops::schema).put(ops::put_schema),
        )
        .route("/openapi.json", get(openapi::document))
        .route("/dashboard", get(dashboard::page))
        .route("/", get(dashboard::root))
        .with_state(Arc::new(state));
    let all = match ingress {
        Some(i) => admin.merge(ingress::router(i)),
        None => admin,
    };
    all.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// An error response: `{"error": code, "message": message}`.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": code, "message": message.into() })),
    )
        .into_response()
}

#[utoipa::path(get, path = "/health", tag = "instance", responses((status = 200, description = "The process serves", body = serde_json::Value)))]
pub(crate) async fn health(State(s): State<Arc<AdminState>>) -> Response {
    Json(serde_json::json!({ "status": "UP", "instance_id": s.instance_id })).into_response()
}

#[utoipa::path(get, path = "/ready", tag = "instance", responses((status = 200, description = "Every task runs", body = serde_json::Value), (status = 503, description = "Not answerable correctly now (restoring, rebalancing, broker unavailable); retry", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub(crate) async fn ready(State(s): State<Arc<AdminState>>) -> Response {
    if (s.ready)() {
        Json(serde_json::json!({ "ready": true, "instance_id": s.instance_id })).into_response()
    } else {
        query::unavailable(
            "NOT_READY",
            format!(
                "waiting for the group's assignment or for restoration ({} task(s) restoring)",
                s.stats.tasks_restoring()
            ),
        )
    }
}

#[utoipa::path(get, path = "/metrics", tag = "instance", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"), (status = 500, description = "The registry failed", body = ErrorBody)))]
pub(crate) async fn prometheus_text(State(s): State<Arc<AdminState>>) -> Response {
    match metrics::render(&s.stats, &s.stores, s.ingress.as_deref()) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "METRICS", e.to_string()),
    }
}

#[utoipa::path(get, path = "/topology", tag = "instance", params(("format" = Option<openapi::TopologyFormat>, Query, description = "json or mermaid (default: mermaid when Accept asks for text/vnd.mermaid or text/plain and not JSON, else json)")), responses((status = 200, description = "The topology", content((serde_json::Value = "application/json"), (String = "text/plain"))), (status = 400, description = "A malformed request", body = ErrorBody)))]
pub(crate) async fn topology(
    State(s): State<Arc<AdminState>>,
    headers: axum::http::HeaderMap,
    query: Result<
        Query<std::collections::BTreeMap<String, String>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "the query string does not parse",
        );
    };
    let d = s.topology.describe();
    // Without `format`, the Accept header may ask for the diagram.
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let wants_text = (accept.contains("text/vnd.mermaid") || accept.contains("text/plain"))
        && !accept.contains("json");
    let format = q
        .get("format")
        .map(String::as_str)
        .or(wants_text.then_some("mermaid"));
    match format {
        None | Some("json") => Json(&d).into_response(),
        Some("mermaid") => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            d.to_mermaid(),
        )
            .into_response(),
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("format {other:?} is not one of json, mermaid"),
        ),
    }
}

#[utoipa::path(get, path = "/stores", tag = "stores", responses((status = 200, description = "The stores and the partitions held here", body = serde_json::Value)))]
pub(crate) async fn stores(State(s): State<Arc<AdminState>>) -> Response {
    let held = s.stores.partitions();
    let list: Vec<serde_json::Value> = s
        .stores
        .stores()
        .into_iter()
        .map(|name| {
            let mine: Vec<serde_json::Value> = held
                .iter()
                .filter(|p| p.store == name)
                .map(|p| serde_json::json!({ "partition": p.partition, "restoring": p.restoring }))
                .collect();
            serde_json::json!({
                "name": name,
                "partitions": s.stores.partition_count(&name).ok(),
                "held": mine,
                // None while a held partition restores.
                "approximate_keys": s.stores.approximate_len(&name).ok(),
            })
        })
        .collect();
    Json(serde_json::json!({ "instance_id": s.instance_id, "stores": list })).into_response()
}

pub(crate) async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route {}", uri.path()),
    )
}

pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
