//! Outbound external-service metrics as a tower layer, [`ExternalServiceMetricsLayer`], for
//! HTTP clients.
//!
//! Each logical call through the wrapped client records one
//! [`ExternalServiceCall`](paymetrics::events::external::ExternalServiceCall), so the metric
//! names and tag keys are paymetrics' own constants:
//!
//! | metric | type | unit |
//! |---|---|---|
//! | [`CALLS_COUNT`](paymetrics::events::external::CALLS_COUNT) `external_service.calls.count` | counter | calls |
//! | [`CALLS_RESPONSE_TIME`](paymetrics::events::external::CALLS_RESPONSE_TIME) `external_service.calls.response_time` | distribution | milliseconds, from the call to the response head, retries included |
//! | [`CALLS_SUCCESS_RATE`](paymetrics::events::external::CALLS_SUCCESS_RATE) `external_service.calls.success_rate` | counter | calls, with `success:true`/`false` |
//! | [`CALLS_RETRY_COUNT`](paymetrics::events::external::CALLS_RETRY_COUNT) `external_service.calls.retry_count` | distribution | retries of the call (0 without `tower::retry`) |
//! | [`CIRCUIT_BREAKER_STATE`](paymetrics::events::external::CIRCUIT_BREAKER_STATE) `external_service.circuit_breaker.state` | gauge | 1 open, 0 closed or half-open; only with [`ExternalServiceMetricsLayer::circuit_breaker`] |
//!
//! Tags: `service_name` (given to [`ExternalServiceMetricsLayer::new`]), `endpoint` (the
//! [`EndpointTemplate`] in the request's extensions, or
//! [`ExternalServiceMetricsLayer::default_endpoint`]; never the URL; recorded with `:name`
//! parameters as [`endpoint_tag`](crate::server::endpoint_tag) writes them, so
//! `/v1/charges/{id}` is `endpoint:/v1/charges/:id` in Datadog) and `method` (a closed set,
//! `other` for extension methods).
//!
//! # Usage
//!
//! A hyper client, one line:
//!
//! ```no_run
//! use http::Request;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use paymetrics_tower::{EndpointTemplate, ExternalServiceMetricsLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut card_processor = ServiceBuilder::new()
//!     .layer(ExternalServiceMetricsLayer::new("card-processor"))
//!     .service(Client::builder(TokioExecutor::new()).build_http::<String>());
//!
//! let request = Request::post("http://card-processor.internal/v1/charges/ch_123/capture")
//!     .extension(EndpointTemplate::new("/v1/charges/{id}/capture"))
//!     .body(String::new())?;
//! let response = card_processor.ready().await?.call(request).await?;
//! # drop(response);
//! # Ok(())
//! # }
//! ```
//!
//! The same layer wraps any tower service of `http::Request`s. In an axum application, keep the
//! wrapped client in the router's state:
//!
//! ```
//! use axum::{Router, extract::State, http::StatusCode, routing::post};
//! use hyper_util::client::legacy::{Client, connect::HttpConnector};
//! use paymetrics_tower::{ApiMetricsLayer, EndpointTemplate, ExternalServiceMetricsLayer};
//! use paymetrics_tower::client::ExternalServiceMetrics;
//! use tower::ServiceExt;
//!
//! type CardProcessor = ExternalServiceMetrics<Client<HttpConnector, String>>;
//!
//! async fn capture(State(card_processor): State<CardProcessor>) -> StatusCode {
//!     let request = http::Request::post("http://card-processor.internal/v1/charges/ch_1/capture")
//!         .extension(EndpointTemplate::new("/v1/charges/{id}/capture"))
//!         .body(String::new())
//!         .expect("a valid request");
//!     match card_processor.oneshot(request).await {
//!         Ok(response) if response.status().is_success() => StatusCode::OK,
//!         _ => StatusCode::BAD_GATEWAY,
//!     }
//! }
//!
//! # fn app(client: Client<HttpConnector, String>) -> Router {
//! let card_processor: CardProcessor =
//!     tower::Layer::layer(&ExternalServiceMetricsLayer::new("card-processor"), client);
//! Router::new()
//!     .route("/v1/payments/{id}/capture", post(capture))
//!     .with_state(card_processor)
//!     .layer(ApiMetricsLayer::new())
//! # }
//! ```
//!
//! Under `tower::retry`, put the layer outside the retry layer, with the policy
//! wrapped in [`CountRetries`] so each call's retries are counted; [`ExternalServiceMetricsLayer::retry`]
//! does both in one line. A circuit breaker reports its state through [`CircuitBreakerState`].

mod breaker;
mod future;
mod layer;
mod retry;
mod service;

pub use breaker::CircuitBreakerState;
pub use future::ResponseFuture;
pub use layer::{DEFAULT_ENDPOINT, ExternalServiceMetricsLayer};
pub use paymetrics::events::external::CircuitState;
pub use retry::CountRetries;
pub use service::ExternalServiceMetrics;

use std::sync::{Arc, atomic::AtomicU32};

use metrics::SharedString;

/// The endpoint template of an outbound request, the `endpoint` tag: put it in the request's
/// extensions (`Request::builder().extension(EndpointTemplate::new("/v1/charges/{id}"))`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointTemplate(SharedString);

impl EndpointTemplate {
    /// A template named by a string constant, for example `/v1/charges/{id}` (recorded as
    /// `/v1/charges/:id`, see [`endpoint_tag`](crate::server::endpoint_tag)).
    pub const fn new(template: &'static str) -> Self {
        Self(SharedString::const_str(template))
    }

    /// The tag value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for EndpointTemplate {
    fn from(template: String) -> Self {
        Self(SharedString::from(template))
    }
}

impl From<&'static str> for EndpointTemplate {
    fn from(template: &'static str) -> Self {
        Self::new(template)
    }
}

/// The retry counter of one logical call, shared by the clones of its request.
#[derive(Debug, Clone)]
pub(crate) struct RetryCounter(pub(crate) Arc<AtomicU32>);
