//! The catalogue entries the default rules need beyond the recording crates: the Kubernetes and
//! RDS metrics that two of the eight default rules watch. They are reported by Datadog's
//! Kubernetes and CloudWatch integrations (and by the paymetrics crates for them now being
//! written); once such a crate publishes its own `catalogue::METRICS`, its entries replace
//! these (identical definitions merge; a different one is an error that says which to keep).

use paymetrics::catalogue::{MetricDef, MetricKind::Gauge};

const SOURCE: &str = "Datadog Kubernetes and CloudWatch integrations";

/// Infrastructure metrics watched by [`default_rules`](crate::default_rules) but recorded
/// outside the paymetrics recording crates.
///
/// ```
/// assert!(paymetrics_alerts::catalogue::INFRASTRUCTURE.iter().any(|d| d.name == "k8s.pods.failed"));
/// ```
pub const INFRASTRUCTURE: &[MetricDef] = &[
    MetricDef::new(
        "k8s.pods.failed",
        Gauge,
        "pod",
        &[],
        "Pods in the Failed phase.",
        SOURCE,
    ),
    MetricDef::new(
        "aws.rds.cpu.utilization",
        Gauge,
        "percent",
        &[],
        "RDS instance CPU utilisation.",
        SOURCE,
    ),
];
