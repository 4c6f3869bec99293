//! order-payment-join: orders joined with their payments.
//!
//! Reads `orders` and `payments` (JSON values; key = the order id; both
//! with the same partition count) and writes each order and payment with
//! the same key whose timestamps are at most 10 minutes apart, once per
//! pair, to `order-payments`: key = the order id, value `{"order": <the
//! order>, "payment": <the payment>}`, stamped with the later timestamp.
//! A record arriving more than 10 minutes of stream time after the window
//! it could join in closed is late (counted, dropped). Undecodable records
//! go to the dead-letter topic.

use std::time::Duration;

use serde_json::{json, Value};
use weir::dsl::JoinWindows;
use weir::prelude::*;

pub const ORDERS: &str = "orders";
pub const PAYMENTS: &str = "payments";
pub const ORDER_PAYMENTS: &str = "order-payments";
/// How far apart an order and its payment may be.
pub const WINDOW: Duration = Duration::from_secs(600);

/// The topology; see the crate docs.
pub fn topology() -> Topology {
    let b = Topology::builder();
    let orders = b.stream(ORDERS, Str, Json::<Value>::new());
    let payments = b.stream(PAYMENTS, Str, Json::<Value>::new());
    orders
        .join(
            (
                &payments,
                "order-payment",
                JoinWindows::of(WINDOW).grace(WINDOW),
            ),
            |order, payment| json!({"order": order, "payment": payment}),
        )
        .with_value_codec(Json::<Value>::new())
        .to(ORDER_PAYMENTS);
    b.build().expect("the order-payment-join topology is valid")
}

/// The app with order-payment-join's embedded defaults: what its binary and `weir run
/// order-payment-join` start from (`from_env()` or `from_args(..)`, then `run(topology())`).
pub fn app() -> weir::AppBuilder {
    weir::App::builder().with_default("application_id", "order-payment-join")
}
