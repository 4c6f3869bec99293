//! A test topology with retries: `in` → a retrying node → `out`, values
//! unchanged. The node's "downstream service" is down for keys whose
//! number (`k<n>`) is a multiple of 20 — 5 % of keys — until the wall
//! clock reaches parameter `down_until_ms` (epoch ms): their records fail
//! retryably until then. With parameter `breaker` = true the node has a
//! circuit breaker (5 failures in 10 s open it for 1 s) and five tries
//! per record instead of 1,000 (the node's shape
//! is fixed when the topology is built, so this binary reads the
//! parameter's variable, `WEIR_PARAMS__BREAKER`, then). Used by
//! `retries.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir::prelude::*;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whether `key` is one of the keys whose service is down.
fn flaky(key: &str, every: u64) -> bool {
    key.strip_prefix('k')
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n % every.max(1) == 0)
}

fn main() -> weir::Result<()> {
    let b = Topology::builder();
    let down_until = b.param(
        "down_until_ms",
        0i64,
        "flaky keys fail until this time (epoch ms)",
    );
    let guarded = std::env::var("WEIR_PARAMS__BREAKER").is_ok_and(|v| v == "true");
    // Guarded, five tries would be used up in 1.5 s of an outage without
    // the breaker (so dead letters would show it failing).
    let tries = if guarded { 5 } else { 1_000 };
    let policy =
        RetryPolicy::new(tries).backoff(Duration::from_millis(100), Duration::from_millis(800));
    let every = b.param(
        "flaky_every",
        20u64,
        "keys k<n> with n a multiple of this are flaky",
    );
    b.param(
        "breaker",
        false,
        "guard the node with a circuit breaker (read at build time)",
    );
    let node = b.stream("in", Str, Str).with_retries("call", policy);
    let node = if guarded {
        node.with_breaker(CircuitBreaker::new(
            5,
            Duration::from_secs(10),
            Duration::from_secs(1),
        ))
    } else {
        node
    };
    node.try_map(move |k: String, v: String| {
        if flaky(&k, every.get()) && now_ms() < down_until.get() {
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
