//! A test topology whose outputs are four times the size of its inputs, so
//! a producer `message.max.bytes` between the two makes one output
//! undeliverable while its input is fine. Used by `produce_failures.rs`.

use weir::prelude::*;

fn main() -> weir::Result<()> {
    let b = Topology::builder();
    b.stream("in", Str, Str)
        .map_values(|v: String| v.repeat(4))
        .to("out");
    weir::App::builder()
        .with_default("application_id", "weir-test-inflate")
        .from_env()?
        .run(b.build().expect("valid topology"))
}
