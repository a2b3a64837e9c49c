//! The server layer over real HTTP: an axum or plain hyper server on 127.0.0.1:0, a real hyper
//! client, and assertions on what paymetrics' own recorder received.

mod support;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Extension, Router,
    body::Body,
    http::{Request, StatusCode},
    routing::{get, post},
};
use bytes::Bytes;
use http::{Response, header::CONTENT_LENGTH};
use http_body_util::BodyExt;
use paymetrics_tower::{
    ApiMetricsLayer, UserTier,
    server::{
        ENDPOINT, ERROR, METHOD, OUTCOME, RATE_LIMIT_REMAINING, REQUESTS_COUNT,
        REQUESTS_ERROR_RATE, REQUESTS_IN_FLIGHT, REQUESTS_RESPONSE_TIME, REQUESTS_SIZE,
        RESPONSES_SIZE, STATUS_CODE, UNMATCHED_ENDPOINT, USER_TIER,
    },
};
use support::{connect, request, run, send, send_once};
use tokio::sync::oneshot;
use tower::util::MapRequestLayer;

/// The five tags of a request's series.
fn tags<'a>(
    method: &'a str,
    endpoint: &'a str,
    status: &'a str,
    tier: &'a str,
    outcome: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        (METHOD, method),
        (ENDPOINT, endpoint),
        (STATUS_CODE, status),
        (USER_TIER, tier),
        (OUTCOME, outcome),
    ]
}

fn with(
    mut tags: Vec<(&'static str, &'static str)>,
    extra: (&'static str, &'static str),
) -> Vec<(&'static str, &'static str)> {
    tags.push(extra);
    tags
}

#[test]
fn success_records_every_api_metric_once_with_the_route_template() {
    let recorded = run(|_| async {
        let app = Router::new()
            .route(
                "/v1/payments/{id}",
                post(|body: String| async move {
                    assert_eq!(body, "amount=1250");
                    ([("x-ratelimit-remaining", "42")], "paid")
                }),
            )
            .layer(ApiMetricsLayer::new())
            // An auth layer outside the metrics layer sets the caller's tier.
            .layer(MapRequestLayer::new(|mut req: Request<Body>| {
                req.extensions_mut().insert(UserTier::new("premium"));
                req
            }));
        let addr = support::serve_axum(app).await;
        let (status, _, body) = send_once(
            addr,
            request("POST", "/v1/payments/pay_8f3a", "amount=1250"),
        )
        .await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"paid"[..]));
    });

    let t = tags("POST", "/v1/payments/:id", "200", "premium", "completed");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &t), 1);
    assert_eq!(recorded.series(REQUESTS_COUNT).len(), 1);
    let time = recorded.histogram(REQUESTS_RESPONSE_TIME, &t);
    assert_eq!(time.count, 1);
    assert!(time.min > 0.0 && time.max < 60_000.0, "{time:?}");
    let request_size = recorded.histogram(REQUESTS_SIZE, &t);
    assert_eq!((request_size.count, request_size.sum), (1, 11.0));
    let response_size = recorded.histogram(RESPONSES_SIZE, &t);
    assert_eq!((response_size.count, response_size.sum), (1, 4.0));
    assert_eq!(
        recorded.counter(REQUESTS_ERROR_RATE, &with(t.clone(), (ERROR, "false"))),
        1
    );
    assert_eq!(
        recorded.counter(REQUESTS_ERROR_RATE, &with(t.clone(), (ERROR, "true"))),
        0
    );
    let rate_limit_tags = &t[..4];
    assert_eq!(
        recorded.gauge(RATE_LIMIT_REMAINING, rate_limit_tags),
        Some(42.0)
    );
    let in_flight = [(METHOD, "POST"), (ENDPOINT, "/v1/payments/:id")];
    assert_eq!(recorded.gauge(REQUESTS_IN_FLIGHT, &in_flight), Some(0.0));
    assert_eq!(
        recorded.names(),
        [
            RATE_LIMIT_REMAINING,
            REQUESTS_COUNT,
            REQUESTS_ERROR_RATE,
            REQUESTS_IN_FLIGHT,
            REQUESTS_RESPONSE_TIME,
            REQUESTS_SIZE,
            RESPONSES_SIZE,
        ]
    );
    assert!(
        !recorded
            .label_values()
            .iter()
            .any(|v| v.contains("pay_8f3a"))
    );
}

