//! An exporter that keeps snapshots in memory, for tests and in-process inspection.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use super::Exporter;
use crate::{message::Message, snapshot::Snapshot};

/// How many snapshots a [`MemoryExporter`] keeps by default (the oldest go first).
pub const DEFAULT_RETAINED_SNAPSHOTS: usize = 1024;

/// Keeps the latest snapshots in memory; read them through its [`MemoryReader`].
///
/// ```
/// use paymetrics::export::MemoryExporter;
///
/// let (exporter, reader) = MemoryExporter::new();
/// let metrics = paymetrics::builder().without_dogstatsd().exporter(exporter).build().unwrap();
/// metrics::with_local_recorder(metrics.recorder(), || {
///     metrics::counter!("payments", "currency" => "EUR").increment(2);
/// });
/// metrics.flush();
/// assert_eq!(reader.counter_total("payments", &[("currency", "EUR")]), 2);
/// ```
#[derive(Debug)]
pub struct MemoryExporter {
    shared: Arc<Mutex<VecDeque<Snapshot>>>,
    retained: usize,
}

/// Reads what a [`MemoryExporter`] received. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryReader {
    shared: Arc<Mutex<VecDeque<Snapshot>>>,
}

impl MemoryExporter {
    /// An exporter keeping the last [`DEFAULT_RETAINED_SNAPSHOTS`] snapshots, and its reader.
    pub fn new() -> (Self, MemoryReader) {
        Self::with_retained(DEFAULT_RETAINED_SNAPSHOTS)
    }

    /// An exporter keeping the last `retained` snapshots (at least one), and its reader.
    pub fn with_retained(retained: usize) -> (Self, MemoryReader) {
        let shared = Arc::default();
        (
            Self {
                shared: Arc::clone(&shared),
                retained: retained.max(1),
            },
            MemoryReader { shared },
        )
    }
}

impl Exporter for MemoryExporter {
    fn export(&mut self, snapshot: &Snapshot) {
        let mut snapshots = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if snapshots.len() == self.retained {
            snapshots.pop_front();
        }
        snapshots.push_back(snapshot.clone());
    }
}

impl MemoryReader {
    /// Every retained snapshot, oldest first.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// The latest snapshot, if any flush has happened.
    pub fn latest(&self) -> Option<Snapshot> {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .back()
            .cloned()
    }

    /// Sum of the deltas of counter `name{labels}` over the retained snapshots.
    pub fn counter_total(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let snapshots = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        snapshots
            .iter()
            .filter_map(|s| s.counter(name, labels))
            .map(|c| c.delta)
            .sum()
    }

    /// Every message received, in order.
    pub fn messages(&self) -> Vec<Message> {
        let snapshots = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        snapshots
            .iter()
            .flat_map(|s| s.messages.iter().cloned())
            .collect()
    }
}
