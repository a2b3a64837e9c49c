//! Infrastructure collectors for paymetrics (the original strategy's "Infrastructure Metrics"): what the
//! process, its tokio runtime and its container use, read from `/proc` and `/sys/fs/cgroup` by
//! a scheduler (every 30 s by default) and recorded as gauges through the `metrics` facade.
//!
//! Each is a [`Collector`](paymetrics_automation::Collector): hand it to the scheduler with
//! `Automation::builder(..).collector(ProcessCollector::new())`, which runs it every 30 s by
//! default. Collectors run off the recording hot path: each `collect` reads a few files and sets
//! a few gauges.
//!
//! ```
//! use paymetrics_collectors::process::ProcessCollector;
//!
//! let recorded = paymetrics::testing::capture(|| ProcessCollector::new().collect());
//! assert!(recorded.gauge(paymetrics_collectors::process::RESIDENT_MEMORY_BYTES, &[]).unwrap() > 0.0);
//! ```
//!
//! Kubernetes and CloudWatch metrics come from their APIs, asked once per fleet rather than
//! by every process: they live in `paymetrics-infra`.

pub mod catalogue;
pub mod cgroup;
pub mod process;
#[cfg(feature = "tokio")]
pub mod runtime;
