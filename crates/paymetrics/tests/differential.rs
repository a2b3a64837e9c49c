//! Differential test against `metrics-exporter-dogstatsd` 0.9.8, the `metrics` project's own
//! DogStatsD exporter.
//!
//! One deterministic, mixed workload (counters, gauges set, incremented and decremented,
//! histograms with values from 0.001 to 1e6, several names and label sets) is recorded through
//! each exporter, each sending over UDP to its own receiver. What arrives is aggregated the way
//! the Agent would (`paymetrics_testkit::agent::Aggregate`), and the totals per series must
//! agree with each other and with the workload:
//!
//! * counters: the same sum, exactly;
//! * gauges: the same last value, exactly;
//! * histograms (sent as distributions by both): the same sample count, exactly; the sum, min
//!   and max within 1 %, since paymetrics sends bucket midpoints with the bucket counts as sample
//!   rates (relative error 0.79 %) where metrics-exporter-dogstatsd sends every raw value;
//! * no other series, and no message that fails to parse.
//!
//! metrics-exporter-dogstatsd flushes on its own short interval from its forwarder thread;
//! paymetrics is flushed on demand, several times during the workload. Receiving runs concurrently with recording and stops as
//! soon as the totals are complete (or after a generous deadline).

use std::time::Duration;

use metrics::{Label, with_local_recorder};
use metrics_exporter_dogstatsd::DogStatsDBuilder;
use paymetrics::{PaymetricsBuilder, dogstatsd::DogStatsdBuilder};
use paymetrics_testkit::agent::{Aggregate, MetricType, SeriesKey, UdpReceiver};

/// How long to wait for every total to arrive; collection stops as soon as they have.
const DEADLINE: Duration = Duration::from_secs(60);
/// Operations in the workload (plus one final set per gauge).
const OPS: usize = 20_000;
/// paymetrics flushes during the workload (metrics-exporter-dogstatsd flushes on its own).
const FLUSHES: usize = 4;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug)]
struct Series {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    kind: Kind,
}

impl Series {
    fn labels(&self) -> Vec<Label> {
        self.labels.iter().map(|&(k, v)| Label::new(k, v)).collect()
    }

    fn tags(&self) -> Vec<String> {
        self.labels
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect()
    }

    fn wire_type(&self) -> MetricType {
        match self.kind {
            Kind::Counter => MetricType::Count,
            Kind::Gauge => MetricType::Gauge,
            // Both exporters send histograms as distributions by default.
            Kind::Histogram => MetricType::Distribution,
        }
    }

    fn key(&self) -> SeriesKey {
        SeriesKey {
            name: self.name.to_owned(),
            kind: self.wire_type(),
            tags: {
                let mut tags = self.tags();
                tags.sort();
                tags
            },
        }
    }
}

const EUR: &[(&str, &str)] = &[("currency", "EUR")];
const USD_DONE: &[(&str, &str)] = &[("currency", "USD"), ("status", "completed")];
const ROUTE: &[(&str, &str)] = &[
    ("route", "/v1/payments"),
    ("method", "POST"),
    ("status", "200"),
];
const NONE: &[(&str, &str)] = &[];

const SERIES: &[Series] = &[
    Series {
        name: "business.payment.attempts",
        labels: EUR,
        kind: Kind::Counter,
    },
    Series {
        name: "business.payment.attempts",
        labels: USD_DONE,
        kind: Kind::Counter,
    },
    Series {
        name: "http.server.requests",
        labels: ROUTE,
        kind: Kind::Counter,
    },
    Series {
        name: "http.server.requests",
        labels: NONE,
        kind: Kind::Counter,
    },
    Series {
        name: "queue.depth",
        labels: NONE,
        kind: Kind::Gauge,
    },
    Series {
        name: "queue.depth",
        labels: EUR,
        kind: Kind::Gauge,
    },
    Series {
        name: "db.pool.connections",
        labels: ROUTE,
        kind: Kind::Gauge,
    },
    Series {
        name: "business.payment.processing_time",
        labels: EUR,
        kind: Kind::Histogram,
    },
    Series {
        name: "business.payment.processing_time",
        labels: USD_DONE,
        kind: Kind::Histogram,
    },
    Series {
        name: "business.payment.amount",
        labels: ROUTE,
        kind: Kind::Histogram,
    },
    Series {
        name: "db.query_time",
        labels: NONE,
        kind: Kind::Histogram,
    },
];

#[derive(Debug, Clone, Copy)]
enum Op {
    Increment(usize, u64),
    Set(usize, f64),
    GaugeUp(usize, f64),
    GaugeDown(usize, f64),
    Record(usize, f64),
}

