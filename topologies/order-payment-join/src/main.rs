//! The order-payment-join binary: `order-payment-join [--config FILE]
//! [run|describe]`, configured by `WEIR_*` variables (application id
//! defaults to `order-payment-join`).

fn main() -> weir::Result<()> {
    weir::App::builder()
        .with_default("application_id", "order-payment-join")
        .from_env()?
        .run(order_payment_join::topology())
}
