//! A stateful test topology: counts records per key in a RocksDB store
//! (`counts`) and writes `<key>` → `<count>` (decimal text) to `out` on
//! every record. Used by `state_process.rs`.

use weir::prelude::*;

fn main() -> weir::Result<()> {
    let b = Topology::builder();
    let counts = b.key_value_store("counts", Str, Json::<u64>::new());
    let c = counts.clone();
    b.stream("in", Str, Str)
        .process("count", &[&counts], move |ctx, key: String, _v: String| {
            let mut store = ctx.store(&c)?;
            let n = store.get(&key)?.unwrap_or(0) + 1;
            store.put(&key, &n)?;
            ctx.forward(key, n.to_string());
            Ok(())
        })
        .with_codecs(Str, Str)
        .to("out");
    weir::App::builder()
        .with_default("application_id", "weir-test-count")
        .from_env()?
        .run(b.build().expect("valid topology"))
}
