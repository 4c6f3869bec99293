//! A test topology with retries: `in` → a retrying node → `out`, values
//! unchanged. The node's "downstream service" is down for keys whose
//! number (`k<n>`) is a multiple of 20 — 5 % of keys — until the wall
//! clock reaches parameter `down_until_ms` (epoch ms): their records fail
//! retryably until then. Used by `retries.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir::prelude::*;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whether `key` is one of the keys whose service is down.
fn flaky(key: &str) -> bool {
    key.strip_prefix('k')
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n % 20 == 0)
}

fn main() -> weir::Result<()> {
    let b = Topology::builder();
    let down_until = b.param(
        "down_until_ms",
        0i64,
        "flaky keys fail until this time (epoch ms)",
    );
    let policy =
        RetryPolicy::new(1_000).backoff(Duration::from_millis(100), Duration::from_millis(800));
    b.stream("in", Str, Str)
        .with_retries("call", policy)
        .try_map(move |k: String, v: String| {
            if flaky(&k) && now_ms() < down_until.get() {
                Err(OpError::retryable("service down"))
            } else {
                Ok((k, v))
            }
        })
        .to("out");
    weir::App::builder()
        .with_default("application_id", "weir-test-retry")
        .from_env()?
        .run(b.build().expect("valid topology"))
}
