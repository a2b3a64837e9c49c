//! The client layer over real HTTP: a hyper-util client calling a plain hyper server on
//! 127.0.0.1:0, under `tower::retry` and behind a circuit breaker.

mod support;

use std::{
    future::{Ready, ready},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering::SeqCst},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use paymetrics::events::external::{
    CALLS_COUNT, CALLS_RESPONSE_TIME, CALLS_RETRY_COUNT, CALLS_SUCCESS_RATE, CIRCUIT_BREAKER_STATE,
    ENDPOINT, METHOD, SERVICE_NAME, SUCCESS,
};
// Everything a user names to wire a circuit breaker is at the crate's root.
use paymetrics_tower::{
    CircuitBreakerState, CircuitState, EndpointTemplate, ExternalServiceMetricsLayer,
};
use support::{Never, run};
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt, retry::Policy, service_fn};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A card processor on 127.0.0.1:0 that answers each request with the next status of `plan`
/// (the last one forever after); returns its address and how many requests it saw.
async fn card_processor(plan: &'static [u16]) -> (String, Arc<AtomicU32>) {
    let seen = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&seen);
    let addr = support::serve_hyper(service_fn(move |_req: Request<hyper::body::Incoming>| {
        let n = counter.fetch_add(1, SeqCst) as usize;
        let status = plan[n.min(plan.len() - 1)];
        async move {
            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
            *response.status_mut() = StatusCode::from_u16(status).expect("status");
            Ok::<_, Never>(response)
        }
    }))
    .await;
    (format!("http://{addr}"), seen)
}

fn charge(base: &str, id: &str) -> Request<Full<Bytes>> {
    Request::post(format!("{base}/v1/charges/{id}/capture"))
        .extension(EndpointTemplate::new("/v1/charges/{id}/capture"))
        .body(Full::new(Bytes::from_static(b"{\"amount\":1250}")))
        .expect("request")
}

/// Retries server errors up to `max` times. Its `clone_request` rebuilds the request without
/// its extensions, as many policies do: counting must not depend on them being copied.
#[derive(Clone)]
struct RetryServerErrors {
    max: u32,
}

impl<E> Policy<Request<Full<Bytes>>, Response<hyper::body::Incoming>, E> for RetryServerErrors {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<hyper::body::Incoming>, E>,
    ) -> Option<Self::Future> {
        let failed = result
            .as_ref()
            .map_or(true, |r| r.status().is_server_error());
        (failed && self.max > 0).then(|| {
            self.max -= 1;
            ready(())
        })
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let clone = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .body(req.body().clone())
            .ok()?;
        Some(clone)
    }
}

#[test]
fn retries_of_one_call_are_recorded_once_under_tower_retry() {
    let recorded = run(|_| async {
        let (base, seen) = card_processor(&[503, 503, 200]).await;
        let mut client = ServiceBuilder::new()
            .layer(
                ExternalServiceMetricsLayer::new("card-processor")
                    .retry(RetryServerErrors { max: 3 }),
            )
            .service(http_client());

        let response = client
            .ready()
            .await
            .unwrap()
            .call(charge(&base, "ch_1"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(seen.load(SeqCst), 3, "two retries reached the server");
        // A second call succeeds at once.
        let response = client
            .ready()
            .await
            .unwrap()
            .call(charge(&base, "ch_2"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    });

    let tags = [
        (SERVICE_NAME, "card-processor"),
        (ENDPOINT, "/v1/charges/:id/capture"),
        (METHOD, "POST"),
    ];
    assert_eq!(
        recorded.counter(CALLS_COUNT, &tags),
        2,
        "one per logical call"
    );
    let retries = recorded.histogram(CALLS_RETRY_COUNT, &tags);
    assert_eq!(
        (retries.count, retries.sum, retries.min, retries.max),
        (2, 2.0, 0.0, 2.0)
    );
    let time = recorded.histogram(CALLS_RESPONSE_TIME, &tags);
    assert_eq!(time.count, 2);
    assert!(time.min > 0.0, "{time:?}");
    let success = |s| [tags[0], tags[1], tags[2], (SUCCESS, s)];
    assert_eq!(recorded.counter(CALLS_SUCCESS_RATE, &success("true")), 2);
    assert_eq!(recorded.counter(CALLS_SUCCESS_RATE, &success("false")), 0);
    assert!(
        recorded.series(CIRCUIT_BREAKER_STATE).is_empty(),
        "no breaker, no gauge"
    );
    assert!(
        !recorded
            .label_values()
            .iter()
            .any(|v| v.contains("ch_") || v.contains("127.0.0.1"))
    );
}

/// A minimal breaker: opens after `threshold` consecutive failures and then refuses calls.
#[derive(Clone)]
struct Breaker {
    open: Arc<AtomicBool>,
    failures: Arc<AtomicU32>,
    threshold: u32,
}

impl CircuitBreakerState for Breaker {
    fn circuit_state(&self) -> CircuitState {
        if self.open.load(SeqCst) {
            CircuitState::Open
        } else {
            CircuitState::Closed
        }
    }
}

#[derive(Clone)]
struct Breaking<S> {
    inner: S,
    breaker: Breaker,
}

impl<S, B> Service<Request<B>> for Breaking<S>
where
    S: Service<Request<B>, Response = Response<hyper::body::Incoming>> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.breaker.open.load(SeqCst) {
            return Box::pin(async { Err::<_, BoxError>("circuit open".into()) });
        }
        let breaker = self.breaker.clone();
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.await.map_err(Into::into);
            let failed = result
                .as_ref()
                .map_or(true, |r| r.status().is_server_error());
            if failed {
                if breaker.failures.fetch_add(1, SeqCst) + 1 >= breaker.threshold {
                    breaker.open.store(true, SeqCst);
                }
            } else {
                breaker.failures.store(0, SeqCst);
            }
            result
        })
    }
}

