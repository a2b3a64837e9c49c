//! Inbound API metrics as a tower layer, [`ApiMetricsLayer`].
//!
//! Every request the wrapped service receives is recorded exactly once, when its response body
//! ends (or when the request fails, panics or is abandoned; see [`Outcome`]). The metric names
//! and tag keys below are the only place they are spelled.
//!
//! # Metrics
//!
//! | metric | type | unit | tags |
//! |---|---|---|---|
//! | [`REQUESTS_COUNT`] `api.requests.count` | counter | requests | [`METHOD`], [`ENDPOINT`], [`STATUS_CODE`], [`USER_TIER`], [`OUTCOME`] |
//! | [`REQUESTS_RESPONSE_TIME`] `api.requests.response_time` | distribution | milliseconds | as `api.requests.count` |
//! | [`REQUESTS_SIZE`] `api.requests.size` | distribution | bytes | as `api.requests.count` |
//! | [`RESPONSES_SIZE`] `api.responses.size` | distribution | bytes | as `api.requests.count` |
//! | [`REQUESTS_ERROR_RATE`] `api.requests.error_rate` | counter | requests | as `api.requests.count`, plus [`ERROR`] |
//! | [`RATE_LIMIT_REMAINING`] `api.rate_limit.remaining` | gauge | requests | [`METHOD`], [`ENDPOINT`], [`STATUS_CODE`], [`USER_TIER`] |
//! | [`REQUESTS_IN_FLIGHT`] `api.requests.in_flight` | gauge | requests | [`METHOD`], [`ENDPOINT`] |
//!
//! **Duration** (`api.requests.response_time`) runs from the moment the layer's service is
//! called to the moment the response body yields its last frame (or ends with an error, or is
//! dropped). For a streaming body that is the time to stream all of it; the final write of the
//! last frame to the socket is not included. A response whose body is empty from the start, or
//! that the server sends without one (an answer to `HEAD`, a `1xx`, `204` or `304`), ends when
//! its head is produced.
//!
//! **Sizes** count the bytes of the data frames that actually went through the bodies: for the
//! request, what the application read (a handler that never reads its body records 0); for the
//! response, what the server was handed. `Content-Length` is never trusted for either. A
//! request without a body (a `GET`, say) records no `api.requests.size` sample: no series full
//! of zeros.
//!
//! # Tags, all bounded
//!
//! * [`METHOD`]: `GET`, `HEAD`, `POST`, `PUT`, `DELETE`, `CONNECT`, `OPTIONS`, `TRACE`, `PATCH`,
//!   or [`OTHER_METHOD`] for any extension method.
//! * [`ENDPOINT`]: the route template, never the raw URI. By default axum's
//!   [`MatchedPath`](axum::extract::MatchedPath) (feature `axum`); or what
//!   [`ApiMetricsLayer::endpoint_fn`] returns. Requests no route matched all share
//!   [`UNMATCHED_ENDPOINT`]. Datadog tags cannot hold braces, so templates are recorded with
//!   `:name` parameters, as [`endpoint_tag`] writes them: the route `/v1/payments/{id}` is
//!   `endpoint:/v1/payments/:id` in Datadog, `/files/{*path}` is `endpoint:/files/:path...`.
//!   [`ApiMetricsLayer::ignore_route`] leaves routes out (health checks, the metrics
//!   endpoint) and [`ApiMetricsLayer::group_route`] folds a family of routes into one value.
//! * [`STATUS_CODE`]: the response's status, for example `200`. A request that never produced a
//!   response head records [`STATUS_INNER_ERROR`] (`500`) when the inner service failed or
//!   panicked, and [`STATUS_CLIENT_CLOSED`] (`499`, nginx's convention) when the client went away.
//! * [`USER_TIER`]: the [`UserTier`] the application put in the request's extensions (by an auth
//!   layer outside this one) or in the response's extensions (by the handler); the response's
//!   wins. [`UNKNOWN_USER_TIER`] otherwise. Tiers are the application's closed set.
//! * [`OUTCOME`]: how the exchange ended, an [`Outcome`]: `completed`, `error`, `panic` or
//!   `cancelled`, so that abandoned and failed exchanges are visible without guessing from
//!   status codes.
//! * [`ERROR`] (on `api.requests.error_rate` only): `true` when the status is 400 or above
//!   (including the `499` of a request abandoned before its head) or the outcome is `error` or
//!   `panic`, `false` otherwise (a client that leaves mid-body after a `200` is not an error). The error rate is a query:
//!   `sum:api.requests.error_rate{error:true}.as_count() / sum:api.requests.error_rate{*}.as_count()`.
//!
//! # Usage
//!
//! With an axum router, one line (the layer also wraps the fallback, so unmatched requests are
//! recorded too):
//!
//! ```
//! use axum::{Router, routing::get};
//! use paymetrics_tower::ApiMetricsLayer;
//!
//! let app: Router = Router::new()
//!     .route("/v1/payments/{id}", get(|| async { "ok" }))
//!     .layer(ApiMetricsLayer::new());
//! ```
//!
//! With a plain hyper or tower service, give the endpoint template yourself:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use hyper::body::Incoming;
//! use hyper_util::{rt::TokioIo, service::TowerToHyperService};
//! use paymetrics_tower::{ApiMetricsLayer, server::RequestBody};
//! use tower::{ServiceBuilder, service_fn};
//!
//! # async fn run() -> std::io::Result<()> {
//! let svc = ServiceBuilder::new()
//!     .layer(ApiMetricsLayer::new().endpoint_fn(|req| {
//!         req.uri.path().starts_with("/v1/payments/").then_some("/v1/payments/{id}".into())
//!     }))
//!     .service(service_fn(|_req: Request<RequestBody<Incoming>>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("ok")))
//!     }));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let svc = TowerToHyperService::new(svc.clone());
//!     tokio::spawn(
//!         hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc),
//!     );
//! }
//! # }
//! ```
//!
//! # Layer order
//!
//! Put [`ApiMetricsLayer`] outermost: it then records what the client receives, whatever the
//! layers inside it do. A timeout's `408`/`504`, a CORS preflight answer, the compressed size of
//! a compressed body, a `500` from a caught panic are all seen as sent. With axum, the layer
//! added last (or listed first in a `ServiceBuilder`) is the outermost:
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, http::StatusCode, routing::get};
//! use paymetrics_tower::ApiMetricsLayer;
//! use tower::ServiceBuilder;
//! use tower_http::{
//!     compression::CompressionLayer, cors::CorsLayer, timeout::TimeoutLayer, trace::TraceLayer,
//! };
//!
//! let app: Router = Router::new()
//!     .route("/v1/payments/{id}", get(|| async { "{}" }))
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(ApiMetricsLayer::new()) // outermost: sees what the client gets
//!             .layer(TraceLayer::new_for_http())
//!             .layer(CorsLayer::permissive())
//!             .layer(CompressionLayer::new())
//!             .layer(TimeoutLayer::with_status_code(
//!                 StatusCode::GATEWAY_TIMEOUT,
//!                 Duration::from_secs(10),
//!             )),
//!     );
//! ```
//!
//! (`examples/tower_http_stack.rs` in this crate serves that stack and prints what it records.)
//!
//! A layer outside [`ApiMetricsLayer`] that answers without waiting for it is not seen. For a
//! timeout, the request's future is dropped, which by itself looks like a client that left
//! (`499`, `cancelled`); declare the timeout with [`ApiMetricsLayer::outer_timeout`] and the
//! request is recorded with the timeout's status, as in the outermost position.
//!
//! # Recording
//!
//! The layer keeps the handles of every series it has recorded (a table per route template,
//! keyed by method, status, tier and outcome), so a request costs a couple of lookups and atomic
//! updates; no label is formatted after a series' first request. Handles are registered with the
//! `metrics` recorder that is current when a series is first seen (the global one, or a
//! thread-local one in tests): install paymetrics before serving, or build the layer inside the
//! scope of the local recorder you test with. The tables are bounded
//! ([`MAX_CACHED_ENDPOINTS`], [`MAX_CACHED_SERIES_PER_ENDPOINT`]); past that, series are still
//! recorded, through the recorder, without a cached handle.