#[test]
fn client_errors_are_errors_and_the_handler_can_name_the_tier() {
    let recorded = run(|_| async {
        let app = Router::new()
            .route(
                "/v1/refunds",
                post(|| async {
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Extension(UserTier::from(String::from("free"))),
                        "amount exceeds the payment",
                    )
                }),
            )
            .layer(ApiMetricsLayer::new());
        let addr = support::serve_axum(app).await;
        let (status, _, _) = send_once(addr, request("POST", "/v1/refunds", "{}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    });

    let t = tags("POST", "/v1/refunds", "422", "free", "completed");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &t), 1);
    assert_eq!(
        recorded.counter(REQUESTS_ERROR_RATE, &with(t.clone(), (ERROR, "true"))),
        1
    );
    // The handler never read its body: the bytes the application read, not what was sent.
    let request_size = recorded.histogram(REQUESTS_SIZE, &t);
    assert_eq!((request_size.count, request_size.sum), (1, 0.0));
    assert_eq!(recorded.histogram(RESPONSES_SIZE, &t).sum, 26.0);
    // No rate-limit header, no gauge at all (not a misleading 0).
    assert!(recorded.series(RATE_LIMIT_REMAINING).is_empty());
}

#[test]
fn server_errors_are_errors() {
    let recorded = run(|_| async {
        let app = Router::new()
            .route(
                "/v1/payouts",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "ledger down") }),
            )
            .layer(ApiMetricsLayer::new());
        let addr = support::serve_axum(app).await;
        let (status, _, _) = send_once(addr, request("GET", "/v1/payouts", "")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    });

    let t = tags("GET", "/v1/payouts", "503", "unknown", "completed");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &t), 1);
    assert_eq!(
        recorded.counter(REQUESTS_ERROR_RATE, &with(t.clone(), (ERROR, "true"))),
        1
    );
    assert_eq!(
        recorded.counter(REQUESTS_ERROR_RATE, &with(t.clone(), (ERROR, "false"))),
        0
    );
    // A GET without a body: no request-size sample, and so no such series.
    assert!(recorded.series(REQUESTS_SIZE).is_empty());
    assert_eq!(recorded.histogram(RESPONSES_SIZE, &t).sum, 11.0);
}

/// A plain hyper server, a tower service that fails for one path, endpoints from a classifier.
#[test]
fn an_inner_service_error_is_recorded_once_as_an_error() {
    let recorded = run(|_| async {
        let service = tower::ServiceBuilder::new()
            .layer(
                ApiMetricsLayer::new().endpoint_fn(|head| match head.uri.path() {
                    "/v1/health" => Some("/v1/health".into()),
                    p if p.starts_with("/v1/ledger/") => Some("/v1/ledger/{account}".into()),
                    _ => None,
                }),
            )
            .service(tower::service_fn(|req: Request<_>| async move {
                let _: &paymetrics_tower::server::RequestBody<hyper::body::Incoming> = req.body();
                if req.uri().path() == "/v1/health" {
                    Ok(Response::new(String::from("ok")))
                } else {
                    Err(std::io::Error::other("ledger unreachable"))
                }
            }));
        let addr = support::serve_hyper(service).await;
        let (status, _, body) = send_once(addr, request("GET", "/v1/health", "")).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        // hyper closes the connection when the service fails: the client sees an error.
        let (mut sender, _task) = connect(addr).await;
        sender.ready().await.expect("ready");
        let failed = sender
            .send_request(request("GET", "/v1/ledger/acct_42", ""))
            .await;
        assert!(failed.is_err(), "{failed:?}");
    });

    let ok = tags("GET", "/v1/health", "200", "unknown", "completed");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &ok), 1);
    let failed = tags("GET", "/v1/ledger/:account", "500", "unknown", "error");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &failed), 1);
    assert_eq!(recorded.series(REQUESTS_COUNT).len(), 2);
    assert_eq!(
        recorded.counter(REQUESTS_ERROR_RATE, &with(failed.clone(), (ERROR, "true"))),
        1
    );
    assert_eq!(recorded.histogram(RESPONSES_SIZE, &failed).sum, 0.0);
    let in_flight = [(METHOD, "GET"), (ENDPOINT, "/v1/ledger/:account")];
    assert_eq!(recorded.gauge(REQUESTS_IN_FLIGHT, &in_flight), Some(0.0));
}

async fn rates() -> &'static str {
    panic!("rate table corrupted (a panic this test expects)")
}

#[test]
fn a_panic_caught_by_an_outer_layer_is_recorded_once() {
    let recorded = run(|_| async {
        let app = Router::new()
            .route("/v1/fx", get(rates))
            .layer(ApiMetricsLayer::new())
            .layer(tower_http::catch_panic::CatchPanicLayer::new());
        let addr = support::serve_axum(app).await;
        let (status, _, _) = send_once(addr, request("GET", "/v1/fx", "")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    });

    let t = tags("GET", "/v1/fx", "500", "unknown", "panic");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &t), 1);
    assert_eq!(recorded.series(REQUESTS_COUNT).len(), 1);
    assert_eq!(
        recorded.counter(REQUESTS_ERROR_RATE, &with(t.clone(), (ERROR, "true"))),
        1
    );
    let in_flight = [(METHOD, "GET"), (ENDPOINT, "/v1/fx")];
    assert_eq!(recorded.gauge(REQUESTS_IN_FLIGHT, &in_flight), Some(0.0));
}

