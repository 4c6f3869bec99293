//! The event-enricher binary: `event-enricher [--config FILE] [run|describe]`,
//! configured by `WEIR_*` variables (application id defaults to `event-enricher`).

fn main() -> weir::Result<()> {
    event_enricher::app()
        .from_env()?
        .run(event_enricher::topology())
}
