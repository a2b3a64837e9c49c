//! The native DogStatsD exporter, paymetrics' default.
//!
//! Every flush it encodes the snapshot into DogStatsD messages: counters as their delta
//! (`|c`), active gauges as their value (`|g`), histograms as distributions (`|d`, or `|h` on
//! request) with bounded bytes (see the [encoding notes](self#histograms)), then events, service
//! checks and timestamped points. Messages are packed into payloads of at most 1432 bytes on UDP
//! and 8192 on Unix sockets. Names and tags are sanitised by Datadog's rules ([`sanitize`]).
//!
//! It runs on the flusher thread and never blocks a recording thread. A payload the socket
//! refuses is dropped and counted in the [client telemetry](ClientTelemetry), and a warning is
//! logged through `tracing` at most once per 10 seconds. An address that cannot be reached
//! when the exporter starts is reported at once, naming the address and the reason.
//!
//! # Configuration
//!
//! [`DogStatsdBuilder`] reads the variables Datadog's official clients read. Precedence, for
//! every setting: an explicit builder call, then the environment, then the default.
//!
//! | variable | effect |
//! |---|---|
//! | `DD_DOGSTATSD_URL` | the address: `udp://host:port`, `unix:///path` (datagram, or stream if the socket is one), `unixgram:///path`, `unixstream:///path`; wins over `DD_AGENT_HOST` |
//! | `DD_AGENT_HOST` | the Agent's host for UDP (`127.0.0.1` by default); may also hold a `unix://` URL |
//! | `DD_DOGSTATSD_PORT` | the UDP port with `DD_AGENT_HOST` ([`DEFAULT_PORT`], 8125, by default) |
//! | `DD_ENV`, `DD_SERVICE`, `DD_VERSION` | global tags `env:`, `service:`, `version:` |
//! | `DD_ENTITY_ID` | global tag `dd.internal.entity_id:` |
//! | `DD_EXTERNAL_ENV` | the `e:` field |
//! | `DD_ORIGIN_DETECTION_ENABLED` | `false` turns off the `c:` (container id) and `e:` fields |
//! | `DD_CARDINALITY` (or `DATADOG_CARDINALITY`) | the default `card:` field (`none`, `low`, `orchestrator`, `high`) |
//!
//! With nothing set, metrics go to `udp://127.0.0.1:8125`. An address that does not parse is
//! an [`Error::InvalidAddress`](crate::Error::InvalidAddress) when paymetrics is built, never
//! a panic at the first metric.
//!
//! # Under faults
//!
//! * **Deadlines.** Resolving a host name, connecting and every write are bounded by the
//!   [write timeout](DogStatsdBuilder::write_timeout) (100 ms by default); once one write in a
//!   flush times out, the rest of that flush is dropped and counted rather than waited for.
//! * **Reconnects.** A lost socket is re-made at the next flush, once per flush: an Agent that
//!   restarts misses at most one flush interval.
//! * **Honest telemetry.** A telemetry count is marked as reported only once the payload
//!   carrying it was written, so a telemetry payload lost with the Agent is sent again later;
//!   a UDP datagram refused by the Agent's host (closed port) counts as dropped, not sent.
//! * **Pacing.** A flush of many payloads is spread over a part of the flush interval
//!   ([`PaymetricsBuilder::flush_pacing`](crate::PaymetricsBuilder::flush_pacing)), so an
//!   Agent draining its socket keeps up instead of losing the burst to a full receive buffer.
//!   Flushes of up to [`UNPACED_PAYLOADS`] payloads go out at once.
//!
//! # Histograms
//!
//! A histogram's interval is sent as one value per non-empty bucket, with the bucket's count as
//! the sample rate (`|@1/count`), values that share a count packed into one multi-value message
//! (`name:v1:v2:v3|d|@0.25|#tags`). The values are
//! [`HistogramValue::wire_values`](crate::snapshot::HistogramValue::wire_values), chosen so that
//! what the Agent derives (each value times the integer weight it reads from `1/rate`) is exact
//! for every flush of every histogram:
//!
//! * the count exactly, and the sum to within `f64` rounding (relative error far below `1e-9`
//!   for values of one sign): each bucket's value moves inside its bucket until the weighted
//!   values add up to the recorded sum, and one value takes the last remainder;
//! * min and max exactly: they are sent as themselves, split off their bucket with weight 1;
//! * integers up to 1,024 in magnitude exactly (retry counts, small sizes): they are counted
//!   apart, one counter each, and sent as themselves;
//! * percentiles within one bucket width, 1/64 (1.56 %), of the recorded value of that rank,
//!   for magnitudes in `[1e-6, 1.7e13]` (the Agent's own sketch adds its bin error on top).
//!
//! Values are written as integers or as ryu's shortest text that parses back to the same `f64`,
//! rounded first to the fewest digits that keep them within 1/64 of their bucket's width, so a
//! value takes about as many bytes as the bucket midpoints sent before. With
//! [`histograms_as_distributions(false)`](DogStatsdBuilder::histograms_as_distributions) the
//! same values go out as `|h`: the Agent's `.count`, `.sum`, `.avg`, `.min` and `.max` are then
//! exact per host and Agent flush, and its `.median` and percentiles are per host, within the
//! same 1.56 %.
//!
//! ```
//! use paymetrics::{PaymetricsBuilder, dogstatsd::DogStatsdBuilder};
//!
//! let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
//! let address = format!("udp://{}", receiver.local_addr().unwrap());
//! let metrics = PaymetricsBuilder::new()
//!     .dogstatsd(DogStatsdBuilder::new().address(address).telemetry(None).origin_detection(false))
//!     .build()
//!     .unwrap();
//! metrics::with_local_recorder(metrics.recorder(), || {
//!     metrics::counter!("business.payment.attempts", "currency" => "EUR").increment(3);
//! });
//! metrics.flush();
//! let mut buf = [0; 1432];
//! let n = receiver.recv(&mut buf).unwrap();
//! assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("business.payment.attempts:3|c|#currency:EUR"));
//! ```

