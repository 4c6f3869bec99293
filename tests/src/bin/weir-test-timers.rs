//! A test topology with durable timers: for each record on `in` (key →
//! delay in ms, decimal text) it writes `<key>` → `scheduled` to `out` and
//! sets a timer `delay` after the record — on the wall clock, or, for keys
//! starting with `s:`, on stream time (after the record's timestamp). When
//! the timer fires it writes `<key>` → `fired@<deadline>`. Used by
//! `timers.rs`.

use weir::prelude::*;

struct Delay;

impl Processor<String, String, String, String> for Delay {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        key: String,
        delay: String,
    ) -> Result<(), ProcessError> {
        let delay: i64 = delay
            .parse()
            .map_err(|e| ProcessError::operator(format!("delay {delay:?}: {e}")))?;
        let (clock, base) = if key.starts_with("s:") {
            (Clock::Stream, ctx.timestamp())
        } else {
            (Clock::Wall, ctx.wall_clock())
        };
        ctx.schedule_at(clock, base + delay, key.as_bytes(), b"")?;
        ctx.forward(key, "scheduled".into());
        Ok(())
    }

    fn on_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        let key = String::from_utf8_lossy(&timer.key).into_owned();
        ctx.forward(key, format!("fired@{}", timer.deadline));
        Ok(())
    }
}

fn main() -> weir::Result<()> {
    let b = Topology::builder();
    let timers = b.timer_store("delays");
    b.stream("in", Str, Str)
        .process_with("delay", &[&timers], || Delay)
        .with_codecs(Str, Str)
        .to("out");
    weir::App::builder()
        .with_default("application_id", "weir-test-timers")
        .from_env()?
        .run(b.build().expect("valid topology"))
}
