//! [`InstrumentedMessages`] (a JetStream message stream whose messages record themselves) and
//! [`InstrumentedMessage`] (a message that records its consumption once: when it is acked,
//! naked or terminated, or when it is dropped, as a panicking handler does).

use std::{
    fmt,
    ops::Deref,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, AckKind};
use futures_core::Stream;
use paymetrics::events::{QueueOperation, QueueOperationKind, normalize::UNKNOWN};

use crate::{ErrorType, context::Instruments};

/// What the messages of one stream share.
struct Shared {
    instruments: Arc<Instruments>,
    /// The consumer's `max_deliver`; 0 or less is unlimited.
    max_deliver: i64,
}

/// A JetStream message stream yielding [`InstrumentedMessage`]s; errors pass through untouched.
/// Made by [`InstrumentedJetStream::messages`](crate::InstrumentedJetStream::messages) or
/// [`wrap_messages`](crate::InstrumentedJetStream::wrap_messages).
pub struct InstrumentedMessages<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for InstrumentedMessages<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedMessages")
            .field("max_deliver", &self.shared.max_deliver)
            .finish_non_exhaustive()
    }
}

impl<S> InstrumentedMessages<S> {
    pub(crate) fn new(inner: S, instruments: Arc<Instruments>, max_deliver: i64) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                instruments,
                max_deliver,
            }),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the stream; its messages are no longer recorded.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, E> Stream for InstrumentedMessages<S>
where
    S: Stream<Item = Result<jetstream::Message, E>> + Unpin,
{
    type Item = Result<InstrumentedMessage, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = std::task::ready!(Pin::new(&mut self.inner).poll_next(cx));
        Poll::Ready(item.map(|result| {
            result.map(|message| InstrumentedMessage {
                message,
                received: Instant::now(),
                shared: Arc::clone(&self.shared),
                recorded: AtomicBool::new(false),
            })
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A [`jetstream::Message`] that records `operation:consume` exactly once, and each
/// acknowledgement it sends as `operation:ack` or `operation:nack`.
///
/// It dereferences to the message. Its [`ack`](Self::ack), [`ack_with`](Self::ack_with) and
/// [`double_ack`](Self::double_ack) are async-nats's, recorded: the consumption's processing
/// time runs from the delivery to that call. `Progress` acknowledgements extend the handler's
/// time and record nothing. Dropped unacknowledged while its thread panics, it also counts an
/// [`ErrorType::Panic`] (the server redelivers the message after the consumer's `ack_wait`).
pub struct InstrumentedMessage {
    message: jetstream::Message,
    received: Instant,
    shared: Arc<Shared>,
    recorded: AtomicBool,
}

impl fmt::Debug for InstrumentedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedMessage")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl Deref for InstrumentedMessage {
    type Target = jetstream::Message;

    fn deref(&self) -> &jetstream::Message {
        &self.message
    }
}

impl InstrumentedMessage {
    /// [`jetstream::Message::ack`], recorded.
    pub async fn ack(&self) -> Result<(), async_nats::Error> {
        self.ack_with(AckKind::Ack).await
    }

    /// [`jetstream::Message::ack_with`], recorded: `Ack` and `Next` as `ack`, `Nak` and `Term`
    /// as `nack`; `Progress` records nothing.
    pub async fn ack_with(&self, kind: AckKind) -> Result<(), async_nats::Error> {
        let elapsed = self.received.elapsed();
        let result = self.message.ack_with(kind).await;
        self.acknowledged(kind, elapsed, result.is_ok());
        result
    }

    /// [`jetstream::Message::double_ack`] (waits for the server to confirm the ack), recorded.
    pub async fn double_ack(&self) -> Result<(), async_nats::Error> {
        let elapsed = self.received.elapsed();
        let result = self.message.double_ack().await;
        self.acknowledged(AckKind::Ack, elapsed, result.is_ok());
        result
    }

    /// Earlier deliveries of this message: its delivery count less one (0 when unknown).
    pub fn retry_count(&self) -> u32 {
        let delivered = self.delivered();
        u32::try_from(delivered.saturating_sub(1).max(0)).unwrap_or(u32::MAX)
    }

    /// Unwraps the message, recording its consumption now; its acknowledgement is not
    /// recorded.
    pub fn into_inner(self) -> jetstream::Message {
        self.consumed(self.received.elapsed(), false);
        self.message.clone()
    }

    fn delivered(&self) -> i64 {
        self.message.info().map_or(1, |info| info.delivered)
    }

    /// This delivery is the last the consumer allows.
    fn last_delivery(&self) -> bool {
        let max = self.shared.max_deliver;
        max > 0 && self.delivered() >= max
    }

    fn acknowledged(&self, kind: AckKind, elapsed: Duration, sent: bool) {
        let (operation, dead) = match kind {
            AckKind::Ack | AckKind::Next => (QueueOperationKind::Ack, false),
            AckKind::Nak(_) => (QueueOperationKind::Nack, self.last_delivery()),
            AckKind::Term => (QueueOperationKind::Nack, true),
            AckKind::Progress => return,
        };
        self.consumed(elapsed, sent && dead);
        if sent {
            self.record(operation, None, false);
        } else {
            let stream = self.stream();
            self.shared
                .instruments
                .errors
                .record(stream, operation, ErrorType::Failed);
        }
    }

    fn stream(&self) -> &str {
        self.message.info().map_or(UNKNOWN, |info| info.stream)
    }

    /// Records `operation:consume` unless it already was.
    fn consumed(&self, elapsed: Duration, dead_lettered: bool) {
        if self.recorded.swap(true, Ordering::Relaxed) {
            return;
        }
        self.record(QueueOperationKind::Consume, Some(elapsed), dead_lettered);
    }

    fn record(&self, operation: QueueOperationKind, elapsed: Option<Duration>, dead: bool) {
        let instruments = &self.shared.instruments;
        let message = &self.message.message;
        let consume = operation == QueueOperationKind::Consume;
        instruments.events.queue_operation(&QueueOperation {
            queue_name: self.stream(),
            operation,
            message_type: instruments.message_type.of(
                &message.subject,
                message.headers.as_ref(),
                &message.payload,
            ),
            processing_time_ms: elapsed.map(|t| t.as_secs_f64() * 1000.0),
            depth: None,
            message_size_bytes: consume.then_some(message.payload.len() as u64),
            retry_count: consume.then(|| self.retry_count()),
            dead_lettered: dead,
        });
    }
}

impl Drop for InstrumentedMessage {
    fn drop(&mut self) {
        if self.recorded.load(Ordering::Relaxed) {
            return;
        }
        // Unacknowledged on its last allowed delivery, the message is never delivered again.
        self.consumed(self.received.elapsed(), self.last_delivery());
        if std::thread::panicking() {
            let kind = QueueOperationKind::Consume;
            let stream = self.stream();
            self.shared
                .instruments
                .errors
                .record(stream, kind, ErrorType::Panic);
        }
    }
}
