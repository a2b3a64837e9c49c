//! [`ExternalServiceMetrics`], the service
//! [`ExternalServiceMetricsLayer`](super::ExternalServiceMetricsLayer) wraps around a client.

use std::{
    borrow::Cow,
    fmt,
    sync::{Arc, atomic::AtomicU32},
    task::{Context, Poll},
    time::Instant,
};

use http::{Request, Response};
use metrics::SharedString;
use tower_service::Service;

use super::{EndpointTemplate, ResponseFuture, RetryCounter, future::PendingCall, layer::Config};
use crate::{method, server::endpoint_tag};

/// Records one external-service call per request to the client `S`; built by
/// [`ExternalServiceMetricsLayer`](super::ExternalServiceMetricsLayer).
#[derive(Clone)]
pub struct ExternalServiceMetrics<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> ExternalServiceMetrics<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped client, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped client, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for ExternalServiceMetrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalServiceMetrics")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for ExternalServiceMetrics<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let start = Instant::now();
        let endpoint = match request.extensions().get::<EndpointTemplate>() {
            // Braces would reach Datadog as `_`: `/v1/charges/{id}` is sent as `/v1/charges/:id`.
            Some(template) => match endpoint_tag(template.as_str()) {
                Cow::Borrowed(_) => template.0.clone(),
                Cow::Owned(converted) => SharedString::from(converted),
            },
            None => self.config.default_endpoint.clone(),
        };
        let retries = Arc::new(AtomicU32::new(0));
        request
            .extensions_mut()
            .insert(RetryCounter(Arc::clone(&retries)));
        let call = PendingCall {
            start,
            config: Arc::clone(&self.config),
            endpoint,
            method: method::name(request.method()),
            retries,
        };
        ResponseFuture::new(self.inner.call(request), call)
    }
}
