//! Property tests of sanitisation, packing and accounting through the real data path.
//!
//! Arbitrary Unicode names, label keys and values (with `|`, `,`, `#`, `@`, `:`, newlines,
//! control characters, empty and very long strings) and arbitrary `f64` values (NaN and
//! infinities included) are recorded through the `metrics` macros into a paymetrics built with
//! its real DogStatsD exporter, flushed to a real UDP socket and parsed by the Agent's rules
//! (`paymetrics_testkit::agent::parse_payload`, strict: trailing newline required).
//!
//! Properties checked for every flush:
//!
//! * every payload fits the UDP payload limit, ends in `\n` and parses;
//! * every metric name holds only `[A-Za-z0-9_.]` (1 to 200 characters), every tag has at most
//!   200 characters and none of `|`, `,`, `#`, `@`, whitespace or control characters, and both
//!   follow the documented rules exactly;
//! * one series in, one series out: each recorded series carries a unique `pm_idx` label, so the
//!   series that come out can be matched to the ones that went in; a series is missing only if
//!   its message was larger than a payload, and then the drop is counted in the client
//!   telemetry; nothing else arrives;
//! * values: counters send their delta, gauges their last finite value, histograms their exact
//!   sample count (values within the recorded `[min, max]`); every NaN or infinite gauge or
//!   histogram value is dropped and counted in the snapshot's `non_finite_dropped`;
//! * events, service checks and timestamped points with arbitrary titles, texts, messages,
//!   host names and tags parse, round-trip and are either delivered or counted as dropped.
//!
//! One receiver and one paymetrics serve all the cases of a test; the exporter is built with
//! `expire_after_idle_flushes(1)`, so each flush carries only the series of its own case.
//!
//! Bugs these properties found have their own deterministic tests at the end.
//!
//! Failing cases are saved under `tests/proptest-regressions/` and replayed first.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use metrics::{Label, with_local_recorder};
use paymetrics::{
    Paymetrics, PaymetricsBuilder,
    dogstatsd::{DEFAULT_UDP_PAYLOAD_BYTES, DogStatsdBuilder},
    message::{AlertType, Event, Priority, ServiceCheck, ServiceCheckStatus, TimestampedMetric},
};
use paymetrics_testkit::agent::{
    EventMessage, Message, MetricMessage, MetricType, ServiceCheckMessage, UdpReceiver,
    parse_payload,
};
use proptest::{
    collection::vec,
    prelude::*,
    test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner},
};

/// The payload limit paymetrics uses on UDP.
const LIMIT: usize = DEFAULT_UDP_PAYLOAD_BYTES;
/// The longest name or tag Datadog keeps.
const MAX_LEN: usize = 200;
/// The label key that identifies a recorded series in its case.
const IDX: &str = "pm_idx";
/// How long a payload already handed to the socket may take to be read back.
const RECV_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The rules, restated from the documentation (`sanitize.rs`), as an independent oracle.

fn spec_name(raw: &str) -> String {
    let mut name = String::new();
    if !raw.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.push('m');
    }
    name.extend(raw.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            c
        } else {
            '_'
        }
    }));
    name.chars().take(MAX_LEN).collect()
}

fn spec_tag(key: &str, value: &str) -> String {
    let keep = |c: char, colon: bool| {
        c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/') || (colon && c == ':')
    };
    // A tag starts with a letter: anything else gets a leading `t`.
    let mut tag = String::from(if key.starts_with(char::is_alphabetic) {
        ""
    } else {
        "t"
    });
    tag.extend(key.chars().map(|c| if keep(c, false) { c } else { '_' }));
    if !value.is_empty() {
        tag.push(':');
        tag.extend(value.chars().map(|c| if keep(c, true) { c } else { '_' }));
    }
    // At most 200 characters, and never a trailing `:`, also after the cut.
    let tag: String = tag.chars().take(MAX_LEN).collect();
    tag.trim_end_matches(':').to_owned()
}

fn spec_raw_tag(raw: &str) -> String {
    match raw.split_once(':') {
        Some((k, v)) => spec_tag(k, v),
        None => spec_tag(raw, ""),
    }
}

fn spec_field(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, '|' | '#' | '@'))
        .collect()
}

/// What the Agent gives back for an event title or text sent escaped (no backslash in `raw`):
/// carriage returns are removed before sending.
fn agent_text(raw: &str) -> String {
    raw.replace('\r', "")
}

/// An upper bound of a sanitised tag's bytes: each kept character keeps its bytes, each other
/// one becomes one byte, plus a leading `t` and `:`; at most 200 characters of 4 bytes.
fn tag_bound(key: &str, value: &str) -> usize {
    (key.len() + value.len() + 2).min(4 * MAX_LEN)
}

fn check_name(name: &str, raw: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !name.is_empty() && name.len() <= MAX_LEN,
        "name length {}: {name:?}",
        name.len()
    );
    prop_assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
        "name {name:?} has a character outside [A-Za-z0-9_.]"
    );
    prop_assert!(
        name.starts_with(|c: char| c.is_ascii_alphabetic()),
        "name {name:?} does not start with a letter"
    );
    prop_assert_eq!(name, spec_name(raw), "name of {:?}", raw);
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !tag.is_empty() && tag.chars().count() <= MAX_LEN,
        "tag of {} characters: {tag:?}",
        tag.chars().count()
    );
    prop_assert!(
        !tag.chars()
            .any(|c| matches!(c, '|' | ',' | '#' | '@') || c.is_whitespace() || c.is_control()),
        "tag {tag:?} has a forbidden character"
    );
    prop_assert!(
        tag.starts_with(char::is_alphabetic),
        "tag {tag:?} does not start with a letter"
    );
    prop_assert!(!tag.ends_with(':'), "tag {tag:?} ends with ':'");
    prop_assert!(
        tag.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/')),
        "tag {tag:?} has a character outside Datadog's set"
    );
    Ok(())
}

