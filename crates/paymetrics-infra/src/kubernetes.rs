//! The Kubernetes collector: pods by phase, nodes by readiness, node CPU, memory and disk
//! use, and HorizontalPodAutoscalers, from the API server through kube. The lease and the
//! rounds live in [`fleet`](crate::fleet).
//!
//! The service account needs `list` on `pods`, `nodes` and
//! `horizontalpodautoscalers.autoscaling`, `list` on `nodes.metrics.k8s.io`, and `get` on
//! `nodes/proxy` (the kubelet's stats summary). What it lacks is counted and logged, and the
//! rest of the round still runs.

use std::{collections::BTreeMap, future::Future, time::Duration};

use k8s_openapi::api::{
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{Node, Pod},
};
use kube::{Api, Client, Config, api::ListParams};
use metrics::Label;
use serde::Deserialize;

use crate::{
    fleet::{FleetCollector, RoundFuture, Sink},
    report::{self, Reporter},
};

/// Gauge, pods: pods in phase `Running` in the watched namespaces (or matching the label
/// selector), tagged [`CLUSTER`].
pub const PODS_RUNNING: &str = "k8s.pods.running";
/// Gauge, pods: pods in phase `Pending`, tagged [`CLUSTER`].
pub const PODS_PENDING: &str = "k8s.pods.pending";
/// Gauge, pods: pods in phase `Failed`, tagged [`CLUSTER`]. Watched by the default
/// `kubernetes_pods_failing` alert rule.
pub const PODS_FAILED: &str = "k8s.pods.failed";
/// Gauge, nodes: nodes whose `Ready` condition is `True`, tagged [`CLUSTER`].
pub const NODES_READY: &str = "k8s.nodes.ready";
/// Gauge, nodes: nodes whose `Ready` condition is `False` or `Unknown`, or missing, tagged
/// [`CLUSTER`].
pub const NODES_NOT_READY: &str = "k8s.nodes.not_ready";
/// Gauge, percent: a node's CPU use (metrics.k8s.io) over its allocatable CPU, tagged
/// [`CLUSTER`] and [`NODE`].
pub const NODE_CPU_UTILIZATION: &str = "k8s.node.cpu.utilization";
/// Gauge, percent: a node's memory working set (metrics.k8s.io) over its allocatable memory,
/// tagged [`CLUSTER`] and [`NODE`].
pub const NODE_MEMORY_UTILIZATION: &str = "k8s.node.memory.utilization";
/// Gauge, percent: a node's root filesystem used bytes over its capacity (the kubelet's stats
/// summary through the API server's node proxy), tagged [`CLUSTER`] and [`NODE`].
pub const NODE_DISK_UTILIZATION: &str = "k8s.node.disk.utilization";
/// Gauge, replicas: an HPA's current replicas, tagged [`CLUSTER`], [`NAMESPACE`] and
/// [`DEPLOYMENT`].
pub const HPA_CURRENT_REPLICAS: &str = "k8s.hpa.current_replicas";
/// Gauge, replicas: an HPA's desired replicas, tagged as [`HPA_CURRENT_REPLICAS`].
pub const HPA_DESIRED_REPLICAS: &str = "k8s.hpa.desired_replicas";
/// Gauge, percent: an HPA's target average CPU utilisation (its `Resource` metric on `cpu`),
/// tagged as [`HPA_CURRENT_REPLICAS`]; not sent for an HPA without one.
pub const HPA_TARGET_CPU_UTILIZATION: &str = "k8s.hpa.target_cpu_utilization";

/// Every metric this collector sends.
pub const METRICS: [&str; 11] = [
    PODS_RUNNING,
    PODS_PENDING,
    PODS_FAILED,
    NODES_READY,
    NODES_NOT_READY,
    NODE_CPU_UTILIZATION,
    NODE_MEMORY_UTILIZATION,
    NODE_DISK_UTILIZATION,
    HPA_CURRENT_REPLICAS,
    HPA_DESIRED_REPLICAS,
    HPA_TARGET_CPU_UTILIZATION,
];

