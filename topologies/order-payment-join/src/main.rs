//! The order-payment-join binary: `order-payment-join [--config FILE]
//! [run|describe]`, configured by `WEIR_*` variables (application id
//! defaults to `order-payment-join`).

fn main() -> weir::Result<()> {
    order_payment_join::app()
        .from_env()?
        .run(order_payment_join::topology())
}
