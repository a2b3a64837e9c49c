//! [`ApiMetricsLayer`]: configuration, shared by every service it wraps.

use std::{fmt, sync::Arc, time::Duration};

use http::{HeaderName, StatusCode, request::Parts};
use metrics::SharedString;
use tower_layer::Layer;

use super::{ApiMetrics, cache::Cache, route::RouteRule};

/// The response header [`ApiMetricsLayer::new`] reads `api.rate_limit.remaining` from.
pub const DEFAULT_RATE_LIMIT_HEADER: &str = "x-ratelimit-remaining";

type EndpointFn = dyn Fn(&Parts) -> Option<SharedString> + Send + Sync;

/// Records the API metrics for every request of the service it wraps; see the
/// [module documentation](super) for the metrics, tags and when a request ends.
///
/// Cheap to clone: clones share their configuration and their table of cached handles, so a
/// layer applied to every route of a router (as axum's `Router::layer` does) keeps one table.
///
/// ```
/// use axum::{Router, routing::post};
/// use http::HeaderName;
/// use paymetrics_tower::ApiMetricsLayer;
///
/// let app: Router = Router::new()
///     .route("/v1/payments", post(|| async { "created" }))
///     .layer(ApiMetricsLayer::new().rate_limit_header(HeaderName::from_static("ratelimit-remaining")));
/// ```
#[derive(Clone)]
pub struct ApiMetricsLayer {
    shared: Arc<Shared>,
}

/// What every service of one layer shares: its configuration and its cached handles.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) cache: Cache,
}

/// The configuration of an [`ApiMetricsLayer`]. Changing it gives a new layer with an empty
/// cache, since cached series depend on it.
#[derive(Clone, Default)]
pub(crate) struct Config {
    pub(crate) endpoint_fn: Option<Arc<EndpointFn>>,
    pub(crate) rate_limit_header: Option<HeaderName>,
    pub(crate) routes: Vec<RouteRule>,
    pub(crate) outer_timeout: Option<OuterTimeout>,
}

/// A timeout a layer outside [`ApiMetricsLayer`] enforces, see
/// [`ApiMetricsLayer::outer_timeout`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct OuterTimeout {
    pub(crate) after: Duration,
    pub(crate) status: u16,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.config;
        f.debug_struct("ApiMetricsConfig")
            .field("endpoint_fn", &config.endpoint_fn.as_ref().map(|_| "Fn"))
            .field("rate_limit_header", &config.rate_limit_header)
            .field("routes", &config.routes)
            .field("outer_timeout", &config.outer_timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ApiMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiMetricsLayer")
            .field(&self.shared)
            .finish()
    }
}

