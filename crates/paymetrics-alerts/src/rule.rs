//! Alert rules: what to watch, how to aggregate it, and when to alert.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a rule aggregates its metric over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Aggregation {
    /// Mean of a distribution's samples, or of a gauge's values.
    Avg,
    /// Total of a counter, or sum of a distribution's samples.
    Sum,
    /// Smallest sample or gauge value.
    Min,
    /// Largest sample or gauge value.
    Max,
    /// Median of a distribution (global across hosts).
    P50,
    /// 95th percentile of a distribution (global across hosts).
    P95,
    /// 99th percentile of a distribution (global across hosts).
    P99,
    /// A percentage of a counter: the count with the `numerator` tag over the count of all its
    /// series, times 100. A "success rate" counter and "hit rate" are these, not an `avg` of a
    /// counter.
    Ratio {
        /// The tag (`key:value`) selecting the numerator, for example `success:true`.
        numerator: String,
    },
}

/// The DogStatsD type of the watched metric, which decides how its query is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// A counter: summed with `.as_count()`.
    Count,
    /// A gauge.
    Gauge,
    /// A distribution (a paymetrics histogram): percentiles are global across hosts.
    Distribution,
}

/// How the aggregate compares with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `>`
    #[serde(rename = ">")]
    Above,
    /// `>=`
    #[serde(rename = ">=")]
    AboveOrEqual,
    /// `<`
    #[serde(rename = "<")]
    Below,
    /// `<=`
    #[serde(rename = "<=")]
    BelowOrEqual,
}

impl Comparison {
    /// The operator as written in a Datadog query.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Above => ">",
            Comparison::AboveOrEqual => ">=",
            Comparison::Below => "<",
            Comparison::BelowOrEqual => "<=",
        }
    }

    /// Whether `value` breaches `threshold`.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::AboveOrEqual => value >= threshold,
            Comparison::Below => value < threshold,
            Comparison::BelowOrEqual => value <= threshold,
        }
    }
}

/// How urgent an alert is; it picks the notification handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Pages (`@pagerduty-...` by default).
    Critical,
    /// Notifies a channel (`@slack-...` by default).
    Warning,
}

impl Severity {
    /// `critical` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Identifier, `snake_case` (for example `payment_success_rate_low`).
    pub name: String,
    /// The metric watched.
    pub metric: String,
    /// Its type.
    pub metric_type: MetricType,
    /// How it is aggregated.
    pub aggregation: Aggregation,
    /// How the aggregate compares with the threshold.
    pub comparison: Comparison,
    /// The threshold, in the metric's unit (percent for ratios).
    pub threshold: f64,
    /// The evaluation window.
    #[serde(with = "window_text")]
    pub window: Duration,
    /// Severity.
    pub severity: Severity,
    /// A human message; the monitor adds the notification handle, values and runbook.
    #[serde(default)]
    pub message: String,
    /// Runbook URL.
    #[serde(default)]
    pub runbook_url: Option<String>,
    /// Extra monitor tags (`key:value`).
    #[serde(default)]
    pub tags: Vec<String>,
}

impl AlertRule {
    /// The title Datadog shows: `payment_success_rate_low` becomes `Payment Success Rate Low`.
    pub fn title(&self) -> String {
        self.name
            .split('_')
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `business` for `business.*` metrics, `infrastructure` for `k8s.*` and `aws.*`, else
    /// `technical`.
    pub fn category(&self) -> &'static str {
        if self.metric.starts_with("business.") {
            "business"
        } else if self.metric.starts_with("k8s.") || self.metric.starts_with("aws.") {
            "infrastructure"
        } else {
            "technical"
        }
    }
}

/// Formats a window as Datadog writes it (`5m`, `1h`, `90s`, `2d`).
pub fn window_to_text(window: Duration) -> String {
    let s = window.as_secs();
    if s > 0 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Parses `30s`, `5m`, `1h`, `2d`.
pub fn window_from_text(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("window {text:?} must look like 30s, 5m, 1h or 2d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("window {text:?} must end in s, m, h or d")),
    };
    if secs == 0 {
        return Err(format!("window {text:?} must be longer than zero"));
    }
    Ok(Duration::from_secs(secs))
}

mod window_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::window_to_text(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::window_from_text(&text).map_err(D::Error::custom)
    }
}