/// Tag key: the cluster's name, from `CLUSTER_NAME` (absent when it is not set).
pub const CLUSTER: &str = crate::CLUSTER;
/// Tag key: a node's name.
pub const NODE: &str = "node";
/// Tag key: an HPA's namespace (two namespaces may scale deployments of the same name).
pub const NAMESPACE: &str = "namespace";
/// Tag key: the name of an HPA's scale target (usually a Deployment).
pub const DEPLOYMENT: &str = "deployment";

/// The [`report::COLLECTOR`] tag of this collector.
pub const COLLECTOR_NAME: &str = "kubernetes";

/// [`report::CALL`]: listing pods (one per page and namespace).
pub const CALL_PODS: &str = "pods";
/// [`report::CALL`]: listing nodes.
pub const CALL_NODES: &str = "nodes";
/// [`report::CALL`]: listing node usage from metrics.k8s.io.
pub const CALL_NODE_METRICS: &str = "node_metrics";
/// [`report::CALL`]: one node's kubelet stats summary.
pub const CALL_STATS_SUMMARY: &str = "stats_summary";
/// [`report::CALL`]: listing HPAs (one per page and namespace).
pub const CALL_HPAS: &str = "hpas";

/// Default bound on each API request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Objects asked per list page: large clusters are read in pages, not one huge answer.
pub const PAGE_SIZE: u32 = 500;

/// What the collector watches.
#[derive(Debug, Clone)]
pub struct KubernetesSettings {
    /// Namespaces whose pods and HPAs are counted; empty for all namespaces.
    pub namespaces: Vec<String>,
    /// A label selector the pods must match (for example `app=payments`), if any.
    pub label_selector: Option<String>,
    /// The [`CLUSTER`] tag value; `None` for no tag.
    pub cluster: Option<String>,
    /// Bound on each API request.
    pub request_timeout: Duration,
}

