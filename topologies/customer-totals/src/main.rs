//! The customer-totals binary: `customer-totals [--config FILE] [run|describe]`,
//! configured by `WEIR_*` variables (application id defaults to `customer-totals`).

fn main() -> weir::Result<()> {
    customer_totals::app()
        .from_env()?
        .run(customer_totals::topology())
}
