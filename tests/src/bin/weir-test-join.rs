//! A stream-table join for tests: `in` (key → text) left-joined with the
//! table read from `table` (store `tiers`, key → text); writes
//! `<value>=<table value or ->` under the same key to `out`. Used by
//! `table_join.rs`.

use weir::prelude::*;

fn main() -> weir::Result<()> {
    let b = Topology::builder();
    let tiers = b.table("table", "tiers", Str, Str);
    b.stream("in", Str, Str)
        .left_join(&tiers, |v: String, t: Option<String>| {
            format!("{v}={}", t.unwrap_or_else(|| "-".into()))
        })
        .to("out");
    weir::App::builder()
        .with_default("application_id", "weir-test-join")
        .from_env()?
        .run(b.build().expect("valid topology"))
}
