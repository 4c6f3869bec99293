//! The order-workflow binary: `order-workflow [--config FILE] [run|describe]`,
//! configured by `WEIR_*` variables (application id defaults to
//! `order-workflow`; parameters `WEIR_PARAMS__TIMEOUT_MS`, `…__GRACE_MS`).

fn main() -> weir::Result<()> {
    order_workflow::app()
        .from_env()?
        .run(order_workflow::topology())
}
