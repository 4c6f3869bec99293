//! The customer-totals binary: `customer-totals [--config FILE] [run|describe]`,
//! configured by `WEIR_*` variables (application id defaults to `customer-totals`).

fn main() -> weir::Result<()> {
    weir::App::builder()
        .with_default("application_id", "customer-totals")
        .from_env()?
        .run(customer_totals::topology())
}
