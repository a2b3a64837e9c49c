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
//! logged through `tracing` at most once per 10 seconds.
//!
//! # Histograms
//!
//! A histogram's interval is sent as one value per non-empty bucket, with the bucket's count as
//! the sample rate (`|@1/count`), values that share a count packed into one multi-value message
//! (`name:v1:v2:v3|d|@0.25|#tags`). The Agent computes the count exactly, and the sum and every
//! percentile within 0.79 % of the recorded values (for magnitudes in `[1e-6, 1.7e13]`).
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
}

impl DogStatsdExporter {
    /// An exporter for a resolved configuration. Connecting is lazy: no agent is not an error.
    pub fn new(config: DogStatsdConfig) -> Self {
        Self {
            encoder: Encoder::new(&config),
            transport: Transport::new(config.address.clone(), config.write_timeout),
            counters: SharedCounters::default(),
            reported: ClientTelemetry::default(),
            reported_at: Instant::now(),
            last_warning: None,
            stalled: false,
            config,
        }
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
                self.send_payloads(ready);
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

    fn encode_telemetry(&mut self, out: &mut Payloads) {
        let now = self.counters.read();
        let delta = now.since(&self.reported);
        self.reported = now;
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
        for (name, extra, value) in delta.entries() {
            match extra {
                Some(extra) => self
                    .encoder
                    .telemetry(name, value, &format!("{tags},{extra}"), out),
                None => self.encoder.telemetry(name, value, &tags, out),
            }
        }
    }

    fn send(&mut self, out: &mut Payloads) {
        let c = SharedCounters::clone(&self.counters);
        if out.oversize_messages > 0 {
            Counters::add(&c.packets_dropped_serializer, out.oversize_messages);
            Counters::add(&c.packets_dropped, out.oversize_messages);
            Counters::add(&c.bytes_dropped, out.oversize_bytes);
            self.warn(format!(
                "dropped {} DogStatsD message(s) larger than the {}-byte payload limit",
                out.oversize_messages, self.config.max_payload_bytes
            ));
        }
        let payloads = out.finish();
        self.send_payloads(payloads);
    }

    fn send_payloads(&mut self, payloads: Vec<Vec<u8>>) {
        let c = SharedCounters::clone(&self.counters);
        let mut failures = 0;
        let mut last_error = None;
        for payload in payloads {
            let len = payload.len() as u64;
            let sent = if self.stalled {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the agent stopped reading earlier in this flush",
                ))
            } else {
                self.transport.send(&payload)
            };
            if let Err(e) = &sent
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                )
            {
                self.stalled = true;
            }
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
        if let Some(e) = last_error {
            self.warn(format!(
                "dropped {failures} DogStatsD payload(s) to {}: {e}",
                self.config.address
            ));
        }
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
}

impl Exporter for DogStatsdExporter {
    fn export(&mut self, snapshot: &Snapshot) {
        self.stalled = false;
        let mut out = Payloads::new(self.config.max_payload_bytes);
        self.encode_snapshot(snapshot, &mut out);
        if let Some(interval) = self.config.telemetry_interval
            && self.reported_at.elapsed() >= interval
        {
            self.encode_telemetry(&mut out);
        }
        self.send(&mut out);
    }

    fn shutdown(&mut self) {
        self.stalled = false;
        if self.config.telemetry_interval.is_some() && self.counters.read() != self.reported {
            let mut out = Payloads::new(self.config.max_payload_bytes);
            self.encode_telemetry(&mut out);
            self.send(&mut out);
        }
    }
}
