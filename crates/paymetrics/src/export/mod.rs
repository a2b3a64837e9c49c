//! Where snapshots go: the [`Exporter`] trait and the in-memory exporter.
//!
//! The flusher is the only caller of exporters: every flush interval it hands each one the same
//! [`Snapshot`]. An exporter owns its own encoding and I/O and must not panic; it runs on the
//! flusher thread, never on a recording thread. The native DogStatsD exporter lives in
//! [`crate::dogstatsd`].

mod memory;

pub use memory::{DEFAULT_RETAINED_SNAPSHOTS, MemoryExporter, MemoryReader};

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
    /// Sends or stores one snapshot. Called on the flusher thread, once per flush.
    fn export(&mut self, snapshot: &Snapshot);

    /// Called once after the final flush; flush buffers and close connections here.
    fn shutdown(&mut self) {}
}
