//! [`InstrumentedJetStream`] (a JetStream context that records its publishes and wraps message
//! streams), its builder, the acknowledgement future it returns, and the handles they share.

use std::{
    fmt,
    future::{Future, IntoFuture},
    ops::Deref,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::{
    HeaderMap, ToSubject,
    jetstream::{
        Context,
        consumer::{PullConsumer, StreamError, pull},
        context::{PublishAckFuture, PublishError},
        publish::PublishAck,
    },
};
use bytes::Bytes;
use paymetrics::events::{BusinessEvents, QueueOperation, QueueOperationKind, normalize::UNKNOWN};

use crate::{ErrorType, InstrumentedMessages, MessageType, errors::Errors};

/// Default cap on `queue.operations.errors` series kept with their own queue name, per context
/// and its clones.
pub const DEFAULT_MAX_ERROR_SERIES: usize = 64;

/// What a context, its clones, its message streams and their messages share.
#[derive(Debug)]
pub(crate) struct Instruments {
    pub(crate) events: BusinessEvents,
    pub(crate) message_type: MessageType,
    pub(crate) errors: Errors,
}

impl Instruments {
    /// One `publish` operation.
    fn publish(
        &self,
        stream: &str,
        message_type: Option<&str>,
        size: usize,
        time: Option<Duration>,
    ) {
        self.events.queue_operation(&QueueOperation {
            queue_name: stream,
            operation: QueueOperationKind::Publish,
            message_type,
            processing_time_ms: time.map(|t| t.as_secs_f64() * 1000.0),
            depth: None,
            message_size_bytes: Some(size as u64),
            retry_count: None,
            dead_lettered: false,
        });
    }
}

/// A [`jetstream::Context`](Context) that records every message it publishes, and wraps pull
/// consumers' message streams so that they record every delivery (see the
/// [crate documentation](crate) for the metrics).
///
/// It dereferences to the context, so every other method is the context's own. Clones share
/// their handles. Handles are registered with the `metrics` recorder in effect when each series
/// is first used: install the recorder first.
///
/// ```no_run
/// # async fn run(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use paymetrics_nats::InstrumentedJetStream;
///
/// let js = InstrumentedJetStream::new(async_nats::jetstream::new(client));
/// let ack = js.publish("payouts.eu", "{}".into()).await?.await?;
/// assert_eq!(ack.stream, "PAYOUTS");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct InstrumentedJetStream {
    inner: Context,
    instruments: Arc<Instruments>,
}

impl fmt::Debug for InstrumentedJetStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedJetStream")
            .field("message_type", &self.instruments.message_type)
            .finish_non_exhaustive()
    }
}

impl Deref for InstrumentedJetStream {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.inner
    }
}

impl InstrumentedJetStream {
    /// Wraps `context` with the defaults: a new [`BusinessEvents`] handle, no message types.
    pub fn new(context: Context) -> Self {
        InstrumentedJetStreamBuilder::default().wrap(context)
    }

    /// A builder, to share a [`BusinessEvents`] handle or choose where message types come
    /// from.
    pub fn builder() -> InstrumentedJetStreamBuilder {
        InstrumentedJetStreamBuilder::default()
    }

    /// The wrapped context; what is published through it directly is not recorded.
    pub fn get_ref(&self) -> &Context {
        &self.inner
    }

    /// Unwraps the context.
    pub fn into_inner(self) -> Context {
        self.inner
    }

    /// [`Context::publish`], recorded once its [`InstrumentedAck`] resolves.
    pub async fn publish<S: ToSubject>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> Result<InstrumentedAck, PublishError> {
        let subject = subject.to_subject();
        let pending = self.pending(&subject, None, &payload);
        let ack = self.inner.publish(subject, payload).await;
        pending.sent(ack)
    }

