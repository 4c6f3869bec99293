//! The refund-fanout binary: `refund-fanout [--config FILE]
//! [run|describe|dlq|schema]`, configured by `WEIR_*` variables
//! (application id defaults to `refund-fanout`). Registers the bundled
//! `RefundRequest` definition at start when the cluster has none.

fn main() -> weir::Result<()> {
    weir::App::builder()
        .with_default("application_id", "refund-fanout")
        .with_event_definition(refund_fanout::definition())
        .from_env()?
        .run(refund_fanout::topology())
}
