//! `queue.operations.errors`: the closed [`ErrorType`] set and the bounded table of counters.
//!
//! The table itself (a capped map of counters) is the core's
//! [`QueueErrors`](paymetrics::events::queue::QueueErrors), shared with the other broker crates.

use paymetrics::events::{QueueOperationKind, queue::QueueErrors};

/// What went wrong with a queue operation (the `error_type` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    /// `timeout`: no acknowledgement from the stream in time (the server away, or slow).
    Timeout,
    /// `no_stream`: no stream listens on the subject published to.
    NoStream,
    /// `failed`: the publish or the acknowledgement could not be sent, or was refused.
    Failed,
    /// `panic`: the handler panicked while it held the message.
    Panic,
}

impl ErrorType {
    /// Every error type.
    pub const ALL: &'static [ErrorType] = &[
        ErrorType::Timeout,
        ErrorType::NoStream,
        ErrorType::Failed,
        ErrorType::Panic,
    ];

    /// The `error_type` tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::Timeout => "timeout",
            ErrorType::NoStream => "no_stream",
            ErrorType::Failed => "failed",
            ErrorType::Panic => "panic",
        }
    }

    pub(crate) fn of_publish(error: &async_nats::jetstream::context::PublishError) -> Self {
        use async_nats::jetstream::context::PublishErrorKind;
        match error.kind() {
            PublishErrorKind::TimedOut => ErrorType::Timeout,
            PublishErrorKind::StreamNotFound => ErrorType::NoStream,
            _ => ErrorType::Failed,
        }
    }
}

/// The error counters of one context (and its clones and message streams): the core's bounded
/// [`QueueErrors`] table, keyed by this crate's closed [`ErrorType`].
#[derive(Debug)]
pub(crate) struct Errors(QueueErrors);

impl Errors {
    pub(crate) fn new(max_series: usize) -> Self {
        Self(QueueErrors::new(max_series))
    }

    /// Counts one failure of `operation` on `queue`; past the table's cap, new series are
    /// recorded with the queue name `other`.
    pub(crate) fn record(&self, queue: &str, operation: QueueOperationKind, error: ErrorType) {
        self.0.record(queue, operation, error.as_str());
    }
}

#[cfg(test)]
mod tests {
    use paymetrics::events::{
        normalize::OTHER,
        queue::{ERROR_TYPE, OPERATION, OPERATIONS_ERRORS, QUEUE_NAME},
    };

    use super::*;

    #[test]
    fn queue_names_past_the_cap_are_other() {
        let recorded = paymetrics::testing::capture(|| {
            let errors = Errors::new(2);
            errors.record("a", QueueOperationKind::Publish, ErrorType::Timeout);
            errors.record("b q", QueueOperationKind::Publish, ErrorType::Timeout);
            errors.record("a", QueueOperationKind::Publish, ErrorType::Timeout);
            errors.record("c", QueueOperationKind::Publish, ErrorType::Timeout);
            errors.record("d", QueueOperationKind::Publish, ErrorType::Timeout);
        });
        let tags = |q| {
            [
                (QUEUE_NAME, q),
                (OPERATION, "publish"),
                (ERROR_TYPE, "timeout"),
            ]
        };
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("a")), Some(2));
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("b_q")), Some(1));
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("c")), None);
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags(OTHER)), Some(2));
    }
}
