//! A test topology with a fix-up: `in` → `out`, values unchanged, except
//! that a value starting with `poison:` fails permanently (dead-lettered).
//! Fix-up `strip-poison` removes that prefix. Used by `dlq_replay.rs`.

use weir::core::Record;
use weir::prelude::*;

fn main() -> weir::Result<()> {
    let b = Topology::builder();
    b.stream("in", Str, Str)
        .try_map_values(|v: String| {
            if v.starts_with("poison:") {
                Err(OpError::permanent("a poisoned value"))
            } else {
                Ok(v)
            }
        })
        .named("check")
        .to("out");
    b.dead_letter_fix("strip-poison", |r: &Record| {
        let v = r.value.as_deref()?;
        let fixed = v.strip_prefix(b"poison:").unwrap_or(v).to_vec();
        Some(Record {
            value: Some(fixed),
            ..r.clone()
        })
    });
    weir::App::builder()
        .with_default("application_id", "weir-test-fix")
        .from_env()?
        .run(b.build().expect("valid topology"))
}
