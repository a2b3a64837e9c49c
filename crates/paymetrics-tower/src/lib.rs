//! Tower middleware for [`paymetrics`]: API and external-service metrics as layers a service
//! adds in one line.
//!
//! * [`ApiMetricsLayer`] ([`server`]) wraps your HTTP server (an axum router, or any tower
//!   service of `http::Request`s served by hyper) and records, for every request, exactly once:
//!   `api.requests.count`, `api.requests.response_time` (ms, to the end of the response body),
//!   `api.requests.size` and `api.responses.size` (bytes, counted from the data frames),
//!   `api.requests.error_rate`, `api.rate_limit.remaining` and an in-flight gauge, tagged with
//!   `method`, `endpoint` (the route template, as `/v1/payments/:id`), `status_code`,
//!   `user_tier` and `outcome`. Put it outermost (see [server's layer order](server#layer-order)).
//! * [`ExternalServiceMetricsLayer`] ([`client`]) wraps an HTTP client service (hyper-util's
//!   `Client`, or any tower service of `http::Request`s) and records one
//!   [`ExternalServiceCall`](paymetrics::events::external::ExternalServiceCall) per logical
//!   call: `external_service.calls.count`, `.response_time`, `.success_rate`, `.retry_count`
//!   (under `tower::retry`) and `external_service.circuit_breaker.state`.
//!
//! Both record through the `metrics` facade, so they report wherever paymetrics (or any other
//! `metrics` recorder) is installed.
//!
//! # Quick start
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use paymetrics_tower::{ApiMetricsLayer, ExternalServiceMetricsLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let _metrics = paymetrics::init()?; // install the recorder before serving
//!
//! // Inbound: one line on the router.
//! let app: Router = Router::new()
//!     .route("/v1/payments/{id}", get(|| async { "ok" }))
//!     .layer(ApiMetricsLayer::new());
//!
//! // Outbound: one line on the client.
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! let card_processor = tower::ServiceBuilder::new()
//!     .layer(ExternalServiceMetricsLayer::new("card-processor"))
//!     .service(Client::builder(TokioExecutor::new()).build_http::<String>());
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # drop(card_processor);
//! # Ok(())
//! # }
//! ```
//!
//! # Concepts
//!
//! * **Exactly once.** Each request (each logical call, for the client) is recorded by a guard
//!   that fires once: at the end of the response body, on an error, on a panic, or when it is
//!   dropped (the client disconnected, a timeout gave up), so dashboards count every request and
//!   the in-flight gauge returns to zero.
//! * **Bounded tags.** Route templates, never raw URIs; a closed set of methods; status codes;
//!   the application's tiers; a closed set of outcomes.
//! * **Cheap.** The server layer caches its metric handles per series; a request costs a few
//!   hash probes and atomic updates (see `benches/README.md` of this crate for figures).
//!
//! # Feature flags
//!
//! * `axum` (default): read axum's `MatchedPath` as the `endpoint` tag. Without it, give
//!   [`ApiMetricsLayer::endpoint_fn`] (or every request is `unmatched`).

pub mod catalogue;
pub mod client;
mod method;
pub mod server;

pub use client::{
    CircuitBreakerState, CircuitState, EndpointTemplate, ExternalServiceMetricsLayer,
};
pub use server::{ApiMetricsLayer, UserTier};
