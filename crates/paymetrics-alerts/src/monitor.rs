//! Datadog monitor definitions: the JSON body Datadog's monitor API accepts, one per rule.

use serde_json::{Value, json};

use crate::rule::{Aggregation, AlertRule, MetricType, Severity, window_to_text};

/// Settings shared by every exported monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSettings {
    /// Handle notified by critical rules.
    pub critical_handle: String,
    /// Handle notified by the others.
    pub warning_handle: String,
    /// Seconds Datadog waits for late data before evaluating.
    pub evaluation_delay_secs: u64,
    /// Added to every monitor's tags.
    pub tags: Vec<String>,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            critical_handle: "@pagerduty-critical".into(),
            warning_handle: "@slack-alerts".into(),
            evaluation_delay_secs: 60,
            tags: vec!["source:paymetrics".into()],
        }
    }
}

fn scope(tags: &[String]) -> String {
    if tags.is_empty() {
        "{*}".into()
    } else {
        format!("{{{}}}", tags.join(","))
    }
}

/// The monitor query for a rule, written so that it means what the rule says:
///
/// * a ratio is a formula over counts: `sum(last_10m):sum:m{success:true}.as_count() /
///   sum:m{*}.as_count() * 100 < 95`;
/// * a percentile of a distribution uses the `percentile` time aggregation over `p95:`, one
///   percentile over every sample of the window from every host;
/// * a counter's sum uses `.as_count()`.
///
/// ```
/// let rules = paymetrics_alerts::default_rules();
/// assert_eq!(
///     paymetrics_alerts::monitor::query(&rules[3]),
///     "percentile(last_5m):p95:api.requests.response_time{*} > 2000"
/// );
/// ```
pub fn query(rule: &AlertRule) -> String {
    let window = window_to_text(rule.window);
    let m = &rule.metric;
    let tail = format!("{} {}", rule.comparison.as_str(), number(rule.threshold));
    match (&rule.aggregation, rule.metric_type) {
        (Aggregation::Ratio { numerator }, _) => format!(
            "sum(last_{window}):sum:{m}{}.as_count() / sum:{m}{{*}}.as_count() * 100 {tail}",
            scope(std::slice::from_ref(numerator))
        ),
        (Aggregation::P50 | Aggregation::P95 | Aggregation::P99, _) => {
            let p = match rule.aggregation {
                Aggregation::P50 => "p50",
                Aggregation::P95 => "p95",
                _ => "p99",
            };
            format!("percentile(last_{window}):{p}:{m}{{*}} {tail}")
        }
        (Aggregation::Sum, MetricType::Count) => {
            format!("sum(last_{window}):sum:{m}{{*}}.as_count() {tail}")
        }
        (agg, _) => {
            let a = match agg {
                Aggregation::Sum => "sum",
                Aggregation::Min => "min",
                Aggregation::Max => "max",
                _ => "avg",
            };
            format!("{a}(last_{window}):{a}:{m}{{*}} {tail}")
        }
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The monitor JSON for one rule.
pub fn monitor(rule: &AlertRule, settings: &MonitorSettings) -> Value {
    let handle = match rule.severity {
        Severity::Critical => &settings.critical_handle,
        Severity::Warning => &settings.warning_handle,
    };
    let mut message = format!(
        "{handle}\n\n{}\n\nMetric: {} ({} over {})\nThreshold: {} {}\nCurrent value: {{{{value}}}}",
        if rule.message.is_empty() {
            rule.title()
        } else {
            rule.message.clone()
        },
        rule.metric,
        aggregation_name(&rule.aggregation),
        window_to_text(rule.window),
        rule.comparison.as_str(),
        number(rule.threshold),
    );
    if let Some(url) = &rule.runbook_url {
        message.push_str(&format!("\nRunbook: {url}"));
    }
    let mut tags = vec![
        format!("severity:{}", rule.severity.as_str()),
        format!("category:{}", rule.category()),
    ];
    tags.extend(settings.tags.iter().cloned());
    tags.extend(rule.tags.iter().cloned());
    let formula = matches!(rule.aggregation, Aggregation::Ratio { .. });
    json!({
        "name": format!("Metric Alert: {}", rule.title()),
        "type": if formula { "query alert" } else { "metric alert" },
        "query": query(rule),
        "message": message,
        "tags": tags,
        "options": {
            "thresholds": { "critical": rule.threshold },
            "notify_audit": rule.severity == Severity::Critical,
            "require_full_window": true,
            "notify_no_data": false,
            "evaluation_delay": settings.evaluation_delay_secs,
        },
    })
}

fn aggregation_name(a: &Aggregation) -> &'static str {
    match a {
        Aggregation::Avg => "avg",
        Aggregation::Sum => "sum",
        Aggregation::Min => "min",
        Aggregation::Max => "max",
        Aggregation::P50 => "p50",
        Aggregation::P95 => "p95",
        Aggregation::P99 => "p99",
        Aggregation::Ratio { .. } => "percent of count",
    }
}

/// Every rule's monitor, as a JSON array.
pub fn monitors(rules: &[AlertRule], settings: &MonitorSettings) -> Value {
    Value::Array(rules.iter().map(|r| monitor(r, settings)).collect())
}
