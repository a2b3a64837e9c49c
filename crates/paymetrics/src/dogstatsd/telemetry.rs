//! Client telemetry: what the exporter sent and dropped, reported as `datadog.dogstatsd.client.*`
//! counts (deltas since the previous report, as Datadog's clients send them).
//!
//! Datadog does not bill these as custom metrics. They carry the tags `client:rust`,
//! `client_version:`, `client_transport:` and the global tags, and never the name prefix.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use crate::snapshot::RecorderStats;

macro_rules! telemetry_counters {
    ($( $(#[$doc:meta])* $field:ident => $name:literal $(, $tag:literal)? ;)*) => {
        /// Cumulative client telemetry of a DogStatsD exporter since it started.
        ///
        /// Read it with [`Paymetrics::dogstatsd_telemetry`](crate::Paymetrics::dogstatsd_telemetry).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct ClientTelemetry {
            $( $(#[$doc])* pub $field: u64, )*
        }

        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $( pub(crate) $field: AtomicU64, )*
        }

        impl Counters {
            pub(crate) fn read(&self) -> ClientTelemetry {
                ClientTelemetry { $( $field: self.$field.load(Relaxed), )* }
            }
        }

        impl ClientTelemetry {
            /// `(metric name, extra tag, value)` for each telemetry count.
            pub(crate) fn entries(&self) -> Vec<(&'static str, Option<&'static str>, u64)> {
                vec![ $( ($name, telemetry_counters!(@tag $($tag)?), self.$field), )* ]
            }

            /// The count at `index` in [`entries`](Self::entries) order.
            pub(crate) fn value_at(&self, index: usize) -> u64 {
                [$( self.$field, )*].get(index).copied().unwrap_or(0)
            }

            /// Adds `value` to the count at `index` in [`entries`](Self::entries) order.
            pub(crate) fn add_at(&mut self, index: usize, value: u64) {
                if let Some(field) = [$( &mut self.$field, )*].into_iter().nth(index) {
                    *field = field.wrapping_add(value);
                }
            }

            /// Field-wise `self - earlier`.
            pub(crate) fn since(&self, earlier: &ClientTelemetry) -> ClientTelemetry {
                ClientTelemetry { $( $field: self.$field.wrapping_sub(earlier.$field), )* }
            }
        }
    };
    (@tag $tag:literal) => { Some($tag) };
    (@tag) => { None };
}

telemetry_counters! {
    /// Metric samples serialised (a histogram counts each of its samples).
    metrics => "datadog.dogstatsd.client.metrics";
    /// Gauge samples serialised.
    metrics_gauge => "datadog.dogstatsd.client.metrics_by_type", "metrics_type:gauge";
    /// Count samples serialised.
    metrics_count => "datadog.dogstatsd.client.metrics_by_type", "metrics_type:count";
    /// Distribution samples serialised.
    metrics_distribution => "datadog.dogstatsd.client.metrics_by_type", "metrics_type:distribution";
    /// Histogram samples serialised.
    metrics_histogram => "datadog.dogstatsd.client.metrics_by_type", "metrics_type:histogram";
    /// Events serialised.
    events => "datadog.dogstatsd.client.events";
    /// Service checks serialised.
    service_checks => "datadog.dogstatsd.client.service_checks";
    /// Payloads handed to the socket.
    packets_sent => "datadog.dogstatsd.client.packets_sent";
    /// Bytes handed to the socket.
    bytes_sent => "datadog.dogstatsd.client.bytes_sent";
    /// Payloads dropped, for any reason.
    packets_dropped => "datadog.dogstatsd.client.packets_dropped";
    /// Bytes dropped, for any reason.
    bytes_dropped => "datadog.dogstatsd.client.bytes_dropped";
    /// Payloads the socket refused (no agent, full buffer, timeout).
    packets_dropped_writer => "datadog.dogstatsd.client.packets_dropped_writer";
    /// Bytes the socket refused.
    bytes_dropped_writer => "datadog.dogstatsd.client.bytes_dropped_writer";
    /// Messages larger than a payload, dropped before sending.
    packets_dropped_serializer => "datadog.dogstatsd.client.packets_dropped_serializer";
    /// Contexts (series) flushed.
    aggregated_context => "datadog.dogstatsd.client.aggregated_context";
    /// Gauge contexts flushed.
    aggregated_context_gauge => "datadog.dogstatsd.client.aggregated_context_by_type", "metrics_type:gauge";
    /// Count contexts flushed.
    aggregated_context_count => "datadog.dogstatsd.client.aggregated_context_by_type", "metrics_type:count";
    /// Histogram or distribution contexts flushed.
    aggregated_context_histogram => "datadog.dogstatsd.client.aggregated_context_by_type", "metrics_type:histogram";
    /// NaN or infinite values the recorder dropped.
    non_finite_dropped => "paymetrics.client.non_finite_dropped";
    /// Registrations folded into an overflow series by the cardinality guard.
    overflow_registrations => "paymetrics.client.cardinality_overflow";
    /// Series expired after staying idle.
    series_expired => "paymetrics.client.series_expired";
    /// Events, service checks and timestamped points dropped on a full queue.
    messages_dropped => "paymetrics.client.messages_dropped";
    /// Events, service checks and timestamped points dropped for a timestamp past `i64::MAX`.
    invalid_dropped => "paymetrics.client.invalid_dropped";
}

impl Counters {
    /// Copies the recorder's cumulative stats in, so one report covers both.
    pub(crate) fn absorb(&self, stats: &RecorderStats) {
        self.non_finite_dropped
            .store(stats.non_finite_dropped, Relaxed);
        self.overflow_registrations
            .store(stats.overflow_registrations, Relaxed);
        self.series_expired.store(stats.series_expired, Relaxed);
        self.messages_dropped.store(stats.messages_dropped, Relaxed);
        self.invalid_dropped.store(stats.invalid_dropped, Relaxed);
    }

    pub(crate) fn add(field: &AtomicU64, n: u64) {
        field.fetch_add(n, Relaxed);
    }
}

/// Shared between the exporter (writer) and the guard (reader).
pub(crate) type SharedCounters = Arc<Counters>;