/// Checks every tag and returns the `pm_idx` value with the other tags.
fn split_idx(tags: &[String]) -> Result<(String, Vec<String>), TestCaseError> {
    for tag in tags {
        check_tag(tag)?;
    }
    let prefix = format!("{IDX}:");
    let (idx, rest): (Vec<&String>, Vec<&String>) =
        tags.iter().partition(|t| t.starts_with(&prefix));
    prop_assert_eq!(idx.len(), 1, "exactly one {} tag in {:?}", IDX, tags);
    Ok((
        idx[0][prefix.len()..].to_owned(),
        rest.into_iter().cloned().collect(),
    ))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// One paymetrics with its DogStatsD exporter and its receiver, shared by a test's cases.

struct Fixture {
    rx: UdpReceiver,
    metrics: Paymetrics,
}

/// What one flush sent.
#[derive(Debug)]
struct Flushed {
    payloads: Vec<Vec<u8>>,
    /// Messages dropped before sending because they were larger than a payload.
    oversize: u64,
    /// Gauge and histogram values dropped as NaN or infinite.
    non_finite: u64,
    events: u64,
    service_checks: u64,
}

impl Fixture {
    fn new() -> Self {
        let rx = UdpReceiver::bind().expect("bind a UDP receiver");
        let metrics = PaymetricsBuilder::new()
            .flush_interval(Duration::from_secs(3600))
            // `flush()` waits this long for the flusher thread: generous on a noisy machine.
            .shutdown_timeout(Duration::from_secs(60))
            .expire_after_idle_flushes(1)
            .dogstatsd(
                DogStatsdBuilder::new()
                    .address(rx.url())
                    .env_lookup(|_| None)
                    .origin_detection(false)
                    .telemetry(None),
            )
            .build()
            .expect("build paymetrics");
        Self { rx, metrics }
    }

    fn non_finite(&self) -> u64 {
        self.metrics
            .latest_snapshot()
            .map_or(0, |s| s.stats.non_finite_dropped)
    }

    /// Flushes, then reads back exactly the payloads the exporter handed to the socket.
    fn flush(&self) -> Result<Flushed, TestCaseError> {
        let before = self.metrics.dogstatsd_telemetry().expect("dogstatsd on");
        let non_finite_before = self.non_finite();
        prop_assert!(self.metrics.flush(), "the flush did not finish in time");
        let after = self.metrics.dogstatsd_telemetry().expect("dogstatsd on");
        prop_assert_eq!(
            after.packets_dropped_writer,
            before.packets_dropped_writer,
            "the socket refused a payload"
        );
        let mut payloads = vec![];
        for _ in before.packets_sent..after.packets_sent {
            match self.rx.recv_timeout(RECV_DEADLINE) {
                Some(p) => payloads.push(p),
                None => prop_assert!(false, "a payload was sent but never arrived"),
            }
        }
        // Anything already queued beyond what was sent would be an extra datagram.
        prop_assert!(
            self.rx.recv_timeout(Duration::from_millis(1)).is_none(),
            "more datagrams arrived than the telemetry says were sent"
        );
        Ok(Flushed {
            payloads,
            oversize: after.packets_dropped_serializer - before.packets_dropped_serializer,
            non_finite: self.non_finite() - non_finite_before,
            events: after.events - before.events,
            service_checks: after.service_checks - before.service_checks,
        })
    }

    /// Flushes and forgets whatever an earlier (failed) case may have left behind.
    fn settle(&self) -> Result<(), TestCaseError> {
        self.flush().map(drop)
    }
}

/// Checks the framing of every payload and parses it.
fn parse_all(flushed: &Flushed) -> Result<Vec<Message>, TestCaseError> {
    let mut messages = vec![];
    for payload in &flushed.payloads {
        prop_assert!(
            payload.len() <= LIMIT,
            "payload of {} bytes > {LIMIT}",
            payload.len()
        );
        prop_assert!(
            payload.ends_with(b"\n"),
            "payload without a final newline: {:?}",
            String::from_utf8_lossy(payload)
        );
        match parse_payload(payload) {
            Ok(m) => messages.extend(m),
            Err(e) => prop_assert!(false, "payload does not parse: {e}"),
        }
    }
    Ok(messages)
}

fn runner(name: &'static str, cases: u32) -> TestRunner {
    TestRunner::new(Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(name))),
        ..Config::with_cases(cases)
    })
}

// ---------------------------------------------------------------------------------------------
// Strategies.

const SPECIAL: &[char] = &[
    '|', ',', '#', '@', ':', '\n', '\r', ' ', '\t', '\\', '_', '.', '-', '/', 'm', 'é', 'ß', '中',
    'Ⅻ', '٣', '😀', '\u{0}', '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{200b}', '\u{feff}',
];

fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::sample::select(SPECIAL),
        3 => proptest::char::range('a', 'z'),
        3 => any::<char>(),
    ]
}

/// Arbitrary Unicode: usually short, sometimes empty, sometimes far past 200 characters.
fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        8 => vec(any_char(), 1..24).prop_map(String::from_iter),
        1 => vec(any_char(), 190..600).prop_map(String::from_iter),
    ]
}

/// Arbitrary `f64`: every class (NaN, infinities, zeros, subnormals, extremes) and ordinary values.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        2 => proptest::sample::select(&[
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            1e15,
            -1e15,
            0.1,
            1e-7,
        ][..]),
        4 => -1e9..1e9f64,
        2 => (-1000i32..1000).prop_map(f64::from),
    ]
}

