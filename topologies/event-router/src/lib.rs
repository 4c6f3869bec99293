//! The event-router: filter, enrich, route by content, multicast.
//!
//! Reads JSON events `{id, type, region, amount, ...}` from `events`; drops
//! events with `amount <= 0`; enriches the rest (region upper-cased, the
//! route taken, the router's name); writes every kept event to `audit`, and
//! routes it by `type` to `orders`, `payments` or `other`. Events that are
//! not valid JSON, or lack `id` (a string or a number), `type` or `amount`, go to the dead-letter
//! topic with the reason. Topic names are logical: a deployment renames
//! them with `[topics]` / `WEIR_TOPICS__<NAME>`.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

/// An event, with any extra fields kept as they came. JSON:
/// `{"id": .., "type": .., "region": .. (optional), "amount": .., ...}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Unique id (a number's JSON text when it came as a number); also the
    /// output key when the input has none.
    pub id: String,
    /// The id came as a JSON number (and is written back as one).
    pub id_is_number: bool,
    /// Routes the event (`type` in JSON): `order`, `payment`, anything else.
    pub kind: String,
    /// Where it happened (empty when absent).
    pub region: String,
    /// Events with `amount <= 0` are dropped.
    pub amount: f64,
    /// Fields the router does not interpret, passed through.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

// Hand-written serde for Event: `#[serde(flatten)]` buffers every field
// through serde's generic Content type, which cost more than the rest of
// the router's work per record (benches/throughput).
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4 + self.extra.len()))?;
        match self.id.parse::<serde_json::Number>() {
            Ok(n) if self.id_is_number => m.serialize_entry("id", &n)?,
            _ => m.serialize_entry("id", &self.id)?,
        }
        m.serialize_entry("type", &self.kind)?;
        m.serialize_entry("region", &self.region)?;
        m.serialize_entry("amount", &self.amount)?;
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object with id, type and amount")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        fn once<T, E: de::Error>(slot: &mut Option<T>, v: T, name: &'static str) -> Result<(), E> {
            if slot.replace(v).is_some() {
                return Err(E::duplicate_field(name));
            }
            Ok(())
        }
        let (mut id, mut kind, mut region, mut amount) = (None, None, None, None);
        let mut extra = serde_json::Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "id" => once(&mut id, map.next_value::<EventId>()?, "id")?,
                "type" => once(&mut kind, map.next_value()?, "type")?,
                "region" => once(&mut region, map.next_value()?, "region")?,
                "amount" => once(&mut amount, map.next_value()?, "amount")?,
                _ => {
                    extra.insert(key.into_owned(), map.next_value()?);
                }
            }
        }
        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        Ok(Event {
            id_is_number: matches!(id, EventId::Number(_)),
            id: match id {
                EventId::Text(s) => s,
                EventId::Number(n) => n.to_string(),
            },
            kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
            region: region.unwrap_or_default(),
            amount: amount.ok_or_else(|| de::Error::missing_field("amount"))?,
            extra,
        })
    }
}

/// An event id as it came: text or a number (read without buffering,
/// as the rest of the event).
enum EventId {
    Text(String),
    Number(serde_json::Number),
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = EventId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id: a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventId, E> {
                Ok(EventId::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<EventId, E> {
                Ok(EventId::Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventId, E> {
                Ok(EventId::Number(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventId, E> {
                Ok(EventId::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EventId, E> {
                serde_json::Number::from_f64(v)
                    .map(EventId::Number)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }
        d.deserialize_any(IdVisitor)
    }
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

/// The app with event-router's embedded defaults: what its binary and `weir run
/// event-router` start from (`from_env()` or `from_args(..)`, then `run(topology())`).
pub fn app() -> weir::AppBuilder {
    weir::App::builder().with_default("application_id", "event-router")
}
