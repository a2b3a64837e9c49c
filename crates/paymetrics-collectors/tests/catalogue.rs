//! Everything the collectors record is in this crate's catalogue, and every process and runtime
//! entry is recorded by them: the catalogue cannot drift from the code. (Container gauges exist
//! only inside a cgroup with limits; whatever this machine's cgroup yields must be catalogued.)

use std::collections::BTreeSet;

use paymetrics::catalogue::Catalogue;
use paymetrics_collectors::{
    catalogue::{CONTAINER_METRICS, PROCESS_METRICS, RUNTIME_METRICS},
    cgroup::CgroupCollector,
    process::ProcessCollector,
    runtime::TokioRuntimeCollector,
};

#[test]
fn every_recorded_series_is_catalogued_and_every_entry_is_recorded() {
    let mut catalogue = Catalogue::new();
    catalogue
        .extend(PROCESS_METRICS)
        .and_then(|c| c.extend(CONTAINER_METRICS))
        .and_then(|c| c.extend(RUNTIME_METRICS))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let recorded = catalogue
        .check_during(|| {
            let process = ProcessCollector::new();
            let tokio = TokioRuntimeCollector::new(runtime.handle());
            process.collect();
            tokio.collect();
            // A second round: utilisation and the busy ratio need an interval.
            std::thread::sleep(std::time::Duration::from_millis(20));
            process.collect();
            tokio.collect();
            CgroupCollector::new().collect();
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let recorded: BTreeSet<_> = recorded.into_iter().collect();
    let required: BTreeSet<_> = PROCESS_METRICS
        .iter()
        .chain(RUNTIME_METRICS)
        .map(|d| d.name.to_owned())
        .collect();
    assert!(
        required.is_subset(&recorded),
        "{required:?} not all in {recorded:?}"
    );
}