fn labels() -> impl Strategy<Value = Vec<(String, String)>> {
    vec((any_string(), any_string()), 0..4)
}

#[derive(Debug, Clone)]
enum CounterOp {
    Increment(u64),
    Absolute(u64),
}

#[derive(Debug, Clone)]
enum GaugeOp {
    Set(f64),
    Increment(f64),
    Decrement(f64),
}

#[derive(Debug, Clone)]
enum Ops {
    Counter(Vec<CounterOp>),
    Gauge(Vec<GaugeOp>),
    /// `(value, times)`.
    Histogram(Vec<(f64, usize)>),
}

#[derive(Debug, Clone)]
struct SeriesCase {
    name: String,
    labels: Vec<(String, String)>,
    ops: Ops,
}

fn ops() -> impl Strategy<Value = Ops> {
    let counter = prop_oneof![
        3 => (0..=u64::from(u32::MAX)).prop_map(CounterOp::Increment),
        1 => (0..=u64::from(u32::MAX)).prop_map(CounterOp::Absolute),
    ];
    let gauge = prop_oneof![
        3 => any_f64().prop_map(GaugeOp::Set),
        1 => any_f64().prop_map(GaugeOp::Increment),
        1 => any_f64().prop_map(GaugeOp::Decrement),
    ];
    prop_oneof![
        vec(counter, 0..6).prop_map(Ops::Counter),
        vec(gauge, 0..6).prop_map(Ops::Gauge),
        vec(
            (any_f64(), prop_oneof![4 => Just(1usize), 1 => 2..50usize]),
            0..12
        )
        .prop_map(Ops::Histogram),
    ]
}

fn metric_name() -> impl Strategy<Value = String> {
    any_string()
}

fn series_case() -> impl Strategy<Value = SeriesCase> {
    (metric_name(), labels(), ops()).prop_map(|(name, labels, ops)| SeriesCase {
        name,
        labels,
        ops,
    })
}

// ---------------------------------------------------------------------------------------------
// Metrics.

/// What a series should look like at the Agent, simulated from its operations.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    /// Not sent: a counter with a zero delta, a gauge never set to a finite value, an empty
    /// histogram.
    Nothing,
    Counter(u64),
    Gauge(f64),
    Histogram {
        count: u64,
        min: f64,
        max: f64,
    },
}

/// The expected outcome and the number of values dropped as non-finite.
fn simulate(ops: &Ops) -> (Expected, u64) {
    let mut dropped = 0;
    let expected = match ops {
        Ops::Counter(ops) => {
            let mut total = 0u64;
            for op in ops {
                match *op {
                    CounterOp::Increment(n) => total += n,
                    CounterOp::Absolute(n) => total = total.max(n),
                }
            }
            if total > 0 {
                Expected::Counter(total)
            } else {
                Expected::Nothing
            }
        }
        Ops::Gauge(ops) => {
            let (mut value, mut touched) = (0.0f64, false);
            for op in ops {
                let next = match *op {
                    GaugeOp::Set(v) => v,
                    GaugeOp::Increment(d) if d.is_finite() => value + d,
                    GaugeOp::Decrement(d) if d.is_finite() => value - d,
                    GaugeOp::Increment(_) | GaugeOp::Decrement(_) => f64::NAN,
                };
                if next.is_finite() {
                    value = next;
                    touched = true;
                } else {
                    dropped += 1;
                }
            }
            if touched {
                Expected::Gauge(value)
            } else {
                Expected::Nothing
            }
        }
        Ops::Histogram(values) => {
            let (mut count, mut min, mut max) = (0u64, f64::INFINITY, f64::NEG_INFINITY);
            for &(v, times) in values {
                if v.is_finite() {
                    count += times as u64;
                    min = min.min(v);
                    max = max.max(v);
                } else {
                    dropped += times as u64;
                }
            }
            if count > 0 {
                Expected::Histogram { count, min, max }
            } else {
                Expected::Nothing
            }
        }
    };
    (expected, dropped)
}

fn record(cases: &[SeriesCase]) {
    for (i, case) in cases.iter().enumerate() {
        let mut labels: Vec<Label> = case
            .labels
            .iter()
            .map(|(k, v)| Label::new(k.clone(), v.clone()))
            .collect();
        labels.push(Label::new(IDX, i.to_string()));
        match &case.ops {
            Ops::Counter(ops) => {
                let counter = metrics::counter!(case.name.clone(), labels);
                for op in ops {
                    match *op {
                        CounterOp::Increment(n) => counter.increment(n),
                        CounterOp::Absolute(n) => counter.absolute(n),
                    }
                }
            }
            Ops::Gauge(ops) => {
                let gauge = metrics::gauge!(case.name.clone(), labels);
                for op in ops {
                    match *op {
                        GaugeOp::Set(v) => gauge.set(v),
                        GaugeOp::Increment(v) => gauge.increment(v),
                        GaugeOp::Decrement(v) => gauge.decrement(v),
                    }
                }
            }
            Ops::Histogram(values) => {
                let histogram = metrics::histogram!(case.name.clone(), labels);
                for &(v, times) in values {
                    for _ in 0..times {
                        histogram.record(v);
                    }
                }
            }
        }
    }
}

/// Whether every message of the series surely fits a payload: name, tags and room for a value,
/// a type and a sample rate.
fn surely_fits(case: &SeriesCase) -> bool {
    let name = case.name.len().clamp(1, MAX_LEN);
    let tags: usize = case
        .labels
        .iter()
        .map(|(k, v)| tag_bound(k, v) + 1)
        .sum::<usize>()
        + IDX.len()
        + 8;
    name + tags + 80 <= LIMIT
}