mod config;
mod encoder;
mod origin;
pub mod sanitize;
mod telemetry;
mod transport;

use std::time::{Duration, Instant};

pub use config::{
    AgentAddress, Cardinality, DEFAULT_PORT, DEFAULT_TELEMETRY_INTERVAL, DEFAULT_UDP_PAYLOAD_BYTES,
    DEFAULT_UNIX_PAYLOAD_BYTES, DogStatsdBuilder, DogStatsdConfig, MAX_UDP_PAYLOAD_BYTES,
};
pub use telemetry::ClientTelemetry;

pub(crate) use telemetry::SharedCounters;

use self::{
    encoder::{Encoder, Payloads},
    telemetry::Counters,
    transport::Transport,
};
use crate::{
    export::Exporter,
    message::Message,
    snapshot::{SeriesValue, Snapshot},
};

const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Flushes estimated at up to this many payloads are sent at once, unpaced: even at 8 KiB per
/// payload they fit the kernel's default socket receive buffer (about 208 KiB).
pub const UNPACED_PAYLOADS: u64 = 24;

/// Sends snapshots to a Datadog Agent over DogStatsD.
///
/// Usually built for you by [`PaymetricsBuilder`](crate::PaymetricsBuilder); build one yourself
/// with [`DogStatsdExporter::new`] to add a second Agent as an extra exporter.
#[derive(Debug)]
pub struct DogStatsdExporter {
    config: DogStatsdConfig,
    encoder: Encoder,
    transport: Transport,
    counters: SharedCounters,
    reported: ClientTelemetry,
    reported_at: Instant,
    last_warning: Option<Instant>,
    /// Set when a send timed out in this flush: the Agent is not reading, so the rest of the
    /// flush is dropped (and counted) instead of waiting out the timeout once per payload.
    stalled: bool,
    /// Payloads dropped in the current flush, for the flush's result.
    dropped_this_flush: u64,
    pacer: Pacer,
}

impl DogStatsdExporter {
    /// An exporter for a resolved configuration. No agent is not an error: the address is
    /// tried once (bounded by the write timeout) and a warning names it if it is unreachable.
    pub fn new(config: DogStatsdConfig) -> Self {
        let mut exporter = Self {
            encoder: Encoder::new(&config),
            transport: Transport::new(config.address.clone(), config.write_timeout),
            counters: SharedCounters::default(),
            reported: ClientTelemetry::default(),
            reported_at: Instant::now(),
            last_warning: None,
            stalled: false,
            dropped_this_flush: 0,
            pacer: Pacer::default(),
            config,
        };
        if let Err(e) = exporter.transport.probe() {
            exporter.warn(format!(
                "the DogStatsD address {} is not reachable ({e}); payloads are dropped and counted until it is",
                exporter.config.address
            ));
        }
        exporter
    }

    /// The configuration this exporter sends with.
    pub fn config(&self) -> &DogStatsdConfig {
        &self.config
    }

    /// What it has sent and dropped so far.
    pub fn telemetry(&self) -> ClientTelemetry {
        self.counters.read()
    }

    pub(crate) fn shared_counters(&self) -> SharedCounters {
        SharedCounters::clone(&self.counters)
    }

