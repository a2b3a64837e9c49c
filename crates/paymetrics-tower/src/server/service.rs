//! [`ApiMetrics`], the service [`ApiMetricsLayer`](super::ApiMetricsLayer) wraps around yours.

use std::{
    fmt,
    sync::{Arc, atomic::AtomicU64},
    task::{Context, Poll},
    time::Instant,
};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{
    RequestBody, ResponseBody, ResponseFuture, UNMATCHED_ENDPOINT, UserTier, cache::RecordGuard,
    layer::Shared,
};
use crate::method;

/// Records the API metrics for each request to `S`; built by
/// [`ApiMetricsLayer`](super::ApiMetricsLayer).
///
/// `S` receives the request with its body wrapped in a [`RequestBody`] (which counts what the
/// application reads) and its response body is wrapped in a [`ResponseBody`].
#[derive(Clone)]
pub struct ApiMetrics<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ApiMetrics<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for ApiMetrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiMetrics")
            .field("inner", &self.inner)
            .field("config", &self.shared)
            .finish()
    }
}

#[cfg(feature = "axum")]
fn matched_path<B>(request: &Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
}

#[cfg(not(feature = "axum"))]
fn matched_path<B>(_: &Request<B>) -> Option<&str> {
    None
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ApiMetrics<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: Body,
    ResBody: Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let method = method::index(request.method());
        let tier = request.extensions().get::<UserTier>().cloned();
        let shared = &self.shared;
        let (endpoint, request) = match &shared.config.endpoint_fn {
            Some(classify) => {
                let (parts, body) = request.into_parts();
                let endpoint = classify(&parts);
                let endpoint = endpoint.as_deref().unwrap_or(UNMATCHED_ENDPOINT);
                let series = shared.cache.endpoint(endpoint, &shared.config);
                (series, Request::from_parts(parts, body))
            }
            None => {
                let endpoint = matched_path(&request).unwrap_or(UNMATCHED_ENDPOINT);
                let series = shared.cache.endpoint(endpoint, &shared.config);
                (series, request)
            }
        };
        let Some(endpoint) = endpoint else {
            // An ignored route: pass through, counting and recording nothing.
            let request = request.map(|body| RequestBody::new(body, None));
            return ResponseFuture::new(self.inner.call(request), RecordGuard::ignored());
        };
        let read = (!request.body().is_end_stream()).then(|| Arc::new(AtomicU64::new(0)));
        let guard = RecordGuard::start(start, endpoint, method, tier, read.clone());
        let request = request.map(|body| RequestBody::new(body, read));
        ResponseFuture::new(self.inner.call(request), guard)
    }
}
