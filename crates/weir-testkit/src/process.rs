//! Child processes: stopping them politely, then firmly, and reading the
//! summary line a Weir instance prints when it stops.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Sends SIGTERM to `child`, waits up to `grace` for it to exit, then
/// SIGKILLs it; returns how it exited (`None` only if it cannot be reaped).
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// The counter `name` (`restored`, `commit_ms`, …) from the last
/// `weir: stopped: k=v …` summary line of an instance's `log`.
pub fn summary_counter(log: &str, name: &str) -> Option<u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with("weir: stopped:"))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}
