//! External-service calls, recorded by hand or by the
//! outbound tower layer of `paymetrics-tower`.
//!
//! ```
//! use paymetrics::events::external::{CircuitState, ExternalServiceCall};
//!
//! let recorded = paymetrics::testing::capture(|| {
//!     ExternalServiceCall {
//!         service_name: "card-processor".into(),
//!         endpoint: "/v1/charges".into(),
//!         method: "POST".into(),
//!         duration_ms: 182.0,
//!         success: true,
//!         retry_count: 1,
//!         circuit_breaker: Some(CircuitState::Closed),
//!     }
//!     .record();
//! });
//! let tags = [("service_name", "card-processor"), ("endpoint", "/v1/charges"), ("method", "POST")];
//! assert_eq!(recorded.counter(CALLS_COUNT, &tags), Some(1));
//! # use paymetrics::events::external::CALLS_COUNT;
//! ```

use metrics::SharedString;

/// Counter, calls. Tags: [`SERVICE_NAME`], [`ENDPOINT`], [`METHOD`].
pub const CALLS_COUNT: &str = "external_service.calls.count";
/// Distribution, milliseconds, from the start of the call to its outcome. Tags as [`CALLS_COUNT`].
pub const CALLS_RESPONSE_TIME: &str = "external_service.calls.response_time";
/// Counter, calls, split by [`SUCCESS`] (`true`/`false`) for dashboards; the ratio is a query
/// (`sum:...{success:true}.as_count() / sum:...{*}.as_count()`). Tags as [`CALLS_COUNT`] plus [`SUCCESS`].
pub const CALLS_SUCCESS_RATE: &str = "external_service.calls.success_rate";
/// Distribution, retries per logical call (0 when the first attempt settled it). Tags as [`CALLS_COUNT`].
pub const CALLS_RETRY_COUNT: &str = "external_service.calls.retry_count";
/// Gauge, 1 when the circuit breaker is open, 0 when closed or half-open. Tags as [`CALLS_COUNT`].
pub const CIRCUIT_BREAKER_STATE: &str = "external_service.circuit_breaker.state";

/// Tag key: the external service's name, set by the caller (bounded by construction).
pub const SERVICE_NAME: &str = "service_name";
/// Tag key: the endpoint template the caller gives (never the URL).
pub const ENDPOINT: &str = "endpoint";
/// Tag key: the HTTP method (or operation name).
pub const METHOD: &str = "method";
/// Tag key: `true` or `false`.
pub const SUCCESS: &str = "success";

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls are refused.
    Open,
    /// Trial calls flow.
    HalfOpen,
}

/// One logical call to an external service, retries included.
#[derive(Debug, Clone)]
pub struct ExternalServiceCall {
    /// The service, for example `card-processor`.
    pub service_name: SharedString,
    /// The endpoint template, for example `/v1/charges/{id}`.
    pub endpoint: SharedString,
    /// The method, for example `POST`.
    pub method: SharedString,
    /// Duration of the whole call, retries included, in milliseconds.
    pub duration_ms: f64,
    /// Whether the call succeeded in the end.
    pub success: bool,
    /// Retries after the first attempt.
    pub retry_count: u32,
    /// The breaker's state after the call, if a breaker guards the service.
    pub circuit_breaker: Option<CircuitState>,
}

impl ExternalServiceCall {
    /// Records the original strategy's five external-service metrics for this call.
    pub fn record(&self) {
        let labels = [
            (SERVICE_NAME, self.service_name.clone()),
            (ENDPOINT, self.endpoint.clone()),
            (METHOD, self.method.clone()),
        ];
        metrics::counter!(CALLS_COUNT, &labels).increment(1);
        metrics::histogram!(CALLS_RESPONSE_TIME, &labels).record(self.duration_ms);
        let success: SharedString = if self.success {
            "true".into()
        } else {
            "false".into()
        };
        metrics::counter!(
            CALLS_SUCCESS_RATE,
            SERVICE_NAME => self.service_name.clone(),
            ENDPOINT => self.endpoint.clone(),
            METHOD => self.method.clone(),
            SUCCESS => success
        )
        .increment(1);
        metrics::histogram!(CALLS_RETRY_COUNT, &labels).record(f64::from(self.retry_count));
        if let Some(state) = self.circuit_breaker {
            let open = if state == CircuitState::Open {
                1.0
            } else {
                0.0
            };
            metrics::gauge!(CIRCUIT_BREAKER_STATE, &labels).set(open);
        }
    }
}
