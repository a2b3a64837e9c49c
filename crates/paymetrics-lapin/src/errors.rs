//! `queue.operations.errors`: the closed [`ErrorType`] set and the bounded table of counters.
//!
//! The table itself (a capped map of counters) is the core's
//! [`QueueErrors`](paymetrics::events::queue::QueueErrors), shared with the other broker crates.

use paymetrics::events::{QueueOperationKind, queue::QueueErrors};

/// What went wrong with a queue operation (the `error_type` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    /// `nack`: the broker refused a published message (publisher confirms).
    Nack,
    /// `returned`: the broker returned a mandatory message that no queue was bound for.
    Returned,
    /// `failed`: the channel or the connection failed or was closed.
    Failed,
    /// `not_sent`: a settlement that lapin did not send (the delivery was already settled, or
    /// its channel is gone).
    NotSent,
    /// `panic`: the handler panicked while it held the delivery.
    Panic,
}

impl ErrorType {
    /// Every error type.
    pub const ALL: &'static [ErrorType] = &[
        ErrorType::Nack,
        ErrorType::Returned,
        ErrorType::Failed,
        ErrorType::NotSent,
        ErrorType::Panic,
    ];

    /// The `error_type` tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::Nack => "nack",
            ErrorType::Returned => "returned",
            ErrorType::Failed => "failed",
            ErrorType::NotSent => "not_sent",
            ErrorType::Panic => "panic",
        }
    }
}

/// The error counters of one channel (and its clones and consumers): the core's bounded
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
            errors.record("a", QueueOperationKind::Publish, ErrorType::Nack);
            errors.record("b q", QueueOperationKind::Publish, ErrorType::Nack);
            errors.record("a", QueueOperationKind::Publish, ErrorType::Nack);
            errors.record("c", QueueOperationKind::Publish, ErrorType::Nack);
            errors.record("d", QueueOperationKind::Publish, ErrorType::Nack);
        });
        let tags = |q| {
            [
                (QUEUE_NAME, q),
                (OPERATION, "publish"),
                (ERROR_TYPE, "nack"),
            ]
        };
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("a")), Some(2));
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("b_q")), Some(1));
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("c")), None);
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags(OTHER)), Some(2));
    }
}