mod body;
mod cache;
mod future;
mod layer;
mod route;
mod service;

pub use body::{RequestBody, ResponseBody};
pub use future::ResponseFuture;
pub use layer::{ApiMetricsLayer, DEFAULT_RATE_LIMIT_HEADER};
pub use route::endpoint_tag;
pub use service::ApiMetrics;

use std::{fmt, hash, sync::Arc};

/// Counter, requests. Tags: [`METHOD`], [`ENDPOINT`], [`STATUS_CODE`], [`USER_TIER`], [`OUTCOME`].
pub const REQUESTS_COUNT: &str = "api.requests.count";
/// Distribution, milliseconds, from the call to the end of the response body. Tags as
/// [`REQUESTS_COUNT`].
pub const REQUESTS_RESPONSE_TIME: &str = "api.requests.response_time";
/// Distribution, bytes of request body data frames the application read; requests without a
/// body record none. Tags as [`REQUESTS_COUNT`].
pub const REQUESTS_SIZE: &str = "api.requests.size";
/// Distribution, bytes of response body data frames handed to the server. Tags as
/// [`REQUESTS_COUNT`].
pub const RESPONSES_SIZE: &str = "api.responses.size";
/// Counter, requests, split by [`ERROR`] (`true`/`false`). Tags as [`REQUESTS_COUNT`] plus
/// [`ERROR`].
pub const REQUESTS_ERROR_RATE: &str = "api.requests.error_rate";
/// Gauge, the value of the rate-limit header of the latest response that carried one (see
/// [`ApiMetricsLayer::rate_limit_header`]). Tags: [`METHOD`], [`ENDPOINT`], [`STATUS_CODE`],
/// [`USER_TIER`].
pub const RATE_LIMIT_REMAINING: &str = "api.rate_limit.remaining";
/// Gauge, requests being served now: incremented when the layer is called, decremented when the
/// request is recorded. Tags: [`METHOD`], [`ENDPOINT`].
pub const REQUESTS_IN_FLIGHT: &str = "api.requests.in_flight";