#[test]
fn a_streaming_body_is_measured_by_its_frames_and_timed_to_its_end() {
    const PAUSE: Duration = Duration::from_millis(50);
    let recorded = run(|_| async {
        let app = Router::new()
            .route(
                "/v1/statements/{id}",
                get(|| async {
                    let chunks = futures_util::stream::unfold(0usize, |i| async move {
                        if i == 1 {
                            tokio::time::sleep(PAUSE).await; // a lower bound on the duration
                        }
                        let size = [1000, 2000, 3000].get(i)?;
                        Some((Ok::<_, Infallible>(Bytes::from(vec![b'x'; *size])), i + 1))
                    });
                    Body::from_stream(chunks)
                }),
            )
            .layer(ApiMetricsLayer::new());
        let addr = support::serve_axum(app).await;
        let (status, headers, body) =
            send_once(addr, request("GET", "/v1/statements/2024-05", "")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers.get(CONTENT_LENGTH), None, "streamed, not sized");
        assert_eq!(body.len(), 6000);
    });

    let t = tags("GET", "/v1/statements/:id", "200", "unknown", "completed");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &t), 1);
    let size = recorded.histogram(RESPONSES_SIZE, &t);
    assert_eq!((size.count, size.sum), (1, 6000.0));
    let time = recorded.histogram(REQUESTS_RESPONSE_TIME, &t);
    assert_eq!(time.count, 1);
    assert!(
        time.min >= PAUSE.as_secs_f64() * 1000.0,
        "timed to the end of the body: {time:?}"
    );
}

/// A body that yields one chunk, waits for `release`, then streams until the connection
/// fails; `dropped` fires when the server drops it.
fn endless_after_first_chunk(release: oneshot::Receiver<()>, dropped: oneshot::Sender<()>) -> Body {
    struct OnDrop(Option<oneshot::Sender<()>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
    let state = (0u32, Some(release), OnDrop(Some(dropped)));
    let chunks = futures_util::stream::unfold(state, |(i, mut release, on_drop)| async move {
        if i == 1
            && let Some(release) = release.take()
        {
            let _ = release.await;
        }
        // Bounded, so a server that never noticed the disconnect would end (and fail the test).
        (i < 100_000).then(|| {
            let chunk = Ok::<_, Infallible>(Bytes::from(vec![b'x'; 16 * 1024]));
            (chunk, (i + 1, release, on_drop))
        })
    });
    Body::from_stream(chunks)
}

#[test]
fn a_client_that_disconnects_mid_body_is_recorded_as_cancelled() {
    let recorded = run(|ctx| async move {
        let (release_tx, release_rx) = oneshot::channel();
        let (dropped_tx, dropped_rx) = oneshot::channel();
        let slot = Arc::new(Mutex::new(Some((release_rx, dropped_tx))));
        let app = Router::new()
            .route(
                "/v1/exports/{id}",
                get(move || {
                    let (release, dropped) = slot.lock().unwrap().take().expect("one request");
                    async move { endless_after_first_chunk(release, dropped) }
                }),
            )
            .layer(ApiMetricsLayer::new());
        let addr = support::serve_axum(app).await;

        let (mut sender, connection) = connect(addr).await;
        sender.ready().await.expect("ready");
        let response = sender
            .send_request(request("GET", "/v1/exports/exp_1", ""))
            .await
            .expect("response head");
        let mut body = response.into_body();
        let first = body.frame().await.expect("a frame").expect("not an error");
        assert!(first.is_data());

        let in_flight = [(METHOD, "GET"), (ENDPOINT, "/v1/exports/:id")];
        assert_eq!(
            ctx.recorded().gauge(REQUESTS_IN_FLIGHT, &in_flight),
            Some(1.0)
        );
        assert_eq!(
            ctx.recorded().series(REQUESTS_COUNT).len(),
            0,
            "not recorded yet"
        );

        // The client goes away mid-body; then the server tries to send more.
        drop(body);
        drop(sender);
        connection.abort();
        let _ = connection.await;
        let _ = release_tx.send(());
        dropped_rx.await.expect("the server dropped the body");
    });

    let t = tags("GET", "/v1/exports/:id", "200", "unknown", "cancelled");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &t), 1);
    assert_eq!(
        recorded.series(REQUESTS_COUNT).len(),
        1,
        "exactly one record"
    );
    assert_eq!(
        recorded.counter(REQUESTS_ERROR_RATE, &with(t.clone(), (ERROR, "false"))),
        1
    );
    let size = recorded.histogram(RESPONSES_SIZE, &t);
    assert_eq!(size.count, 1);
    assert!(size.sum >= 16.0 * 1024.0, "{size:?}");
    let in_flight = [(METHOD, "GET"), (ENDPOINT, "/v1/exports/:id")];
    assert_eq!(recorded.gauge(REQUESTS_IN_FLIGHT, &in_flight), Some(0.0));
}

