//! The stream and future wrappers that feed a [`QueryRecording`]: they count rows as they pass
//! and end the recording on the last row, on the error, or (through the recording's `Drop`) when
//! the caller stops polling. Also a small async generator, so that a pool query can acquire its
//! connection and stream from it inside one `'static` stream.

use std::{
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use futures_core::Stream;
use pin_project::pin_project;
use sqlx::{Either, Error};

use crate::{MeteredDatabase, series::QueryRecording};

/// The rows and results of a query, recorded.
#[pin_project]
pub(crate) struct QueryStream<S, DB> {
    #[pin]
    rows: S,
    recording: QueryRecording,
    database: PhantomData<fn() -> DB>,
}

impl<S, DB> QueryStream<S, DB> {
    pub(crate) fn new(rows: S, recording: QueryRecording) -> Self {
        Self {
            rows,
            recording,
            database: PhantomData,
        }
    }
}

impl<S, DB> Stream for QueryStream<S, DB>
where
    DB: MeteredDatabase,
    S: Stream<Item = Result<Either<DB::QueryResult, DB::Row>, Error>>,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        this.recording.start();
        let poll = this.rows.poll_next(cx);
        match &poll {
            Poll::Ready(Some(Ok(Either::Left(result)))) => {
                this.recording.affected(DB::rows_affected(result));
            }
            Poll::Ready(Some(Ok(Either::Right(_)))) => this.recording.row(),
            Poll::Ready(Some(Err(error))) => this.recording.fail(error),
            Poll::Ready(None) => this.recording.finish(),
            Poll::Pending => {}
        }
        poll
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rows.size_hint()
    }
}

/// The at most one row of a query, recorded.
#[pin_project]
pub(crate) struct QueryFuture<F> {
    #[pin]
    future: F,
    recording: QueryRecording,
}

impl<F> QueryFuture<F> {
    pub(crate) fn new(future: F, recording: QueryRecording) -> Self {
        Self { future, recording }
    }
}

impl<F, R> Future for QueryFuture<F>
where
    F: Future<Output = Result<Option<R>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.recording.start();
        let poll = this.future.poll(cx);
        match &poll {
            Poll::Ready(Ok(row)) => {
                if row.is_some() {
                    this.recording.row();
                }
                this.recording.finish();
            }
            Poll::Ready(Err(error)) => this.recording.fail(error),
            Poll::Pending => {}
        }
        poll
    }
}

/// A stream whose items an async block hands over one at a time through [`Yielder::send`].
#[pin_project]
pub(crate) struct Generator<T, F> {
    slot: Arc<Mutex<Option<T>>>,
    #[pin]
    future: F,
    done: bool,
}

/// The sending half of a [`Generator`].
pub(crate) struct Yielder<T> {
    slot: Arc<Mutex<Option<T>>>,
}

impl<T, F> Generator<T, F>
where
    F: Future<Output = Result<(), Error>>,
{
    pub(crate) fn new(body: impl FnOnce(Yielder<T>) -> F) -> Self {
        let slot = Arc::new(Mutex::new(None));
        let future = body(Yielder {
            slot: Arc::clone(&slot),
        });
        Self {
            slot,
            future,
            done: false,
        }
    }
}

impl<T> Yielder<T> {
    /// Hands `item` to the stream's caller, who gets it from this very poll.
    pub(crate) async fn send(&self, item: T) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(item);
        YieldOnce(false).await;
    }
}

/// Pending once without a wake-up: the generator returns the item instead of `Pending`, and its
/// caller polls again for the next one.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

impl<T, F> Stream for Generator<T, F>
where
    F: Future<Output = Result<(), Error>>,
{
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.future.poll(cx) {
            Poll::Ready(result) => {
                *this.done = true;
                Poll::Ready(result.err().map(Err))
            }
            Poll::Pending => {
                let item = this
                    .slot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                item.map_or(Poll::Pending, |item| Poll::Ready(Some(Ok(item))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{FutureExt, StreamExt};

    // The bodies never wait on anything else, so every poll is ready.
    fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
        stream.next().now_or_never().expect("ready")
    }

    #[test]
    fn generator_yields_in_order_then_ends() {
        let mut stream = Box::pin(Generator::new(|y| async move {
            for i in 0..3 {
                y.send(i).await;
            }
            Ok(())
        }));
        for i in 0..3 {
            assert_eq!(next(&mut stream).unwrap().unwrap(), i);
        }
        assert!(next(&mut stream).is_none());
        assert!(next(&mut stream).is_none());
    }

    #[test]
    fn generator_ends_with_the_error() {
        let mut stream = Box::pin(Generator::new(|y| async move {
            y.send(1).await;
            Err(Error::PoolClosed)
        }));
        assert_eq!(next(&mut stream).unwrap().unwrap(), 1);
        assert!(matches!(next(&mut stream), Some(Err(Error::PoolClosed))));
        assert!(next(&mut stream).is_none());
    }
}