/// Tag key: the HTTP method, from a closed set.
pub const METHOD: &str = "method";
/// Tag key: the route template.
pub const ENDPOINT: &str = "endpoint";
/// Tag key: the response status code.
pub const STATUS_CODE: &str = "status_code";
/// Tag key: the caller's tier, see [`UserTier`].
pub const USER_TIER: &str = "user_tier";
/// Tag key: how the exchange ended, see [`Outcome`].
pub const OUTCOME: &str = "outcome";
/// Tag key: `true` or `false`, on [`REQUESTS_ERROR_RATE`].
pub const ERROR: &str = "error";

/// The [`ENDPOINT`] of every request no route matched.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";
/// The [`USER_TIER`] of requests without a [`UserTier`].
pub const UNKNOWN_USER_TIER: &str = "unknown";
/// The [`METHOD`] of requests with an extension method.
pub const OTHER_METHOD: &str = crate::method::OTHER;
/// The [`STATUS_CODE`] of a request abandoned before its response head (nginx's "client closed
/// request").
pub const STATUS_CLIENT_CLOSED: u16 = 499;
/// The [`STATUS_CODE`] of a request whose inner service failed or panicked before a response
/// head: what hyper's and tower-http's error handling send.
pub const STATUS_INNER_ERROR: u16 = 500;

/// Most route templates one layer keeps cached handles for.
pub const MAX_CACHED_ENDPOINTS: usize = 1024;
/// Most (method, status, tier, outcome) combinations one route template keeps cached handles for.
pub const MAX_CACHED_SERIES_PER_ENDPOINT: usize = 1024;

/// How an exchange ended: the [`OUTCOME`] tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The response body reached its end.
    Completed,
    /// The inner service returned an error, or the response body yielded one.
    Error,
    /// The inner service or the response body panicked (and an outer layer such as tower-http's
    /// `CatchPanic` may have turned it into a 500).
    Panic,
    /// The response future or body was dropped before the end: the client disconnected, or an
    /// outer timeout gave up.
    Cancelled,
}

impl Outcome {
    /// The tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Panic => "panic",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller's tier, the [`USER_TIER`] tag: put it in the request's extensions (in an auth
/// layer outside [`ApiMetricsLayer`]) or in the response's extensions (in the handler).
///
/// Tiers are a closed set the application defines (`free`, `standard`, `premium`...), never a
/// user id.
///
/// ```
/// use axum::{Extension, Router, routing::get};
/// use paymetrics_tower::{ApiMetricsLayer, UserTier};
///
/// const PREMIUM: UserTier = UserTier::new("premium");
///
/// // The handler knows the tier once it has authenticated the caller.
/// let app: Router = Router::new()
///     .route("/v1/balance", get(|| async { (Extension(PREMIUM), "42.00") }))
///     .layer(ApiMetricsLayer::new());
/// ```
#[derive(Clone)]
pub struct UserTier(Tier);

#[derive(Clone)]
enum Tier {
    Static(&'static str),
    Shared(Arc<str>),
}

impl UserTier {
    /// A tier named by a string constant.
    pub const fn new(tier: &'static str) -> Self {
        Self(Tier::Static(tier))
    }

    /// The tag value.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Tier::Static(s) => s,
            Tier::Shared(s) => s,
        }
    }

    pub(crate) const UNKNOWN: Self = Self::new(UNKNOWN_USER_TIER);

    pub(crate) fn to_label(&self) -> metrics::SharedString {
        match &self.0 {
            Tier::Static(s) => metrics::SharedString::const_str(s),
            Tier::Shared(s) => metrics::SharedString::from(s.to_string()),
        }
    }
}

impl From<&'static str> for UserTier {
    fn from(tier: &'static str) -> Self {
        Self::new(tier)
    }
}

impl From<String> for UserTier {
    fn from(tier: String) -> Self {
        Self(Tier::Shared(tier.into()))
    }
}

/// The typed business events' closed tier (`standard`, `premium`, `business`) as the API tier.
///
/// ```
/// let tier = paymetrics_tower::UserTier::from(paymetrics::events::UserTier::Premium);
/// assert_eq!(tier.as_str(), "premium");
/// ```
impl From<paymetrics::events::UserTier> for UserTier {
    fn from(tier: paymetrics::events::UserTier) -> Self {
        Self::new(tier.as_str())
    }
}

impl From<Arc<str>> for UserTier {
    fn from(tier: Arc<str>) -> Self {
        Self(Tier::Shared(tier))
    }
}

impl PartialEq for UserTier {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for UserTier {}

impl hash::Hash for UserTier {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for UserTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserTier").field(&self.as_str()).finish()
    }
}
