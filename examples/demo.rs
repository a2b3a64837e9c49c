//! The paymetrics demo: ten seconds of simulated payment traffic, recorded through the
//! [`metrics`] macros, aggregated by paymetrics and sent over DogStatsD.
//!
//! ```sh
//! cargo run --example demo                          # to a DogStatsD listener inside the demo
//! DD_AGENT_HOST=localhost cargo run --example demo  # to your Datadog Agent instead
//! ```
//!
//! The traffic follows the seed design's `_simulate_business_events`: bursts of 10 to 50
//! payments in USD, EUR or GBP, by card, bank or wallet; 95 % complete in 100 to 2000 ms and pay
//! a 2.9 % fee. Each payment is recorded as the seed's `track_payment_attempt` and
//! `track_payment_completion` record it, with two changes so that every tag value shows up:
//! amounts spread from under 10 to over 10,000 (log-normal around 80, not uniform between 10 and
//! 1000), and the 5 % that fail are reported too (declined within 100 ms, or timed out after
//! 2 s), so `business.payment.success_rate` has a `success:false` side. Transaction, sender and
//! receiver ids are not sent: an id is never a tag.
//!
//! paymetrics flushes every second. With no agent configured, the demo starts its own DogStatsD
//! listener, parses what arrives by the Agent's rules and shows it as a table, redrawn every
//! second on a terminal; at the end it checks that what arrived adds up to what was simulated.
//! With `DD_AGENT_HOST` or `DD_DOGSTATSD_URL` set, paymetrics sends to that agent and the table
//! shows paymetrics' own account instead: the snapshots of its flushes, kept in memory.
//!
//! The table has a row per metric, type, status and success; with over 200 series in play, the
//! other tags (currency, payment method, amount range, processing time) are summed over and
//! totalled under it.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    io::{self, IsTerminal, Write as _},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use metrics::{Counter, Histogram};
use paymetrics::{
    PaymetricsBuilder,
    dogstatsd::{ClientTelemetry, DogStatsdBuilder},
    export::{MemoryExporter, MemoryReader},
    histogram::RELATIVE_ERROR,
    snapshot::{SeriesValue, Snapshot},
};
use paymetrics_workspace::agent::{Aggregate, MetricType, UdpReceiver};

/// How long the traffic runs.
const RUN_FOR: Duration = Duration::from_secs(10);
/// How often paymetrics flushes, and the table is redrawn.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Time between two bursts of payments.
const BURST_INTERVAL: Duration = Duration::from_millis(100);

// Metric names and tag keys, from the seed design.

/// Counter: payment attempts. Tags: currency, payment_method, amount_range.
const ATTEMPTS: &str = "business.payment.attempts";
/// Distribution: the amount of each attempt, in its currency. Tags: as `ATTEMPTS`.
const AMOUNT: &str = "business.payment.amount";
/// Counter: payments finished, completed or failed. Tags: status, currency, payment_method,
/// processing_time_bucket.
const COMPLETIONS: &str = "business.payment.completions";
/// Distribution, milliseconds: the time a payment took to finish. Tags: as `COMPLETIONS`.
const PROCESSING_TIME: &str = "business.payment.processing_time";
/// Counter: finished payments again, with `success:true|false` for success-rate charts.
/// Tags: those of `COMPLETIONS`, and success.
const SUCCESS_RATE: &str = "business.payment.success_rate";
/// Distribution: the amount of each completed payment. Tags: as `COMPLETIONS`.
const TRANSACTION_VALUE: &str = "business.revenue.transaction_value";
/// Distribution: the fee of each completed payment (2.9 % of its amount). Tags: as `COMPLETIONS`.
const FEES: &str = "business.revenue.fees";

const TAG_CURRENCY: &str = "currency";
const TAG_PAYMENT_METHOD: &str = "payment_method";
const TAG_AMOUNT_RANGE: &str = "amount_range";
const TAG_STATUS: &str = "status";
const TAG_PROCESSING_TIME_BUCKET: &str = "processing_time_bucket";
const TAG_SUCCESS: &str = "success";

/// Declares the values of a tag as a closed enum, with `ALL` its variants and `as_str` the
/// tag value of each: the number of series is known before the first payment.
macro_rules! tag_values {
    ($name:ident { $($variant:ident => $value:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        enum $name {
            $($variant),+
        }

        impl $name {
            const ALL: &[Self] = &[$(Self::$variant),+];
            #[allow(dead_code, reason = "not every tag has a breakdown")]
            const VALUES: &[&str] = &[$($value),+];

            fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value),+
                }
            }
        }
    };
}