fn check_metrics(fx: &Fixture, cases: &[SeriesCase]) -> Result<(), TestCaseError> {
    fx.settle()?;
    with_local_recorder(fx.metrics.recorder(), || record(cases));
    let flushed = fx.flush()?;
    let messages = parse_all(&flushed)?;

    let mut by_series: BTreeMap<usize, Vec<MetricMessage>> = BTreeMap::new();
    for message in messages {
        let Message::Metric(m) = message else {
            prop_assert!(false, "not a metric: {message:?}");
            unreachable!()
        };
        let (idx, tags) = split_idx(&m.tags)?;
        let i: usize = idx
            .parse()
            .map_err(|_| TestCaseError::fail(format!("{IDX} tag {idx:?} is not an index")))?;
        prop_assert!(i < cases.len(), "{} {} out of range", IDX, i);
        let case = &cases[i];
        check_name(&m.name, &case.name)?;
        let expected_tags: Vec<String> = case.labels.iter().map(|(k, v)| spec_tag(k, v)).collect();
        prop_assert_eq!(sorted(tags), sorted(expected_tags), "tags of series {}", i);
        prop_assert!(m.container.is_none() && m.external.is_none() && m.timestamp.is_none());
        by_series.entry(i).or_default().push(m);
    }

    let mut expected_non_finite = 0;
    let mut missing = 0;
    let mut any_may_not_fit = false;
    for (i, case) in cases.iter().enumerate() {
        let (expected, dropped) = simulate(&case.ops);
        expected_non_finite += dropped;
        let fits = surely_fits(case);
        any_may_not_fit |= !fits;
        let got = by_series.remove(&i).unwrap_or_default();
        if got.is_empty() {
            if expected != Expected::Nothing {
                prop_assert!(
                    !fits,
                    "series {i} ({expected:?}) fits a payload but never arrived"
                );
                missing += 1;
            }
            continue;
        }
        match expected {
            Expected::Nothing => prop_assert!(false, "series {i} should not be sent: {got:?}"),
            Expected::Counter(delta) => {
                prop_assert_eq!(got.len(), 1);
                let m = &got[0];
                prop_assert_eq!(m.kind, MetricType::Count);
                prop_assert_eq!(&m.values, &vec![delta as f64]);
                prop_assert_eq!(m.sample_rate, 1.0);
            }
            Expected::Gauge(value) => {
                prop_assert_eq!(got.len(), 1);
                let m = &got[0];
                prop_assert_eq!(m.kind, MetricType::Gauge);
                prop_assert_eq!(&m.values, &vec![value]);
            }
            Expected::Histogram { count, min, max } => {
                let mut seen = 0u64;
                for m in &got {
                    prop_assert_eq!(m.kind, MetricType::Distribution);
                    prop_assert!(m.sample_rate > 0.0 && m.sample_rate <= 1.0);
                    // The Agent's integer weight, as `Aggregate` computes it.
                    let weight = (1.0 / m.sample_rate).trunc() as u64;
                    for &v in &m.values {
                        prop_assert!(
                            v >= min && v <= max,
                            "series {i}: value {v} outside [{min}, {max}]"
                        );
                        seen += weight;
                    }
                    prop_assert_eq!(&m.name, &got[0].name);
                    prop_assert_eq!(sorted(m.tags.clone()), sorted(got[0].tags.clone()));
                }
                if flushed.oversize == 0 {
                    prop_assert_eq!(seen, count, "sample count of series {}", i);
                } else {
                    prop_assert!(seen <= count);
                }
                if count == 1 {
                    prop_assert_eq!(&got[0].values, &vec![min], "a single sample is exact");
                }
            }
        }
    }
    prop_assert!(
        missing <= flushed.oversize,
        "{missing} series missing, only {} messages counted as too large",
        flushed.oversize
    );
    prop_assert!(
        flushed.oversize == 0 || any_may_not_fit,
        "{} messages dropped as too large although every series fits",
        flushed.oversize
    );
    prop_assert_eq!(
        flushed.non_finite,
        expected_non_finite,
        "non-finite values dropped and counted"
    );
    Ok(())
}

#[test]
fn any_metric_input_yields_valid_complete_datagrams() {
    let fx = Fixture::new();
    let mut runner = runner(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/sanitize_props_metrics.txt"
        ),
        64,
    );
    runner
        .run(&vec(series_case(), 1..7), |cases| {
            check_metrics(&fx, &cases)
        })
        .unwrap();
}