#[allow(clippy::too_many_arguments)]
fn rule(
    name: &str,
    metric: &str,
    metric_type: MetricType,
    aggregation: Aggregation,
    comparison: Comparison,
    threshold: f64,
    window_secs: u64,
    severity: Severity,
    message: &str,
) -> AlertRule {
    AlertRule {
        name: name.into(),
        metric: metric.into(),
        metric_type,
        aggregation,
        comparison,
        threshold,
        window: Duration::from_secs(window_secs),
        severity,
        message: message.into(),
        runbook_url: Some(format!("https://runbooks.example.com/paymetrics/{name}")),
        tags: vec![],
    }
}

/// The original strategy's eight rules, fixed where the original strategy's queries do not mean what they say:
/// the two rates are ratios of counts (not `avg` of a counter), and the two latency rules take
/// `p95` of a distribution (global across hosts, not an average of per-host percentiles).
pub fn default_rules() -> Vec<AlertRule> {
    use Aggregation::*;
    use Comparison::*;
    use Severity::*;
    vec![
        rule(
            "payment_success_rate_low",
            "business.payment.success_rate",
            MetricType::Count,
            Ratio {
                numerator: "success:true".into(),
            },
            Below,
            95.0,
            600,
            Critical,
            "Payment success rate is below 95%.",
        ),
        rule(
            "transaction_volume_spike",
            "business.payment.amount",
            MetricType::Distribution,
            Sum,
            Above,
            1_000_000.0,
            3600,
            Warning,
            "More than $1M attempted in an hour.",
        ),
        rule(
            "fraud_detection_rate_high",
            "business.fraud.detections",
            MetricType::Count,
            Sum,
            Above,
            100.0,
            3600,
            Warning,
            "More than 100 fraud detections in an hour.",
        ),
        rule(
            "api_response_time_high",
            "api.requests.response_time",
            MetricType::Distribution,
            P95,
            Above,
            2000.0,
            300,
            Warning,
            "API p95 response time is above 2 s.",
        ),
        rule(
            "database_query_time_high",
            "database.queries.execution_time",
            MetricType::Distribution,
            P95,
            Above,
            1000.0,
            300,
            Critical,
            "Database p95 query time is above 1 s.",
        ),
        rule(
            "cache_hit_rate_low",
            "cache.operations.hit_miss",
            MetricType::Count,
            Ratio {
                numerator: "result:hit".into(),
            },
            Below,
            80.0,
            600,
            Warning,
            "Cache hit rate is below 80%.",
        ),
        rule(
            "kubernetes_pods_failing",
            "k8s.pods.failed",
            MetricType::Gauge,
            Max,
            Above,
            5.0,
            300,
            Critical,
            "More than 5 pods are failing.",
        ),
        rule(
            "aws_rds_cpu_high",
            "aws.rds.cpu.utilization",
            MetricType::Gauge,
            Avg,
            Above,
            80.0,
            600,
            Warning,
            "RDS CPU utilisation is above 80%.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_round_trip() {
        for text in ["30s", "5m", "1h", "2d", "90s"] {
            assert_eq!(window_to_text(window_from_text(text).unwrap()), text);
        }
        assert!(window_from_text("5x").is_err());
        assert!(window_from_text("m").is_err());
        assert!(window_from_text("0m").is_err());
    }

    #[test]
    fn titles_and_categories() {
        let rules = default_rules();
        assert_eq!(rules.len(), 8);
        assert_eq!(rules[0].title(), "Payment Success Rate Low");
        assert_eq!(rules[0].category(), "business");
        assert_eq!(rules[3].category(), "technical");
        assert_eq!(rules[6].category(), "infrastructure");
    }
}
