//! A test topology whose store values are four times the size of its
//! inputs (each value is stashed under its key, repeated), so a producer
//! `message.max.bytes` between the two makes a changelog record
//! undeliverable while inputs and outputs are fine. Used by
//! `state_process.rs`.

use weir::prelude::*;

fn main() -> weir::Result<()> {
    let b = Topology::builder();
    let stash = b.key_value_store("stash", Str, Str);
    let s = stash.clone();
    b.stream("in", Str, Str)
        .process("stash", &[&stash], move |ctx, key: String, v: String| {
            ctx.store(&s)?.put(&key, &v.repeat(4))?;
            ctx.forward(key, "stashed".to_string());
            Ok(())
        })
        .with_codecs(Str, Str)
        .to("out");
    weir::App::builder()
        .with_default("application_id", "weir-test-stash")
        .from_env()?
        .run(b.build().expect("valid topology"))
}
