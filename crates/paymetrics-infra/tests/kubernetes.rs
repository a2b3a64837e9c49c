//! The real kube client against a loopback HTTP server answering with the Kubernetes API's
//! JSON shapes: pods (in pages), nodes, metrics.k8s.io, the kubelet stats summary through the
//! node proxy, autoscaling/v2 HPAs; and 403, 404, 429 and a server that never answers.
#![cfg(feature = "kubernetes")]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use paymetrics::export::{MemoryExporter, MemoryReader};
use paymetrics_infra::{
    Sink,
    kubernetes::{self as k8s, KubernetesCollector, KubernetesSettings},
    report,
};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

enum Reply {
    Json(u16, serde_json::Value),
    Text(u16, &'static str),
    Silent,
}

type Routes = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Serves `routes` on a free loopback port; returns its URL and the request targets seen.
async fn serve(routes: Routes) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let routes = Arc::clone(&routes);
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let target = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push(target.clone());
                let (status, body, kind) = match routes(&target) {
                    Reply::Json(s, v) => (s, v.to_string(), "application/json"),
                    Reply::Text(s, t) => (s, t.to_owned(), "text/plain"),
                    Reply::Silent => {
                        // Holds the connection open without answering.
                        let _ = socket.read(&mut buf).await;
                        return;
                    }
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

fn pod(phase: &str) -> serde_json::Value {
    json!({"metadata": {"name": format!("p-{phase}"), "namespace": "payments"}, "status": {"phase": phase}})
}

fn node(name: &str, ready: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi"},
            "conditions": [{"type": "Ready", "status": ready}]
        }
    })
}

fn status(code: u16, reason: &str) -> serde_json::Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code})
}

fn list(kind: &str, items: Vec<serde_json::Value>, cont: Option<&str>) -> serde_json::Value {
    json!({"kind": kind, "apiVersion": "v1", "metadata": {"continue": cont.unwrap_or("")}, "items": items})
}

fn api(target: &str) -> Reply {
    let path = target.split('?').next().unwrap();
    match path {
        "/api/v1/namespaces/payments/pods" if target.contains("continue=page2") => Reply::Json(
            200,
            list("PodList", vec![pod("Failed"), pod("Failed")], None),
        ),
        "/api/v1/namespaces/payments/pods" => Reply::Json(
            200,
            list(
                "PodList",
                vec![pod("Running"), pod("Running"), pod("Pending")],
                Some("page2"),
            ),
        ),
        "/api/v1/nodes" => Reply::Json(
            200,
            list(
                "NodeList",
                vec![
                    node("n1", "True"),
                    node("n2", "True"),
                    node("n3", "Unknown"),
                ],
                None,
            ),
        ),
        "/apis/metrics.k8s.io/v1beta1/nodes" => Reply::Json(
            200,
            json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": [
                {"metadata": {"name": "n1"}, "timestamp": "2030-01-01T00:00:00Z", "window": "20s", "usage": {"cpu": "1", "memory": "2Gi"}},
                {"metadata": {"name": "n2"}, "timestamp": "2030-01-01T00:00:00Z", "window": "20s", "usage": {"cpu": "3000m", "memory": "4194304Ki"}}
            ]}),
        ),
        p if p.starts_with("/api/v1/nodes/") && p.ends_with("/proxy/stats/summary") => Reply::Json(
            200,
            json!({"node": {"nodeName": "n", "fs": {"availableBytes": 75, "capacityBytes": 100, "usedBytes": 25}}, "pods": []}),
        ),
        "/apis/autoscaling/v2/namespaces/payments/horizontalpodautoscalers" => Reply::Json(
            200,
            json!({"kind": "HorizontalPodAutoscalerList", "apiVersion": "autoscaling/v2", "metadata": {}, "items": [{
                "metadata": {"name": "api", "namespace": "payments"},
                "spec": {
                    "scaleTargetRef": {"kind": "Deployment", "name": "payments-api", "apiVersion": "apps/v1"},
                    "maxReplicas": 10,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
                },
                "status": {"currentReplicas": 3, "desiredReplicas": 4}
            }]}),
        ),
        _ => Reply::Json(404, status(404, "NotFound")),
    }
}

