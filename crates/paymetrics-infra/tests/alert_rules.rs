//! The default monitors of paymetrics-alerts that watch Kubernetes and AWS metrics watch
//! names these collectors emit, so the two cannot drift apart again.
#![cfg(all(feature = "kubernetes", feature = "cloudwatch"))]

use paymetrics_infra::{cloudwatch, kubernetes};

#[test]
fn every_infrastructure_rule_watches_a_metric_a_collector_emits() {
    let infrastructure: Vec<_> = paymetrics_alerts::default_rules()
        .into_iter()
        .filter(|r| r.category() == "infrastructure")
        .collect();
    assert!(infrastructure.len() >= 2, "{infrastructure:?}");
    for rule in &infrastructure {
        let emitted = kubernetes::METRICS.contains(&rule.metric.as_str())
            || cloudwatch::METRICS.contains(&rule.metric.as_str());
        assert!(
            emitted,
            "rule {} watches {}, which no collector emits",
            rule.name, rule.metric
        );
    }
    let names: Vec<_> = infrastructure.iter().map(|r| r.metric.as_str()).collect();
    assert!(names.contains(&kubernetes::PODS_FAILED));
    assert!(names.contains(&cloudwatch::RDS_CPU_UTILIZATION));
}
