//! Datadog queue metrics for RabbitMQ through [`lapin`]: an instrumented channel and consumer
//! that record the strategy's `queue.*` metrics through the [`metrics`] facade into paymetrics
//! (or any `metrics` recorder).
//!
//! [`InstrumentedChannel`] wraps the [`lapin::Channel`] the application already uses and
//! dereferences to it: declaring, binding, `confirm_select` and everything else are the
//! channel's own methods. Only [`basic_publish`](InstrumentedChannel::basic_publish) and
//! [`basic_consume`](InstrumentedChannel::basic_consume) are wrapped, with lapin's signatures;
//! messages, options, confirmations and errors pass through untouched.
//!
//! # Quick start
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use lapin::{BasicProperties, Connection, ConnectionProperties, options::*, types::FieldTable};
//! use paymetrics_lapin::InstrumentedChannel;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let _metrics = paymetrics::init()?;
//! let connection =
//!     Connection::connect("amqp://127.0.0.1:5672/%2f", ConnectionProperties::default()).await?;
//! let channel = InstrumentedChannel::new(connection.create_channel().await?);
//! channel.confirm_select(ConfirmSelectOptions::default()).await?;
//! channel
//!     .queue_declare("settlements".into(), QueueDeclareOptions::default(), FieldTable::default())
//!     .await?;
//!
//! // operation:publish; processing_time is the confirm latency.
//! let properties = BasicProperties::default().with_type("settle_batch".into());
//! channel
//!     .basic_publish("".into(), "settlements".into(), BasicPublishOptions::default(), b"{}", properties)
//!     .await?
//!     .await?;
//!
//! let mut consumer = channel
//!     .basic_consume("settlements".into(), "worker".into(), BasicConsumeOptions::default(), FieldTable::default())
//!     .await?;
//! while let Some(delivery) = consumer.next().await {
//!     let delivery = delivery?;
//!     // ... handle it: operation:consume's processing_time ends at the ack ...
//!     delivery.ack(BasicAckOptions::default()).await?; // operation:ack
//! }
//! # Ok(()) }
//! ```
//!
//! # What is recorded
//!
//! Through [`BusinessEvents::queue_operation`](paymetrics::events::BusinessEvents::queue_operation),
//! so the names, tags and bounds are exactly those of a hand-recorded
//! [`QueueOperation`](paymetrics::events::QueueOperation) (constants in [`paymetrics::events::queue`]),
//! tagged `queue_name`, `operation` and `message_type`:
//!
//! | operation | when | measurements |
//! |---|---|---|
//! | `publish` | every `basic_publish` | `queue.message.size`; `queue.operations.processing_time`: from the call to the broker's confirm (publisher confirms on), or the time the call took to hand the message over (off) |
//! | `consume` | every delivery, once: when settled, or dropped | `processing_time`: from the delivery to its ack, nack or reject (the handler's duration); `size`; `queue.message.retry_count`; `queue.dlq.messages` when it is dead-lettered |
//! | `ack`, `nack` | a settlement the broker accepted | count only; `basic.reject` is recorded as `nack` (AMQP's reject is a nack of one message) |
//!
//! Failures go to [`OPERATIONS_ERRORS`] (tags `queue_name`, `operation`, [`ERROR_TYPE`] from the
//! closed [`ErrorType`] set): a publish the broker nacked or returned as unroutable, a channel
//! or connection that failed, a settlement that could not be sent, and a handler that panicked
//! while it held a delivery.
//!
//! `queue_name` is the routing key on the default exchange (the queue itself), else the
//! exchange's name when publishing, and the consumer's queue when consuming. Queue names and
//! message types are sanitised and capped per [`BusinessEvents`](paymetrics::events::BusinessEvents)
//! handle as the core does for every open tag (50 values each by default, then `other`).
//!
//! # Retries and dead letters
//!
//! A delivery's retry count is what the broker says about its earlier deliveries: quorum
//! queues' `x-delivery-count` header (else 1 if the `redelivered` flag is set), plus the
//! `count` of every `x-death` entry (each a trip through a dead-letter exchange, as in a retry
//! topology with a delay queue).
//!
//! The broker does not tell a consumer that a message it rejected was dead-lettered, so the
//! consumer is told what its queue does ([`ConsumerOptions`]): with a dead-letter exchange, a
//! nack or reject without requeue is a dead letter; with a quorum queue's `x-delivery-limit`, a
//! requeue past the limit is.
//!
//! # Message types
//!
//! `message_type` comes from the AMQP `type` property by default, or from a header
//! ([`MessageType::Header`]), or from a [`MessageClassifier`] of your own; `unknown` when none.
//!
//! # Queue depth
//!
//! [`DepthSampler`] reads `queue.depth.current` from passive declares, on demand or on the
//! `paymetrics-automation` scheduler (feature `automation`).
//!
//! # Cost
//!
//! Per message: two clock reads and one or two `queue_operation` calls (a lookup in the
//! handle's interners and its cache of handles, then atomic updates); nothing is allocated once
//! a series exists. See `benches/README.md` for the overhead against a bare confirmed publish.
//!
//! # Feature flags
//!
//! * `automation`: `impl paymetrics_automation::Collector for DepthSampler`.

mod channel;
mod classifier;
mod consumer;
mod depth;
mod errors;
mod retries;

pub use channel::{
    DEFAULT_MAX_ERROR_SERIES, InstrumentedChannel, InstrumentedChannelBuilder, InstrumentedConfirm,
};
pub use classifier::{MessageClassifier, MessageType};
pub use consumer::{ConsumerOptions, InstrumentedConsumer, InstrumentedDelivery};
pub use depth::DepthSampler;
pub use errors::ErrorType;
pub use retries::retry_count;

pub use paymetrics::events::queue::{ERROR_TYPE, OPERATIONS_ERRORS};
