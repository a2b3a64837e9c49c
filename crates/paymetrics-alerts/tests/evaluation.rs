//! Local evaluation: synthetic traffic drives each of the eight default rules across its
//! threshold and back, through a real recorder, flusher and windows.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, UNIX_EPOCH},
};

use metrics::with_local_recorder;
use paymetrics::{
    PaymetricsBuilder,
    clock::{Clock, ManualClock},
    export::MemoryExporter,
    message::{AlertType, Message, ServiceCheckStatus},
};
use paymetrics_alerts::{AlertState, Evaluator, default_rules, eval::window_config};

/// Records traffic that keeps `rule` quiet (`bad = false`) or breaches it.
fn traffic(rule: &str, bad: bool) {
    match rule {
        "payment_success_rate_low" => {
            let success = if bad { "false" } else { "true" };
            metrics::counter!("business.payment.success_rate", "success" => success).increment(100);
        }
        "transaction_volume_spike" => {
            let h = metrics::histogram!("business.payment.amount", "currency" => "USD");
            for _ in 0..10 {
                h.record(if bad { 150_000.0 } else { 100.0 });
            }
        }
        "fraud_detection_rate_high" => {
            metrics::counter!("business.fraud.detections", "action" => "block").increment(if bad {
                200
            } else {
                10
            })
        }
        "api_response_time_high" | "database_query_time_high" => {
            let metric = if rule.starts_with("api") {
                "api.requests.response_time"
            } else {
                "database.queries.execution_time"
            };
            let h = metrics::histogram!(metric);
            for _ in 0..100 {
                h.record(if bad { 3_000.0 } else { 40.0 });
            }
        }
        "cache_hit_rate_low" => {
            let result = if bad { "miss" } else { "hit" };
            metrics::counter!("cache.operations.hit_miss", "result" => result).increment(100);
        }
        "kubernetes_pods_failing" => {
            metrics::gauge!("k8s.pods.failed").set(if bad { 9.0 } else { 1.0 })
        }
        "aws_rds_cpu_high" => {
            metrics::gauge!("aws.rds.cpu.utilization").set(if bad { 95.0 } else { 20.0 })
        }
        other => panic!("no traffic for {other}"),
    }
}

#[test]
fn every_default_rule_alerts_and_recovers_without_flapping() {
    for rule in default_rules() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_795_831_200));
        let (windows_exporter, windows) = window_config(&default_rules()).build();
        let (memory, reader) = MemoryExporter::new();
        let metrics = PaymetricsBuilder::new()
            .without_dogstatsd()
            .flush_interval(Duration::from_secs(3600))
            .clock(clock.clone())
            .exporter(windows_exporter)
            .exporter(memory)
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_callback = Arc::clone(&seen);
        let mut evaluator = Evaluator::new(vec![rule.clone()], windows)
            .send_to(metrics.handle())
            .on_transition(move |t| {
                seen_by_callback
                    .lock()
                    .unwrap()
                    .push((t.rule.clone(), t.to))
            });
        let name = rule.name.as_str();
        let phase = |bad: bool| {
            with_local_recorder(metrics.recorder(), || traffic(name, bad));
            assert!(metrics.flush());
        };
        let step = Duration::from_secs(rule.window.as_secs() + 120);

        phase(false);
        assert!(evaluator.evaluate(clock.now()).is_empty(), "{name}");
        assert_eq!(evaluator.state(name), Some(AlertState::Ok));

        clock.advance(step);
        phase(true);
        assert!(
            evaluator.evaluate(clock.now()).is_empty(),
            "{name}: one sample must not trigger"
        );
        let t = evaluator.evaluate(clock.now());
        assert_eq!(t.len(), 1, "{name}: {:?}", evaluator.states());
        assert_eq!(t[0].to, AlertState::Alert);
        assert!(rule.comparison.breached(t[0].value, rule.threshold));

        clock.advance(step);
        phase(false);
        assert!(
            evaluator.evaluate(clock.now()).is_empty(),
            "{name}: one clean sample must not recover"
        );
        assert_eq!(
            evaluator.evaluate(clock.now())[0].to,
            AlertState::Ok,
            "{name}"
        );

        assert_eq!(
            *seen.lock().unwrap(),
            [
                (name.to_owned(), AlertState::Alert),
                (name.to_owned(), AlertState::Ok)
            ]
        );
        // Each transition went out as an event and a service check.
        assert!(metrics.flush());
        let messages = reader.messages();
        let check_name = format!("paymetrics.alert.{name}");
        let checks: Vec<_> = messages
            .iter()
            .filter_map(|m| match m {
                Message::ServiceCheck(c) if c.name == check_name => Some(c.status),
                _ => None,
            })
            .collect();
        let alerting = if rule.severity == paymetrics_alerts::Severity::Critical {
            ServiceCheckStatus::Critical
        } else {
            ServiceCheckStatus::Warning
        };
        assert_eq!(checks, [alerting, ServiceCheckStatus::Ok], "{name}");
        let events: Vec<_> = messages
            .iter()
            .filter_map(|m| match m {
                Message::Event(e) => Some(e.alert_type),
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), 2, "{name}");
        assert_eq!(events[1], AlertType::Success);
    }
}

#[test]
fn no_data_keeps_the_state() {
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_795_831_200));
    let (exporter, windows) = window_config(&default_rules()).build();
    let metrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .clock(clock.clone())
        .exporter(exporter)
        .build()
        .unwrap();
    let mut evaluator = Evaluator::new(default_rules(), windows);
    assert!(evaluator.evaluate(clock.now()).is_empty());
    for (name, state, value) in evaluator.states() {
        assert_eq!(state, AlertState::Ok, "{name}");
        // A counter's sum over an empty window is a real 0; every other aggregate has no data.
        let counted = name == "fraud_detection_rate_high";
        assert_eq!(value, counted.then_some(0.0), "{name}");
    }
    drop(metrics);
}

#[test]
fn the_scheduler_collector_evaluates_at_its_clock() {
    use paymetrics_alerts::eval::AlertEvaluation;
    use paymetrics_automation::Collector;

    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_795_831_200));
    let rules: Vec<_> = default_rules()
        .into_iter()
        .filter(|r| r.name == "cache_hit_rate_low")
        .collect();
    let (exporter, windows) = window_config(&rules).build();
    let metrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .clock(clock.clone())
        .exporter(exporter)
        .build()
        .unwrap();
    let evaluation = AlertEvaluation::new(Evaluator::new(rules, windows), metrics.clock());
    with_local_recorder(metrics.recorder(), || traffic("cache_hit_rate_low", true));
    assert!(metrics.flush());
    evaluation.collect();
    evaluation.collect();
    assert_eq!(evaluation.states()[0].1, AlertState::Alert);
    // Ten minutes later the misses have left the window; no data keeps the state.
    clock.advance(Duration::from_secs(700));
    evaluation.collect();
    assert_eq!(evaluation.states()[0].1, AlertState::Alert);
}