/// Many series at once: several payloads per flush, every one within the limit, none lost.
#[test]
fn many_series_are_packed_into_valid_payloads() {
    let fx = Fixture::new();
    let mut runner = runner(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/sanitize_props_packing.txt"
        ),
        12,
    );
    runner
        .run(&vec(series_case(), 24..64), |cases| {
            check_metrics(&fx, &cases)
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Events, service checks and timestamped points.

#[derive(Debug, Clone)]
struct EventCase {
    title: String,
    text: String,
    hostname: Option<String>,
    aggregation_key: Option<String>,
    source_type_name: Option<String>,
    low_priority: bool,
    alert_type: u8,
    timestamp: Option<u64>,
    tags: Vec<(String, String)>,
    raw_tags: Vec<String>,
}

#[derive(Debug, Clone)]
struct CheckCase {
    name: String,
    status: u8,
    hostname: Option<String>,
    message: Option<String>,
    timestamp: Option<u64>,
    tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct PointCase {
    name: String,
    gauge: bool,
    value: f64,
    seconds: u64,
    tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct MessagesCase {
    events: Vec<EventCase>,
    checks: Vec<CheckCase>,
    points: Vec<PointCase>,
}

fn long_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => any_string(),
        1 => vec(any_char(), 600..2500).prop_map(String::from_iter),
    ]
}

fn event_case() -> impl Strategy<Value = EventCase> {
    (
        (any_string(), long_text()),
        (
            proptest::option::of(any_string()),
            proptest::option::of(any_string()),
            proptest::option::of(any_string()),
        ),
        (
            any::<bool>(),
            0..4u8,
            proptest::option::of(0..=i64::MAX as u64),
        ),
        (labels(), vec(any_string(), 0..3)),
    )
        .prop_map(
            |(
                (title, text),
                (hostname, aggregation_key, source_type_name),
                (low_priority, alert_type, timestamp),
                (tags, raw_tags),
            )| EventCase {
                title,
                text,
                hostname,
                aggregation_key,
                source_type_name,
                low_priority,
                alert_type,
                timestamp,
                tags,
                raw_tags,
            },
        )
}

fn check_case() -> impl Strategy<Value = CheckCase> {
    (
        any_string(),
        0..4u8,
        proptest::option::of(any_string()),
        proptest::option::of(long_text()),
        proptest::option::of(0..=i64::MAX as u64),
        labels(),
    )
        .prop_map(
            |(name, status, hostname, message, timestamp, tags)| CheckCase {
                name,
                status,
                hostname,
                message,
                timestamp,
                tags,
            },
        )
}

fn point_case() -> impl Strategy<Value = PointCase> {
    (
        metric_name(),
        any::<bool>(),
        any_f64(),
        1_000_000_000u64..4_000_000_000,
        labels(),
    )
        .prop_map(|(name, gauge, value, seconds, tags)| PointCase {
            name,
            gauge,
            value,
            seconds,
            tags,
        })
}

fn messages_case() -> impl Strategy<Value = MessagesCase> {
    (
        vec(event_case(), 0..4),
        vec(check_case(), 0..4),
        vec(point_case(), 0..4),
    )
        .prop_map(|(events, checks, points)| MessagesCase {
            events,
            checks,
            points,
        })
}

fn build_event(i: usize, c: &EventCase) -> Event {
    let mut e = Event::new(c.title.clone(), c.text.clone())
        .priority(if c.low_priority {
            Priority::Low
        } else {
            Priority::Normal
        })
        .alert_type(match c.alert_type {
            0 => AlertType::Info,
            1 => AlertType::Error,
            2 => AlertType::Warning,
            _ => AlertType::Success,
        });
    e.hostname = c.hostname.clone();
    e.aggregation_key = c.aggregation_key.clone();
    e.source_type_name = c.source_type_name.clone();
    e.timestamp = c.timestamp;
    for (k, v) in &c.tags {
        e = e.tag(k, v);
    }
    e.tags.extend(c.raw_tags.iter().cloned());
    e.tag(IDX, &format!("e{i}"))
}

fn build_check(i: usize, c: &CheckCase) -> ServiceCheck {
    let status = match c.status {
        0 => ServiceCheckStatus::Ok,
        1 => ServiceCheckStatus::Warning,
        2 => ServiceCheckStatus::Critical,
        _ => ServiceCheckStatus::Unknown,
    };
    let mut sc = ServiceCheck::new(c.name.clone(), status);
    sc.hostname = c.hostname.clone();
    sc.message = c.message.clone();
    sc.timestamp = c.timestamp;
    for (k, v) in &c.tags {
        sc = sc.tag(k, v);
    }
    sc.tag(IDX, &format!("s{i}"))
}

fn build_point(i: usize, c: &PointCase) -> TimestampedMetric {
    let at = UNIX_EPOCH + Duration::from_secs(c.seconds);
    let mut p = if c.gauge {
        TimestampedMetric::gauge(c.name.clone(), c.value, at)
    } else {
        TimestampedMetric::count(c.name.clone(), c.value, at)
    };
    for (k, v) in &c.tags {
        p = p.tag(k, v);
    }
    p.tag(IDX, &format!("t{i}"))
}

/// The tags `.tag(key, value)` stores: a `:` in the key becomes `_`, as in metric labels.
fn raw_tags_of(tags: &[(String, String)]) -> Vec<String> {
    tags.iter()
        .map(|(k, v)| format!("{}:{v}", k.replace(':', "_")))
        .collect()
}

fn opt_len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, |s| s.len() + 4)
}

fn raw_tags_bound(tags: &[String]) -> usize {
    tags.iter()
        .map(|t| (t.len() + 2).min(4 * MAX_LEN) + 1)
        .sum::<usize>()
        + IDX.len()
        + 8
}

/// An upper bound of an event's bytes without its text (newline escapes at most double).
fn event_bound_without_text(c: &EventCase) -> usize {
    let mut tags = raw_tags_of(&c.tags);
    tags.extend(c.raw_tags.iter().cloned());
    16 + 2 * c.title.len().max(10)
        + 1
        + opt_len(&c.hostname)
        + opt_len(&c.aggregation_key)
        + opt_len(&c.source_type_name)
        + 24 // |d:<u64>
        + 16 // |p:low|t:warning
        + raw_tags_bound(&tags)
        + 1
}

fn check_bound(c: &CheckCase) -> usize {
    // `m:` becomes `m\:` and a newline `\n`: at most double.
    8 + c.name.len().clamp(1, MAX_LEN)
        + 4
        + 24
        + opt_len(&c.hostname)
        + raw_tags_bound(&raw_tags_of(&c.tags))
        + c.message.as_ref().map_or(0, |m| 2 * m.len() + 4)
        + 1
}

fn point_bound(c: &PointCase) -> usize {
    c.name.len().clamp(1, MAX_LEN) + 1 + 24 + 2 + raw_tags_bound(&raw_tags_of(&c.tags)) + 24 + 1
}

