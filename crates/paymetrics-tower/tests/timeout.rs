//! tower-http's `TimeoutLayer` on either side of `ApiMetricsLayer`, over real HTTP on loopback:
//! what is recorded is what the client got.

mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use axum::{
    Router,
    http::{Request, StatusCode, header},
    routing::get,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use paymetrics_tower::{
    ApiMetricsLayer,
    server::{
        ENDPOINT, METHOD, OUTCOME, REQUESTS_COUNT, REQUESTS_IN_FLIGHT, REQUESTS_RESPONSE_TIME,
        RESPONSES_SIZE, STATUS_CODE, USER_TIER,
    },
};
use support::{Recorded, connect, request, run, send_once};
use tokio::sync::oneshot;
use tower::ServiceBuilder;
use tower_http::{
    compression::CompressionLayer, cors::CorsLayer, timeout::TimeoutLayer, trace::TraceLayer,
};

/// Short enough for a test, long enough that a loaded 2-core box reaches the handler first.
const TIMEOUT: Duration = Duration::from_millis(300);

fn tags<'a>(status: &'a str, outcome: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (METHOD, "GET"),
        (ENDPOINT, "/v1/reports/:id"),
        (STATUS_CODE, status),
        (USER_TIER, "unknown"),
        (OUTCOME, outcome),
    ]
}

/// Signals when dropped: the handler's future was abandoned.
struct OnDrop(Option<oneshot::Sender<()>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A route whose handler never answers; `started` fires when it runs, `dropped` when it is
/// abandoned.
fn slow_route(started: oneshot::Sender<()>, dropped: oneshot::Sender<()>) -> Router {
    let slot = Arc::new(Mutex::new(Some((started, dropped))));
    Router::new().route(
        "/v1/reports/{id}",
        get(move || {
            let (started, dropped) = slot.lock().unwrap().take().expect("one request");
            async move {
                let _on_drop = OnDrop(Some(dropped));
                let _ = started.send(());
                std::future::pending::<()>().await;
                "never"
            }
        }),
    )
}

fn timeout_layer() -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, TIMEOUT)
}

/// Serves `app` (the slow route, layered), sends one request and returns what the client got.
async fn call_slow(app: impl FnOnce(Router) -> Router) -> StatusCode {
    let (started_tx, started_rx) = oneshot::channel();
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let addr = support::serve_axum(app(slow_route(started_tx, dropped_tx))).await;
    let (status, _, body) = send_once(addr, request("GET", "/v1/reports/r_1", "")).await;
    started_rx.await.expect("the handler ran");
    dropped_rx.await.expect("the timeout abandoned the handler");
    assert!(body.is_empty());
    status
}

fn assert_recorded_as_the_timeout(recorded: &Recorded) {
    let t = tags("504", "completed");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &t), 1);
    assert_eq!(
        recorded.series(REQUESTS_COUNT).len(),
        1,
        "exactly one record"
    );
    let time = recorded.histogram(REQUESTS_RESPONSE_TIME, &t);
    assert_eq!(time.count, 1);
    assert!(
        time.min >= TIMEOUT.as_secs_f64() * 1000.0 - 1.0,
        "timed to the timeout: {time:?}"
    );
    assert_eq!(recorded.histogram(RESPONSES_SIZE, &t).sum, 0.0);
    let in_flight = [(METHOD, "GET"), (ENDPOINT, "/v1/reports/:id")];
    assert_eq!(recorded.gauge(REQUESTS_IN_FLIGHT, &in_flight), Some(0.0));
}

/// The recommended order: the metrics layer outside the timeout sees the timeout's response.
#[test]
fn outside_the_timeout_the_layer_records_the_timeout_response() {
    let recorded = run(|_| async {
        let status =
            call_slow(|routes| routes.layer(timeout_layer()).layer(ApiMetricsLayer::new())).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    });
    assert_recorded_as_the_timeout(&recorded);
}

/// Inside the timeout, with the timeout declared: the same record as outside.
#[test]
fn inside_a_declared_timeout_the_layer_records_what_the_client_saw() {
    let outside = run(|_| async {
        let status =
            call_slow(|routes| routes.layer(timeout_layer()).layer(ApiMetricsLayer::new())).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    });
    let inside = run(|_| async {
        let status = call_slow(|routes| {
            routes
                .layer(ApiMetricsLayer::new().outer_timeout(TIMEOUT, StatusCode::GATEWAY_TIMEOUT))
                .layer(timeout_layer())
        })
        .await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    });
    assert_recorded_as_the_timeout(&inside);
    assert_eq!(
        inside.series(REQUESTS_COUNT),
        outside.series(REQUESTS_COUNT),
        "the same series in either order"
    );
}

