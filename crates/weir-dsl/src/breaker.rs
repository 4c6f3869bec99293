//! Circuit breakers for retrying nodes that call an external system
//! ([`crate::Retrying::with_breaker`]).
//!
//! **Closed**: calls go through; retryable failures are counted over a
//! sliding window. After `failures` of them within `window` it **opens**:
//! for `cooldown` no call is made — a new record is not processed at all
//! (its task waits, its partitions stay where they are, nothing is
//! dead-lettered) and parked records' tries are put off without being
//! charged. Then one call goes through as a **probe** (half-open): success
//! closes the breaker, a retryable failure opens it again for another
//! cool-down. Transitions are logged (open: warning, closed: info).
//!
//! The state is per task and in memory: a task made afresh (after a
//! rebalance or an abort) starts closed and finds out again.

use std::collections::VecDeque;
use std::time::Duration;

use weir_core::Timestamp;

/// When a breaker opens and for how long; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitBreaker {
    failures: u32,
    window_ms: i64,
    cooldown_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl CircuitBreaker {
    /// Opens after `failures` retryable failures within `window`; probes
    /// after `cooldown`.
    pub fn new(failures: u32, window: Duration, cooldown: Duration) -> Self {
        Self {
            failures: failures.max(1),
            window_ms: ms(window),
            cooldown_ms: ms(cooldown).max(1),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Closed,
    Open {
        until: Timestamp,
    },
    /// One call is on its way through.
    Probing,
}

/// A task's breaker of one node.
#[derive(Debug)]
pub(crate) struct Breaker {
    cfg: CircuitBreaker,
    state: State,
    /// Times of the recent failures (closed).
    recent: VecDeque<Timestamp>,
}

impl Breaker {
    pub fn new(cfg: CircuitBreaker) -> Self {
        Self {
            cfg,
            state: State::Closed,
            recent: VecDeque::new(),
        }
    }

    /// Whether a call may go through at `now`; `Err(until)` while open.
    pub fn admit(&mut self, now: Timestamp, node: &str) -> Result<(), Timestamp> {
        match self.state {
            State::Open { until } if now < until => Err(until),
            State::Open { .. } => {
                tracing::info!(node, "circuit breaker half-open: probing");
                self.state = State::Probing;
                Ok(())
            }
            State::Closed | State::Probing => Ok(()),
        }
    }

    /// Whether it is open or probing (not closed).
    pub fn is_open(&self) -> bool {
        self.state != State::Closed
    }

    /// A call succeeded.
    pub fn succeeded(&mut self, node: &str) {
        if self.state != State::Closed {
            tracing::info!(node, "circuit breaker closed: the probe succeeded");
        }
        self.state = State::Closed;
        self.recent.clear();
    }

    /// A call failed retryably at `now`; `Some(until)` when the breaker is
    /// open after it.
    pub fn failed(&mut self, now: Timestamp, node: &str) -> Option<Timestamp> {
        let open = match self.state {
            State::Probing | State::Open { .. } => true,
            State::Closed => {
                self.recent.push_back(now);
                while self
                    .recent
                    .front()
                    .is_some_and(|t| *t <= now.saturating_sub(self.cfg.window_ms))
                {
                    self.recent.pop_front();
                }
                self.recent.len() >= self.cfg.failures as usize
            }
        };
        if !open {
            return None;
        }
        let until = now.saturating_add(self.cfg.cooldown_ms);
        if !matches!(self.state, State::Open { .. }) {
            tracing::warn!(
                node,
                cooldown_ms = self.cfg.cooldown_ms,
                "circuit breaker open: calls paused until the cool-down ends"
            );
        }
        self.state = State::Open { until };
        self.recent.clear();
        Some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_the_window_and_closes_after_a_good_probe() {
        let mut b = Breaker::new(CircuitBreaker::new(
            3,
            Duration::from_millis(100),
            Duration::from_millis(50),
        ));
        assert_eq!(b.failed(0, "n"), None);
        assert_eq!(b.failed(10, "n"), None);
        // The first failure left the window.
        assert_eq!(b.failed(150, "n"), None);
        assert_eq!(b.failed(160, "n"), None);
        assert_eq!(b.failed(170, "n"), Some(220));
        assert_eq!(b.admit(219, "n"), Err(220));
        assert_eq!(b.admit(220, "n"), Ok(()));
        // A failed probe opens it again.
        assert_eq!(b.failed(225, "n"), Some(275));
        assert_eq!(b.admit(300, "n"), Ok(()));
        b.succeeded("n");
        assert_eq!(b.failed(301, "n"), None, "closed and counting afresh");
    }
}
