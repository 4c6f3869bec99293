//! event-enricher: each event with its customer's tier.
//!
//! Reads the compacted topic `customers` as a table (key: the customer id,
//! UTF-8; value: a JSON object with a string `tier`; a tombstone removes
//! the customer) into the store `customer-tiers`, and JSON events from
//! `events`. An event must be a JSON object with a string `customer`;
//! anything else goes to the dead-letter topic with the reason. Events are
//! re-keyed by customer and repartitioned (topic
//! `<application_id>-by-customer-repartition`, as many partitions as
//! `events`; `customers` must have as many, or the instance refuses to
//! start), then joined with the table: the event's fields plus `"tier"` —
//! the customer's tier current at the event's timestamp, or `"none"` for a
//! customer not in the table — go to `enriched-events`, keyed by customer.

use serde::{Deserialize, Serialize};
use weir::prelude::*;

/// Input events.
pub const EVENTS: &str = "events";
/// The table's topic (compacted): customer id → [`Customer`].
pub const CUSTOMERS: &str = "customers";
/// Output: every event with its customer's tier.
pub const ENRICHED: &str = "enriched-events";
/// The table's store.
pub const STORE: &str = "customer-tiers";
/// The tier of a customer missing from the table.
pub const NO_TIER: &str = "none";

/// A `customers` record's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// E.g. `gold`.
    pub tier: String,
}

/// An event: a JSON object with a string `customer`; its other fields are
/// kept as they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Whose event it is.
    pub customer: String,
    /// Every other field.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// The topology; see the crate docs.
pub fn topology() -> Topology {
    let b = Topology::builder();
    let tiers = b.table(CUSTOMERS, STORE, Str, Json::<Customer>::new());
    b.stream(EVENTS, Bytes, Json::<Event>::new())
        .map(|_, e: Event| (e.customer.clone(), e))
        .with_key_codec(Str)
        .repartition("by-customer")
        .left_join(&tiers, |mut e: Event, c: Option<Customer>| {
            let tier = c.map_or_else(|| NO_TIER.to_string(), |c| c.tier);
            e.fields.insert("tier".into(), tier.into());
            e
        })
        .to(ENRICHED);
    b.build().expect("the event-enricher topology is valid")
}

/// The app with event-enricher's embedded defaults: what its binary and `weir run
/// event-enricher` start from (`from_env()` or `from_args(..)`, then `run(topology())`).
pub fn app() -> weir::AppBuilder {
    weir::App::builder().with_default("application_id", "event-enricher")
}
