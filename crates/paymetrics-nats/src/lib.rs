//! Datadog queue metrics for NATS JetStream through [`async_nats`]: an instrumented context and
//! message stream that record the strategy's `queue.*` metrics through the [`metrics`] facade
//! into paymetrics (or any `metrics` recorder).
//!
//! [`InstrumentedJetStream`] wraps the [`jetstream::Context`](async_nats::jetstream::Context)
//! the application already uses and dereferences to it: streams, consumers, key-value buckets
//! and everything else are the context's own. [`publish`](InstrumentedJetStream::publish) and
//! [`publish_with_headers`](InstrumentedJetStream::publish_with_headers) are wrapped with
//! async-nats's signatures, and [`messages`](InstrumentedJetStream::messages) wraps a pull
//! consumer's message stream; messages, acknowledgements and errors pass through untouched.
//!
//! # Quick start
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use async_nats::jetstream::{self, consumer::pull, stream};
//! use paymetrics_nats::{InstrumentedJetStream, MessageType};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let _metrics = paymetrics::init()?;
//! let client = async_nats::connect("127.0.0.1:4222").await?;
//! let js = InstrumentedJetStream::builder()
//!     .message_type(MessageType::header("Payment-Event"))
//!     .wrap(jetstream::new(client));
//! let stream = js
//!     .get_or_create_stream(stream::Config {
//!         name: "PAYOUTS".into(),
//!         subjects: vec!["payouts.>".into()],
//!         ..Default::default()
//!     })
//!     .await?;
//!
//! // operation:publish, queue_name:PAYOUTS; processing_time is the time to the stream's ack.
//! js.publish("payouts.eu", "{}".into()).await?.await?;
//!
//! let consumer: jetstream::consumer::PullConsumer = stream
//!     .get_or_create_consumer("worker", pull::Config {
//!         durable_name: Some("worker".into()),
//!         max_deliver: 5,
//!         ..Default::default()
//!     })
//!     .await?;
//! let mut messages = js.messages(&consumer).await?;
//! while let Some(message) = messages.next().await {
//!     let message = message?;
//!     // ... handle it: operation:consume's processing_time ends at the ack ...
//!     message.ack().await?; // operation:ack
//! }
//! # Ok(()) }
//! ```
//!
//! # What is recorded
//!
//! Through [`BusinessEvents::queue_operation`](paymetrics::events::BusinessEvents::queue_operation),
//! so the names, tags and bounds are exactly those of a hand-recorded
//! [`QueueOperation`](paymetrics::events::QueueOperation) (constants in [`paymetrics::events::queue`]),
//! tagged `queue_name` (the stream), `operation` and `message_type`:
//!
//! | operation | when | measurements |
//! |---|---|---|
//! | `publish` | every publish, once its ack resolves (or its future is dropped) | `queue.message.size`; `queue.operations.processing_time`: from the call to the stream's ack |
//! | `consume` | every delivery, once: when acked, naked or terminated, or dropped | `processing_time`: the handler's duration, to its ack; `size`; `queue.message.retry_count`: the delivery count less one; `queue.dlq.messages` when it is a dead letter |
//! | `ack`, `nack` | an `Ack` (or `Next`), a `Nak` or `Term` that was sent | count only |
//!
//! Failures go to [`OPERATIONS_ERRORS`] (tags `queue_name`, `operation`, [`ERROR_TYPE`] from the
//! closed [`ErrorType`] set): a publish not acknowledged in time or for which no stream exists,
//! a failed send, and a handler that panicked while it held a message.
//!
//! A publish that failed has no stream to name: its `queue_name` is `unknown`. Stream names
//! and message types are sanitised and capped per
//! [`BusinessEvents`](paymetrics::events::BusinessEvents) handle as the core does for every
//! open tag (50 values each by default, then `other`).
//!
//! # Dead letters
//!
//! JetStream has no dead-letter queue: a message whose deliveries reach the consumer's
//! `max_deliver` is never delivered again. A consumption is counted in `queue.dlq.messages`
//! when it gives the message up: a `Term`, or a `Nak` or no ack at all on its last allowed
//! delivery. [`messages`](InstrumentedJetStream::messages) reads `max_deliver` from the
//! consumer's configuration.
//!
//! # Depth
//!
//! [`PendingSampler`] reads `queue.depth.current` from consumers' pending counts, on demand or
//! on the `paymetrics-automation` scheduler (feature `automation`).
//!
//! # Feature flags
//!
//! * `automation`: `impl paymetrics_automation::Collector for PendingSampler`.

mod classifier;
mod context;
mod errors;
mod messages;
mod pending;

pub use classifier::{MessageClassifier, MessageType};
pub use context::{
    DEFAULT_MAX_ERROR_SERIES, InstrumentedAck, InstrumentedJetStream, InstrumentedJetStreamBuilder,
};
pub use errors::ErrorType;
pub use messages::{InstrumentedMessage, InstrumentedMessages};
pub use pending::{PendingSampler, SampleError};

pub use paymetrics::events::queue::{ERROR_TYPE, OPERATIONS_ERRORS};
/// Tag key of `queue.depth.current` here: the consumer whose pending count it is.
pub const CONSUMER: &str = "consumer";