/// Values several samples share, so buckets with counts above 1 (sample rates) are exercised.
const CLUSTERED: &[f64] = &[0.25, 12.5, 42.0, 1000.0, 0.001, 1e6];

fn workload() -> Vec<Op> {
    let mut rng = Rng(0x005e_ed0f_da7a);
    let mut ops = Vec::with_capacity(OPS + SERIES.len());
    for _ in 0..OPS {
        let s = rng.below(SERIES.len());
        ops.push(match SERIES[s].kind {
            Kind::Counter => Op::Increment(s, 1 + rng.next() % 1000),
            Kind::Gauge => match rng.below(4) {
                0 | 1 => Op::Set(s, (rng.unit() * 2e6 - 1e3).round() / 8.0),
                2 => Op::GaugeUp(s, (rng.unit() * 100.0).round() / 4.0),
                _ => Op::GaugeDown(s, (rng.unit() * 100.0).round() / 4.0),
            },
            Kind::Histogram => {
                if rng.below(10) < 3 {
                    Op::Record(s, CLUSTERED[rng.below(CLUSTERED.len())])
                } else {
                    // Log-uniform over 0.001 ..= 1e6.
                    Op::Record(s, 10f64.powf(-3.0 + 9.0 * rng.unit()))
                }
            }
        });
    }
    // A last value each gauge never had before, so "the last value arrived" is unambiguous.
    for (s, series) in SERIES.iter().enumerate() {
        if series.kind == Kind::Gauge {
            ops.push(Op::Set(s, 123_456.789 + s as f64));
        }
    }
    ops
}

fn record(ops: &[Op]) {
    for op in ops {
        match *op {
            Op::Increment(s, n) => {
                metrics::counter!(SERIES[s].name, SERIES[s].labels()).increment(n);
            }
            Op::Set(s, v) => metrics::gauge!(SERIES[s].name, SERIES[s].labels()).set(v),
            Op::GaugeUp(s, v) => {
                metrics::gauge!(SERIES[s].name, SERIES[s].labels()).increment(v);
            }
            Op::GaugeDown(s, v) => {
                metrics::gauge!(SERIES[s].name, SERIES[s].labels()).decrement(v);
            }
            Op::Record(s, v) => {
                metrics::histogram!(SERIES[s].name, SERIES[s].labels()).record(v);
            }
        }
    }
}

/// The workload's exact totals per series.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Counter(u64),
    Gauge {
        last: f64,
        history: Vec<f64>,
    },
    Histogram {
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
    },
}

fn expected(ops: &[Op]) -> Vec<Expected> {
    let mut out: Vec<Expected> = SERIES
        .iter()
        .map(|s| match s.kind {
            Kind::Counter => Expected::Counter(0),
            Kind::Gauge => Expected::Gauge {
                last: 0.0,
                history: vec![],
            },
            Kind::Histogram => Expected::Histogram {
                count: 0,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            },
        })
        .collect();
    for op in ops {
        match (*op, &mut out[op_series(op)]) {
            (Op::Increment(_, n), Expected::Counter(total)) => *total += n,
            (Op::Set(_, v), Expected::Gauge { last, history }) => {
                history.push(*last);
                *last = v;
            }
            (Op::GaugeUp(_, v), Expected::Gauge { last, history }) => {
                history.push(*last);
                *last += v;
            }
            (Op::GaugeDown(_, v), Expected::Gauge { last, history }) => {
                history.push(*last);
                *last -= v;
            }
            (
                Op::Record(_, v),
                Expected::Histogram {
                    count,
                    sum,
                    min,
                    max,
                },
            ) => {
                *count += 1;
                *sum += v;
                *min = min.min(v);
                *max = max.max(v);
            }
            (op, e) => panic!("{op:?} does not apply to {e:?}"),
        }
    }
    out
}

fn op_series(op: &Op) -> usize {
    match *op {
        Op::Increment(s, _)
        | Op::Set(s, _)
        | Op::GaugeUp(s, _)
        | Op::GaugeDown(s, _)
        | Op::Record(s, _) => s,
    }
}

fn get(agg: &Aggregate, s: &Series) -> Option<paymetrics_testkit::agent::SeriesTotal> {
    let tags = s.tags();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    agg.get(s.name, s.wire_type(), &tags)
}

/// Whether every series' total is in: counter sums, last gauge values, histogram counts.
fn complete(agg: &Aggregate, expected: &[Expected]) -> bool {
    SERIES.iter().zip(expected).all(|(s, e)| {
        let Some(total) = get(agg, s) else {
            return false;
        };
        match e {
            Expected::Counter(n) => total.sum == *n as f64,
            Expected::Gauge { last, .. } => total.sum == *last,
            Expected::Histogram { count, .. } => total.count == *count as f64,
        }
    })
}