#[test]
fn a_breaker_that_opens_is_reported() {
    let recorded = run(|ctx| async move {
        let (base, seen) = card_processor(&[500]).await;
        let breaker = Breaker {
            open: Arc::default(),
            failures: Arc::default(),
            threshold: 2,
        };
        let mut client = ServiceBuilder::new()
            .layer(
                ExternalServiceMetricsLayer::new("card-processor")
                    .default_endpoint("/v1/charges")
                    .circuit_breaker(breaker.clone()),
            )
            .service(Breaking {
                inner: http_client(),
                breaker,
            });
        let call = |base: &str| {
            Request::post(format!("{base}/v1/charges"))
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let tags = [
            (SERVICE_NAME, "card-processor"),
            (ENDPOINT, "/v1/charges"),
            (METHOD, "POST"),
        ];

        let first = client
            .ready()
            .await
            .unwrap()
            .call(call(&base))
            .await
            .unwrap();
        assert_eq!(first.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            ctx.recorded().gauge(CIRCUIT_BREAKER_STATE, &tags),
            Some(0.0),
            "closed"
        );

        let second = client
            .ready()
            .await
            .unwrap()
            .call(call(&base))
            .await
            .unwrap();
        assert_eq!(second.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            ctx.recorded().gauge(CIRCUIT_BREAKER_STATE, &tags),
            Some(1.0),
            "opened"
        );

        let refused = client.ready().await.unwrap().call(call(&base)).await;
        assert!(refused.is_err());
        assert_eq!(
            seen.load(SeqCst),
            2,
            "the open breaker refused the third call"
        );
    });

    let tags = [
        (SERVICE_NAME, "card-processor"),
        (ENDPOINT, "/v1/charges"),
        (METHOD, "POST"),
    ];
    assert_eq!(recorded.gauge(CIRCUIT_BREAKER_STATE, &tags), Some(1.0));
    assert_eq!(recorded.counter(CALLS_COUNT, &tags), 3);
    let success = |s| [tags[0], tags[1], tags[2], (SUCCESS, s)];
    assert_eq!(recorded.counter(CALLS_SUCCESS_RATE, &success("false")), 3);
    assert_eq!(recorded.counter(CALLS_SUCCESS_RATE, &success("true")), 0);
    let retries = recorded.histogram(CALLS_RETRY_COUNT, &tags);
    assert_eq!((retries.count, retries.sum), (3, 0.0));
}

#[test]
fn a_call_dropped_before_its_outcome_is_a_failure() {
    let recorded = paymetrics::testing::capture(|| {
        let mut client =
            ExternalServiceMetricsLayer::new("fx-rates").layer(service_fn(|_: Request<()>| {
                std::future::pending::<Result<Response<()>, Never>>()
            }));
        let mut call = client.call(
            Request::get("http://fx.internal/v1/rates")
                .body(())
                .unwrap(),
        );
        let waker = std::task::Waker::noop();
        assert!(
            Pin::new(&mut call)
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        drop(call); // an outer timeout gives up
    });
    let tags = [
        (SERVICE_NAME, "fx-rates"),
        (ENDPOINT, "unknown"),
        (METHOD, "GET"),
    ];
    assert_eq!(recorded.counter(CALLS_COUNT, &tags), Some(1));
    let failure = [tags[0], tags[1], tags[2], (SUCCESS, "false")];
    assert_eq!(recorded.counter(CALLS_SUCCESS_RATE, &failure), Some(1));
}