fn check_event(c: &EventCase, e: &EventMessage, rest: Vec<String>) -> Result<(), TestCaseError> {
    let expected_tags: Vec<String> = raw_tags_of(&c.tags)
        .iter()
        .chain(&c.raw_tags)
        .map(|t| spec_raw_tag(t))
        .collect();
    prop_assert_eq!(sorted(rest), sorted(expected_tags));
    if !c.title.contains('\\') {
        // An empty title (also one that is empty once carriage returns are removed) is sent
        // as "(untitled)": the Agent rejects an empty one.
        let title = match agent_text(&c.title) {
            t if t.is_empty() => "(untitled)".to_owned(),
            t => t,
        };
        // A title is cut, like the text, when the event would not fit a payload otherwise.
        prop_assert!(
            e.title == title || (e.title != "(untitled)" && title.starts_with(&e.title)),
            "title {:?} arrived as {:?}",
            title,
            e.title
        );
    }
    if !c.text.contains('\\') {
        let text = agent_text(&c.text);
        prop_assert!(
            text.starts_with(&e.text),
            "text {:?} is not a prefix of {:?}",
            e.text,
            text
        );
        if event_bound_without_text(c) + 2 * c.text.len() <= LIMIT {
            prop_assert_eq!(&e.text, &text, "a text that fits is not cut");
        }
    }
    let mut expected_fields: Vec<(String, String)> = vec![];
    if let Some(ts) = c.timestamp {
        expected_fields.push(("d".into(), ts.to_string()));
    }
    for (prefix, value) in [
        ("h", &c.hostname),
        ("k", &c.aggregation_key),
        ("s", &c.source_type_name),
    ] {
        if let Some(v) = value {
            expected_fields.push((prefix.into(), spec_field(v)));
        }
    }
    if c.low_priority {
        expected_fields.push(("p".into(), "low".into()));
    }
    match c.alert_type {
        0 => {}
        1 => expected_fields.push(("t".into(), "error".into())),
        2 => expected_fields.push(("t".into(), "warning".into())),
        _ => expected_fields.push(("t".into(), "success".into())),
    }
    let mut fields = e.fields.clone();
    fields.sort();
    expected_fields.sort();
    prop_assert_eq!(fields, expected_fields);
    Ok(())
}

fn check_service_check(
    c: &CheckCase,
    sc: &ServiceCheckMessage,
    rest: Vec<String>,
) -> Result<(), TestCaseError> {
    check_name(&sc.name, &c.name)?;
    prop_assert_eq!(sc.status, c.status);
    let expected_tags: Vec<String> = raw_tags_of(&c.tags)
        .iter()
        .map(|t| spec_raw_tag(t))
        .collect();
    prop_assert_eq!(sorted(rest), sorted(expected_tags));
    match &c.message {
        None => prop_assert_eq!(&sc.message, &None),
        Some(m) if !m.contains('\\') => {
            let expected = agent_text(m).replace('|', "_");
            let got = sc.message.as_deref().unwrap_or_default();
            prop_assert!(
                got == expected,
                "message {:?} arrived as {:?}",
                m,
                sc.message
            );
        }
        Some(_) => prop_assert!(sc.message.is_some()),
    }
    Ok(())
}

fn check_point(c: &PointCase, m: &MetricMessage, rest: Vec<String>) -> Result<(), TestCaseError> {
    check_name(&m.name, &c.name)?;
    let expected_tags: Vec<String> = raw_tags_of(&c.tags)
        .iter()
        .map(|t| spec_raw_tag(t))
        .collect();
    prop_assert_eq!(sorted(rest), sorted(expected_tags));
    prop_assert_eq!(
        m.kind,
        if c.gauge {
            MetricType::Gauge
        } else {
            MetricType::Count
        }
    );
    prop_assert_eq!(m.timestamp, Some(c.seconds as i64));
    prop_assert_eq!(m.values.len(), 1);
    if c.value.is_finite() {
        prop_assert_eq!(m.values[0], c.value);
    }
    Ok(())
}

fn check_messages(fx: &Fixture, case: &MessagesCase) -> Result<(), TestCaseError> {
    fx.settle()?;
    for (i, c) in case.events.iter().enumerate() {
        prop_assert!(fx.metrics.send(build_event(i, c)));
    }
    for (i, c) in case.checks.iter().enumerate() {
        prop_assert!(fx.metrics.send(build_check(i, c)));
    }
    for (i, c) in case.points.iter().enumerate() {
        // A non-finite point is refused (and counted); the others are queued.
        prop_assert_eq!(fx.metrics.send(build_point(i, c)), c.value.is_finite());
    }
    let flushed = fx.flush()?;
    prop_assert_eq!(flushed.events, case.events.len() as u64);
    prop_assert_eq!(flushed.service_checks, case.checks.len() as u64);
    let messages = parse_all(&flushed)?;

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for message in &messages {
        let (idx, rest) = match message {
            Message::Event(e) => split_idx(&e.tags)?,
            Message::ServiceCheck(sc) => split_idx(&sc.tags)?,
            Message::Metric(m) => split_idx(&m.tags)?,
        };
        *seen.entry(idx.clone()).or_default() += 1;
        let (kind, i) = idx.split_at(1);
        let i: usize = i
            .parse()
            .map_err(|_| TestCaseError::fail(format!("bad {IDX} tag {idx:?}")))?;
        match (kind, message) {
            ("e", Message::Event(e)) if i < case.events.len() => {
                check_event(&case.events[i], e, rest)?
            }
            ("s", Message::ServiceCheck(sc)) if i < case.checks.len() => {
                check_service_check(&case.checks[i], sc, rest)?
            }
            ("t", Message::Metric(m)) if i < case.points.len() => {
                check_point(&case.points[i], m, rest)?
            }
            _ => prop_assert!(false, "unexpected message {message:?}"),
        }
    }
    prop_assert!(
        seen.values().all(|&n| n == 1),
        "a message arrived twice: {seen:?}"
    );

    let finite_points = case.points.iter().filter(|p| p.value.is_finite()).count();
    let sent = case.events.len() + case.checks.len() + finite_points;
    prop_assert_eq!(
        messages.len() as u64 + flushed.oversize,
        sent as u64,
        "every message is delivered or counted as too large"
    );
    let must_arrive = case
        .events
        .iter()
        .enumerate()
        .filter(|(_, c)| event_bound_without_text(c) <= LIMIT)
        .map(|(i, _)| format!("e{i}"))
        .chain(
            case.checks
                .iter()
                .enumerate()
                .filter(|(_, c)| check_bound(c) <= LIMIT)
                .map(|(i, _)| format!("s{i}")),
        )
        .chain(
            case.points
                .iter()
                .enumerate()
                .filter(|(_, c)| c.value.is_finite() && point_bound(c) <= LIMIT)
                .map(|(i, _)| format!("t{i}")),
        );
    for idx in must_arrive {
        prop_assert!(
            seen.contains_key(&idx),
            "{idx} fits a payload but never arrived"
        );
    }
    prop_assert_eq!(
        flushed.non_finite,
        (case.points.len() - finite_points) as u64
    );
    Ok(())
}

