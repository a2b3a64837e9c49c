//! What every infrastructure collector reports about itself: the API calls it made and the
//! failures it met, counted by reason and logged at most once a minute per reason. The
//! collectors' own metrics live in their modules.

use crate::fleet::Sink;
use std::{
    collections::HashMap,
    fmt::Display,
    time::{Duration, Instant},
};

/// Counter, errors: failed calls and unusable answers of a collector, tagged [`COLLECTOR`] and
/// [`REASON`] (one of the `REASON_*` constants). The round goes on after each.
pub const COLLECTOR_ERRORS: &str = "paymetrics.collector.errors";
/// Counter, calls: API requests a collector made, tagged [`COLLECTOR`] and [`CALL`]; the
/// rate per round is the cost of a round (CloudWatch bills per metric requested).
pub const API_CALLS: &str = "paymetrics.collector.api_calls";
/// Gauge, calls: API requests made by a collector's latest round, tagged [`COLLECTOR`].
pub const ROUND_API_CALLS: &str = "paymetrics.collector.round.api_calls";
/// Gauge, 0 or 1: whether this replica holds the fleet lease and so runs the rounds, tagged
/// [`LEASE`] with the lease's Redis key.
pub const LEASE_HELD: &str = "paymetrics.collector.lease.held";

/// Tag key: the collector (`kubernetes`, `cloudwatch`, `lease`).
pub const COLLECTOR: &str = "collector";
/// Tag key: why a call failed (a `REASON_*` value).
pub const REASON: &str = "reason";
/// Tag key: which API a call asked (for example `pods`, `get_metric_data`).
pub const CALL: &str = "call";
/// Tag key: the lease's Redis key.
pub const LEASE: &str = "lease";

/// Reason: the credentials lack the permission (HTTP 403, RBAC or IAM).
pub const REASON_FORBIDDEN: &str = "forbidden";
/// Reason: the credentials were refused (HTTP 401, an unknown or malformed key).
pub const REASON_UNAUTHORIZED: &str = "unauthorized";
/// Reason: the credentials have expired (a session token past its end).
pub const REASON_CREDENTIALS_EXPIRED: &str = "credentials_expired";
/// Reason: no credentials could be loaded.
pub const REASON_NO_CREDENTIALS: &str = "no_credentials";
/// Reason: the API is not there (HTTP 404; on `metrics.k8s.io`, no metrics-server).
pub const REASON_NOT_FOUND: &str = "not_found";
/// Reason: the API throttled the call (HTTP 429, `Throttling`). Not retried within the
/// round: the next round is the retry, so a throttled API sees less load, not more.
pub const REASON_THROTTLED: &str = "throttled";
/// Reason: no answer within the request timeout.
pub const REASON_TIMEOUT: &str = "timeout";
/// Reason: the API could not be reached (connection refused or reset, DNS, TLS).
pub const REASON_UNREACHABLE: &str = "unreachable";
/// Reason: the API answered with a server error (HTTP 5xx).
pub const REASON_SERVER_ERROR: &str = "server_error";
/// Reason: the answer could not be read (not the JSON shape the API documents).
pub const REASON_INVALID_RESPONSE: &str = "invalid_response";
/// Reason: the fleet store (Redis) failed, so the lease could not be taken or renewed.
pub const REASON_STORE: &str = "store";
/// Reason: anything else (the log line has the detail).
pub const REASON_OTHER: &str = "other";

/// At most one log line per collector and reason in this interval.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Counts a collector's API calls and failures and logs failures, rate-limited: a missing
/// permission costs one warning a minute, not one per node per round.
#[derive(Debug)]
pub(crate) struct Reporter {
    collector: &'static str,
    round_calls: u64,
    last_logged: HashMap<&'static str, (Instant, u64)>,
}

impl Reporter {
    pub(crate) fn new(collector: &'static str) -> Self {
        Self {
            collector,
            round_calls: 0,
            last_logged: HashMap::new(),
        }
    }

    /// Notes one API request (`call` is a constant of the collector's closed set).
    pub(crate) fn call(&mut self, sink: &Sink, call: &'static str) {
        self.round_calls += 1;
        let collector = self.collector;
        sink.record(|| {
            metrics::counter!(API_CALLS, COLLECTOR => collector, CALL => call).increment(1);
        });
    }

    /// Notes a failure: counted always, logged once per [`LOG_EVERY`] per reason.
    pub(crate) fn failed(
        &mut self,
        sink: &Sink,
        call: &'static str,
        reason: &'static str,
        error: &dyn Display,
    ) {
        let collector = self.collector;
        sink.record(|| {
            metrics::counter!(COLLECTOR_ERRORS, COLLECTOR => collector, REASON => reason)
                .increment(1);
        });
        let now = Instant::now();
        let entry = self.last_logged.entry(reason).or_insert((now, 0));
        if entry.1 > 0 && now.duration_since(entry.0) < LOG_EVERY {
            entry.1 += 1;
            return;
        }
        let suppressed = entry.1.saturating_sub(1);
        *entry = (now, 1);
        tracing::warn!(
            target: "paymetrics::infra",
            collector = self.collector,
            call,
            reason,
            %error,
            similar_since_last_warning = suppressed,
            "an infrastructure API call failed; the rest of the round goes on"
        );
    }

    /// Ends a round: publishes [`ROUND_API_CALLS`] and starts counting afresh.
    pub(crate) fn end_round(&mut self, sink: &Sink) {
        let calls = std::mem::take(&mut self.round_calls) as f64;
        let collector = self.collector;
        sink.record(|| metrics::gauge!(ROUND_API_CALLS, COLLECTOR => collector).set(calls));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_failure_and_the_calls_of_a_round() {
        let recorded = paymetrics::testing::capture(|| {
            let sink = Sink::current();
            let mut reporter = Reporter::new("kubernetes");
            reporter.call(&sink, "pods");
            reporter.call(&sink, "nodes");
            for _ in 0..3 {
                reporter.failed(&sink, "pods", REASON_FORBIDDEN, &"403");
            }
            reporter.end_round(&sink);
        });
        let errors = [(COLLECTOR, "kubernetes"), (REASON, REASON_FORBIDDEN)];
        assert_eq!(recorded.counter(COLLECTOR_ERRORS, &errors), Some(3));
        assert_eq!(
            recorded.counter(API_CALLS, &[(COLLECTOR, "kubernetes"), (CALL, "pods")]),
            Some(1)
        );
        assert_eq!(
            recorded.gauge(ROUND_API_CALLS, &[(COLLECTOR, "kubernetes")]),
            Some(2.0)
        );
    }
}
