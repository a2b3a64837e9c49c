//! Infrastructure metrics for paymetrics from the real APIs, collected by one replica of the
//! fleet: Kubernetes (pods, nodes, node usage, HorizontalPodAutoscalers) through
//! [kube](https://docs.rs/kube), and CloudWatch (RDS, ElastiCache, SQS) through the AWS SDK.
//!
//! Every replica of a service runs paymetrics, but the Kubernetes API server and CloudWatch
//! must be asked once per fleet: CloudWatch bills per metric requested, and the API server's
//! load must not grow with the replica count. So a [`FleetRunner`] on each replica tries a
//! [`FleetLease`] on Redis every interval, and only the holder runs the collectors. When the
//! holder dies, another replica takes over within one interval plus the lease's ttl.
//!
//! ```no_run
//! # #[cfg(all(feature = "kubernetes", feature = "cloudwatch"))]
//! # async fn demo(metrics: &paymetrics::Paymetrics) -> Result<(), Box<dyn std::error::Error>> {
//! use paymetrics_infra::{
//!     FleetLease, FleetRunner, Sink, DEFAULT_LEASE_TTL,
//!     cloudwatch::{CloudWatchCollector, CloudWatchSettings},
//!     kubernetes::{KubernetesCollector, KubernetesSettings},
//! };
//!
//! let redis = redis::Client::open(std::env::var("REDIS_URL")?)?;
//! let lease = FleetLease::new(
//!     redis.get_multiplexed_async_connection().await?,
//!     "paymetrics:lease:infra:payments",
//!     DEFAULT_LEASE_TTL,
//! );
//! let kubernetes = KubernetesCollector::infer(KubernetesSettings {
//!     namespaces: vec!["payments".into()],
//!     ..KubernetesSettings::default()
//! })
//! .await?;
//! let cloudwatch = CloudWatchCollector::from_env(CloudWatchSettings {
//!     rds_instances: vec!["payments-primary".into()],
//!     ..CloudWatchSettings::default()
//! })
//! .await;
//! let running = FleetRunner::new(lease, Sink::new(metrics))
//!     .collector(kubernetes)
//!     .collector(cloudwatch)
//!     .spawn()?;
//! // ...
//! running.shutdown().await; // releases the lease: another replica takes over at once
//! # Ok(()) }
//! ```
//!
//! Failures are visible, never fatal: a missing permission (403), no metrics-server (404 on
//! `metrics.k8s.io`), throttling (429), expired credentials and timeouts are counted in
//! [`report::COLLECTOR_ERRORS`] by collector and reason, logged at most once a minute per
//! reason, and the rest of the round still runs. [`report::API_CALLS`] counts the calls.
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `kubernetes` | the `kubernetes` module: kube and k8s-openapi, rustls on *ring*; picks no Kubernetes API version (the application does, as k8s-openapi requires) |
//! | `k8s-earliest` | `kubernetes` with k8s-openapi's `earliest` version, for applications that do not depend on k8s-openapi themselves |
//! | `cloudwatch` | the `cloudwatch` module: aws-sdk-cloudwatch and aws-config (standard credential chain), rustls on *ring* |
//!
//! None is on by default: the lease and the runner alone cost only redis and tokio, which the
//! fleet store already brings.

// Without a collector feature the error and call reporting has no caller yet.
#![cfg_attr(
    not(any(feature = "kubernetes", feature = "cloudwatch")),
    allow(dead_code)
)]

pub mod fleet;
pub mod lease;
pub mod report;

#[cfg(feature = "cloudwatch")]
pub mod cloudwatch;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;

pub use fleet::{
    DEFAULT_INTERVAL, DEFAULT_LEASE_TTL, FleetCollector, FleetRunner, LeaseTooShort, RoundFuture,
    RunningFleet, Sink,
};
pub use lease::{FleetLease, LeaseError};

/// Tag key: the cluster's name, from [`CLUSTER_NAME_VAR`], on every infrastructure metric
/// (absent when the variable is not set: a made-up default would put two clusters' numbers
/// under one name).
pub const CLUSTER: &str = "cluster";

/// The environment variable naming the cluster.
pub const CLUSTER_NAME_VAR: &str = "CLUSTER_NAME";

/// The [`CLUSTER`] tag value from [`CLUSTER_NAME_VAR`], if set and not empty.
pub fn cluster_from_env() -> Option<String> {
    std::env::var(CLUSTER_NAME_VAR)
        .ok()
        .filter(|c| !c.is_empty())
}