impl Default for ApiMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetricsLayer {
    /// The endpoint from axum's `MatchedPath` (feature `axum`, on by default), and the rate-limit
    /// gauge from [`DEFAULT_RATE_LIMIT_HEADER`].
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                config: Config {
                    rate_limit_header: Some(HeaderName::from_static(DEFAULT_RATE_LIMIT_HEADER)),
                    ..Config::default()
                },
                cache: Cache::default(),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.shared.config.clone();
        f(&mut config);
        Self {
            shared: Arc::new(Shared {
                config,
                cache: Cache::default(),
            }),
        }
    }

    /// Classifies requests into endpoint templates with `f` instead of axum's `MatchedPath`:
    /// `f` sees the request head and returns the template (`Some("/v1/payments/{id}".into())`),
    /// or `None` for [`UNMATCHED_ENDPOINT`](super::UNMATCHED_ENDPOINT). Templates are recorded
    /// as [`endpoint_tag`](super::endpoint_tag) writes them (`/v1/payments/:id`).
    ///
    /// Return templates, never anything taken from the path itself: each distinct value is a
    /// series.
    pub fn endpoint_fn<F>(self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<SharedString> + Send + Sync + 'static,
    {
        self.with(|config| config.endpoint_fn = Some(Arc::new(f)))
    }

    /// Records nothing for the requests of the route `template` (health checks, the metrics
    /// endpoint): no series, no in-flight gauge. A template ending in `*` is a prefix and
    /// ignores every route it starts (`"/internal/*"`). Templates are compared as
    /// [`endpoint_tag`](super::endpoint_tag) writes them, so `/v1/x/{id}` and `/v1/x/:id` are
    /// the same; [`UNMATCHED_ENDPOINT`](super::UNMATCHED_ENDPOINT) ignores requests no route
    /// matched.
    ///
    /// Rules apply in the order they were added; the first that matches a route wins. They run
    /// once per route, when its series are created, not per request.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use paymetrics_tower::ApiMetricsLayer;
    ///
    /// let app: Router = Router::new()
    ///     .route("/health", get(|| async { "ok" }))
    ///     .route("/v1/payments/{id}", get(|| async { "{}" }))
    ///     .layer(ApiMetricsLayer::new().ignore_route("/health"));
    /// ```
    pub fn ignore_route(self, template: &str) -> Self {
        let rule = RouteRule::ignore(template);
        self.with(|config| config.routes.push(rule))
    }

    /// Records the requests of the route `template` under the endpoint `endpoint` instead of
    /// their own; with a template ending in `*`, every route it starts (`"/static/*"`), so that
    /// a family of routes makes one series. Same matching and order as
    /// [`ignore_route`](Self::ignore_route).
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use paymetrics_tower::ApiMetricsLayer;
    ///
    /// let app: Router = Router::new()
    ///     .route("/static/css/{file}", get(|| async { "" }))
    ///     .route("/static/js/{file}", get(|| async { "" }))
    ///     // Both recorded as endpoint:/static.
    ///     .layer(ApiMetricsLayer::new().group_route("/static/*", "/static"));
    /// ```
    pub fn group_route(self, template: &str, endpoint: &str) -> Self {
        let rule = RouteRule::group(template, endpoint);
        self.with(|config| config.routes.push(rule))
    }

    /// Reads `api.rate_limit.remaining` from the response header `name` (a number; responses
    /// without it, or with a value that is not a number, leave the gauge alone).
    pub fn rate_limit_header(self, name: HeaderName) -> Self {
        self.with(|config| config.rate_limit_header = Some(name))
    }

    /// Records no `api.rate_limit.remaining`.
    pub fn without_rate_limit_header(self) -> Self {
        self.with(|config| config.rate_limit_header = None)
    }

    /// Declares that a layer outside this one answers `status` once a request has taken
    /// `timeout` (tower-http's `TimeoutLayer::with_status_code(status, timeout)`), so that a
    /// request it cuts short is recorded with that status, as the client saw it, instead of
    /// [`STATUS_CLIENT_CLOSED`](super::STATUS_CLIENT_CLOSED).
    ///
    /// Only needed when this layer sits *inside* the timeout layer. The recommended order puts
    /// [`ApiMetricsLayer`] outermost, where it sees the timeout's response itself and needs no
    /// declaration (see the [module documentation](super#layer-order)).
    ///
    /// Inside, this layer only sees its response future dropped. It records the drop as the
    /// timeout (`status`, outcome `completed`, as the outermost position would) when at least
    /// `timeout` has passed since this layer was called, and as a client disconnect (`499`,
    /// `cancelled`) otherwise. So declare the duration the outer layer really uses, and keep
    /// layers that wait before calling this one (an authentication layer with its own I/O)
    /// outside the timeout or inside this layer: their wait would not be counted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum::{Router, routing::get};
    /// use http::StatusCode;
    /// use paymetrics_tower::ApiMetricsLayer;
    /// use tower_http::timeout::TimeoutLayer;
    ///
    /// const TIMEOUT: Duration = Duration::from_secs(10);
    /// let app: Router = Router::new()
    ///     .route("/v1/payments/{id}", get(|| async { "{}" }))
    ///     .layer(ApiMetricsLayer::new().outer_timeout(TIMEOUT, StatusCode::REQUEST_TIMEOUT))
    ///     .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, TIMEOUT));
    /// ```
    pub fn outer_timeout(self, timeout: Duration, status: StatusCode) -> Self {
        let timeout = OuterTimeout {
            after: timeout,
            status: status.as_u16(),
        };
        self.with(|config| config.outer_timeout = Some(timeout))
    }
}

impl<S> Layer<S> for ApiMetricsLayer {
    type Service = ApiMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiMetrics::new(inner, Arc::clone(&self.shared))
    }
}