impl Default for KubernetesSettings {
    /// All namespaces, no selector, the cluster from `CLUSTER_NAME`, [`DEFAULT_REQUEST_TIMEOUT`].
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            label_selector: None,
            cluster: crate::cluster_from_env(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Collects Kubernetes metrics once per round (a [`FleetCollector`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), kube::Error> {
/// use paymetrics_infra::kubernetes::{KubernetesCollector, KubernetesSettings};
///
/// // In-cluster configuration, or the kubeconfig (KUBECONFIG, ~/.kube/config).
/// let collector = KubernetesCollector::infer(KubernetesSettings {
///     namespaces: vec!["payments".into()],
///     ..KubernetesSettings::default()
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub struct KubernetesCollector {
    client: Client,
    settings: KubernetesSettings,
    reporter: Reporter,
}

impl std::fmt::Debug for KubernetesCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesCollector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KubernetesCollector {
    /// A collector on the in-cluster configuration or the kubeconfig, as [`Config::infer`]
    /// finds them.
    pub async fn infer(settings: KubernetesSettings) -> Result<Self, kube::Error> {
        let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
        Self::from_config(config, settings)
    }

    /// A collector on `config`. kube's own retries of throttled requests are turned off:
    /// the next round is the retry, so a throttled API server gets less load, not more.
    pub fn from_config(
        mut config: Config,
        settings: KubernetesSettings,
    ) -> Result<Self, kube::Error> {
        config.default_retry = false;
        config.read_timeout = Some(settings.request_timeout);
        Ok(Self::new(Client::try_from(config)?, settings))
    }

    /// A collector on a client built by the caller (its retry policy is the caller's).
    pub fn new(client: Client, settings: KubernetesSettings) -> Self {
        Self {
            client,
            settings,
            reporter: Reporter::new(COLLECTOR_NAME),
        }
    }

    fn base_labels(&self) -> Vec<Label> {
        self.settings
            .cluster
            .iter()
            .map(|c| Label::new(CLUSTER, c.clone()))
            .collect()
    }

    async fn call<T>(
        &mut self,
        sink: &Sink,
        call: &'static str,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Option<T> {
        self.reporter.call(sink, call);
        match tokio::time::timeout(self.settings.request_timeout, request).await {
            Ok(Ok(answer)) => Some(answer),
            Ok(Err(e)) => {
                self.reporter.failed(sink, call, classify(&e), &e);
                None
            }
            Err(_) => {
                self.reporter
                    .failed(sink, call, report::REASON_TIMEOUT, &"no answer in time");
                None
            }
        }
    }

    /// Every object of a list, page by page, in each watched namespace (or all); `None` if
    /// any page failed, since a partial count would be a wrong count.
    async fn list_all<K>(
        &mut self,
        sink: &Sink,
        call: &'static str,
        selector: Option<String>,
    ) -> Option<Vec<K>>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let apis: Vec<Api<K>> = if self.settings.namespaces.is_empty() {
            vec![Api::all(self.client.clone())]
        } else {
            self.settings
                .namespaces
                .iter()
                .map(|ns| Api::namespaced(self.client.clone(), ns))
                .collect()
        };
        let mut all = Vec::new();
        for api in apis {
            let mut params = ListParams::default().limit(PAGE_SIZE);
            if let Some(selector) = &selector {
                params = params.labels(selector);
            }
            loop {
                let page = self.call(sink, call, api.list(&params)).await?;
                all.extend(page.items);
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
        }
        Some(all)
    }

    async fn collect_pods(&mut self, sink: &Sink) {
        let selector = self.settings.label_selector.clone();
        let Some(pods) = self.list_all::<Pod>(sink, CALL_PODS, selector).await else {
            return;
        };
        let counts = pod_phases(&pods);
        let labels = self.base_labels();
        sink.record(|| {
            metrics::gauge!(PODS_RUNNING, labels.clone()).set(counts.running as f64);
            metrics::gauge!(PODS_PENDING, labels.clone()).set(counts.pending as f64);
            metrics::gauge!(PODS_FAILED, labels).set(counts.failed as f64);
        });
    }

    /// Nodes by readiness; returns the nodes for the usage queries.
    async fn collect_nodes(&mut self, sink: &Sink) -> Vec<Node> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut nodes = Vec::new();
        let mut params = ListParams::default().limit(PAGE_SIZE);
        loop {
            let Some(page) = self.call(sink, CALL_NODES, api.list(&params)).await else {
                return Vec::new();
            };
            nodes.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        let ready = nodes.iter().filter(|n| is_ready(n)).count();
        let labels = self.base_labels();
        sink.record(|| {
            metrics::gauge!(NODES_READY, labels.clone()).set(ready as f64);
            metrics::gauge!(NODES_NOT_READY, labels).set((nodes.len() - ready) as f64);
        });
        nodes
    }

    async fn collect_node_usage(&mut self, sink: &Sink, nodes: &[Node]) {
        let request = http::Request::get("/apis/metrics.k8s.io/v1beta1/nodes")
            .body(Vec::new())
            .expect("a static path is a valid request");
        let client = self.client.clone();
        let Some(list) = self
            .call(
                sink,
                CALL_NODE_METRICS,
                client.request::<NodeMetricsList>(request),
            )
            .await
        else {
            return;
        };
        let allocatable: BTreeMap<&str, (Option<f64>, Option<f64>)> = nodes
            .iter()
            .filter_map(|n| {
                let name = n.metadata.name.as_deref()?;
                let alloc = n.status.as_ref()?.allocatable.as_ref()?;
                let cpu = alloc.get("cpu").and_then(|q| parse_quantity(&q.0));
                let memory = alloc.get("memory").and_then(|q| parse_quantity(&q.0));
                Some((name, (cpu, memory)))
            })
            .collect();
        let base = self.base_labels();
        sink.record(|| {
            for item in &list.items {
                let Some((cpu_total, memory_total)) = allocatable.get(item.metadata.name.as_str())
                else {
                    continue;
                };
                let mut labels = base.clone();
                labels.push(Label::new(NODE, item.metadata.name.clone()));
                let cpu = item.usage.get("cpu").and_then(|q| parse_quantity(q));
                if let (Some(used), Some(total)) = (cpu, cpu_total)
                    && *total > 0.0
                {
                    metrics::gauge!(NODE_CPU_UTILIZATION, labels.clone()).set(used / total * 100.0);
                }
                let memory = item.usage.get("memory").and_then(|q| parse_quantity(q));
                if let (Some(used), Some(total)) = (memory, memory_total)
                    && *total > 0.0
                {
                    metrics::gauge!(NODE_MEMORY_UTILIZATION, labels).set(used / total * 100.0);
                }
            }
        });
    }

    async fn collect_node_disks(&mut self, sink: &Sink, nodes: &[Node]) {
        // The kubelets answer one by one; ask the ready ones at once (a not-ready node's
        // kubelet would only time out), bounded by the request timeout each.
        let mut asks = tokio::task::JoinSet::new();
        for name in nodes
            .iter()
            .filter(|n| is_ready(n))
            .filter_map(|n| n.metadata.name.clone())
        {
            let client = self.client.clone();
            let timeout = self.settings.request_timeout;
            self.reporter.call(sink, CALL_STATS_SUMMARY);
            asks.spawn(async move {
                let request =
                    http::Request::get(format!("/api/v1/nodes/{name}/proxy/stats/summary"))
                        .body(Vec::new());
                let answer = match request {
                    Ok(request) => {
                        tokio::time::timeout(timeout, client.request::<Summary>(request))
                            .await
                            .map_err(|_| None)
                            .and_then(|r| r.map_err(Some))
                    }
                    Err(e) => Err(Some(kube::Error::HttpError(e))),
                };
                (name, answer)
            });
        }
        let base = self.base_labels();
        while let Some(joined) = asks.join_next().await {
            let Ok((name, answer)) = joined else { continue };
            match answer {
                Ok(summary) => {
                    let Some(fs) = summary.node.fs else { continue };
                    let (Some(used), Some(capacity)) = (fs.used_bytes, fs.capacity_bytes) else {
                        continue;
                    };
                    if capacity == 0 {
                        continue;
                    }
                    let mut labels = base.clone();
                    labels.push(Label::new(NODE, name));
                    sink.record(|| {
                        metrics::gauge!(NODE_DISK_UTILIZATION, labels)
                            .set(used as f64 / capacity as f64 * 100.0);
                    });
                }
                Err(Some(e)) => self
                    .reporter
                    .failed(sink, CALL_STATS_SUMMARY, classify(&e), &e),
                Err(None) => self.reporter.failed(
                    sink,
                    CALL_STATS_SUMMARY,
                    report::REASON_TIMEOUT,
                    &"no answer in time",
                ),
            }
        }
    }

    async fn collect_hpas(&mut self, sink: &Sink) {
        let Some(hpas) = self
            .list_all::<HorizontalPodAutoscaler>(sink, CALL_HPAS, None)
            .await
        else {
            return;
        };
        let base = self.base_labels();
        sink.record(|| {
            for hpa in &hpas {
                let Some(spec) = &hpa.spec else { continue };
                let mut labels = base.clone();
                labels.push(Label::new(
                    NAMESPACE,
                    hpa.metadata.namespace.clone().unwrap_or_default(),
                ));
                labels.push(Label::new(DEPLOYMENT, spec.scale_target_ref.name.clone()));
                if let Some(status) = &hpa.status {
                    metrics::gauge!(HPA_CURRENT_REPLICAS, labels.clone())
                        .set(f64::from(status.current_replicas.unwrap_or(0)));
                    metrics::gauge!(HPA_DESIRED_REPLICAS, labels.clone())
                        .set(f64::from(status.desired_replicas));
                }
                let target = spec.metrics.iter().flatten().find_map(|m| {
                    let resource = m.resource.as_ref()?;
                    (m.type_ == "Resource" && resource.name == "cpu")
                        .then_some(resource.target.average_utilization)
                        .flatten()
                });
                if let Some(target) = target {
                    metrics::gauge!(HPA_TARGET_CPU_UTILIZATION, labels).set(f64::from(target));
                }
            }
        });
    }

    /// One round: pods, nodes, node usage, node disks, HPAs. Each part that fails is
    /// counted and logged; the others still run.
    pub async fn collect(&mut self, sink: &Sink) {
        self.collect_pods(sink).await;
        let nodes = self.collect_nodes(sink).await;
        if !nodes.is_empty() {
            self.collect_node_usage(sink, &nodes).await;
            self.collect_node_disks(sink, &nodes).await;
        }
        self.collect_hpas(sink).await;
        self.reporter.end_round(sink);
    }
}

impl FleetCollector for KubernetesCollector {
    fn name(&self) -> &'static str {
        COLLECTOR_NAME
    }

    fn round<'a>(&'a mut self, sink: &'a Sink) -> RoundFuture<'a> {
        Box::pin(self.collect(sink))
    }
}

/// Pods counted by phase.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PodPhases {
    running: usize,
    pending: usize,
    failed: usize,
}

fn pod_phases(pods: &[Pod]) -> PodPhases {
    let mut counts = PodPhases::default();
    for pod in pods {
        match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Running") => counts.running += 1,
            Some("Pending") => counts.pending += 1,
            Some("Failed") => counts.failed += 1,
            _ => {}
        }
    }
    counts
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The `REASON_*` of a failed kube call.
fn classify(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) => match status.code {
            401 => report::REASON_UNAUTHORIZED,
            403 => report::REASON_FORBIDDEN,
            404 => report::REASON_NOT_FOUND,
            429 => report::REASON_THROTTLED,
            500..=599 => report::REASON_SERVER_ERROR,
            _ => report::REASON_OTHER,
        },
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => report::REASON_INVALID_RESPONSE,
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            if is_timeout(error) {
                report::REASON_TIMEOUT
            } else {
                report::REASON_UNREACHABLE
            }
        }
        kube::Error::Auth(_) => report::REASON_NO_CREDENTIALS,
        _ => report::REASON_OTHER,
    }
}

fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || e.to_string().contains("timed out")
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// metrics.k8s.io/v1beta1 `NodeMetricsList` (k8s-openapi has no type for it).
#[derive(Debug, Deserialize)]
struct NodeMetricsList {
    items: Vec<NodeMetrics>,
}

#[derive(Debug, Deserialize)]
struct NodeMetrics {
    metadata: Named,
    usage: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: String,
}

/// The kubelet's stats summary (`/stats/summary`), only what this collector reads.
#[derive(Debug, Deserialize)]
struct Summary {
    node: NodeStats,
}

#[derive(Debug, Deserialize)]
struct NodeStats {
    fs: Option<FsStats>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsStats {
    capacity_bytes: Option<u64>,
    used_bytes: Option<u64>,
}

/// A Kubernetes quantity (`250m`, `2`, `1536Mi`, `1.5Gi`, `100n`, `1e3`) as a plain number
/// (cores, bytes); `None` if it is not one.
///
/// ```
/// use paymetrics_infra::kubernetes::parse_quantity;
/// assert_eq!(parse_quantity("250m"), Some(0.25));
/// assert_eq!(parse_quantity("2Gi"), Some(2.0 * 1024.0 * 1024.0 * 1024.0));
/// assert_eq!(parse_quantity("1500000n"), Some(0.0015));
/// assert_eq!(parse_quantity("lots"), None);
/// ```
pub fn parse_quantity(quantity: &str) -> Option<f64> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            10f64.powi(exponent[1..].parse::<i32>().ok()?)
        }
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("3900m"), Some(3.9));
        assert_eq!(parse_quantity("16393076Ki"), Some(16_393_076.0 * 1024.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("1E"), Some(1e18));
        assert_eq!(parse_quantity("12x"), None);
        assert_eq!(parse_quantity(""), None);
    }
}
