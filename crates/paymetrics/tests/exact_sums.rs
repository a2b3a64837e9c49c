//! Issue 17 end to end: for every histogram and every flush, what the Agent derives from the
//! datagrams (each value times the integer weight `1/rate`) gives the exact count, the sum
//! within 1e-9, the exact min and max, small integers as recorded, and every percentile within
//! `HistogramValue::WIRE_RELATIVE_ERROR` of the recorded sample of that rank. Real UDP socket,
//! datagrams parsed by the Agent's rules (`paymetrics_testkit::agent`).

mod common;

use std::time::{Duration, Instant};

use common::{dogstatsd, start};
use metrics::with_local_recorder;
use paymetrics::snapshot::HistogramValue;
use paymetrics_testkit::agent::{Message, MetricType, UdpReceiver, parse_payload};

/// A deterministic spread of samples (xorshift), so a failure replays.
struct Samples(u64);

impl Samples {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One flush's samples for each distribution: name and recorded values.
fn flush_samples(seed: u64, n: usize) -> Vec<(&'static str, Vec<f64>)> {
    let mut r = Samples(seed);
    let mut amounts = vec![];
    let mut retries = vec![];
    let mut sizes = vec![];
    let mut latencies = vec![];
    for _ in 0..n {
        amounts.push((r.next() % 2_000_000) as f64 / 100.0); // 0.00 to 19,999.99
        retries.push((r.next() % 6) as f64);
        sizes.push((40 + r.next() % 985) as f64); // 40 to 1,024 bytes
        latencies.push(0.2 * 1.0005f64.powi((r.next() % 20_000) as i32)); // 0.2 ms to ~4 s
    }
    vec![
        ("business.payment.amount", amounts),
        ("external_service.calls.retry_count", retries),
        ("queue.message.size", sizes),
        ("api.requests.response_time", latencies),
    ]
}

/// `(value, integer weight)` per metric name, as the Agent reads them, until every series has
/// `n` samples in.
fn receive(rx: &UdpReceiver, names: &[&str], n: u64) -> Vec<(String, MetricType, f64, u64)> {
    let end = Instant::now() + Duration::from_secs(20);
    let mut points = vec![];
    let done = |points: &Vec<(String, MetricType, f64, u64)>| {
        names.iter().all(|name| {
            points
                .iter()
                .filter(|p| p.0 == *name)
                .map(|p| p.3)
                .sum::<u64>()
                >= n
        })
    };
    while !done(&points) && Instant::now() < end {
        let Some(payload) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        for message in parse_payload(&payload).expect("valid datagrams") {
            let Message::Metric(m) = message else {
                continue;
            };
            // The Agent's weight: `1/rate`, converted to an integer count.
            let weight = (1.0 / m.sample_rate) as u64;
            for v in m.values {
                points.push((m.name.clone(), m.kind, v, weight));
            }
        }
    }
    points
}

fn check_flush(
    name: &str,
    recorded: &[f64],
    points: &[(String, MetricType, f64, u64)],
    kind: MetricType,
) {
    let mine: Vec<(f64, u64)> = points
        .iter()
        .filter(|p| p.0 == name)
        .map(|p| {
            assert_eq!(p.1, kind, "{name}");
            (p.2, p.3)
        })
        .collect();
    let count: u64 = mine.iter().map(|p| p.1).sum();
    assert_eq!(count, recorded.len() as u64, "{name}: count");
    let sum: f64 = mine.iter().map(|&(v, w)| v * w as f64).sum();
    let exact: f64 = recorded.iter().sum();
    assert!(
        ((sum - exact) / exact).abs() <= 1e-9,
        "{name}: sum {sum} vs {exact}"
    );
    let mut sorted = recorded.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut sent: Vec<f64> = mine
        .iter()
        .flat_map(|&(v, w)| std::iter::repeat_n(v, w as usize))
        .collect();
    sent.sort_by(f64::total_cmp);
    assert_eq!(sent[0], sorted[0], "{name}: min");
    assert_eq!(
        sent[sent.len() - 1],
        sorted[sorted.len() - 1],
        "{name}: max"
    );
    let bound = f64::from(HistogramValue::EXACT_INTEGER_BOUND);
    let integers = sorted.iter().all(|v| v.fract() == 0.0 && v.abs() <= bound);
    if integers {
        // Small integers: every sample travels as itself.
        assert_eq!(sent, sorted, "{name}: integers as recorded");
    }
    for (rank, (x, y)) in sorted.iter().zip(&sent).enumerate() {
        assert!(
            (x - y).abs() <= x.abs() * HistogramValue::WIRE_RELATIVE_ERROR,
            "{name}: rank {rank} sent {y} for {x}"
        );
    }
}

fn run(distributions: bool) {
    let rx = UdpReceiver::bind().unwrap();
    let metrics = start(dogstatsd(&rx.url()).histograms_as_distributions(distributions));
    let kind = if distributions {
        MetricType::Distribution
    } else {
        MetricType::Histogram
    };
    for (flush, n) in [(1u64, 1_000usize), (2, 37), (3, 5_000)] {
        let samples = flush_samples(0x9e37_79b9_7f4a_7c15 ^ flush, n);
        with_local_recorder(metrics.recorder(), || {
            for (name, values) in &samples {
                let h = metrics::histogram!(*name);
                for v in values {
                    h.record(*v);
                }
            }
        });
        assert!(metrics.flush());
        let names: Vec<&str> = samples.iter().map(|s| s.0).collect();
        let points = receive(&rx, &names, n as u64);
        for (name, values) in &samples {
            check_flush(name, values, &points, kind);
        }
    }
}

#[test]
fn distributions_add_up_exactly_on_every_flush() {
    run(true);
}

#[test]
fn agent_histograms_add_up_exactly_on_every_flush() {
    run(false);
}
