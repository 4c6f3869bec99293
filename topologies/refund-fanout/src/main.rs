//! The refund-fanout binary: `refund-fanout [--config FILE]
//! [run|describe|dlq|schema]`, configured by `WEIR_*` variables
//! (application id defaults to `refund-fanout`). Registers the bundled
//! `RefundRequest` definition at start when the cluster has none.

fn main() -> weir::Result<()> {
    refund_fanout::app()
        .from_env()?
        .run(refund_fanout::topology())
}
