//! The event-router binary: `event-router [--config FILE] [run|describe]`,
//! configured by `WEIR_*` variables (application id defaults to `event-router`).

fn main() -> weir::Result<()> {
    event_router::app()
        .from_env()?
        .run(event_router::topology())
}
