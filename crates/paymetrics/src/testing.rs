//! Helpers for an application's own tests: record, then assert what was recorded.
//!
//! Built on `metrics_util`'s `DebuggingRecorder`, so no flusher, socket or agent is involved:
//! counters read as totals, gauges as their last value, histograms as every value recorded.
//!
//! ```
//! use paymetrics::testing;
//!
//! fn charge(amount: f64) {
//!     metrics::counter!("business.payment.attempts", "currency" => "EUR").increment(1);
//!     metrics::histogram!("business.payment.amount", "currency" => "EUR").record(amount);
//! }
//!
//! let recorded = testing::capture(|| {
//!     charge(12.5);
//!     charge(40.0);
//! });
//! assert_eq!(recorded.counter("business.payment.attempts", &[("currency", "EUR")]), Some(2));
//! assert_eq!(recorded.histogram("business.payment.amount", &[("currency", "EUR")]), Some(vec![12.5, 40.0]));
//! assert_eq!(recorded.counter("business.payment.attempts", &[]), None);
//! ```

use metrics_util::{
    CompositeKey, MetricKind,
    debugging::{DebugValue, DebuggingRecorder, Snapshotter},
};

/// Runs `f` with a fresh recording recorder installed on this thread and returns what it
/// recorded. For async code, run the runtime inside `f` (for example `rt.block_on(...)` on a
/// current-thread runtime).
pub fn capture(f: impl FnOnce()) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, f);
    Recorded::from_snapshotter(&snapshotter)
}

/// What [`capture`] saw: every series with its value.
#[derive(Debug)]
pub struct Recorded {
    entries: Vec<(CompositeKey, DebugValue)>,
}

impl Recorded {
    /// Reads the current values from a `DebuggingRecorder`'s snapshotter.
    pub fn from_snapshotter(snapshotter: &Snapshotter) -> Self {
        let entries = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| (k, v))
            .collect();
        Self { entries }
    }

    fn find(&self, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        self.entries
            .iter()
            .find(|(k, _)| {
                let key = k.key();
                k.kind() == kind
                    && key.name() == name
                    && key.labels().len() == labels.len()
                    && labels
                        .iter()
                        .all(|(lk, lv)| key.labels().any(|l| l.key() == *lk && l.value() == *lv))
            })
            .map(|(_, v)| v)
    }

    /// The total of counter `name{labels}` (labels in any order).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        match self.find(MetricKind::Counter, name, labels)? {
            DebugValue::Counter(v) => Some(*v),
            _ => None,
        }
    }

    /// The last value of gauge `name{labels}`.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(MetricKind::Gauge, name, labels)? {
            DebugValue::Gauge(v) => Some(v.into_inner()),
            _ => None,
        }
    }

    /// Every value recorded into histogram `name{labels}`, in order.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<Vec<f64>> {
        match self.find(MetricKind::Histogram, name, labels)? {
            DebugValue::Histogram(v) => Some(v.iter().map(|x| x.into_inner()).collect()),
            _ => None,
        }
    }

    /// Names of every series recorded, sorted and deduplicated.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .map(|(k, _)| k.key().name().to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
