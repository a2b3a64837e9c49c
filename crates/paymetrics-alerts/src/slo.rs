//! Datadog SLO definitions (the body of `POST /api/v1/slo`): payment success, API availability
//! and API latency, with targets and windows configurable.
//!
//! Success and availability are metric SLOs (`type: metric`): good events over all events,
//! from counts. Latency cannot be a count of "requests under N ms" from a distribution without
//! per-threshold counters, so it is a time-slice SLO: the share of 5-minute slices whose p95
//! is under the threshold, computed from the global distribution.

use serde_json::{Value, json};

/// A target over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// Percent of good events (or slices) to meet, for example `99.9`.
    pub target: f64,
    /// The warning level, above the target.
    pub warning: f64,
    /// `7d`, `30d` or `90d`.
    pub timeframe: String,
}

/// The three SLOs' settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSettings {
    /// Payment completions with `success:true` over all.
    pub payment_success: Objective,
    /// Requests without a 5xx status over all.
    pub api_availability: Objective,
    /// 5-minute slices whose p95 response time is at most `api_latency_threshold_ms`.
    pub api_latency: Objective,
    /// The p95 threshold of the latency SLO, in milliseconds.
    pub api_latency_threshold_ms: f64,
    /// Tags on every SLO.
    pub tags: Vec<String>,
}

impl Default for SloSettings {
    fn default() -> Self {
        let o = |target, warning| Objective {
            target,
            warning,
            timeframe: "30d".into(),
        };
        Self {
            payment_success: o(99.0, 99.5),
            api_availability: o(99.9, 99.95),
            api_latency: o(99.0, 99.5),
            api_latency_threshold_ms: 500.0,
            tags: vec!["source:paymetrics".into()],
        }
    }
}

fn thresholds(o: &Objective) -> Value {
    json!([{ "timeframe": o.timeframe, "target": o.target, "warning": o.warning }])
}

/// The three SLO bodies.
///
/// ```
/// let slos = paymetrics_alerts::slo::slos(&Default::default());
/// assert_eq!(slos[0]["type"], "metric");
/// assert_eq!(slos[0]["query"]["numerator"], "sum:business.payment.success_rate{success:true}.as_count()");
/// assert_eq!(slos[2]["type"], "time_slice");
/// ```
pub fn slos(s: &SloSettings) -> Vec<Value> {
    vec![
        json!({
            "name": "Payment success",
            "type": "metric",
            "description": "Payment completions that succeeded, over all completions.",
            "query": {
                "numerator": "sum:business.payment.success_rate{success:true}.as_count()",
                "denominator": "sum:business.payment.success_rate{*}.as_count()",
            },
            "thresholds": thresholds(&s.payment_success),
            "tags": s.tags,
        }),
        json!({
            "name": "API availability",
            "type": "metric",
            "description": "Requests answered without a 5xx status, over all requests.",
            "query": {
                "numerator": "sum:api.requests.count{!status_code:5*}.as_count()",
                "denominator": "sum:api.requests.count{*}.as_count()",
            },
            "thresholds": thresholds(&s.api_availability),
            "tags": s.tags,
        }),
        json!({
            "name": "API latency",
            "type": "time_slice",
            "description": format!("5-minute slices whose p95 response time is at most {} ms.", s.api_latency_threshold_ms),
            "sli_specification": { "time_slice": {
                "query": {
                    "formulas": [{ "formula": "query1" }],
                    "queries": [{ "data_source": "metrics", "name": "query1", "query": "p95:api.requests.response_time{*}" }],
                },
                "comparator": "<=",
                "threshold": s.api_latency_threshold_ms,
                "query_interval_seconds": 300,
            }},
            "thresholds": thresholds(&s.api_latency),
            "tags": s.tags,
        }),
    ]
}

/// Every metric query string in an SLO body, for checking.
///
/// ```
/// let slos = paymetrics_alerts::slo::slos(&Default::default());
/// assert_eq!(paymetrics_alerts::slo::queries(&slos[2]), ["p95:api.requests.response_time{*}"]);
/// ```
pub fn queries(slo: &Value) -> Vec<String> {
    let mut out: Vec<String> = ["numerator", "denominator"]
        .iter()
        .filter_map(|k| slo["query"][k].as_str().map(str::to_owned))
        .collect();
    out.extend(crate::dashboard::all_queries(&slo["sli_specification"]));
    out
}
