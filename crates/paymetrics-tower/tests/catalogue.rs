//! Everything the two layers record is in this crate's catalogue, and every catalogue entry is
//! recorded by them: the catalogue cannot drift from the code.

use std::collections::BTreeSet;

use axum::{Router, routing::get};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use paymetrics::catalogue::Catalogue;
use paymetrics::events::external::CircuitState;
use paymetrics_tower::{ApiMetricsLayer, ExternalServiceMetricsLayer, catalogue::METRICS};
use tower::{Layer, ServiceExt, retry::Policy, service_fn};

#[derive(Clone)]
struct RetryOnce(bool);

impl<Req: Clone, Res, E> Policy<Req, Res, E> for RetryOnce {
    type Future = std::future::Ready<()>;
    fn retry(&mut self, _: &mut Req, _: &mut Result<Res, E>) -> Option<Self::Future> {
        // Retry the first attempt once, so the retry count is recorded.
        std::mem::replace(&mut self.0, false).then(|| std::future::ready(()))
    }
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

#[test]
fn every_recorded_series_is_catalogued_and_every_entry_is_recorded() {
    let mut catalogue = Catalogue::core();
    catalogue.extend(METRICS).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorded = catalogue
        .check_during(|| {
            runtime.block_on(async {
                let app = Router::new()
                    .route(
                        "/v1/payments",
                        get(|| async { ([("x-ratelimit-remaining", "41")], "created") }),
                    )
                    .layer(ApiMetricsLayer::new());
                let response = app
                    .oneshot(
                        Request::get("/v1/payments")
                            .body(axum::body::Body::from("{}"))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                response.into_body().collect().await.unwrap();

                let client = ExternalServiceMetricsLayer::new("card-processor")
                    .default_endpoint("/v1/charges")
                    .circuit_breaker(|| CircuitState::Closed)
                    .retry(RetryOnce(true))
                    .layer(service_fn(|_: Request<Full<Bytes>>| async {
                        Ok::<_, std::convert::Infallible>(Response::new(()))
                    }));
                client
                    .oneshot(
                        Request::post("http://cards.internal/v1/charges")
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let catalogued: BTreeSet<_> = METRICS.iter().map(|d| d.name.to_owned()).collect();
    let recorded: BTreeSet<_> = recorded.into_iter().collect();
    assert_eq!(recorded, catalogued);
}