#[test]
fn unmatched_requests_share_one_endpoint_value() {
    let recorded = run(|_| async {
        let app = Router::new()
            .route("/v1/payments", get(|| async { "[]" }))
            .layer(ApiMetricsLayer::new());
        let addr = support::serve_axum(app).await;
        let (mut sender, _task) = connect(addr).await;
        for path in ["/wp-admin.php", "/v1/payments/../../etc/passwd", "/.env"] {
            let (status, _, _) = send(&mut sender, request("GET", path, "")).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
    });

    let t = tags("GET", UNMATCHED_ENDPOINT, "404", "unknown", "completed");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &t), 3);
    assert_eq!(recorded.series(REQUESTS_COUNT).len(), 1);
    let values = recorded.label_values();
    assert!(
        !values
            .iter()
            .any(|v| v.contains("wp-admin") || v.contains(".env")),
        "{values:?}"
    );
}

#[test]
fn a_thousand_raw_paths_under_one_route_are_one_series() {
    let recorded = run(|_| async {
        let app = Router::new()
            .route("/v1/users/{id}", get(|| async { "{}" }))
            .layer(ApiMetricsLayer::new());
        let addr = support::serve_axum(app).await;
        let (mut sender, _task) = connect(addr).await;
        for id in 0..1000 {
            let path = format!("/v1/users/usr_{id:04}");
            let req = http::Request::get(path)
                .header(http::header::HOST, "127.0.0.1")
                .body(http_body_util::Full::new(Bytes::new()))
                .expect("request");
            let (status, _, _) = send(&mut sender, req).await;
            assert_eq!(status, StatusCode::OK);
        }
    });

    let t = tags("GET", "/v1/users/:id", "200", "unknown", "completed");
    assert_eq!(recorded.series(REQUESTS_COUNT).len(), 1);
    assert_eq!(recorded.counter(REQUESTS_COUNT, &t), 1000);
    assert_eq!(recorded.histogram(REQUESTS_RESPONSE_TIME, &t).count, 1000);
    assert_eq!(recorded.histogram(RESPONSES_SIZE, &t).sum, 2000.0);
    for name in [REQUESTS_RESPONSE_TIME, RESPONSES_SIZE, REQUESTS_ERROR_RATE] {
        assert_eq!(recorded.series(name).len(), 1, "{name}");
    }
    assert!(!recorded.label_values().iter().any(|v| v.contains("usr_")));
}

/// hyper sends no body for HEAD, 204 or 304 and drops it unpolled: those exchanges end at
/// their head, not as cancelled.
#[test]
fn bodyless_responses_end_at_their_head() {
    let recorded = run(|_| async {
        let service = tower::ServiceBuilder::new()
            .layer(
                ApiMetricsLayer::new().endpoint_fn(|head| Some(head.uri.path().to_owned().into())),
            )
            .service(tower::service_fn(|req: Request<_>| async move {
                let _: &paymetrics_tower::server::RequestBody<hyper::body::Incoming> = req.body();
                let mut response = Response::new(String::from("a body hyper will not send"));
                if req.uri().path() == "/v1/cache" {
                    *response.status_mut() = StatusCode::NOT_MODIFIED;
                }
                Ok::<_, Infallible>(response)
            }));
        let addr = support::serve_hyper(service).await;
        let (mut sender, _task) = connect(addr).await;
        let (status, _, body) = send(&mut sender, request("HEAD", "/v1/health", "")).await;
        assert_eq!((status, body.len()), (StatusCode::OK, 0));
        let (status, _, body) = send(&mut sender, request("GET", "/v1/cache", "")).await;
        assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    });

    let head = tags("HEAD", "/v1/health", "200", "unknown", "completed");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &head), 1);
    assert_eq!(recorded.histogram(RESPONSES_SIZE, &head).sum, 0.0);
    let not_modified = tags("GET", "/v1/cache", "304", "unknown", "completed");
    assert_eq!(recorded.counter(REQUESTS_COUNT, &not_modified), 1);
    assert_eq!(
        recorded.series(REQUESTS_COUNT).len(),
        2,
        "{:?}",
        recorded.series(REQUESTS_COUNT)
    );
}
