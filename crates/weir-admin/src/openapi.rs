//! `GET /openapi.json`: the endpoint's OpenAPI 3.1 description, generated
//! from the handlers' annotations (utoipa), so a route and its document
//! cannot drift apart silently; a test fuzzes a running instance against
//! it.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: `{"error": CODE, "message": ..}`.
#[derive(ToSchema)]
#[allow(dead_code)] // a description of what `crate::error` writes
pub(crate) struct ErrorBody {
    /// A stable code (`NOT_FOUND`, `BAD_REQUEST`, `NOT_OWNER`, …).
    error: String,
    /// What went wrong, for a person.
    message: String,
    /// With `WRONG_STORE_KIND`: the store's own kind (`key-value`,
    /// `window` or `session`), for a client to follow.
    kind: Option<String>,
}

/// The answer to a key query.
#[derive(ToSchema)]
#[allow(dead_code)] // a description of what `crate::query::key` writes
pub(crate) struct KeyAnswer {
    /// The store.
    store: String,
    /// The key, as the store's key codec renders it.
    key: serde_json::Value,
    /// The committed value, as the store's value codec renders it.
    value: serde_json::Value,
    /// The key's partition.
    partition: i32,
    /// The instance that read it.
    served_by: String,
}

/// `GET /topology?format=`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // a description of what `crate::topology` reads
pub(crate) enum TopologyFormat {
    /// The description as JSON (the default).
    Json,
    /// A Mermaid flowchart.
    Mermaid,
}

/// `GET /stores/{store}/range?scope=`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // a description of what `crate::range::range` reads
pub(crate) enum RangeScope {
    /// Every partition of the store, asking the instances that hold them
    /// (the default).
    All,
    /// The partitions held by the asked instance.
    Local,
}

/// `PUT /schemas/{event_type}?compatibility=`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // a description of what `crate::ops::put_schema` reads
pub(crate) enum CompatibilityParam {
    /// Any valid schema may follow (the default).
    None,
    /// Payloads valid under the latest version stay valid.
    Backward,
}

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir admin endpoint",
        description = "Health, metrics, the topology, store queries (forwarded to the owner), dead letters and event definitions of one Weir instance."
    ),
    paths(
        crate::health,
        crate::ready,
        crate::prometheus_text,
        crate::topology,
        crate::stores,
        crate::query::key,
        crate::range::range,
        crate::timed::windows,
        crate::timed::sessions,
        crate::query::waits,
        crate::ops::dlq,
        crate::ops::replay,
        crate::ops::schemas,
        crate::ops::schema,
        crate::ops::put_schema,
        crate::ingress::publish_route,
        crate::dashboard::page,
        document,
    ),
    components(schemas(ErrorBody, KeyAnswer, crate::ingress::Accepted, crate::ingress::Refusal, crate::ingress::RefusalDetails, crate::ingress::ErrorStatus, crate::ingress::PublishBody, crate::ops::ReplayBody, crate::ops::DefinitionBody, TopologyFormat, CompatibilityParam, RangeScope)),
    modifiers(&BearerToken)
)]
pub struct ApiDoc;

/// `GET /openapi.json`: the routes this listener serves (`POST /v1/events`
/// only when ingress runs in it).
#[utoipa::path(get, path = "/openapi.json", tag = "instance", responses((status = 200, description = "This document", body = serde_json::Value)))]
pub(crate) async fn document(State(s): State<Arc<crate::AdminState>>) -> Response {
    let ingress = s.ingress.is_some();
    let doc = document_of(|path| ingress || path != "/v1/events");
    let ingress_token = s.ingress.as_ref().is_some_and(|i| i.token().is_some());
    Json(with_security(doc, s.token.is_some(), ingress_token)).into_response()
}

/// `doc` as served: a route asks for the bearer token exactly when its
/// token is set (`admin_token` for the mutating routes, the ingress token
/// for `POST /v1/events`), so what the document promises holds.
fn with_security(
    doc: utoipa::openapi::OpenApi,
    admin_token: bool,
    ingress_token: bool,
) -> serde_json::Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        let secured = if path == "/v1/events" {
            ingress_token
        } else {
            admin_token
        };
        for op in ops.values_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            if !op.contains_key("security") {
                continue;
            }
            if secured {
                op.insert("security".into(), serde_json::json!([{ "bearer": [] }]));
            } else {
                op.remove("security");
                if let Some(r) = op.get_mut("responses").and_then(|r| r.as_object_mut()) {
                    r.remove("401");
                }
            }
        }
    }
    doc
}

/// The document of `weir ingress`: its own routes only (`POST /v1/events`
/// asks for the token when `ingress_token` is set).
pub(crate) fn ingress_document(token: bool) -> Json<serde_json::Value> {
    let doc = document_of(|path| {
        matches!(
            path,
            "/health" | "/metrics" | "/v1/events" | "/openapi.json"
        )
    });
    Json(with_security(doc, false, token))
}

/// [`ApiDoc`] with the paths `keep` accepts.
fn document_of(keep: impl Fn(&str) -> bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.paths.paths.retain(|path, _| keep(path));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/health", "get"),
            ("/ready", "get"),
            ("/metrics", "get"),
            ("/topology", "get"),
            ("/stores", "get"),
            ("/stores/{store}/keys/{key}", "get"),
            ("/stores/{store}/range", "get"),
            ("/stores/{store}/windows", "get"),
            ("/stores/{store}/sessions", "get"),
            ("/waits/{wait}/{key}", "get"),
            ("/dlq", "get"),
            ("/dlq/replay", "post"),
            ("/schemas", "get"),
            ("/schemas/{event_type}", "get"),
            ("/schemas/{event_type}", "put"),
            ("/openapi.json", "get"),
            ("/v1/events", "post"),
            ("/dashboard", "get"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
        let put = &paths["/schemas/{event_type}"]["put"];
        assert!(put["responses"]["401"].is_object(), "{put}");
        assert!(put["security"].is_array(), "{put}");
    }
}
