//! The response future of [`ExternalServiceMetrics`](super::ExternalServiceMetrics): records the
//! call when the response head (or an error) arrives, or as a failure if it is dropped first.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering::Relaxed},
    },
    task::{Context, Poll, ready},
    time::Instant,
};

use http::Response;
use metrics::SharedString;
use paymetrics::events::external::ExternalServiceCall;
use pin_project::pin_project;

use super::layer::Config;

/// A call on its way, recorded once by [`finish`](Self::finish).
pub(crate) struct PendingCall {
    pub(crate) start: Instant,
    pub(crate) config: Arc<Config>,
    pub(crate) endpoint: SharedString,
    pub(crate) method: &'static str,
    pub(crate) retries: Arc<AtomicU32>,
}

impl PendingCall {
    fn finish(self, success: bool) {
        let config = &self.config;
        ExternalServiceCall {
            service_name: config.service_name.clone(),
            endpoint: self.endpoint,
            method: SharedString::const_str(self.method),
            duration_ms: self.start.elapsed().as_secs_f64() * 1000.0,
            success,
            retry_count: self.retries.load(Relaxed),
            circuit_breaker: config.breaker.as_ref().map(|b| b.circuit_state()),
        }
        .record();
    }
}

/// Records the call as failed if the future is dropped before its outcome (an outer timeout, a
/// caller that went away).
struct CallGuard(Option<PendingCall>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(call) = self.0.take() {
            call.finish(false);
        }
    }
}

/// Response future of [`ExternalServiceMetrics`](super::ExternalServiceMetrics).
///
/// The call's duration ends when this resolves: at the response head, retries included. The
/// response body is the caller's to read and is not timed.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    call: CallGuard,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, call: PendingCall) -> Self {
        Self {
            inner,
            call: CallGuard(Some(call)),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(call) = this.call.0.take() {
            let success = match &result {
                Ok(response) => (call.config.is_success)(response.status()),
                Err(_) => false,
            };
            call.finish(success);
        }
        Poll::Ready(result)
    }
}
