//! Helpers shared by the integration tests: a current-thread runtime run under a local recorder
//! (so every handle the pool registers lands in it), tag lists, PostgreSQL's URL and table names.

#![allow(dead_code, unreachable_pub)]

use std::{
    future::Future,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
use paymetrics::{export::MemoryExporter, snapshot::Snapshot, testing::Recorded};

pub const DB: &str = "payments";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `body` with paymetrics' own recorder, flushes to a memory exporter and returns the
/// snapshot: what the DogStatsD exporter would have been handed.
pub fn with_paymetrics<F: Future<Output = ()>>(body: impl FnOnce() -> F) -> Snapshot {
    let (exporter, reader) = MemoryExporter::new();
    let metrics = paymetrics::builder()
        .without_dogstatsd()
        .exporter(exporter)
        .build()
        .expect("paymetrics");
    let rt = runtime();
    metrics::with_local_recorder(metrics.recorder(), || rt.block_on(body()));
    assert!(metrics.flush(), "flush timed out");
    reader.latest().expect("a snapshot")
}

/// Runs `body` under a debugging recorder; `body` gets a probe that reads what was recorded since
/// its previous read (each read drains counters, gauges and histograms). Returns what was
/// recorded after the last read.
pub fn with_probe<F: Future<Output = ()>>(body: impl FnOnce(Probe) -> F) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let probe = Probe(recorder.snapshotter());
    let rt = runtime();
    metrics::with_local_recorder(&recorder, || rt.block_on(body(probe)));
    Recorded::from_snapshotter(&snapshotter)
}

pub struct Probe(Snapshotter);

impl Probe {
    pub fn read(&self) -> Recorded {
        Recorded::from_snapshotter(&self.0)
    }
}

/// Exact values of everything `body` recorded.
pub fn capture<F: Future<Output = ()>>(body: impl FnOnce() -> F) -> Recorded {
    let rt = runtime();
    paymetrics::testing::capture(|| rt.block_on(body()))
}

pub fn tags<'a>(operation: &'a str, table: &'a str) -> [(&'a str, &'a str); 3] {
    [("operation", operation), ("table", table), ("database", DB)]
}

pub fn error_tags<'a>(
    operation: &'a str,
    table: &'a str,
    error: &'a str,
) -> [(&'a str, &'a str); 4] {
    [
        ("operation", operation),
        ("table", table),
        ("database", DB),
        ("error_type", error),
    ]
}

pub const POOL: [(&str, &str); 1] = [("database", DB)];

pub fn postgres_url() -> String {
    std::env::var("PAYMETRICS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A table name no other test run uses: `pm_sqlx_<what>_<pid>_<n>_<nanos>`.
pub fn unique_table(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "pm_sqlx_{what}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Yields to the runtime until `done()` (the pool's connection-return tasks run on it), failing
/// after a generous bound rather than hanging.
pub async fn until(mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "condition not reached in 30 s");
}
