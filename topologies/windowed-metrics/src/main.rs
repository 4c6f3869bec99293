//! The windowed-metrics binary: `windowed-metrics [--config FILE] [run|describe]`,
//! configured by `WEIR_*` variables (application id defaults to
//! `windowed-metrics`; parameters `WEIR_PARAMS__WINDOW_MS`, `…__GRACE_MS`,
//! `…__LATE_TO_DLQ`).

fn main() -> weir::Result<()> {
    windowed_metrics::app()
        .from_env()?
        .run(windowed_metrics::topology())
}