tag_values!(Currency { Usd => "USD", Eur => "EUR", Gbp => "GBP" });
tag_values!(PaymentMethod { Card => "card", Bank => "bank", Wallet => "wallet" });
tag_values!(AmountRange {
    Micro => "micro",
    Small => "small",
    Medium => "medium",
    Large => "large",
    Enterprise => "enterprise",
});
tag_values!(Status { Completed => "completed", Failed => "failed" });
tag_values!(ProcessingTimeBucket {
    Fast => "fast",
    Normal => "normal",
    Slow => "slow",
    VerySlow => "very_slow",
});

impl AmountRange {
    /// The seed's `_categorize_amount`.
    fn of(amount: f64) -> Self {
        match amount {
            a if a < 10.0 => Self::Micro,
            a if a < 100.0 => Self::Small,
            a if a < 1000.0 => Self::Medium,
            a if a < 10_000.0 => Self::Large,
            _ => Self::Enterprise,
        }
    }
}

impl ProcessingTimeBucket {
    /// The seed's `_categorize_processing_time`.
    fn of(processing_time_ms: f64) -> Self {
        match processing_time_ms {
            t if t < 100.0 => Self::Fast,
            t if t < 500.0 => Self::Normal,
            t if t < 2000.0 => Self::Slow,
            _ => Self::VerySlow,
        }
    }
}

// Recording.

/// One payment request: the seed's `payment_data`, less its ids.
#[derive(Debug)]
struct Payment {
    currency: Currency,
    method: PaymentMethod,
    amount: f64,
}

/// How a payment ended: the seed's `payment_result`.
#[derive(Debug)]
struct PaymentResult {
    status: Status,
    processing_time_ms: f64,
    fees: f64,
}

struct AttemptHandles {
    attempts: Counter,
    amount: Histogram,
}

struct CompletionHandles {
    completions: Counter,
    processing_time: Histogram,
    success_rate: Counter,
    /// Completed payments only: `transaction_value` and `fees`.
    revenue: Option<(Histogram, Histogram)>,
}

/// A handle per series, registered once up front: recording a payment is then a hash lookup
/// and a few atomic adds, with no label formatting and no registry lookup.
struct PaymentMetrics {
    attempts: HashMap<(Currency, PaymentMethod, AmountRange), AttemptHandles>,
    completions:
        HashMap<(Status, Currency, PaymentMethod, ProcessingTimeBucket), CompletionHandles>,
}

impl PaymentMetrics {
    fn register() -> Self {
        let mut attempts = HashMap::new();
        for &currency in Currency::ALL {
            for &method in PaymentMethod::ALL {
                for &range in AmountRange::ALL {
                    let tags = [
                        (TAG_CURRENCY, currency.as_str()),
                        (TAG_PAYMENT_METHOD, method.as_str()),
                        (TAG_AMOUNT_RANGE, range.as_str()),
                    ];
                    let handles = AttemptHandles {
                        attempts: metrics::counter!(ATTEMPTS, &tags),
                        amount: metrics::histogram!(AMOUNT, &tags),
                    };
                    attempts.insert((currency, method, range), handles);
                }
            }
        }

        let mut completions = HashMap::new();
        for &status in Status::ALL {
            let completed = status == Status::Completed;
            for &currency in Currency::ALL {
                for &method in PaymentMethod::ALL {
                    for &bucket in ProcessingTimeBucket::ALL {
                        let tags = [
                            (TAG_STATUS, status.as_str()),
                            (TAG_CURRENCY, currency.as_str()),
                            (TAG_PAYMENT_METHOD, method.as_str()),
                            (TAG_PROCESSING_TIME_BUCKET, bucket.as_str()),
                        ];
                        let success = (TAG_SUCCESS, if completed { "true" } else { "false" });
                        let success_tags = [tags.as_slice(), &[success]].concat();
                        let handles = CompletionHandles {
                            completions: metrics::counter!(COMPLETIONS, &tags),
                            processing_time: metrics::histogram!(PROCESSING_TIME, &tags),
                            success_rate: metrics::counter!(SUCCESS_RATE, &success_tags),
                            revenue: completed.then(|| {
                                (
                                    metrics::histogram!(TRANSACTION_VALUE, &tags),
                                    metrics::histogram!(FEES, &tags),
                                )
                            }),
                        };
                        completions.insert((status, currency, method, bucket), handles);
                    }
                }
            }
        }
        Self {
            attempts,
            completions,
        }
    }

