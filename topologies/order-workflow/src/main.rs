//! The order-workflow binary: `order-workflow [--config FILE] [run|describe]`,
//! configured by `WEIR_*` variables (application id defaults to
//! `order-workflow`; parameters `WEIR_PARAMS__TIMEOUT_MS`, `…__GRACE_MS`).

fn main() -> weir::Result<()> {
    weir::App::builder()
        .with_default("application_id", "order-workflow")
        .from_env()?
        .run(order_workflow::topology())
}
