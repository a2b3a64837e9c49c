//! Rate-limited diagnostics: a Redis that stays down, or keeps going down and up, must not
//! flood the logs.

use std::{
    fmt::Display,
    time::{Duration, Instant},
};

/// At most one warning per this interval for a failing dependency.
const EVERY: Duration = Duration::from_secs(60);

/// Tracks one dependency's state. Warns when it starts failing, then at most once a minute
/// (with a count of the failures in between), and logs one line when it works again, after an
/// outage that was warned about. A dependency that goes down and up many times a minute thus
/// costs one warning and one recovery line a minute, not one per tick.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last_warning: Option<Instant>,
    suppressed: u64,
    failing: bool,
    warned: bool,
}

impl Throttle {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Notes a failure; `true` when it starts an outage (the dependency worked before, or
    /// this is the first attempt).
    pub(crate) fn failed(&mut self, what: &str, error: &dyn Display) -> bool {
        let starts = !std::mem::replace(&mut self.failing, true);
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|last| now.duration_since(last) < EVERY)
        {
            self.suppressed += 1;
            return starts;
        }
        tracing::warn!(
            target: "paymetrics::automation",
            %error,
            similar_since_last_warning = self.suppressed,
            "{what}"
        );
        self.last_warning = Some(now);
        self.suppressed = 0;
        self.warned = true;
        starts
    }

    /// Notes a success; `true` when it ends an outage.
    pub(crate) fn recovered(&mut self, what: &str) -> bool {
        if !std::mem::take(&mut self.failing) {
            return false;
        }
        if std::mem::take(&mut self.warned) {
            tracing::info!(target: "paymetrics::automation", "{what}");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_transitions_and_flapping_is_not_relogged_within_a_minute() {
        let mut t = Throttle::new();
        assert!(!t.recovered("up"), "working from the start: no transition");
        assert!(t.failed("down", &"e"), "an outage starts");
        assert!(t.warned);
        assert!(!t.failed("down", &"e"), "the same outage");
        assert_eq!(t.suppressed, 1);
        assert!(t.recovered("up"));
        assert!(!t.recovered("up"), "already up");
        // Down again within the minute: counted as an outage, not warned, and so its end is
        // not announced either.
        assert!(t.failed("down", &"e"));
        assert!(!t.warned);
        assert!(t.recovered("up"));
        assert!(!t.failing);
    }
}