    /// The seed's `track_payment_attempt`.
    fn track_attempt(&self, payment: &Payment) {
        let range = AmountRange::of(payment.amount);
        let handles = &self.attempts[&(payment.currency, payment.method, range)];
        handles.attempts.increment(1);
        handles.amount.record(payment.amount);
    }

    /// The seed's `track_payment_completion`.
    fn track_completion(&self, payment: &Payment, result: &PaymentResult) {
        let bucket = ProcessingTimeBucket::of(result.processing_time_ms);
        let key = (result.status, payment.currency, payment.method, bucket);
        let handles = &self.completions[&key];
        handles.completions.increment(1);
        handles.processing_time.record(result.processing_time_ms);
        handles.success_rate.increment(1);
        if let Some((transaction_value, fees)) = &handles.revenue {
            transaction_value.record(payment.amount);
            fees.record(result.fees);
        }
    }
}

// The simulated payment service.

/// What the simulation did, counted apart from the metrics, to check them against.
#[derive(Debug, Default)]
struct Simulated {
    completed: u64,
    failed: u64,
    revenue: f64,
    fees: f64,
}

impl Simulated {
    fn payments(&self) -> u64 {
        self.completed + self.failed
    }
}

impl Payment {
    fn random(rng: &mut Rng) -> Self {
        // Log-normal around 80: mostly small and medium payments, a few of every range.
        let amount = (80.0 * (1.6 * rng.normal()).exp()).clamp(1.0, 50_000.0);
        Self {
            currency: rng.choose(Currency::ALL),
            method: rng.choose(PaymentMethod::ALL),
            amount: (amount * 100.0).round() / 100.0,
        }
    }

    fn process(&self, rng: &mut Rng) -> PaymentResult {
        if rng.unit() > 0.05 {
            PaymentResult {
                status: Status::Completed,
                processing_time_ms: rng.uniform(100.0, 2000.0),
                fees: self.amount * 0.029,
            }
        } else {
            let declined = rng.unit() < 0.5;
            PaymentResult {
                status: Status::Failed,
                processing_time_ms: if declined {
                    rng.uniform(20.0, 100.0)
                } else {
                    rng.uniform(2000.0, 4000.0) // timed out
                },
                fees: 0.0,
            }
        }
    }
}

/// Processes payments until `stop`: a burst of 10 to 50 every `BURST_INTERVAL`.
fn simulate_traffic(metrics: &PaymentMetrics, stop: &AtomicBool) -> Simulated {
    let mut rng = Rng::from_clock();
    let mut simulated = Simulated::default();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..10 + rng.below(41) {
            let payment = Payment::random(&mut rng);
            metrics.track_attempt(&payment);
            let result = payment.process(&mut rng);
            metrics.track_completion(&payment, &result);

            match result.status {
                Status::Completed => {
                    simulated.completed += 1;
                    simulated.revenue += payment.amount;
                    simulated.fees += result.fees;
                }
                Status::Failed => simulated.failed += 1,
            }
        }
        thread::sleep(BURST_INTERVAL);
    }
    simulated
}

/// SplitMix64, seeded from the clock: the demo needs variety, not a dependency.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        Self(now.unwrap_or_default().as_nanos() as u64)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn choose<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit(); // in (0, 1]: its logarithm is finite
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}

// The in-process DogStatsD listener.

