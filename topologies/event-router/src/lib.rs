//! The event-router (seed 000): filter, enrich, route by content, multicast.
//!
//! Reads JSON events `{id, type, region, amount, ...}` from `events`; drops
//! events with `amount <= 0`; enriches the rest (region upper-cased, the
//! route taken, the router's name); writes every kept event to `audit`, and
//! routes it by `type` to `orders`, `payments` or `other`. Events that are
//! not valid JSON, or lack `id`, `type` or `amount`, go to the dead-letter
//! topic with the reason. Topic names are logical: a deployment renames
//! them with `[topics]` / `WEIR_TOPICS__<NAME>`.

use serde::{Deserialize, Serialize};
use weir::prelude::*;

/// Input topic.
pub const EVENTS: &str = "events";
/// Events of type `order`.
pub const ORDERS: &str = "orders";
/// Events of type `payment`.
pub const PAYMENTS: &str = "payments";
/// Every other kept event.
pub const OTHER: &str = "other";
/// Every kept event (multicast).
pub const AUDIT: &str = "audit";

/// An event, with any extra fields kept as they came.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id; also the output key when the input has none.
    pub id: String,
    /// Routes the event: `order`, `payment`, anything else.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it happened.
    #[serde(default)]
    pub region: String,
    /// Events with `amount <= 0` are dropped.
    pub amount: f64,
    /// Fields the router does not interpret, passed through.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The topic an event is routed to by its type.
pub fn route(kind: &str) -> &'static str {
    match kind {
        "order" => ORDERS,
        "payment" => PAYMENTS,
        _ => OTHER,
    }
}

fn enrich(mut e: Event) -> Event {
    e.region = e.region.to_uppercase();
    e.extra
        .insert("route".into(), serde_json::Value::from(route(&e.kind)));
    e.extra
        .insert("router".into(), serde_json::Value::from("event-router"));
    e
}

/// The event-router topology.
pub fn topology() -> Topology {
    let b = Topology::builder();
    let kept = b
        .stream(EVENTS, Str, Json::<Event>::new())
        .filter(|_, e| e.amount > 0.0)
        .named("drop-non-positive")
        .map(|k: String, e: Event| {
            let key = if k.is_empty() { e.id.clone() } else { k };
            (key, enrich(e))
        })
        .named("enrich");
    kept.to(AUDIT);
    kept.branch()
        .when(|_, e| e.kind == "order", |s| s.to(ORDERS))
        .when(|_, e| e.kind == "payment", |s| s.to(PAYMENTS))
        .otherwise(|s| s.to(OTHER));
    b.build().expect("the event-router topology is valid")
}