    fn encode_snapshot(&mut self, snapshot: &Snapshot, out: &mut Payloads) {
        let c = SharedCounters::clone(&self.counters);
        for series in &snapshot.series {
            // Send full payloads as they fill, so a flush of many series holds a few payloads
            // in memory, not all of them.
            if out.ready.len() >= 16 {
                let ready = std::mem::take(&mut out.ready);
                self.send_payloads(&ready);
            }
            match &series.value {
                SeriesValue::Counter(v) if v.delta > 0 => {
                    self.encoder.counter(&series.key, v.delta, out);
                    Counters::add(&c.metrics_count, 1);
                    Counters::add(&c.metrics, 1);
                    Counters::add(&c.aggregated_context_count, 1);
                }
                SeriesValue::Gauge(v) if v.active => {
                    self.encoder.gauge(&series.key, v.value, out);
                    Counters::add(&c.metrics_gauge, 1);
                    Counters::add(&c.metrics, 1);
                    Counters::add(&c.aggregated_context_gauge, 1);
                }
                SeriesValue::Histogram(h) if h.count > 0 => {
                    self.encoder.histogram(&series.key, h, out);
                    let by_type = if self.config.histograms_as_distributions {
                        &c.metrics_distribution
                    } else {
                        &c.metrics_histogram
                    };
                    Counters::add(by_type, h.count);
                    Counters::add(&c.metrics, h.count);
                    Counters::add(&c.aggregated_context_histogram, 1);
                }
                _ => continue,
            }
            Counters::add(&c.aggregated_context, 1);
        }
        for message in &snapshot.messages {
            match message {
                Message::Event(e) => {
                    self.encoder.event(e, out);
                    Counters::add(&c.events, 1);
                }
                Message::ServiceCheck(sc) => {
                    self.encoder.service_check(sc, out);
                    Counters::add(&c.service_checks, 1);
                }
                Message::Timestamped(m) => {
                    self.encoder.timestamped(m, out);
                    Counters::add(&c.metrics, 1);
                }
            }
        }
        c.absorb(&snapshot.stats);
    }

    /// Sends the telemetry counts not yet reported. A count is marked as reported only when the
    /// payload carrying it was written: what a lost payload carried goes out with the next report.
    fn send_telemetry(&mut self) {
        let now = self.counters.read();
        let delta = now.since(&self.reported);
        self.reported_at = Instant::now();
        let mut tags = format!(
            "client:rust,client_version:{},client_transport:{}",
            env!("CARGO_PKG_VERSION"),
            self.transport.kind()
        );
        for t in &self.config.global_tags {
            tags.push(',');
            tags.push_str(t);
        }
        let mut out = Payloads::new(self.config.max_payload_bytes);
        // (index of the count, index of the payload that carries it)
        let mut carried_by = Vec::new();
        for (index, (name, extra, value)) in delta.entries().into_iter().enumerate() {
            match extra {
                Some(extra) => {
                    self.encoder
                        .telemetry(name, value, &format!("{tags},{extra}"), &mut out)
                }
                None => self.encoder.telemetry(name, value, &tags, &mut out),
            }
            carried_by.push((index, out.ready.len()));
        }
        let payloads = out.finish();
        let written = self.send_payloads(&payloads);
        for (index, payload) in carried_by {
            if written.get(payload).copied().unwrap_or(false) {
                self.reported.add_at(index, delta.value_at(index));
            }
        }
    }

    fn send_oversize_drops(&mut self, out: &Payloads) {
        if out.oversize_messages > 0 {
            let c = &self.counters;
            Counters::add(&c.packets_dropped_serializer, out.oversize_messages);
            Counters::add(&c.packets_dropped, out.oversize_messages);
            Counters::add(&c.bytes_dropped, out.oversize_bytes);
            self.warn(format!(
                "dropped {} DogStatsD message(s) larger than the {}-byte payload limit",
                out.oversize_messages, self.config.max_payload_bytes
            ));
        }
    }