fn receiver() -> UdpReceiver {
    let rx = UdpReceiver::bind().expect("bind a UDP receiver");
    // Room for bursts while the collector thread is not scheduled (noisy machine).
    let _ = socket2::SockRef::from(rx.socket()).set_recv_buffer_size(4 << 20);
    rx
}

fn within(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs()
}

#[test]
fn paymetrics_and_metrics_exporter_dogstatsd_agree_on_totals() {
    let ops = workload();
    let expected = expected(&ops);
    for (s, e) in SERIES.iter().zip(&expected) {
        if let Expected::Gauge { last, history } = e {
            assert!(
                !history.contains(last),
                "{}: the last value must be new",
                s.name
            );
        }
    }

    let rx_theirs = receiver();
    let rx_ours = receiver();

    let theirs = DogStatsDBuilder::default()
        .with_remote_address(
            rx_theirs
                .socket()
                .local_addr()
                .expect("bound socket")
                .to_string(),
        )
        .expect("a valid address")
        .with_flush_interval(Duration::from_millis(50))
        .with_telemetry(false)
        .build()
        .expect("build metrics-exporter-dogstatsd");
    let ours = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        // `flush()` waits this long for the flusher thread: generous on a noisy machine.
        .shutdown_timeout(Duration::from_secs(60))
        .dogstatsd(
            DogStatsdBuilder::new()
                .address(rx_ours.url())
                .env_lookup(|_| None)
                .origin_detection(false)
                .telemetry(None),
        )
        .build()
        .expect("build paymetrics");

    let (agg_theirs, agg_ours) = std::thread::scope(|scope| {
        let theirs_done =
            scope.spawn(|| rx_theirs.collect_until(DEADLINE, |a| complete(a, &expected)));
        with_local_recorder(&theirs, || record(&ops));

        let ours_done = scope.spawn(|| rx_ours.collect_until(DEADLINE, |a| complete(a, &expected)));
        // Several flushes: counter deltas, gauge re-sends and histogram drains across intervals.
        for chunk in ops.chunks(ops.len().div_ceil(FLUSHES)) {
            with_local_recorder(ours.recorder(), || record(chunk));
            assert!(ours.flush(), "paymetrics flush timed out");
        }

        (
            theirs_done.join().expect("collector thread"),
            ours_done.join().expect("collector thread"),
        )
    });

    for (who, agg) in [
        ("metrics-exporter-dogstatsd", &agg_theirs),
        ("paymetrics", &agg_ours),
    ] {
        assert!(
            agg.errors.is_empty(),
            "{who}: unparsable messages: {:?}",
            agg.errors
        );
        assert!(
            complete(agg, &expected),
            "{who}: totals incomplete after {DEADLINE:?}: {:#?}",
            agg.series
        );
        let keys: Vec<&SeriesKey> = agg.series.keys().collect();
        let mut want: Vec<SeriesKey> = SERIES.iter().map(Series::key).collect();
        want.sort();
        assert_eq!(keys, want.iter().collect::<Vec<_>>(), "{who}: series sent");
    }

    for (s, e) in SERIES.iter().zip(&expected) {
        let t = get(&agg_theirs, s).expect("complete");
        let o = get(&agg_ours, s).expect("complete");
        let id = format!("{}{{{}}}", s.name, s.tags().join(","));
        match *e {
            Expected::Counter(n) => {
                assert_eq!(t.sum, n as f64, "{id}: metrics-exporter-dogstatsd sum");
                assert_eq!(o.sum, t.sum, "{id}: counter sums differ");
            }
            Expected::Gauge { last, .. } => {
                assert_eq!(t.sum, last, "{id}: metrics-exporter-dogstatsd last value");
                assert_eq!(o.sum, t.sum, "{id}: last gauge values differ");
            }
            Expected::Histogram {
                count,
                sum,
                min,
                max,
            } => {
                assert_eq!(
                    t.count, count as f64,
                    "{id}: metrics-exporter-dogstatsd count"
                );
                assert_eq!(o.count, t.count, "{id}: histogram counts differ");
                // metrics-exporter-dogstatsd sends every raw value: exact up to summation order.
                assert!(within(t.sum, sum, 1e-9), "{id}: {} != {sum}", t.sum);
                assert_eq!((t.min, t.max), (min, max), "{id}: raw min/max");
                // paymetrics sends bucket midpoints: within the bucket error (0.79 %).
                for (what, got, want) in [
                    ("sum", o.sum, t.sum),
                    ("min", o.min, min),
                    ("max", o.max, max),
                ] {
                    assert!(
                        within(got, want, 0.01),
                        "{id}: paymetrics {what} {got} vs {want} (off by {:.3} %)",
                        100.0 * (got - want).abs() / want.abs()
                    );
                }
            }
        }
    }
}