/// Without the declaration, a layer inside a timeout cannot tell it from a client that left.
#[test]
fn inside_an_undeclared_timeout_the_layer_records_a_client_disconnect() {
    let recorded = run(|_| async {
        let status =
            call_slow(|routes| routes.layer(ApiMetricsLayer::new()).layer(timeout_layer())).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    });
    assert_eq!(
        recorded.counter(REQUESTS_COUNT, &tags("499", "cancelled")),
        1
    );
    assert_eq!(recorded.series(REQUESTS_COUNT).len(), 1);
}

/// The declaration only claims drops that come at the timeout: a client that leaves earlier is
/// still a client that left.
#[test]
fn a_client_that_leaves_before_a_declared_timeout_is_cancelled() {
    const LONG: Duration = Duration::from_secs(30);
    let recorded = run(|_| async {
        let (started_tx, started_rx) = oneshot::channel();
        let (dropped_tx, dropped_rx) = oneshot::channel();
        let app = slow_route(started_tx, dropped_tx)
            .layer(ApiMetricsLayer::new().outer_timeout(LONG, StatusCode::GATEWAY_TIMEOUT))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                LONG,
            ));
        let addr = support::serve_axum(app).await;
        let (mut sender, connection) = connect(addr).await;
        sender.ready().await.expect("ready");
        let response = tokio::spawn(sender.send_request(request("GET", "/v1/reports/r_2", "")));
        started_rx.await.expect("the handler ran");
        response.abort();
        connection.abort();
        dropped_rx.await.expect("the server abandoned the handler");
    });
    assert_eq!(
        recorded.counter(REQUESTS_COUNT, &tags("499", "cancelled")),
        1
    );
    assert_eq!(recorded.series(REQUESTS_COUNT).len(), 1);
}

/// The recommended stack: the metrics layer outermost, then tower-http's Trace, Cors,
/// Compression and Timeout. It records the compressed size the client received, and the
/// timeout's status.
#[test]
fn the_recommended_tower_http_stack_records_what_the_client_received() {
    const REPORT: &str = "amount,currency\n";
    let compressed = Arc::new(AtomicUsize::new(0));
    let received = Arc::clone(&compressed);
    let recorded = run(|_| async move {
        let (started_tx, started_rx) = oneshot::channel();
        let (dropped_tx, dropped_rx) = oneshot::channel();
        let app = slow_route(started_tx, dropped_tx)
            .route(
                "/v1/reports/{id}/csv",
                get(|| async { REPORT.repeat(1000) }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(ApiMetricsLayer::new())
                    .layer(TraceLayer::new_for_http())
                    .layer(CorsLayer::permissive())
                    .layer(CompressionLayer::new())
                    .layer(timeout_layer()),
            );
        let addr = support::serve_axum(app).await;

        let (mut sender, _task) = connect(addr).await;
        sender.ready().await.expect("ready");
        let csv = Request::get("/v1/reports/r_1/csv")
            .header(header::HOST, "127.0.0.1")
            .header(header::ACCEPT_ENCODING, "gzip")
            .header(header::ORIGIN, "https://dashboard.example")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = sender.send_request(csv).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(
            response
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
        let gzipped = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert!(
            gzipped.len() < REPORT.len() * 1000 / 10,
            "{}",
            gzipped.len()
        );
        received.store(gzipped.len(), Relaxed);

        let status = send_once(addr, request("GET", "/v1/reports/r_2", ""))
            .await
            .0;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        started_rx.await.expect("the handler ran");
        dropped_rx.await.expect("the timeout abandoned the handler");
    });

    let csv = vec![
        (METHOD, "GET"),
        (ENDPOINT, "/v1/reports/:id/csv"),
        (STATUS_CODE, "200"),
        (USER_TIER, "unknown"),
        (OUTCOME, "completed"),
    ];
    assert_eq!(recorded.counter(REQUESTS_COUNT, &csv), 1);
    let size = recorded.histogram(RESPONSES_SIZE, &csv);
    assert_eq!(
        size.sum,
        compressed.load(Relaxed) as f64,
        "the compressed bytes the client received"
    );
    assert_eq!(
        recorded.counter(REQUESTS_COUNT, &tags("504", "completed")),
        1
    );
    assert_eq!(recorded.series(REQUESTS_COUNT).len(), 2);
}
