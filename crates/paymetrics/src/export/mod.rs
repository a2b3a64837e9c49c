//! Where snapshots go: the [`Exporter`] trait and the in-memory exporter.
//!
//! The flusher is the only caller of exporters: every flush interval it hands each one the same
//! [`Snapshot`]. An exporter owns its own encoding and I/O and must not panic; it runs on the
//! flusher thread, never on a recording thread. The native DogStatsD exporter lives in
//! [`crate::dogstatsd`].

mod memory;

pub use memory::{DEFAULT_RETAINED_SNAPSHOTS, MemoryExporter, MemoryReader};

use std::time::Duration;

use crate::snapshot::Snapshot;

/// A destination for snapshots.
///
/// ```
/// use paymetrics::{export::Exporter, snapshot::Snapshot};
///
/// /// Prints how many series each flush saw.
/// #[derive(Debug)]
/// struct SeriesCount;
///
/// impl Exporter for SeriesCount {
///     fn export(&mut self, snapshot: &Snapshot) {
///         println!("{} series", snapshot.series.len());
///     }
/// }
///
/// let metrics = paymetrics::builder().without_dogstatsd().exporter(SeriesCount).build().unwrap();
/// metrics.shutdown();
/// ```
pub trait Exporter: Send + std::fmt::Debug + 'static {
    /// Sends or stores one snapshot. Called on the flusher thread, once per flush, through
    /// [`export_within`](Self::export_within).
    fn export(&mut self, snapshot: &Snapshot);

    /// Sends or stores one snapshot, and says whether everything reached its destination.
    ///
    /// `spread_over` is how long the exporter may take to spread its sends, so that a large
    /// flush does not arrive as one burst (zero: send at once); it is always well within the
    /// flush interval and the deadline of an explicit or final flush. The default calls
    /// [`export`](Self::export) and reports success.
    fn export_within(&mut self, snapshot: &Snapshot, spread_over: Duration) -> bool {
        let _ = spread_over;
        self.export(snapshot);
        true
    }

    /// Called once after the final flush; flush buffers and close connections here.
    fn shutdown(&mut self) {}
}
