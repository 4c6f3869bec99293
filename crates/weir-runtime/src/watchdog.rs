//! [`CallWatch`]: notices a transactional call that overran its timeout.
//!
//! librdkafka's transactional calls take a timeout, but some can hang past
//! it and cannot be interrupted (librdkafka issues 5456 and 5511:
//! `send_offsets_to_transaction` when the group coordinator moves). A stream
//! thread stuck there holds its partitions and its open transaction
//! forever. So each thread announces every transactional call here; the
//! instance's main thread checks them and, when one is overdue by a grace
//! period, logs it and returns an error without waiting for that thread —
//! the process exits non-zero, the supervisor restarts it, and the restarted
//! producer fences the stuck one.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long past its own timeout a call may run before the instance gives up.
pub(crate) const GRACE: Duration = Duration::from_secs(15);

/// Milliseconds on a monotonic clock (from the first use, plus 1 so 0 never
/// means "now").
fn now_ms() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as i64 + 1
}

/// The call a stream thread is in, and when it must have returned.
#[derive(Debug, Default)]
pub(crate) struct CallWatch {
    /// Milliseconds on the monotonic clock of [`now_ms`]; 0 = not in a call.
    deadline_ms: AtomicI64,
    call: Mutex<&'static str>,
}

impl CallWatch {
    /// The thread enters `call`, which must return within `timeout`.
    pub fn begin(&self, call: &'static str, timeout: Duration) {
        *self.call.lock().unwrap_or_else(|e| e.into_inner()) = call;
        let deadline = now_ms() + (timeout + GRACE).as_millis() as i64;
        self.deadline_ms.store(deadline, Ordering::SeqCst);
    }

    /// The call returned.
    pub fn end(&self) {
        self.deadline_ms.store(0, Ordering::SeqCst);
    }

    /// The call that is overdue at `now_ms`, if any.
    pub fn overdue_at(&self, now: i64) -> Option<&'static str> {
        let d = self.deadline_ms.load(Ordering::SeqCst);
        (d != 0 && now > d).then(|| *self.call.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The call that is overdue now, if any.
    pub fn overdue(&self) -> Option<&'static str> {
        self.overdue_at(now_ms())
    }

    /// Runs `f` as `call` with `timeout`.
    pub fn run<T>(&self, call: &'static str, timeout: Duration, f: impl FnOnce() -> T) -> T {
        self.begin(call, timeout);
        let r = f();
        self.end();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_overdue_only_past_its_timeout_and_grace() {
        let w = CallWatch::default();
        assert_eq!(w.overdue(), None);
        w.begin("commit_transaction", Duration::from_secs(30));
        let start = now_ms();
        assert_eq!(w.overdue_at(start + 30_000), None);
        assert_eq!(w.overdue_at(start + 46_000), Some("commit_transaction"));
        w.end();
        assert_eq!(w.overdue_at(start + 100_000), None);
        assert_eq!(w.run("flush", Duration::ZERO, || 7), 7);
        assert_eq!(w.overdue_at(now_ms() + 100_000), None);
    }
}