fn instance() -> (paymetrics::Paymetrics, MemoryReader) {
    let (memory, reader) = MemoryExporter::new();
    let metrics = paymetrics::builder()
        .without_dogstatsd()
        .flush_interval(Duration::from_secs(3600))
        .exporter(memory)
        .build()
        .unwrap();
    (metrics, reader)
}

fn collector(url: &str, timeout: Duration) -> KubernetesCollector {
    let config = kube::Config::new(url.parse().unwrap());
    KubernetesCollector::from_config(
        config,
        KubernetesSettings {
            namespaces: vec!["payments".into()],
            label_selector: Some("app=api".into()),
            cluster: Some("test-cluster".into()),
            request_timeout: timeout,
        },
    )
    .unwrap()
}

fn gauge(reader: &MemoryReader, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    reader.latest()?.gauge(name, labels).map(|g| g.value)
}

const CLUSTER: (&str, &str) = ("cluster", "test-cluster");

#[tokio::test]
async fn a_round_reads_every_api() {
    let (url, seen) = serve(Arc::new(api)).await;
    let (metrics, reader) = instance();
    let sink = Sink::new(&metrics);
    collector(&url, Duration::from_secs(30))
        .collect(&sink)
        .await;
    metrics.flush();

    assert_eq!(gauge(&reader, k8s::PODS_RUNNING, &[CLUSTER]), Some(2.0));
    assert_eq!(gauge(&reader, k8s::PODS_PENDING, &[CLUSTER]), Some(1.0));
    assert_eq!(gauge(&reader, k8s::PODS_FAILED, &[CLUSTER]), Some(2.0));
    assert_eq!(gauge(&reader, k8s::NODES_READY, &[CLUSTER]), Some(2.0));
    assert_eq!(gauge(&reader, k8s::NODES_NOT_READY, &[CLUSTER]), Some(1.0));
    let n1 = [CLUSTER, ("node", "n1")];
    let n2 = [CLUSTER, ("node", "n2")];
    assert_eq!(gauge(&reader, k8s::NODE_CPU_UTILIZATION, &n1), Some(25.0));
    assert_eq!(gauge(&reader, k8s::NODE_CPU_UTILIZATION, &n2), Some(75.0));
    assert_eq!(
        gauge(&reader, k8s::NODE_MEMORY_UTILIZATION, &n1),
        Some(25.0)
    );
    assert_eq!(
        gauge(&reader, k8s::NODE_MEMORY_UTILIZATION, &n2),
        Some(50.0)
    );
    assert_eq!(gauge(&reader, k8s::NODE_DISK_UTILIZATION, &n1), Some(25.0));
    assert_eq!(
        gauge(
            &reader,
            k8s::NODE_DISK_UTILIZATION,
            &[CLUSTER, ("node", "n3")]
        ),
        None
    );
    let hpa = [
        CLUSTER,
        ("namespace", "payments"),
        ("deployment", "payments-api"),
    ];
    assert_eq!(gauge(&reader, k8s::HPA_CURRENT_REPLICAS, &hpa), Some(3.0));
    assert_eq!(gauge(&reader, k8s::HPA_DESIRED_REPLICAS, &hpa), Some(4.0));
    assert_eq!(
        gauge(&reader, k8s::HPA_TARGET_CPU_UTILIZATION, &hpa),
        Some(70.0)
    );

    // Two pages of pods, one of nodes, one of node metrics, two summaries, one of HPAs.
    let calls = |call| {
        reader.counter_total(
            report::API_CALLS,
            &[("collector", "kubernetes"), ("call", call)],
        )
    };
    assert_eq!(calls(k8s::CALL_PODS), 2);
    assert_eq!(calls(k8s::CALL_NODES), 1);
    assert_eq!(calls(k8s::CALL_NODE_METRICS), 1);
    assert_eq!(calls(k8s::CALL_STATS_SUMMARY), 2);
    assert_eq!(calls(k8s::CALL_HPAS), 1);
    assert_eq!(
        gauge(
            &reader,
            report::ROUND_API_CALLS,
            &[("collector", "kubernetes")]
        ),
        Some(7.0)
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|t| t.starts_with("/api/v1/namespaces/payments/pods?")
                && t.contains("labelSelector=app%3Dapi")),
        "{seen:?}"
    );
    assert_eq!(seen.len(), 7, "{seen:?}");
}

