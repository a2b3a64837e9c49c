//! The response future of [`ApiMetrics`](super::ApiMetrics): hands the exchange's guard from the
//! request to the response body, or records the exchange if no response comes.

use std::{
    fmt,
    future::Future,
    panic::{self, AssertUnwindSafe},
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{Response, header::CONTENT_LENGTH};
use http_body::Body;
use pin_project::pin_project;

use super::{Outcome, body::ResponseBody, cache::RecordGuard};

/// Response future of [`ApiMetrics`](super::ApiMetrics).
///
/// Dropping it before it completes records the request as [`Outcome::Cancelled`].
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    guard: Option<RecordGuard>,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, guard: RecordGuard) -> Self {
        Self {
            inner,
            guard: Some(guard),
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
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let inner = &mut this.inner;
        let result = match panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(polled) => ready!(polled),
            Err(payload) => {
                if let Some(mut guard) = this.guard.take() {
                    guard.finish(Outcome::Panic);
                }
                panic::resume_unwind(payload)
            }
        };
        let mut guard = this
            .guard
            .take()
            .expect("ResponseFuture polled after completion");
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let bodyless = guard.head(&parts);
                if bodyless || body.is_end_stream() {
                    guard.finish(Outcome::Completed);
                }
                let content_length = if body.size_hint().exact().is_some() {
                    None
                } else {
                    parts
                        .headers
                        .get(CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                };
                Ok(Response::from_parts(
                    parts,
                    ResponseBody::new(body, guard, content_length),
                ))
            }
            Err(error) => {
                guard.finish(Outcome::Error);
                Err(error)
            }
        })
    }
}
