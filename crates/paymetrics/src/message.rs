//! What the `metrics` facade cannot say: events, service checks and timestamped points.
//!
//! Build one of these and queue it with [`PaymetricsHandle::send`](crate::PaymetricsHandle::send);
//! the flusher hands it to every exporter with the next snapshot. Alert transitions and hourly
//! rollups go out this way.

use std::time::{SystemTime, UNIX_EPOCH};

/// One message queued beside the metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A DogStatsD event (`_e{...}`).
    Event(Event),
    /// A DogStatsD service check (`_sc|...`).
    ServiceCheck(ServiceCheck),
    /// A gauge or count carrying its own timestamp (`|T`).
    Timestamped(TimestampedMetric),
}

/// An event's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// The default.
    #[default]
    Normal,
    /// Low priority.
    Low,
}

/// An event's alert type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertType {
    /// Informational (the default).
    #[default]
    Info,
    /// An error.
    Error,
    /// A warning.
    Warning,
    /// A success.
    Success,
}

/// A Datadog event.
///
/// ```
/// use paymetrics::message::{AlertType, Event};
/// let event = Event::new("payment_success_rate_low", "success rate 91.2% < 95%")
///     .alert_type(AlertType::Error)
///     .tag("severity", "critical");
/// assert_eq!(event.tags, vec!["severity:critical".to_string()]);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// Title (required, non-empty).
    pub title: String,
    /// Body text; newlines are escaped on the wire.
    pub text: String,
    /// Unix seconds; the Agent's receive time when `None`.
    pub timestamp: Option<u64>,
    /// Host override.
    pub hostname: Option<String>,
    /// Groups events in the Datadog event stream.
    pub aggregation_key: Option<String>,
    /// Priority.
    pub priority: Priority,
    /// Source type, for example `paymetrics`.
    pub source_type_name: Option<String>,
    /// Alert type.
    pub alert_type: AlertType,
    /// Tags as `key:value` strings.
    pub tags: Vec<String>,
}

impl Event {
    /// An event with a title and text.
    pub fn new(title: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            text: text.into(),
            ..Self::default()
        }
    }

    /// Sets the alert type.
    pub fn alert_type(mut self, alert_type: AlertType) -> Self {
        self.alert_type = alert_type;
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the aggregation key.
    pub fn aggregation_key(mut self, key: impl Into<String>) -> Self {
        self.aggregation_key = Some(key.into());
        self
    }

    /// Sets the timestamp to `at`.
    pub fn timestamp(mut self, at: SystemTime) -> Self {
        self.timestamp = Some(unix_seconds(at));
        self
    }

    /// Adds the tag `key:value` (a `:` in the key becomes `_`, as in metric labels).
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push(tag(key, value));
        self
    }
}

/// A service check's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceCheckStatus {
    /// `0`
    Ok = 0,
    /// `1`
    Warning = 1,
    /// `2`
    Critical = 2,
    /// `3`
    Unknown = 3,
}

/// A Datadog service check.
///
/// ```
/// use paymetrics::message::{ServiceCheck, ServiceCheckStatus};
/// let check = ServiceCheck::new("paymetrics.alert.payment_success_rate_low", ServiceCheckStatus::Critical)
///     .message("success rate below 95%");
/// assert_eq!(check.message.as_deref(), Some("success rate below 95%"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCheck {
    /// Check name (sanitised like a metric name).
    pub name: String,
    /// Status.
    pub status: ServiceCheckStatus,
    /// Unix seconds; the Agent's receive time when `None`.
    pub timestamp: Option<u64>,
    /// Host override.
    pub hostname: Option<String>,
    /// Message; newlines are escaped on the wire.
    pub message: Option<String>,
    /// Tags as `key:value` strings.
    pub tags: Vec<String>,
}

impl ServiceCheck {
    /// A check with a name and status.
    pub fn new(name: impl Into<String>, status: ServiceCheckStatus) -> Self {
        Self {
            name: name.into(),
            status,
            timestamp: None,
            hostname: None,
            message: None,
            tags: vec![],
        }
    }

    /// Sets the message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets the timestamp to `at`.
    pub fn timestamp(mut self, at: SystemTime) -> Self {
        self.timestamp = Some(unix_seconds(at));
        self
    }

    /// Adds the tag `key:value` (a `:` in the key becomes `_`, as in metric labels).
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push(tag(key, value));
        self
    }
}

/// Whether a timestamped point is a gauge or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampedKind {
    /// `g`
    Gauge,
    /// `c`
    Count,
}

/// A gauge or count point with its own timestamp; the Agent forwards it without aggregating.
///
/// Datadog ingests such points only up to an hour old, so a rollup for a period is stamped
/// with the period's last second, not its first.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use paymetrics::message::TimestampedMetric;
/// let at = UNIX_EPOCH + Duration::from_secs(1_700_003_599);
/// let point = TimestampedMetric::gauge("aggregated.payments.total", 1234.0, at).tag("aggregation", "hourly");
/// assert_eq!(point.timestamp, 1_700_003_599);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TimestampedMetric {
    /// Metric name.
    pub name: String,
    /// Gauge or count.
    pub kind: TimestampedKind,
    /// The value.
    pub value: f64,
    /// Unix seconds (must be positive).
    pub timestamp: u64,
    /// Tags as `key:value` strings.
    pub tags: Vec<String>,
}

impl TimestampedMetric {
    /// A timestamped gauge point.
    pub fn gauge(name: impl Into<String>, value: f64, at: SystemTime) -> Self {
        Self {
            name: name.into(),
            kind: TimestampedKind::Gauge,
            value,
            timestamp: unix_seconds(at),
            tags: vec![],
        }
    }

    /// A timestamped count point.
    pub fn count(name: impl Into<String>, value: f64, at: SystemTime) -> Self {
        Self {
            kind: TimestampedKind::Count,
            ..Self::gauge(name, value, at)
        }
    }

    /// Adds the tag `key:value` (a `:` in the key becomes `_`, as in metric labels).
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push(tag(key, value));
        self
    }
}

fn tag(key: &str, value: &str) -> String {
    format!("{}:{value}", key.replace(':', "_"))
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
