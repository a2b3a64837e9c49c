//! Route templates as the Datadog Agent receives them, and routes ignored or grouped: an axum
//! server on 127.0.0.1:0, a real hyper client, and paymetrics' real DogStatsD exporter sending
//! to a UDP socket on loopback (or its memory exporter, for the in-flight gauges).

mod support;

use axum::{Router, http::StatusCode, routing::get};
use paymetrics_tower::{
    ApiMetricsLayer,
    server::{ENDPOINT, METHOD, REQUESTS_COUNT, REQUESTS_IN_FLIGHT, endpoint_tag},
};
use support::{connect, request, run, run_dogstatsd, send};

fn app(layer: ApiMetricsLayer) -> Router {
    Router::new()
        .route("/v1/payments/{id}", get(|| async { "{}" }))
        .route(
            "/v1/payments/{id}/refunds/{refund_id}",
            get(|| async { "{}" }),
        )
        .route("/files/{*path}", get(|| async { "file" }))
        .route("/static/css/{file}", get(|| async { "css" }))
        .route("/static/js/{file}", get(|| async { "js" }))
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(|| async { "" }))
        .layer(layer)
}

const PATHS: [&str; 7] = [
    "/v1/payments/pay_1",
    "/v1/payments/pay_1/refunds/re_9",
    "/files/a/b/c.txt",
    "/static/css/site.css",
    "/static/js/app.js",
    "/health",
    "/metrics",
];

async fn send_all(addr: std::net::SocketAddr) {
    let (mut sender, _task) = connect(addr).await;
    for path in PATHS {
        let (status, _, _) = send(&mut sender, request("GET", path, "")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

/// The `api.requests.count` lines the Agent received, as (value, endpoint tag).
fn wire_counts(lines: &[String]) -> Vec<(u64, String)> {
    let prefix = format!("{REQUESTS_COUNT}:");
    let mut counts: Vec<(u64, String)> = lines
        .iter()
        .filter_map(|line| {
            let (value, rest) = line.strip_prefix(&prefix)?.split_once("|c")?;
            let endpoint = rest
                .split("|#")
                .nth(1)?
                .split(',')
                .find_map(|tag| tag.strip_prefix(&format!("{ENDPOINT}:")))?;
            Some((value.parse().ok()?, endpoint.to_owned()))
        })
        .collect();
    counts.sort_by(|a, b| a.1.cmp(&b.1));
    counts
}

/// The `endpoint` tags of every `api.requests.count` line the Agent received.
fn wire_endpoints(lines: &[String]) -> Vec<String> {
    wire_counts(lines).into_iter().map(|(_, e)| e).collect()
}

#[test]
fn templates_reach_datadog_readable_and_unchanged() {
    let lines = run_dogstatsd(|| async {
        let addr = support::serve_axum(app(ApiMetricsLayer::new())).await;
        send_all(addr).await;
    });

    assert_eq!(
        wire_endpoints(&lines),
        [
            "/files/:path...",
            "/health",
            "/metrics",
            "/static/css/:file",
            "/static/js/:file",
            "/v1/payments/:id",
            "/v1/payments/:id/refunds/:refund_id",
        ],
        "{lines:#?}"
    );
    // What the facade was handed is what went out: no braces turned into `_`.
    assert!(
        !lines.iter().any(|l| l.contains("_id_") || l.contains('{')),
        "{lines:#?}"
    );
    for template in [
        "/v1/payments/{id}",
        "/v1/payments/{id}/refunds/{refund_id}",
        "/files/{*path}",
    ] {
        let tag = format!("{ENDPOINT}:{}", endpoint_tag(template));
        assert!(lines.iter().any(|l| l.contains(&tag)), "{tag}: {lines:#?}");
    }
}

#[test]
fn ignored_routes_send_nothing_and_grouped_routes_share_one_endpoint() {
    let layer = ApiMetricsLayer::new()
        .ignore_route("/health")
        .ignore_route("/metrics")
        .group_route("/static/*", "/static")
        // Either spelling of a template works.
        .group_route("/v1/payments/:id/refunds/*", "/v1/payments/{id}/refunds");
    let lines = run_dogstatsd(|| async move {
        let addr = support::serve_axum(app(layer)).await;
        send_all(addr).await;
    });

    assert_eq!(
        wire_endpoints(&lines),
        [
            "/files/:path...",
            "/static",
            "/v1/payments/:id",
            "/v1/payments/:id/refunds",
        ],
        "{lines:#?}"
    );
    let counts = wire_counts(&lines);
    assert!(
        counts.contains(&(2, "/static".to_owned())),
        "both static routes in one series: {counts:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("/health") || l.contains("/metrics")),
        "{lines:#?}"
    );
}

#[test]
fn an_ignored_route_has_no_in_flight_gauge() {
    let recorded = run(|_| async {
        let layer = ApiMetricsLayer::new().ignore_route("/health");
        let addr = support::serve_axum(app(layer)).await;
        send_all(addr).await;
    });

    assert!(
        recorded
            .gauge(
                REQUESTS_IN_FLIGHT,
                &[(METHOD, "GET"), (ENDPOINT, "/health")]
            )
            .is_none()
    );
    assert_eq!(
        recorded.gauge(
            REQUESTS_IN_FLIGHT,
            &[(METHOD, "GET"), (ENDPOINT, "/v1/payments/:id")]
        ),
        Some(0.0)
    );
    assert_eq!(recorded.series(REQUESTS_COUNT).len(), 6);
}
