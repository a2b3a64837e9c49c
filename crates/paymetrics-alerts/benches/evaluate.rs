//! Local evaluation of the eight default rules over 10,000 live series.
//!
//! `cargo bench -p paymetrics-alerts --bench evaluate`
//!
//! The windows hold ten minutes of one-minute snapshots of 10,000 series spread over the eight
//! rules' metrics (counters, distributions and gauges); the baseline is the same evaluation over
//! eight series, one per metric, measured in the same run.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use metrics::{Key, Label};
use paymetrics::{
    snapshot::{CounterValue, GaugeValue, RecorderStats, Series, SeriesValue, Snapshot},
    window::Windows,
};
use paymetrics_alerts::{Evaluator, MetricType, default_rules, eval::window_config};

fn histogram(values: &[f64]) -> SeriesValue {
    // Build a histogram value the way the recorder does: through a real recorder's cell.
    let metrics = paymetrics::PaymetricsBuilder::new()
        .without_dogstatsd()
        .build()
        .unwrap();
    metrics::with_local_recorder(metrics.recorder(), || {
        let h = metrics::histogram!("bench.tmp");
        for v in values {
            h.record(*v);
        }
    });
    metrics.flush();
    let snapshot = metrics.latest_snapshot().unwrap();
    let value = snapshot
        .series
        .iter()
        .find(|s| s.key.name() == "bench.tmp")
        .unwrap()
        .value
        .clone();
    metrics.shutdown();
    value
}

fn windows_with(series_per_metric: usize, minutes: u64) -> (Windows, SystemTime) {
    let rules = default_rules();
    let (mut exporter, windows) = window_config(&rules).build();
    let sample = histogram(&[12.0, 40.0, 95.0, 180.0, 700.0]);
    let start = UNIX_EPOCH + Duration::from_secs(1_795_831_200);
    for minute in 0..minutes {
        let mut series = Vec::new();
        for rule in &rules {
            for i in 0..series_per_metric {
                let mut labels = vec![Label::new("shard", i.to_string())];
                if matches!(
                    rule.aggregation,
                    paymetrics_alerts::Aggregation::Ratio { .. }
                ) {
                    let (k, v) = if i % 10 == 0 {
                        ("success", "false")
                    } else {
                        ("success", "true")
                    };
                    let k = if rule.metric.starts_with("cache") {
                        "result"
                    } else {
                        k
                    };
                    let v = if rule.metric.starts_with("cache") {
                        if i % 10 == 0 { "miss" } else { "hit" }
                    } else {
                        v
                    };
                    labels.push(Label::new(k, v));
                }
                let value = match rule.metric_type {
                    MetricType::Count => SeriesValue::Counter(CounterValue { total: 0, delta: 3 }),
                    MetricType::Gauge => SeriesValue::Gauge(GaugeValue {
                        value: 2.0,
                        updated: true,
                        active: true,
                    }),
                    MetricType::Distribution => sample.clone(),
                };
                series.push(Series {
                    key: Key::from_parts(rule.metric.clone(), labels),
                    value,
                });
            }
        }
        let snapshot = Snapshot {
            taken_at: start + Duration::from_secs(60 * (minute + 1)),
            interval: Duration::from_secs(60),
            series,
            messages: vec![],
            stats: RecorderStats::default(),
        };
        paymetrics::export::Exporter::export(&mut exporter, &snapshot);
    }
    (windows, start + Duration::from_secs(60 * minutes))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate_8_rules");
    for (label, per_metric) in [("8_series_baseline", 1), ("10000_series", 1250)] {
        let (windows, now) = windows_with(per_metric, 10);
        let mut evaluator = Evaluator::new(default_rules(), windows);
        group.bench_function(label, |b| b.iter(|| evaluator.evaluate(now)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
