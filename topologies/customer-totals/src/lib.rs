//! customer-totals: per customer, how many events and the sum of their
//! amounts.
//!
//! Reads JSON events from `events`. Only `customer` (a string) and `amount`
//! (a number) are required; other fields are passed over. A record that is
//! not a JSON object with those two goes to the dead-letter topic with the
//! reason. Events are grouped by `customer` — the input key is not the
//! customer, so they are repartitioned (8 partitions; customer `c` lands on
//! partition murmur2(c) mod 8) — and each customer's `count` and `total`
//! (every decodable event, `amount <= 0` included; f64 sums, exact for
//! integer amounts) are kept in the store `customer-totals`. Every update is
//! written to `customer-totals`: key = the customer (UTF-8), value
//! `{"customer": c, "count": n, "total": t}`, timestamp of the latest input.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use weir::prelude::*;

/// Input topic.
pub const EVENTS: &str = "events";
/// Output topic: one update per event.
pub const TOTALS: &str = "customer-totals";
/// The store (and changelog) of the totals.
pub const STORE: &str = "customer-totals";
/// Partitions of the repartition topic.
pub const REPARTITION_PARTITIONS: i32 = 8;

/// What the topology reads of an event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Purchase {
    /// Who.
    pub customer: String,
    /// How much (any number; negative and zero included).
    pub amount: f64,
}

// Hand-written: only a JSON object is an event (a derived impl would also
// take an array `["c", 5]`), and unknown fields are skipped, not kept.
impl<'de> Deserialize<'de> for Purchase {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Purchase;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with a string `customer` and a number `amount`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Purchase, A::Error> {
                let (mut customer, mut amount) = (None, None);
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    match k.as_ref() {
                        "customer" => customer = Some(m.next_value::<String>()?),
                        "amount" => amount = Some(m.next_value::<f64>()?),
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Purchase {
                    customer: customer.ok_or_else(|| de::Error::missing_field("customer"))?,
                    amount: amount.ok_or_else(|| de::Error::missing_field("amount"))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// A customer's running totals: the store's value and the output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// The customer.
    pub customer: String,
    /// Events counted.
    pub count: u64,
    /// Sum of their amounts.
    pub total: f64,
}

/// The topology; see the crate docs.
pub fn topology() -> Topology {
    topology_and_store().0
}

/// The topology and a handle on its store `customer-totals` (customer →
/// [`Totals`]), to query a running instance (`weir::Running::store`).
pub fn topology_and_store() -> (Topology, Store<String, Totals>) {
    let b = Topology::builder();
    let table = b
        .stream(EVENTS, Bytes, Json::<Purchase>::new())
        .group_by(|_, p: &Purchase| p.customer.clone(), Str)
        .with_partitions(REPARTITION_PARTITIONS)
        .aggregate(
            STORE,
            Totals::default,
            |customer: &String, p: Purchase, t: Totals| Totals {
                customer: customer.clone(),
                count: t.count + 1,
                total: t.total + p.amount,
            },
            Json::<Totals>::new(),
        );
    table.to_stream().to(TOTALS);
    let store = table.store().clone();
    (
        b.build().expect("the customer-totals topology is valid"),
        store,
    )
}

/// The app with customer-totals's embedded defaults: what its binary and `weir run
/// customer-totals` start from (`from_env()` or `from_args(..)`, then `run(topology())`).
pub fn app() -> weir::AppBuilder {
    weir::App::builder().with_default("application_id", "customer-totals")
}