/// A stand-in for the Datadog Agent: a UDP socket read on a background thread, each payload
/// parsed and aggregated as the Agent would.
struct Listener {
    url: String,
    received: Arc<Mutex<Aggregate>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Listener {
    fn start() -> io::Result<Self> {
        let socket = UdpReceiver::bind()?;
        let url = socket.url();
        let received = Arc::new(Mutex::new(Aggregate::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let received = Arc::clone(&received);
            let stop = Arc::clone(&stop);
            move || {
                loop {
                    match socket.recv_timeout(Duration::from_millis(100)) {
                        Some(payload) => received.lock().expect("lock").ingest(&payload),
                        // Stopped, and nothing left to read.
                        None if stop.load(Ordering::Acquire) => break,
                        None => {}
                    }
                }
            }
        });
        Ok(Self {
            url,
            received,
            stop,
            thread,
        })
    }

    /// Reads everything sent before this call, then stops and returns what arrived.
    fn finish(self) -> Aggregate {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("the listener thread panicked");
        std::mem::take(&mut self.received.lock().expect("lock"))
    }
}

// The table.

/// One series, as the listener received it or as a paymetrics snapshot holds it.
struct SeriesRow {
    name: String,
    kind: &'static str,
    tags: Vec<String>,
    value: Value,
}

#[derive(Debug, Clone, Copy)]
enum Value {
    /// A counter's total.
    Count(f64),
    /// A gauge's last value.
    Last(f64),
    /// A distribution's number of samples and their sum.
    Distribution { count: f64, sum: f64 },
}

impl Value {
    /// A counter's total, a distribution's number of samples; a gauge counts as one.
    fn count(self) -> f64 {
        match self {
            Value::Count(n) | Value::Distribution { count: n, .. } => n,
            Value::Last(_) => 1.0,
        }
    }

    fn sum(self) -> f64 {
        match self {
            Value::Count(v) | Value::Last(v) | Value::Distribution { sum: v, .. } => v,
        }
    }

    /// Adds another series of the same type, for a row that rolls several up.
    fn add(&mut self, other: Value) {
        match (self, other) {
            (Value::Count(total), Value::Count(more)) => *total += more,
            (Value::Last(last), Value::Last(newer)) => *last = newer,
            (Value::Distribution { count, sum }, Value::Distribution { count: n, sum: s }) => {
                *count += n;
                *sum += s;
            }
            _ => {}
        }
    }

