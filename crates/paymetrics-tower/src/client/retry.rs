//! [`CountRetries`]: a `tower::retry` policy wrapper that counts the retries of one logical call
//! for [`ExternalServiceMetrics`](super::ExternalServiceMetrics).

use std::sync::atomic::Ordering::Relaxed;

use http::Request;
use tower::retry::Policy;

use super::RetryCounter;

/// Wraps your `tower::retry` policy so that the retries of each logical call are counted into
/// `external_service.calls.retry_count`, recorded once per call by an
/// [`ExternalServiceMetrics`](super::ExternalServiceMetrics) outside the retry layer.
///
/// Decisions are your policy's; this only counts each retry it grants, and makes sure the
/// requests it clones keep the call's counter (a policy that rebuilds requests need not copy
/// extensions). [`ExternalServiceMetricsLayer::retry`](super::ExternalServiceMetricsLayer::retry)
/// stacks both layers in the right order in one call; use this type directly when you build the
/// stack yourself:
///
/// ```
/// # use std::future::{Ready, ready};
/// # use http::{Request, Response};
/// # #[derive(Clone)] struct MyPolicy;
/// # impl<E> tower::retry::Policy<Request<String>, Response<String>, E> for MyPolicy {
/// #     type Future = Ready<()>;
/// #     fn retry(&mut self, _: &mut Request<String>, _: &mut Result<Response<String>, E>) -> Option<Ready<()>> { None }
/// #     fn clone_request(&mut self, _: &Request<String>) -> Option<Request<String>> { None }
/// # }
/// use paymetrics_tower::{ExternalServiceMetricsLayer, client::CountRetries};
/// use tower::{ServiceBuilder, retry::RetryLayer};
///
/// let layers = ServiceBuilder::new()
///     .layer(ExternalServiceMetricsLayer::new("card-processor")) // outside: one record per call
///     .layer(RetryLayer::new(CountRetries::new(MyPolicy)));       // inside: counts the retries
/// # drop(layers);
/// ```
#[derive(Debug, Clone)]
pub struct CountRetries<P> {
    inner: P,
}

impl<P> CountRetries<P> {
    /// Counts the retries `policy` grants.
    pub fn new(policy: P) -> Self {
        Self { inner: policy }
    }

    /// The wrapped policy.
    pub fn get_ref(&self) -> &P {
        &self.inner
    }

    /// The wrapped policy, unwrapped.
    pub fn into_inner(self) -> P {
        self.inner
    }
}

impl<P, B, Res, E> Policy<Request<B>, Res, E> for CountRetries<P>
where
    P: Policy<Request<B>, Res, E>,
{
    type Future = P::Future;

    fn retry(
        &mut self,
        request: &mut Request<B>,
        result: &mut Result<Res, E>,
    ) -> Option<P::Future> {
        let backoff = self.inner.retry(request, result)?;
        if let Some(counter) = request.extensions().get::<RetryCounter>() {
            counter.0.fetch_add(1, Relaxed);
        }
        Some(backoff)
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        let mut clone = self.inner.clone_request(request)?;
        if let Some(counter) = request.extensions().get::<RetryCounter>()
            && clone.extensions().get::<RetryCounter>().is_none()
        {
            clone.extensions_mut().insert(counter.clone());
        }
        Some(clone)
    }
}
