//! Failpoints: `WEIR_FAILPOINT=<step>` aborts the process at that step of
//! the commit loop, so crash tests kill it exactly where it matters.
//!
//! Compiled in always and inert unless set. `WEIR_FAILPOINT=<step>@<n>`
//! fires on the n-th time the step is reached (default: the first).

use std::sync::atomic::{AtomicU32, Ordering};

/// The steps of the commit loop a failpoint can name, in loop order.
pub const STEPS: &[&str] = &[
    "after_changelog_produce",
    "before_produce_flush",
    "after_send_offsets",
    "before_commit",
    "after_commit",
    "after_commit_before_checkpoint",
];

/// `WEIR_FAILPOINT` names no step.
#[derive(Debug, thiserror::Error)]
#[error("WEIR_FAILPOINT={value:?} is not a failpoint; use one of {} (optionally @<n>)", STEPS.join(", "))]
pub struct FailpointError {
    value: String,
}

/// The armed failpoint, if any.
#[derive(Debug, Default)]
pub struct Failpoints {
    step: Option<&'static str>,
    nth: u32,
    hits: AtomicU32,
}

impl Failpoints {
    /// Reads `WEIR_FAILPOINT`.
    ///
    /// # Errors
    /// [`FailpointError`] when it names no step.
    pub fn from_env() -> Result<Self, FailpointError> {
        match std::env::var("WEIR_FAILPOINT") {
            Ok(v) if !v.trim().is_empty() => Self::parse(v.trim()),
            _ => Ok(Self::default()),
        }
    }

    fn parse(value: &str) -> Result<Self, FailpointError> {
        let err = || FailpointError {
            value: value.to_string(),
        };
        let (name, nth) = match value.split_once('@') {
            Some((n, k)) => (n, k.parse::<u32>().ok().filter(|k| *k > 0).ok_or_else(err)?),
            None => (value, 1),
        };
        let step = STEPS.iter().find(|s| **s == name).ok_or_else(err)?;
        Ok(Self {
            step: Some(step),
            nth,
            hits: AtomicU32::new(0),
        })
    }

    /// Aborts the process if `step` is armed and this is its n-th hit.
    pub fn hit(&self, step: &'static str) {
        if self.step == Some(step) && self.hits.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            eprintln!("weir: failpoint {step} reached: aborting the process");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_and_counts() {
        let f = Failpoints::parse("before_commit@3").unwrap();
        assert_eq!(f.step, Some("before_commit"));
        assert_eq!(f.nth, 3);
        f.hit("after_commit");
        f.hit("before_commit");
        f.hit("before_commit");
        assert_eq!(f.hits.load(Ordering::SeqCst), 2);
        assert!(Failpoints::parse("before_lunch").is_err());
        assert!(Failpoints::parse("before_commit@0").is_err());
        Failpoints::default().hit("before_commit");
    }
}
