//! The body wrappers of [`ApiMetrics`](super::ApiMetrics): they count the bytes of the data
//! frames that go through them, and the response body records the exchange when it ends.

use std::{
    fmt,
    panic::{self, AssertUnwindSafe},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;

use super::{Outcome, cache::RecordGuard};

/// The request body the inner service sees: the original body, counting the bytes of the data
/// frames the application reads (`api.requests.size`).
#[pin_project]
pub struct RequestBody<B> {
    #[pin]
    inner: B,
    read: Option<Arc<AtomicU64>>,
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, read: Option<Arc<AtomicU64>>) -> Self {
        Self { inner, read }
    }

    /// The original body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The original body; bytes read from it directly are not counted.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(read)) = (&polled, this.read)
            && let Some(data) = frame.data_ref()
        {
            read.fetch_add(data.remaining() as u64, Relaxed);
        }
        polled
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body the server sees: the inner service's body, counting the bytes of its data
/// frames (`api.responses.size`) and recording the exchange when it yields its last frame, an
/// error, panics, or is dropped before its end.
#[pin_project]
pub struct ResponseBody<B> {
    #[pin]
    inner: B,
    guard: RecordGuard,
    /// The body's own exact length, if it declared one: hyper stops polling (and drops the
    /// body) once it has written that many bytes, so reaching it is the end. Used only to
    /// notice the end, never as the size.
    exact_len: Option<u64>,
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: B, guard: RecordGuard, content_length: Option<u64>) -> Self {
        let exact_len = inner.size_hint().exact().or(content_length);
        Self {
            inner,
            guard,
            exact_len,
        }
    }
}

impl<B> ResponseBody<B> {
    /// The inner service's body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let inner = &mut this.inner;
        let polled = match panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll_frame(cx))) {
            Ok(polled) => polled,
            Err(payload) => {
                this.guard.finish(Outcome::Panic);
                panic::resume_unwind(payload)
            }
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let ended = match frame.data_ref() {
                    Some(data) => {
                        let total = this.guard.add_response_bytes(data.remaining());
                        *this.exact_len == Some(total) || this.inner.is_end_stream()
                    }
                    None => this.inner.is_end_stream(),
                };
                if ended {
                    this.guard.finish(Outcome::Completed);
                }
            }
            Poll::Ready(Some(Err(_))) => this.guard.finish(Outcome::Error),
            Poll::Ready(None) => this.guard.finish(Outcome::Completed),
            Poll::Pending => {}
        }
        polled
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
