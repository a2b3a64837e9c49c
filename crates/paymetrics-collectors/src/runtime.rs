//! The tokio runtime: workers, alive tasks, the global queue and how busy the workers were,
//! from `tokio-metrics` (its stable metrics: per-worker local queue depths need
//! `--cfg tokio_unstable` and are not read).

use std::sync::Mutex;

use tokio_metrics::{RuntimeIntervals, RuntimeMonitor};

/// Gauge, worker threads.
pub const WORKERS: &str = "tokio.runtime.workers";
/// Gauge, tasks alive.
pub const ALIVE_TASKS: &str = "tokio.runtime.alive_tasks";
/// Gauge, tasks waiting in the global (injection) queue.
pub const GLOBAL_QUEUE_DEPTH: &str = "tokio.runtime.global_queue_depth";
/// Gauge, 0 to 1: the share of the interval the workers were busy, averaged over workers.
pub const BUSY_RATIO: &str = "tokio.runtime.busy_ratio";
/// Gauge, times workers parked during the interval.
pub const PARK_COUNT: &str = "tokio.runtime.park_count";

/// Records the runtime's metrics for the interval since the previous collection.
#[derive(Debug)]
pub struct TokioRuntimeCollector {
    intervals: Mutex<RuntimeIntervals>,
}

impl TokioRuntimeCollector {
    /// Watches the runtime `handle` belongs to.
    pub fn new(handle: &tokio::runtime::Handle) -> Self {
        Self {
            intervals: Mutex::new(RuntimeMonitor::new(handle).intervals()),
        }
    }

    /// Records the interval since the previous call (or since [`new`](Self::new)).
    pub fn collect(&self) {
        let Some(m) = self
            .intervals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next()
        else {
            return;
        };
        metrics::gauge!(WORKERS).set(m.workers_count as f64);
        metrics::gauge!(ALIVE_TASKS).set(m.live_tasks_count as f64);
        metrics::gauge!(GLOBAL_QUEUE_DEPTH).set(m.global_queue_depth as f64);
        metrics::gauge!(PARK_COUNT).set(m.total_park_count as f64);
        if m.workers_count > 0 && !m.elapsed.is_zero() {
            metrics::gauge!(BUSY_RATIO)
                .set((m.busy_ratio() / m.workers_count as f64).clamp(0.0, 1.0));
        }
    }
}

impl paymetrics_automation::Collector for TokioRuntimeCollector {
    fn collect(&self) {
        TokioRuntimeCollector::collect(self);
    }
}