#[test]
fn any_event_service_check_or_point_parses() {
    let fx = Fixture::new();
    let mut runner = runner(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/sanitize_props_messages.txt"
        ),
        64,
    );
    runner
        .run(&messages_case(), |case| check_messages(&fx, &case))
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Deterministic cases.

/// A gauge or histogram that only ever received NaN or infinities sends nothing and counts
/// every dropped value.
#[test]
fn non_finite_only_series_send_nothing_and_are_counted() {
    let fx = Fixture::new();
    with_local_recorder(fx.metrics.recorder(), || {
        let g = metrics::gauge!("only.nan.gauge");
        g.set(f64::NAN);
        g.set(f64::INFINITY);
        g.increment(f64::NEG_INFINITY);
        let h = metrics::histogram!("only.nan.histogram");
        h.record(f64::NAN);
        h.record(f64::INFINITY);
        metrics::counter!("marker").increment(1);
    });
    let flushed = fx.flush().unwrap();
    let messages = parse_all(&flushed).unwrap();
    assert_eq!(flushed.non_finite, 5);
    let names: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Metric(m) => Some(m.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["marker"]);
}

/// Regression: with the default idle expiry (30 flushes), a gauge that only ever received NaN or
/// infinities is exported as `0` on every flush until it expires, a value nobody recorded; the
/// non-finite values themselves are dropped and counted. (A gauge registered and never set is
/// exported as `0` the same way.) The gauge is active from registration on, not from its first
/// accepted value: `Inner::collect` (recorder/mod.rs) marks it `active` from its idle count,
/// and `DogStatsdExporter::encode_snapshot` (dogstatsd/mod.rs) sends every active gauge.
#[test]
fn gauge_only_set_to_nan_is_not_exported_with_default_expiry() {
    let rx = UdpReceiver::bind().unwrap();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        // `flush()` waits this long for the flusher thread: generous on a noisy machine.
        .shutdown_timeout(Duration::from_secs(60))
        .dogstatsd(
            DogStatsdBuilder::new()
                .address(rx.url())
                .env_lookup(|_| None)
                .origin_detection(false)
                .telemetry(None),
        )
        .build()
        .unwrap();
    with_local_recorder(metrics.recorder(), || {
        metrics::gauge!("only.nan").set(f64::NAN);
        metrics::counter!("marker").increment(1);
    });
    let fx = Fixture { rx, metrics };
    let lines = sent_lines(&fx);
    assert_eq!(fx.non_finite(), 1);
    assert_eq!(lines, ["marker:1|c"]);
}