    /// [`Context::publish_with_headers`], recorded once its [`InstrumentedAck`] resolves.
    pub async fn publish_with_headers<S: ToSubject>(
        &self,
        subject: S,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<InstrumentedAck, PublishError> {
        let subject = subject.to_subject();
        let pending = self.pending(&subject, Some(&headers), &payload);
        let ack = self
            .inner
            .publish_with_headers(subject, headers, payload)
            .await;
        pending.sent(ack)
    }

    fn pending(&self, subject: &str, headers: Option<&HeaderMap>, payload: &[u8]) -> Pending {
        let instruments = &self.instruments;
        Pending {
            message_type: instruments
                .message_type
                .of(subject, headers, payload)
                .map(Box::from),
            instruments: Arc::clone(instruments),
            size: payload.len(),
            start: Instant::now(),
            done: false,
        }
    }

    /// The messages of a pull consumer ([`PullConsumer::messages`](async_nats::jetstream::consumer::Consumer::messages)), recorded; the
    /// consumer's `max_deliver` (from its cached configuration) decides what is a dead letter.
    pub async fn messages(
        &self,
        consumer: &PullConsumer,
    ) -> Result<InstrumentedMessages<pull::Stream>, StreamError> {
        let max_deliver = consumer.cached_info().config.max_deliver;
        let messages = consumer.messages().await?;
        Ok(self.wrap_messages(messages, max_deliver))
    }

    /// Records the messages of any JetStream message stream (a pull consumer's `messages`,
    /// `fetch` or `batch`, a push consumer's `messages`), into this context's handles.
    /// `max_deliver` is the consumer's (0 or less: unlimited).
    pub fn wrap_messages<S>(&self, messages: S, max_deliver: i64) -> InstrumentedMessages<S> {
        InstrumentedMessages::new(messages, Arc::clone(&self.instruments), max_deliver)
    }
}

/// Configures an [`InstrumentedJetStream`].
///
/// ```
/// use paymetrics::events::BusinessEvents;
/// use paymetrics_nats::{InstrumentedJetStream, MessageType};
///
/// # fn wrap(context: async_nats::jetstream::Context) -> InstrumentedJetStream {
/// InstrumentedJetStream::builder()
///     .events(BusinessEvents::default()) // share the application's handle and its caps
///     .message_type(MessageType::header("Payment-Event"))
///     .wrap(context)
/// # }
/// ```
#[derive(Debug)]
pub struct InstrumentedJetStreamBuilder {
    events: Option<BusinessEvents>,
    message_type: MessageType,
    max_error_series: usize,
}

impl Default for InstrumentedJetStreamBuilder {
    fn default() -> Self {
        Self {
            events: None,
            message_type: MessageType::default(),
            max_error_series: DEFAULT_MAX_ERROR_SERIES,
        }
    }
}

impl InstrumentedJetStreamBuilder {
    /// The handle that records (and bounds stream names and message types); a new
    /// `BusinessEvents::default()` if not given.
    pub fn events(mut self, events: BusinessEvents) -> Self {
        self.events = Some(events);
        self
    }

    /// Where `message_type` comes from ([`MessageType::None`] by default).
    pub fn message_type(mut self, source: MessageType) -> Self {
        self.message_type = source;
        self
    }

    /// Caps the `queue.operations.errors` series kept with their own queue name (default
    /// [`DEFAULT_MAX_ERROR_SERIES`]); later ones are recorded under `other`.
    pub fn max_error_series(mut self, max: usize) -> Self {
        self.max_error_series = max;
        self
    }

    /// Wraps `context`.
    pub fn wrap(self, context: Context) -> InstrumentedJetStream {
        InstrumentedJetStream {
            inner: context,
            instruments: Arc::new(Instruments {
                events: self.events.unwrap_or_default(),
                message_type: self.message_type,
                errors: Errors::new(self.max_error_series),
            }),
        }
    }
}

/// A publish waiting for its acknowledgement. Dropped before it is known, it records the
/// publish once, without a latency and with the stream `unknown`.
struct Pending {
    instruments: Arc<Instruments>,
    message_type: Option<Box<str>>,
    size: usize,
    start: Instant,
    done: bool,
}

impl Pending {
    fn sent(
        self,
        ack: Result<PublishAckFuture, PublishError>,
    ) -> Result<InstrumentedAck, PublishError> {
        match ack {
            Ok(inner) => Ok(InstrumentedAck {
                inner,
                pending: self,
            }),
            Err(error) => {
                self.resolve(Err(&error));
                Err(error)
            }
        }
    }

    fn resolve(mut self, result: Result<&PublishAck, &PublishError>) {
        self.done = true;
        let message_type = self.message_type.as_deref();
        match result {
            Ok(ack) => {
                let latency = self.start.elapsed();
                self.instruments
                    .publish(&ack.stream, message_type, self.size, Some(latency));
            }
            Err(error) => {
                self.instruments
                    .publish(UNKNOWN, message_type, self.size, None);
                let kind = QueueOperationKind::Publish;
                let error = ErrorType::of_publish(error);
                self.instruments.errors.record(UNKNOWN, kind, error);
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let message_type = self.message_type.as_deref();
            self.instruments
                .publish(UNKNOWN, message_type, self.size, None);
        }
    }
}

/// [`PublishAckFuture`], recording the publish when it resolves: `queue_name` is the stream
/// that acknowledged it, the processing time the time from the publish call to the ack; a
/// failure is counted as a `timeout`, `no_stream` or `failed` error.
pub struct InstrumentedAck {
    inner: PublishAckFuture,
    pending: Pending,
}

impl fmt::Debug for InstrumentedAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedAck")
            .field("size", &self.pending.size)
            .finish_non_exhaustive()
    }
}

impl IntoFuture for InstrumentedAck {
    type Output = Result<PublishAck, PublishError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let InstrumentedAck { inner, pending } = self;
        Box::pin(async move {
            let result = inner.await;
            pending.resolve(result.as_ref());
            result
        })
    }
}
