//! windowed-metrics: per event type and region, how many events and the
//! sum of their amounts in each tumbling window — one final result per
//! window.
//!
//! Reads JSON events from `events`: an object with strings `type` and
//! `region` and a number `amount` (other fields are passed over); anything
//! else goes to the dead-letter topic with the reason. Events are grouped by
//! the key `"<type>|<region>"` (as given, no case change), repartitioned by
//! it (murmur2 over its UTF-8 bytes, as every producer places keys), and
//! counted per tumbling window of `window_ms` (parameter, default 60000) on
//! the record timestamp, with a grace period of `grace_ms` (default 10000).
//! Every decodable event counts, `amount <= 0` included.
//!
//! Once the task's stream time reaches a window's end + grace, its final
//! result goes to `event-metrics`, exactly once: key
//! `"<type>|<region>|<window_start_ms>"`, value `{"type", "region",
//! "window_start", "window_end" (exclusive), "count", "total"}`, timestamp
//! the largest input timestamp in the window. A record whose window had
//! already closed is late: counted (`late`), and dead-lettered with kind
//! `late` when `late_to_dlq` (default false) is set. Stream time moves only
//! with records: to close the last windows, any decodable event with a
//! later timestamp on each input partition advances it.

use std::fmt;
use std::time::Duration;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use weir::dsl::{tumbling, Suppressed, Windowed};
use weir::prelude::*;

/// Input topic.
pub const EVENTS: &str = "events";
/// Output topic: one final result per (type, region, window).
pub const METRICS: &str = "event-metrics";
/// The window store (and its changelog).
pub const STORE: &str = "metrics";

/// What the topology reads of an event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `region`.
    pub region: String,
    /// `amount`.
    pub amount: f64,
}

// Hand-written: only a JSON object is an event (a derived impl would also
// take an array), and unknown fields are skipped, not kept.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Event;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with strings `type` and `region` and a number `amount`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Event, A::Error> {
                let (mut kind, mut region, mut amount) = (None, None, None);
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    match k.as_ref() {
                        "type" => kind = Some(m.next_value::<String>()?),
                        "region" => region = Some(m.next_value::<String>()?),
                        "amount" => amount = Some(m.next_value::<f64>()?),
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Event {
                    kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
                    region: region.ok_or_else(|| de::Error::missing_field("region"))?,
                    amount: amount.ok_or_else(|| de::Error::missing_field("amount"))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// A window's running count and total (the store's value).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// The events' type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Their region.
    pub region: String,
    /// Events counted.
    pub count: u64,
    /// Sum of their amounts.
    pub total: f64,
}

/// An `event-metrics` value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The events' type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Their region.
    pub region: String,
    /// The window's start (ms since the epoch).
    pub window_start: i64,
    /// Its end, exclusive.
    pub window_end: i64,
    /// Events in the window.
    pub count: u64,
    /// Sum of their amounts.
    pub total: f64,
}

/// The output key of a window.
pub fn metric_key(kind: &str, region: &str, window_start: i64) -> String {
    format!("{kind}|{region}|{window_start}")
}

/// The topology; see the crate docs.
pub fn topology() -> Topology {
    let b = Topology::builder();
    let window_ms = b.param("window_ms", 60_000u64, "tumbling window size, ms");
    let grace_ms = b.param(
        "grace_ms",
        10_000u64,
        "how long after its end a window still takes records (stream time), ms",
    );
    let late_to_dlq = b.param(
        "late_to_dlq",
        false,
        "also send records later than the grace period to the dead-letter topic (kind `late`)",
    );
    b.stream(EVENTS, Bytes, Json::<Event>::new())
        .group_by(|_, e: &Event| format!("{}|{}", e.kind, e.region), Str)
        .windowed_by_fn(move || {
            tumbling(Duration::from_millis(window_ms.get()))
                .grace(Duration::from_millis(grace_ms.get()))
        })
        .late_to_dead_letters(move || late_to_dlq.get())
        .aggregate(
            STORE,
            Tally::default,
            |_, e: Event, t: Tally| Tally {
                count: t.count + 1,
                total: t.total + e.amount,
                kind: e.kind,
                region: e.region,
            },
            Json::<Tally>::new(),
        )
        .suppress(Suppressed::until_window_closes())
        .to_stream()
        .map(|w: Windowed<String>, t: Tally| {
            let key = metric_key(&t.kind, &t.region, w.window.start);
            let metric = Metric {
                kind: t.kind,
                region: t.region,
                window_start: w.window.start,
                window_end: w.window.end,
                count: t.count,
                total: t.total,
            };
            (key, metric)
        })
        .with_codecs(Str, Json::<Metric>::new())
        .to(METRICS);
    b.build().expect("the windowed-metrics topology is valid")
}

/// The app with windowed-metrics's embedded defaults: what its binary and `weir run
/// windowed-metrics` start from (`from_env()` or `from_args(..)`, then `run(topology())`).
pub fn app() -> weir::AppBuilder {
    weir::App::builder().with_default("application_id", "windowed-metrics")
}