fn sent_lines(fx: &Fixture) -> Vec<String> {
    let flushed = fx.flush().unwrap();
    flushed
        .payloads
        .iter()
        .flat_map(|p| {
            String::from_utf8(p.clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Regression: a metric whose sanitised name started with `_sc` (`_scheduler.runs`, or `@scan.count`
/// and `/scale` once sanitised) is sent as `_sc...:1|c`; the Agent's `findMessageType` reads
/// every message starting with `_sc` as a service check, which then fails to parse, so the
/// metric is lost at the Agent without any client-side count.
#[test]
fn metric_names_starting_with_sc_parse_as_metrics() {
    let fx = Fixture::new();
    with_local_recorder(fx.metrics.recorder(), || {
        metrics::counter!("_scheduler.runs").increment(1);
        metrics::counter!("@scan.count").increment(1);
        metrics::gauge!("/scale").set(2.0);
    });
    let flushed = fx.flush().unwrap();
    for payload in &flushed.payloads {
        let messages = parse_payload(payload).unwrap_or_else(|e| {
            panic!("{e} in {:?}", String::from_utf8_lossy(payload).into_owned())
        });
        assert!(messages.iter().all(|m| matches!(m, Message::Metric(_))));
    }
}

/// Regression: an event text ending in `\r` is sent as `...|text\r\n` when no field follows the text;
/// the Agent drops the `\r` before `\n` (`dropCR`), so the text is one byte short of its
/// declared length and the whole event is rejected.
#[test]
fn event_text_ending_in_carriage_return_parses() {
    let fx = Fixture::new();
    assert!(fx.metrics.send(Event::new("deploy", "done\r")));
    let flushed = fx.flush().unwrap();
    for payload in &flushed.payloads {
        parse_payload(payload).unwrap_or_else(|e| {
            panic!("{e} in {:?}", String::from_utf8_lossy(payload).into_owned())
        });
    }
    assert_eq!(flushed.payloads.len(), 1);
}

/// A service-check message ending in `\r` used to lose it at the Agent (`m:` is the last field
/// and the Agent drops a `\r` before the newline): carriage returns are now removed, documented.
#[test]
fn service_check_message_ending_in_carriage_return_round_trips() {
    let fx = Fixture::new();
    assert!(
        fx.metrics
            .send(ServiceCheck::new("svc.up", ServiceCheckStatus::Ok).message("line\r"))
    );
    let flushed = fx.flush().unwrap();
    let messages = parse_all(&flushed).unwrap();
    let [Message::ServiceCheck(sc)] = &messages[..] else {
        panic!("{messages:?}")
    };
    assert_eq!(sc.message.as_deref(), Some("line"));
}

/// Regression: a NaN or infinite timestamped point is sent as the value 0 (a fabricated data point)
/// instead of being dropped and counted like every other non-finite value.
#[test]
fn non_finite_timestamped_points_are_dropped_and_counted() {
    let fx = Fixture::new();
    let at = SystemTime::now();
    // Refused at the door, and counted.
    assert!(
        !fx.metrics
            .send(TimestampedMetric::gauge("rollup.total", f64::NAN, at))
    );
    assert!(
        !fx.metrics
            .send(TimestampedMetric::count("rollup.count", f64::INFINITY, at))
    );
    let lines = sent_lines(&fx);
    assert_eq!(lines, Vec::<String>::new(), "non-finite points were sent");
    assert_eq!(fx.non_finite(), 2);
}

/// The timestamped kinds map to the right wire types (a sanity check of the property above).
#[test]
fn timestamped_points_keep_their_kind() {
    let fx = Fixture::new();
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert!(fx.metrics.send(TimestampedMetric::gauge("a", 1.5, at)));
    assert!(fx.metrics.send(TimestampedMetric::count("b", 2.0, at)));
    assert_eq!(
        sent_lines(&fx),
        ["a:1.5|g|T1700000000", "b:2|c|T1700000000"]
    );
}

// ---------------------------------------------------------------------------------------------
// Datadog's tag and name rules, checked on their own and through a prefixed exporter.

proptest! {
    #![proptest_config(Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/sanitize_rules.txt",
        ))),
        ..Config::with_cases(512)
    })]

    /// Every tag starts with a letter, keeps only Datadog's characters, has at most 200
    /// characters and never ends with `:`, whatever the key and value (also after the cut).
    #[test]
    fn any_tag_follows_datadogs_rules(key in any_string(), value in any_string()) {
        let tag = paymetrics::dogstatsd::sanitize::tag(&key, &value);
        check_tag(&tag)?;
        prop_assert_eq!(tag, spec_tag(&key, &value));
    }

    /// A prefix and a name together: at most 200 characters, starting with the prefix's letter.
    #[test]
    fn prefix_and_name_are_cut_together(prefix in "[a-z][a-z0-9_.]{0,120}", raw in any_string()) {
        let name = paymetrics::dogstatsd::sanitize::prefixed_name(&prefix, &raw);
        prop_assert!(name.len() <= MAX_LEN, "{} characters: {name}", name.len());
        let dotted = format!("{}.", prefix);
        prop_assert!(name.starts_with(&dotted) || name.len() == MAX_LEN, "{}", name);
        prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'));
    }
}

/// The prefix and the name are cut together on the wire too: a 150-character prefix and a
/// 150-character name give a 200-character name.
#[test]
fn prefixed_names_on_the_wire_have_at_most_200_characters() {
    let rx = UdpReceiver::bind().unwrap();
    let prefix = format!("p{}", "x".repeat(149));
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .dogstatsd(
            DogStatsdBuilder::new()
                .address(rx.url())
                .env_lookup(|_| None)
                .origin_detection(false)
                .telemetry(None)
                .prefix(prefix.clone()),
        )
        .build()
        .unwrap();
    let name = format!("n{}", "y".repeat(149));
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!(name.clone(), "version" => "1.0:").increment(1)
    });
    assert!(metrics.flush());
    let payload = rx.recv_timeout(RECV_DEADLINE).unwrap();
    let line = String::from_utf8(payload).unwrap();
    let expected_name = format!("{prefix}.{}", &name[..MAX_LEN - prefix.len() - 1]);
    assert_eq!(line, format!("{expected_name}:1|c|#version:1.0\n"));
}

/// A timestamp past `i64::MAX` seconds cannot be represented by Datadog: the point, event or
/// service check is refused when queued, and counted.
#[test]
fn timestamps_past_i64_max_are_dropped_and_counted() {
    let fx = Fixture::new();
    let mut point = TimestampedMetric::gauge("rollup.total", 1.0, SystemTime::now());
    point.timestamp = i64::MAX as u64 + 1;
    assert!(!fx.metrics.send(point.clone()));
    let mut event = Event::new("deploy", "text");
    event.timestamp = Some(u64::MAX);
    assert!(!fx.metrics.send(event));
    point.timestamp = i64::MAX as u64;
    assert!(fx.metrics.send(point), "i64::MAX itself is representable");
    let lines = sent_lines(&fx);
    assert_eq!(
        lines,
        vec![format!("rollup.total:1|g|T{}", i64::MAX)],
        "only the representable point was sent"
    );
    let stats = fx.metrics.latest_snapshot().unwrap().stats;
    assert_eq!(stats.invalid_dropped, 2);
}
