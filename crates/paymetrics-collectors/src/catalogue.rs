//! This crate's entries in the metric catalogue (see [`paymetrics::catalogue`]): `process.*`,
//! `tokio.runtime.*` and `container.*`, built from the same constants the collectors record
//! with. `tests/catalogue.rs` runs the collectors and checks every series against these entries.

use paymetrics::catalogue::{MetricDef, MetricKind::Gauge, TagDef};

use crate::{cgroup, process};

const PROCESS: &str = "paymetrics-collectors (ProcessCollector)";
const CONTAINER: &str = "paymetrics-collectors (CgroupCollector)";
const CGROUP_TAGS: &[TagDef] = &[TagDef::one_of(cgroup::CGROUP_VERSION, &["1", "2"])];

/// The process collector's gauges.
///
/// ```
/// assert!(paymetrics_collectors::catalogue::PROCESS_METRICS.iter().any(|d| d.name == "process.threads"));
/// ```
pub const PROCESS_METRICS: &[MetricDef] = &[
    MetricDef::new(
        process::CPU_SECONDS,
        Gauge,
        "s",
        &[],
        "User plus system CPU time since the process started.",
        PROCESS,
    ),
    MetricDef::new(
        process::CPU_UTILIZATION,
        Gauge,
        "percent of one core",
        &[],
        "CPU used between the last two collections.",
        PROCESS,
    ),
    MetricDef::new(
        process::RESIDENT_MEMORY_BYTES,
        Gauge,
        "byte",
        &[],
        "Resident set size.",
        PROCESS,
    ),
    MetricDef::new(
        process::OPEN_FDS,
        Gauge,
        "file descriptor",
        &[],
        "Open file descriptors.",
        PROCESS,
    ),
    MetricDef::new(
        process::THREADS,
        Gauge,
        "thread",
        &[],
        "Threads of the process.",
        PROCESS,
    ),
];

/// The container (cgroup v2 and v1) collector's gauges.
///
/// ```
/// assert!(paymetrics_collectors::catalogue::CONTAINER_METRICS.iter().all(|d| d.tag("cgroup_version").is_some()));
/// ```
pub const CONTAINER_METRICS: &[MetricDef] = &[
    MetricDef::new(
        cgroup::CPU_USAGE_SECONDS,
        Gauge,
        "s",
        CGROUP_TAGS,
        "CPU time used by the container's cgroup since it started.",
        CONTAINER,
    ),
    MetricDef::new(
        cgroup::CPU_THROTTLED_PERIODS,
        Gauge,
        "period",
        CGROUP_TAGS,
        "Scheduler periods in which the cgroup was throttled.",
        CONTAINER,
    ),
    MetricDef::new(
        cgroup::CPU_THROTTLED_SECONDS,
        Gauge,
        "s",
        CGROUP_TAGS,
        "Time the cgroup spent throttled.",
        CONTAINER,
    ),
    MetricDef::new(
        cgroup::CPU_LIMIT_CORES,
        Gauge,
        "core",
        CGROUP_TAGS,
        "The CPU quota; absent when unlimited.",
        CONTAINER,
    ),
    MetricDef::new(
        cgroup::MEMORY_USAGE_BYTES,
        Gauge,
        "byte",
        CGROUP_TAGS,
        "Memory charged to the cgroup.",
        CONTAINER,
    ),
    MetricDef::new(
        cgroup::MEMORY_LIMIT_BYTES,
        Gauge,
        "byte",
        CGROUP_TAGS,
        "The memory limit; absent when unlimited.",
        CONTAINER,
    ),
];

/// The tokio runtime collector's gauges (feature `tokio`).
///
/// ```
/// assert_eq!(paymetrics_collectors::catalogue::RUNTIME_METRICS.len(), 5);
/// ```
#[cfg(feature = "tokio")]
pub const RUNTIME_METRICS: &[MetricDef] = {
    use crate::runtime;
    const RUNTIME: &str = "paymetrics-collectors (TokioRuntimeCollector)";
    &[
        MetricDef::new(
            runtime::WORKERS,
            Gauge,
            "thread",
            &[],
            "Worker threads.",
            RUNTIME,
        ),
        MetricDef::new(
            runtime::ALIVE_TASKS,
            Gauge,
            "task",
            &[],
            "Tasks alive.",
            RUNTIME,
        ),
        MetricDef::new(
            runtime::GLOBAL_QUEUE_DEPTH,
            Gauge,
            "task",
            &[],
            "Tasks waiting in the global queue.",
            RUNTIME,
        ),
        MetricDef::new(
            runtime::BUSY_RATIO,
            Gauge,
            "ratio (0-1)",
            &[],
            "Share of the interval the workers were busy.",
            RUNTIME,
        ),
        MetricDef::new(
            runtime::PARK_COUNT,
            Gauge,
            "park",
            &[],
            "Times workers parked during the interval.",
            RUNTIME,
        ),
    ]
};
