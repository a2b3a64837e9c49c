//! [`ApiMetricsLayer`]: configuration, shared by every service it wraps.

use std::{fmt, sync::Arc};

use http::{HeaderName, request::Parts};
use metrics::SharedString;
use tower_layer::Layer;

use super::{ApiMetrics, cache::Cache};

/// The response header [`ApiMetricsLayer::new`] reads `api.rate_limit.remaining` from.
pub const DEFAULT_RATE_LIMIT_HEADER: &str = "x-ratelimit-remaining";

type EndpointFn = dyn Fn(&Parts) -> Option<SharedString> + Send + Sync;

/// Records the seed's API metrics for every request of the service it wraps; see the
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

pub(crate) struct Shared {
    pub(crate) endpoint_fn: Option<Arc<EndpointFn>>,
    pub(crate) rate_limit_header: Option<HeaderName>,
    pub(crate) cache: Cache,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiMetricsConfig")
            .field("endpoint_fn", &self.endpoint_fn.as_ref().map(|_| "Fn"))
            .field("rate_limit_header", &self.rate_limit_header)
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
                endpoint_fn: None,
                rate_limit_header: Some(HeaderName::from_static(DEFAULT_RATE_LIMIT_HEADER)),
                cache: Cache::default(),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Option<Arc<EndpointFn>>, &mut Option<HeaderName>)) -> Self {
        let mut endpoint_fn = self.shared.endpoint_fn.clone();
        let mut rate_limit_header = self.shared.rate_limit_header.clone();
        f(&mut endpoint_fn, &mut rate_limit_header);
        Self {
            shared: Arc::new(Shared {
                endpoint_fn,
                rate_limit_header,
                cache: Cache::default(),
            }),
        }
    }

    /// Classifies requests into endpoint templates with `f` instead of axum's `MatchedPath`:
    /// `f` sees the request head and returns the template (`Some("/v1/payments/{id}".into())`),
    /// or `None` for [`UNMATCHED_ENDPOINT`](super::UNMATCHED_ENDPOINT).
    ///
    /// Return templates, never anything taken from the path itself: each distinct value is a
    /// series.
    pub fn endpoint_fn<F>(self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<SharedString> + Send + Sync + 'static,
    {
        self.with(|endpoint_fn, _| *endpoint_fn = Some(Arc::new(f)))
    }

    /// Reads `api.rate_limit.remaining` from the response header `name` (a number; responses
    /// without it, or with a value that is not a number, leave the gauge alone).
    pub fn rate_limit_header(self, name: HeaderName) -> Self {
        self.with(|_, header| *header = Some(name))
    }

    /// Records no `api.rate_limit.remaining`.
    pub fn without_rate_limit_header(self) -> Self {
        self.with(|_, header| *header = None)
    }
}

impl<S> Layer<S> for ApiMetricsLayer {
    type Service = ApiMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiMetrics::new(inner, Arc::clone(&self.shared))
    }
}