    fn display(self) -> String {
        match self {
            Value::Count(n) => format!("{n:>7.0}"),
            Value::Last(v) => format!("{v:>7}  last"),
            Value::Distribution { count, sum } => {
                format!("{count:>7.0}  avg {:.2}", sum / count.max(1.0))
            }
        }
    }
}

/// What the listener received, totalled over every payload as the Agent would.
fn received_series(aggregate: &Aggregate) -> Vec<SeriesRow> {
    let rows = aggregate.series.iter().map(|(key, total)| {
        let samples = Value::Distribution {
            count: total.count,
            sum: total.sum,
        };
        let (kind, value) = match key.kind {
            MetricType::Count => ("count", Value::Count(total.count)),
            MetricType::Gauge => ("gauge", Value::Last(total.sum)),
            MetricType::Distribution => ("distribution", samples),
            MetricType::Histogram => ("histogram", samples),
            MetricType::Timing => ("timing", samples),
            MetricType::Set => ("set", Value::Count(total.count)),
        };
        SeriesRow {
            name: key.name.clone(),
            kind,
            tags: key.tags.clone(),
            value,
        }
    });
    rows.collect()
}

/// What paymetrics sent, merged over its flushes: counter totals, gauge values, and every
/// sample of each distribution (a snapshot holds those of one flush interval only).
fn recorded_series(snapshots: &[Snapshot]) -> Vec<SeriesRow> {
    let mut merged: BTreeMap<(String, Vec<String>), (&'static str, Value)> = BTreeMap::new();
    for series in snapshots.iter().flat_map(|snapshot| &snapshot.series) {
        let (kind, value) = match &series.value {
            SeriesValue::Counter(c) => ("count", Value::Count(c.delta as f64)),
            SeriesValue::Gauge(g) => ("gauge", Value::Last(g.value)),
            SeriesValue::Histogram(h) => (
                "distribution",
                Value::Distribution {
                    count: h.count as f64,
                    sum: h.sum,
                },
            ),
        };
        let labels = series.key.labels();
        let tags = labels.map(|l| format!("{}:{}", l.key(), l.value()));
        merged
            .entry((series.key.name().to_owned(), tags.collect()))
            .and_modify(|(_, total)| total.add(value))
            .or_insert((kind, value));
    }
    let rows = merged
        .into_iter()
        .map(|((name, tags), (kind, value))| SeriesRow {
            name,
            kind,
            tags,
            value,
        });
    rows.collect()
}

/// Total count (or samples) of the series named `name` that carry every tag of `tags`.
fn count_of(series: &[SeriesRow], name: &str, tags: &[&str]) -> f64 {
    let matching = series
        .iter()
        .filter(|s| s.name == name && tags.iter().all(|t| s.tags.iter().any(|have| have == t)));
    // A fold from 0.0: `sum()` of no floats is -0.0, which prints as "-0".
    matching.fold(0.0, |total, s| total + s.value.count())
}

/// Sum of the values of the series named `name`.
fn sum_of(series: &[SeriesRow], name: &str) -> f64 {
    let matching = series.iter().filter(|s| s.name == name);
    matching.fold(0.0, |total, s| total + s.value.sum())
}

/// Tag keys the table keeps in its rows; it sums over the others, shown by `BREAKDOWNS`.
const ROW_TAGS: [&str; 2] = [TAG_STATUS, TAG_SUCCESS];

/// Totals by tag value under the table: metric, tag key, tag values in display order.
const BREAKDOWNS: [(&str, &str, &[&str]); 4] = [
    (ATTEMPTS, TAG_CURRENCY, Currency::VALUES),
    (ATTEMPTS, TAG_PAYMENT_METHOD, PaymentMethod::VALUES),
    (ATTEMPTS, TAG_AMOUNT_RANGE, AmountRange::VALUES),
    (
        COMPLETIONS,
        TAG_PROCESSING_TIME_BUCKET,
        ProcessingTimeBucket::VALUES,
    ),
];

/// The table (one row per metric, type, status and success), then the totals by other tags.
fn render_table(series: &[SeriesRow], out: &mut String) {
    let mut rows: BTreeMap<(&str, &str, String), Value> = BTreeMap::new();
    for s in series {
        if s.value.count() == 0.0 {
            continue; // registered, never updated
        }
        let shown: Vec<&str> = s
            .tags
            .iter()
            .map(String::as_str)
            .filter(|tag| {
                tag.split(':')
                    .next()
                    .is_some_and(|key| ROW_TAGS.contains(&key))
            })
            .collect();
        let row = (s.name.as_str(), s.kind, shown.join(" "));
        rows.entry(row)
            .and_modify(|v| v.add(s.value))
            .or_insert(s.value);
    }

    let width = |title: &str, column: fn(&(&str, &str, String)) -> usize| {
        rows.keys().map(column).fold(title.len(), usize::max)
    };
    let name_width = width("metric", |row| row.0.len());
    let kind_width = width("type", |row| row.1.len());
    let tags_width = width("tags", |row| row.2.len());
    let _ = writeln!(
        out,
        "{:name_width$}  {:kind_width$}  {:tags_width$}  {:>7}",
        "metric", "type", "tags", "value"
    );
    if rows.is_empty() {
        out.push_str("(nothing yet)\n");
    }
    for ((name, kind, tags), value) in &rows {
        let value = value.display();
        let _ = writeln!(
            out,
            "{name:name_width$}  {kind:kind_width$}  {tags:tags_width$}  {value}"
        );
    }

    out.push('\n');
    let breakdowns = BREAKDOWNS.map(|(metric, key, values)| {
        let short_name = metric.rsplit('.').next().unwrap_or(metric);
        let totals: Vec<String> = values
            .iter()
            .map(|v| {
                let total = count_of(series, metric, &[&format!("{key}:{v}")]);
                format!("{v} {total:.0}")
            })
            .collect();
        (format!("{short_name} by {key}"), totals.join(" · "))
    });
    let label_width = breakdowns.iter().map(|(label, _)| label.len()).max();
    for (label, totals) in &breakdowns {
        let _ = writeln!(out, "{label:<0$}  {totals}", label_width.unwrap_or(0));
    }
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// The table to show and the lines about packets: what the listener received if the demo
/// runs one, else what paymetrics sent.
fn view(
    received: Option<&Aggregate>,
    flushes: &MemoryReader,
    telemetry: &ClientTelemetry,
) -> (Vec<SeriesRow>, String) {
    let mut status = String::new();
    if let Some(received) = received {
        let _ = writeln!(
            status,
            "listener:         {} packets, {} received, {} parse errors",
            received.payloads,
            kib(received.bytes as u64),
            received.errors.len()
        );
    }
    let _ = write!(
        status,
        "client telemetry: {} packets, {} sent, {} dropped",
        telemetry.packets_sent,
        kib(telemetry.bytes_sent),
        telemetry.packets_dropped
    );
    let series = match received {
        Some(received) => received_series(received),
        None => recorded_series(&flushes.snapshots()),
    };
    (series, status)
}

/// What the screen shows around the table.
struct Screen {
    destination: String,
    source: &'static str,
    global_tags: String,
}

impl Screen {
    fn frame(&self, clock: &str, series: &[SeriesRow], status: &str) -> String {
        let mut out = format!("paymetrics demo · {clock} · to {}\n", self.destination);
        let _ = writeln!(out, "{}\n", self.source);
        render_table(series, &mut out);
        let _ = writeln!(out, "on every series: {}\n", self.global_tags);
        let _ = writeln!(out, "{status}");
        out
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agent_variable = ["DD_DOGSTATSD_URL", "DD_AGENT_HOST"]
        .into_iter()
        .find(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));

    // With no agent configured, listen in process and send there; otherwise the builder reads
    // DD_DOGSTATSD_URL, or DD_AGENT_HOST and DD_DOGSTATSD_PORT, itself.
    let listener = match agent_variable {
        None => Some(Listener::start()?),
        Some(_) => None,
    };
    // The exporter counts what it sends and drops either way (`dogstatsd_telemetry()`, shown
    // under the table). Reporting those counts as `datadog.dogstatsd.client.*` metrics, on by
    // default every 10 s, is off here so that the listener receives exactly the packets the
    // client counts; leave it on in a service.
    let mut dogstatsd = DogStatsdBuilder::new()
        .service("paymetrics-demo")
        .telemetry(None);
    if let Some(listener) = &listener {
        dogstatsd = dogstatsd.address(&listener.url);
    }
    let config = dogstatsd.resolve()?;
    // Every flush's snapshot is also kept in memory: paymetrics' own account of what it sent.
    let (flush_log, flushes) = MemoryExporter::new();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(FLUSH_INTERVAL)
        .dogstatsd(dogstatsd)
        .exporter(flush_log)
        .install()?;

    let screen = Screen {
        destination: match agent_variable {
            None => format!("{} (the demo's own listener)", config.address),
            Some(variable) => format!("{} (your agent, from {variable})", config.address),
        },
        source: match listener {
            Some(_) => "What the listener received: counter totals, distribution samples and mean.",
            None => "What paymetrics sent: counter totals, distribution samples and mean.",
        },
        global_tags: config.global_tags.join(" "),
    };

    let payments = PaymentMetrics::register();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = thread::spawn({
        let stop = Arc::clone(&stop);
        move || simulate_traffic(&payments, &stop)
    });

    // On a terminal, redraw the table every second; otherwise print it once, at the end.
    let live = io::stdout().is_terminal();
    let seconds = RUN_FOR.as_secs();
    if !live {
        println!(
            "Simulating {seconds} s of payments, sent to {}.",
            screen.destination
        );
    }
    let started = Instant::now();
    for second in 0..=seconds {
        thread::sleep(
            (started + Duration::from_secs(second)).saturating_duration_since(Instant::now()),
        );
        if live {
            let telemetry = metrics.dogstatsd_telemetry().unwrap_or_default();
            let received = listener.as_ref().map(|l| l.received.lock().expect("lock"));
            let (series, status) = view(received.as_deref(), &flushes, &telemetry);
            drop(received); // let the listener go on while the frame is drawn
            let frame = screen.frame(&format!("{second} s of {seconds}"), &series, &status);
            // Cursor to the top left, clear the screen from there, draw.
            print!("\x1b[H\x1b[J{frame}");
            io::stdout().flush()?;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let simulated = traffic.join().expect("the traffic thread panicked");
    let elapsed = started.elapsed();

    // Send what the last moments recorded, and read the exporter's telemetry: the final flush
    // of `shutdown` then has nothing left to send.
    metrics.flush();
    let telemetry = metrics.dogstatsd_telemetry().unwrap_or_default();
    metrics.shutdown();
    let received = listener.map(Listener::finish);

    let (series, status) = view(received.as_ref(), &flushes, &telemetry);
    let clock = format!("done in {:.1} s", elapsed.as_secs_f64());
    if live {
        print!("\x1b[H\x1b[J");
    }
    println!("{}", screen.frame(&clock, &series, &status));

    let recorded = recorded_series(&flushes.snapshots());
    let mismatches = summarize(
        &simulated,
        elapsed,
        &recorded,
        received.as_ref(),
        &telemetry,
    );
    if mismatches > 0 {
        return Err(format!("{mismatches} total(s) differ from what was simulated").into());
    }
    Ok(())
}

/// One line of the summary.
struct Check {
    what: &'static str,
    detail: String,
    /// `None` when there is nothing to compare with.
    ok: Option<bool>,
}

/// Prints what was simulated and how the metrics compare; returns the number of mismatches.
///
/// `recorded` is what paymetrics' flushes sent, `received` what the listener aggregated, if
/// the demo ran one.
fn summarize(
    simulated: &Simulated,
    elapsed: Duration,
    recorded: &[SeriesRow],
    received: Option<&Aggregate>,
    telemetry: &ClientTelemetry,
) -> usize {
    println!(
        "Simulated {} payments in {:.1} s: {} completed, {} failed; revenue {:.2}, fees {:.2}.",
        simulated.payments(),
        elapsed.as_secs_f64(),
        simulated.completed,
        simulated.failed,
        simulated.revenue,
        simulated.fees
    );
    let payments = simulated.payments() as f64;
    let received_rows = received.map(received_series);
    let mut checks = vec![];
    for (what, name) in [
        ("attempts", ATTEMPTS),
        ("completions", COMPLETIONS),
        ("amount samples", AMOUNT),
    ] {
        // Counts are exact, in paymetrics and at the Agent.
        let in_paymetrics = count_of(recorded, name, &[]);
        let mut detail = format!("{payments} simulated, {in_paymetrics} recorded");
        let mut ok = in_paymetrics == payments;
        if let Some(rows) = &received_rows {
            let arrived = count_of(rows, name, &[]);
            let _ = write!(detail, ", {arrived} received");
            ok &= arrived == payments;
        }
        checks.push(Check {
            what,
            detail,
            ok: Some(ok),
        });
    }

    // paymetrics sums a distribution's samples exactly (up to floating-point rounding). On the
    // wire each sample travels as its bucket's value, within RELATIVE_ERROR of it, and so is the
    // sum the Agent computes.
    let in_paymetrics = sum_of(recorded, TRANSACTION_VALUE);
    let mut detail = format!(
        "{:.2} simulated, {in_paymetrics:.2} recorded",
        simulated.revenue
    );
    let mut ok = (in_paymetrics - simulated.revenue).abs() <= 1e-9 * simulated.revenue;
    if let Some(rows) = &received_rows {
        let arrived = sum_of(rows, TRANSACTION_VALUE);
        let error = (arrived - simulated.revenue) / simulated.revenue;
        let _ = write!(
            detail,
            ", {arrived:.2} received ({:+.3} %, bound {:.3} %)",
            100.0 * error,
            100.0 * RELATIVE_ERROR
        );
        ok &= error.abs() <= RELATIVE_ERROR;
    }
    checks.push(Check {
        what: "revenue",
        detail,
        ok: Some(ok),
    });

    let mut packets = Check {
        what: "packets",
        detail: format!(
            "{} sent ({}), {} dropped",
            telemetry.packets_sent,
            kib(telemetry.bytes_sent),
            telemetry.packets_dropped
        ),
        ok: None,
    };
    match received {
        Some(aggregate) => {
            let _ = write!(
                packets.detail,
                ", {} received ({}), {} parse errors",
                aggregate.payloads,
                kib(aggregate.bytes as u64),
                aggregate.errors.len()
            );
            packets.ok = Some(
                telemetry.packets_dropped == 0
                    && telemetry.packets_sent == aggregate.payloads as u64
                    && telemetry.bytes_sent == aggregate.bytes as u64
                    && aggregate.errors.is_empty(),
            );
        }
        None if telemetry.packets_dropped > 0 => {
            packets.detail += " (refused by the socket: is the agent listening?)";
        }
        None => {}
    }
    checks.push(packets);

    let width = checks.iter().map(|c| c.what.len() + 1).max().unwrap_or(0);
    for check in &checks {
        let verdict = match check.ok {
            Some(true) => ": ok",
            Some(false) => ": MISMATCH",
            None => "",
        };
        let what = format!("{}:", check.what);
        println!("  {what:width$} {}{verdict}", check.detail);
    }
    let mismatches = checks.iter().filter(|c| c.ok == Some(false)).count();
    if mismatches == 0 {
        println!("All totals match.");
    }
    mismatches
}