#[tokio::test]
async fn forbidden_missing_metrics_server_and_throttling_are_counted_and_the_round_goes_on() {
    let routes: Routes = Arc::new(|target: &str| {
        let path = target.split('?').next().unwrap();
        match path {
            "/api/v1/namespaces/payments/pods" => Reply::Json(403, status(403, "Forbidden")),
            // No metrics-server: the aggregated API is not registered.
            "/apis/metrics.k8s.io/v1beta1/nodes" => Reply::Text(404, "404 page not found"),
            "/apis/autoscaling/v2/namespaces/payments/horizontalpodautoscalers" => {
                Reply::Json(429, status(429, "TooManyRequests"))
            }
            _ => api(target),
        }
    });
    let (url, seen) = serve(routes).await;
    let (metrics, reader) = instance();
    let sink = Sink::new(&metrics);
    collector(&url, Duration::from_secs(30))
        .collect(&sink)
        .await;
    metrics.flush();

    let errors = |reason| {
        reader.counter_total(
            report::COLLECTOR_ERRORS,
            &[("collector", "kubernetes"), ("reason", reason)],
        )
    };
    assert_eq!(errors(report::REASON_FORBIDDEN), 1);
    assert_eq!(errors(report::REASON_NOT_FOUND), 1);
    assert_eq!(errors(report::REASON_THROTTLED), 1);
    assert_eq!(gauge(&reader, k8s::PODS_FAILED, &[CLUSTER]), None);
    assert_eq!(gauge(&reader, k8s::NODES_READY, &[CLUSTER]), Some(2.0));
    assert_eq!(
        gauge(
            &reader,
            k8s::NODE_DISK_UTILIZATION,
            &[CLUSTER, ("node", "n2")]
        ),
        Some(25.0)
    );
    // Throttled once, not retried within the round.
    let hpas = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.contains("horizontalpodautoscalers"))
        .count();
    assert_eq!(hpas, 1);
}

#[tokio::test]
async fn a_silent_kubelet_times_out_and_the_round_goes_on() {
    let routes: Routes = Arc::new(|target: &str| {
        if target.starts_with("/api/v1/nodes/n1/proxy/") {
            Reply::Silent
        } else {
            api(target)
        }
    });
    let (url, _) = serve(routes).await;
    let (metrics, reader) = instance();
    let sink = Sink::new(&metrics);
    // A short request timeout: the server never answers n1, so it is what ends the wait.
    collector(&url, Duration::from_millis(500))
        .collect(&sink)
        .await;
    metrics.flush();
    let errors = |reason| {
        reader.counter_total(
            report::COLLECTOR_ERRORS,
            &[("collector", "kubernetes"), ("reason", reason)],
        )
    };
    assert_eq!(errors(report::REASON_TIMEOUT), 1);
    assert_eq!(
        gauge(
            &reader,
            k8s::NODE_DISK_UTILIZATION,
            &[CLUSTER, ("node", "n2")]
        ),
        Some(25.0)
    );
    assert_eq!(
        gauge(
            &reader,
            k8s::HPA_DESIRED_REPLICAS,
            &[
                CLUSTER,
                ("namespace", "payments"),
                ("deployment", "payments-api")
            ]
        ),
        Some(4.0)
    );
}
