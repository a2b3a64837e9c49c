//! Rate-limited diagnostics: a Redis that stays down must not flood the logs.

use std::{
    fmt::Display,
    time::{Duration, Instant},
};

/// At most one warning per this interval for a failing dependency.
const EVERY: Duration = Duration::from_secs(60);

/// Logs the first failure at once, then at most one per minute with a count of those in
/// between, and one line when things work again.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
    failing: bool,
}

impl Throttle {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn failed(&mut self, what: &str, error: &dyn Display) {
        self.failing = true;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < EVERY)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            target: "paymetrics::automation",
            %error,
            similar_since_last_warning = self.suppressed,
            "{what}"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }

    pub(crate) fn recovered(&mut self, what: &str) {
        if std::mem::take(&mut self.failing) {
            tracing::info!(target: "paymetrics::automation", "{what}");
            self.last = None;
            self.suppressed = 0;
        }
    }
}