    /// Sends each payload (paced), counting what was written and what was dropped; returns
    /// whether each one was written.
    fn send_payloads(&mut self, payloads: &[Vec<u8>]) -> Vec<bool> {
        let c = SharedCounters::clone(&self.counters);
        let mut failures = 0;
        let mut last_error = None;
        let mut written = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let len = payload.len() as u64;
            let sent = if self.stalled {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the agent stopped reading earlier in this flush",
                ))
            } else {
                self.pacer.wait();
                self.transport.send(payload)
            };
            if let Err(e) = &sent
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                )
            {
                self.stalled = true;
            }
            written.push(sent.is_ok());
            match sent {
                Ok(()) => {
                    Counters::add(&c.packets_sent, 1);
                    Counters::add(&c.bytes_sent, len);
                }
                Err(e) => {
                    failures += 1;
                    last_error = Some(e);
                    Counters::add(&c.packets_dropped, 1);
                    Counters::add(&c.bytes_dropped, len);
                    Counters::add(&c.packets_dropped_writer, 1);
                    Counters::add(&c.bytes_dropped_writer, len);
                }
            }
        }
        self.dropped_this_flush += failures;
        if let Some(e) = last_error {
            self.warn(format!(
                "dropped {failures} DogStatsD payload(s) to {}: {e}",
                self.config.address
            ));
        }
        written
    }

    fn warn(&mut self, message: String) {
        let due = self
            .last_warning
            .is_none_or(|at| at.elapsed() >= LOG_INTERVAL);
        if due {
            self.last_warning = Some(Instant::now());
            tracing::warn!(target: "paymetrics::dogstatsd", "{message} (further warnings muted for 10s)");
        }
    }

    fn begin_flush(&mut self) {
        self.stalled = false;
        self.dropped_this_flush = 0;
        self.transport.begin_flush();
    }
}

impl Exporter for DogStatsdExporter {
    fn export(&mut self, snapshot: &Snapshot) {
        self.export_within(snapshot, Duration::ZERO);
    }

    fn export_within(&mut self, snapshot: &Snapshot, spread_over: Duration) -> bool {
        self.begin_flush();
        let sent_before = self
            .counters
            .bytes_sent
            .load(std::sync::atomic::Ordering::Relaxed);
        let dropped_before = self
            .counters
            .bytes_dropped
            .load(std::sync::atomic::Ordering::Relaxed);
        self.pacer.plan(
            snapshot.series.len(),
            self.config.max_payload_bytes,
            spread_over,
        );
        let mut out = Payloads::new(self.config.max_payload_bytes);
        self.encode_snapshot(snapshot, &mut out);
        self.send_oversize_drops(&out);
        let payloads = out.finish();
        self.send_payloads(&payloads);
        self.pacer.stop();
        let bytes = self
            .counters
            .bytes_sent
            .load(std::sync::atomic::Ordering::Relaxed)
            - sent_before
            + self
                .counters
                .bytes_dropped
                .load(std::sync::atomic::Ordering::Relaxed)
            - dropped_before;
        self.pacer.learn(snapshot.series.len(), bytes);
        if let Some(interval) = self.config.telemetry_interval
            && self.reported_at.elapsed() >= interval
        {
            self.send_telemetry();
        }
        self.dropped_this_flush == 0
    }

    fn shutdown(&mut self) {
        self.begin_flush();
        if self.config.telemetry_interval.is_some() && self.counters.read() != self.reported {
            self.send_telemetry();
        }
    }
}

/// Spreads one flush's payloads evenly over a time budget: payload `i` is due at
/// `start + i * budget / expected`. The expected count comes from the series count and the
/// bytes per series of the previous flush; a flush that turns out larger is never held past
/// the budget, it only goes unpaced at the end.
#[derive(Debug)]
struct Pacer {
    plan: Option<Plan>,
    bytes_per_series: f64,
}

#[derive(Debug)]
struct Plan {
    start: Instant,
    end: Instant,
    per_payload: Duration,
    sent: u32,
}

impl Default for Pacer {
    fn default() -> Self {
        // A five-tag counter line is about 93 bytes; the first flush starts from that guess.
        Self {
            plan: None,
            bytes_per_series: 100.0,
        }
    }
}

impl Pacer {
    fn plan(&mut self, series: usize, max_payload: usize, budget: Duration) {
        let expected = (series as f64 * self.bytes_per_series / max_payload as f64).ceil() as u64;
        self.plan = (!budget.is_zero() && expected > UNPACED_PAYLOADS).then(|| {
            let start = Instant::now();
            Plan {
                start,
                end: start + budget,
                per_payload: budget / u32::try_from(expected).unwrap_or(u32::MAX),
                sent: 0,
            }
        });
    }

    /// Waits until the next payload is due.
    fn wait(&mut self) {
        let Some(plan) = &mut self.plan else { return };
        let due = plan.start + plan.per_payload * plan.sent;
        plan.sent = plan.sent.saturating_add(1);
        let now = Instant::now();
        if now < due && due <= plan.end {
            std::thread::sleep(due - now);
        }
    }

    fn stop(&mut self) {
        self.plan = None;
    }

    fn learn(&mut self, series: usize, bytes: u64) {
        if series > 0 && bytes > 0 {
            self.bytes_per_series = bytes as f64 / series as f64;
        }
    }
}
