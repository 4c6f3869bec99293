//! order-workflow: each order waits for its payment.
//!
//! Reads `orders` (JSON object with a string `id`, the order id, and a
//! number `amount`; key = the order id) and `payments` (JSON object with a
//! string `order_id` and a number `amount`; key = the order id); anything
//! else on either goes to the dead-letter topic with the reason. Each order
//! waits, on stream time, for a payment with its key and an equal amount
//! (compared as numbers) whose timestamp is at most `timeout_ms` (parameter,
//! default 900000) after the order's; a payment may arrive up to `grace_ms`
//! (default 0) of stream time after that and still count. A payment that
//! comes before its order is kept for it for the same time.
//!
//! Writes exactly one outcome per order to `order-outcomes`: key = the
//! order id, value `{"order_id", "outcome": "confirmed" | "expired",
//! "amount"}`; a confirmed outcome carries the payment's timestamp, an
//! expired one the order's deadline (its timestamp + `timeout_ms`). Stream
//! time moves only with records: an order expires once a record of a later
//! time (order or payment) reaches its partition.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use weir::dsl::{Outcome, Wait};
use weir::prelude::*;

pub const ORDERS: &str = "orders";
pub const PAYMENTS: &str = "payments";
pub const OUTCOMES: &str = "order-outcomes";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Order {
    pub id: String,
    pub amount: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Payment {
    pub order_id: String,
    pub amount: f64,
}

/// Only a JSON object is an order or a payment (a derived impl would also
/// take an array); unknown fields are passed over.
fn object<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
    serde_json::from_value(serde_json::Value::Object(map)).map_err(serde::de::Error::custom)
}

#[derive(Deserialize)]
struct OrderFields {
    id: String,
    amount: f64,
}

#[derive(Deserialize)]
struct PaymentFields {
    order_id: String,
    amount: f64,
}

impl<'de> Deserialize<'de> for Order {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f: OrderFields = object(d)?;
        Ok(Order {
            id: f.id,
            amount: f.amount,
        })
    }
}

impl<'de> Deserialize<'de> for Payment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f: PaymentFields = object(d)?;
        Ok(Payment {
            order_id: f.order_id,
            amount: f.amount,
        })
    }
}

/// An order's outcome, as written to `order-outcomes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderOutcome {
    pub order_id: String,
    /// `confirmed` or `expired`.
    pub outcome: String,
    pub amount: f64,
}

/// The topology; see the crate docs.
pub fn topology() -> Topology {
    let b = Topology::builder();
    let timeout_ms = b.param(
        "timeout_ms",
        900_000u64,
        "how long after an order its payment may come (record time), ms",
    );
    let grace_ms = b.param(
        "grace_ms",
        0u64,
        "how much longer (stream time) a payment in time may arrive, ms",
    );
    let orders = b.stream(ORDERS, Str, Json::<Order>::new());
    let payments = b.stream(PAYMENTS, Str, Json::<Payment>::new());
    orders
        .await_event(
            &payments,
            Wait::named("payment")
                .when(|o: &Order, p: &Payment| o.amount == p.amount)
                .timeout_with(move || Duration::from_millis(timeout_ms.get()))
                .grace_with(move || Duration::from_millis(grace_ms.get())),
        )
        .map(|id: String, outcome: Outcome<Order, Payment>| {
            let value = match outcome {
                Outcome::Matched(order, _) => OrderOutcome {
                    order_id: id.clone(),
                    outcome: "confirmed".into(),
                    amount: order.amount,
                },
                Outcome::TimedOut(order) => OrderOutcome {
                    order_id: id.clone(),
                    outcome: "expired".into(),
                    amount: order.amount,
                },
            };
            (id, value)
        })
        .with_codecs(Str, Json::<OrderOutcome>::new())
        .to(OUTCOMES);
    b.build().expect("the order-workflow topology is valid")
}

/// The app with order-workflow's embedded defaults: what its binary and `weir run
/// order-workflow` start from (`from_env()` or `from_args(..)`, then `run(topology())`).
pub fn app() -> weir::AppBuilder {
    weir::App::builder().with_default("application_id", "order-workflow")
}
