//! Payment attempts and completions (the original strategy's `track_payment_attempt` and
//! `track_payment_completion`).
//!
//! ```
//! use paymetrics::events::{
//!     BusinessEvents, PaymentAttempt, PaymentCompletion, PaymentMethod, PaymentStatus, payment,
//! };
//!
//! let recorded = paymetrics::testing::capture(|| {
//!     let events = BusinessEvents::default();
//!     events.payment_attempt(&PaymentAttempt {
//!         amount: 42.0,
//!         currency: "eur",
//!         payment_method: PaymentMethod::Card,
//!         sender_id: "user-1842",
//!         sender_country: Some("DE"),
//!         receiver_country: Some("fr"),
//!     });
//!     events.payment_completion(&PaymentCompletion {
//!         status: PaymentStatus::Completed,
//!         amount: 42.0,
//!         fees: Some(1.52),
//!         currency: "EUR",
//!         payment_method: PaymentMethod::Card,
//!         processing_time_ms: Some(184.0),
//!     });
//! });
//! let attempt = [
//!     (payment::CURRENCY, "EUR"),
//!     (payment::PAYMENT_METHOD, "card"),
//!     (payment::AMOUNT_RANGE, "small"),
//!     (payment::SENDER_COUNTRY, "DE"),
//!     (payment::RECEIVER_COUNTRY, "FR"),
//! ];
//! assert_eq!(recorded.counter(payment::ATTEMPTS, &attempt), Some(1));
//! let completion = [
//!     (payment::STATUS, "completed"),
//!     (payment::CURRENCY, "EUR"),
//!     (payment::PAYMENT_METHOD, "card"),
//!     (payment::PROCESSING_TIME_BUCKET, "normal"),
//! ];
//! assert_eq!(recorded.histogram(payment::FEES, &completion), Some(vec![1.52]));
//! ```

use std::sync::OnceLock;

use metrics::{Counter, Histogram, Label};

use super::{
    BusinessEvents,
    buckets::{AmountRange, ProcessingTimeBucket},
    business::{Cache, bool_str, counter, histogram, with_label},
    normalize::{country_code, country_str, currency_index, currency_str},
};

/// Counter, payment attempts. Tags: [`CURRENCY`], [`PAYMENT_METHOD`], [`AMOUNT_RANGE`],
/// [`SENDER_COUNTRY`], [`RECEIVER_COUNTRY`].
pub const ATTEMPTS: &str = "business.payment.attempts";
/// Distribution, the attempted amount in units of its currency. Tags as [`ATTEMPTS`].
pub const AMOUNT: &str = "business.payment.amount";
/// Gauge, distinct payment senders this UTC day, estimated in process from
/// [`Uniques`](crate::uniques::Uniques) (fed by every attempt) and published by the KPI job.
/// Sender ids are never sent as a DogStatsD set; no id leaves the process here. No event
/// records it directly.
pub const UNIQUE_SENDERS: &str = "business.payment.unique_senders";

/// Counter, payment completions, whatever their status. Tags: [`STATUS`], [`CURRENCY`],
/// [`PAYMENT_METHOD`], [`PROCESSING_TIME_BUCKET`].
pub const COMPLETIONS: &str = "business.payment.completions";
/// Distribution, milliseconds from the payment's submission to its outcome; only when the
/// completion carries a processing time. Tags as [`COMPLETIONS`].
pub const PROCESSING_TIME: &str = "business.payment.processing_time";
/// Counter, completions split by [`SUCCESS`] (`true` when the status is `completed`). The
/// success rate is a ratio of two queries, `sum:...{success:true}.as_count() /
/// sum:...{*}.as_count()`, or the KPI job's gauge. Tags as [`COMPLETIONS`] plus [`SUCCESS`].
pub const SUCCESS_RATE: &str = "business.payment.success_rate";
/// Distribution, the amount of each completed payment in units of its currency. Tags as
/// [`COMPLETIONS`] (whose status is then always `completed`).
pub const TRANSACTION_VALUE: &str = "business.revenue.transaction_value";
/// Distribution, the fees earned on each completed payment that carries them, in units of its
/// currency. Tags as [`COMPLETIONS`].
pub const FEES: &str = "business.revenue.fees";

/// Tag key: ISO 4217 code, normalised (see [`normalize::currency`](super::normalize::currency)).
pub const CURRENCY: &str = "currency";
/// Tag key: a [`PaymentMethod`].
pub const PAYMENT_METHOD: &str = "payment_method";
/// Tag key: an [`AmountRange`].
pub const AMOUNT_RANGE: &str = "amount_range";
/// Tag key: the sender's ISO 3166-1 alpha-2 country, or `unknown`.
pub const SENDER_COUNTRY: &str = "sender_country";
/// Tag key: the receiver's ISO 3166-1 alpha-2 country, or `unknown`.
pub const RECEIVER_COUNTRY: &str = "receiver_country";
/// Tag key: a [`PaymentStatus`].
pub const STATUS: &str = "status";
/// Tag key: a [`ProcessingTimeBucket`].
pub const PROCESSING_TIME_BUCKET: &str = "processing_time_bucket";
/// Tag key: `true` or `false`.
pub const SUCCESS: &str = "success";

tag_enum! {
    /// How a payment is funded (`payment_method` tag).
    PaymentMethod {
        /// `card`: a debit or credit card.
        Card => "card",
        /// `bank`: a bank account (transfer or direct debit).
        Bank => "bank",
        /// `wallet`: a stored balance or a third-party wallet.
        Wallet => "wallet",
        /// `other`: any other method.
        Other => "other",
        /// `unknown`: not known at this point (the default for completions).
        Unknown => "unknown",
    }
}

tag_enum! {
    /// How a payment ended (`status` tag). Only [`Completed`](Self::Completed) counts as a
    /// success.
    PaymentStatus {
        /// `completed`: the money moved.
        Completed => "completed",
        /// `pending`: accepted, not settled yet (review, bank delay).
        Pending => "pending",
        /// `declined`: refused by the issuer, the bank or a risk rule.
        Declined => "declined",
        /// `failed`: a technical failure.
        Failed => "failed",
        /// `cancelled`: withdrawn by the sender or the merchant.
        Cancelled => "cancelled",
        /// `timed_out`: no outcome in time.
        TimedOut => "timed_out",
    }
}

impl PaymentStatus {
    /// Whether this status counts as a success (`success:true`).
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Completed)
    }
}

/// A payment attempt: records [`ATTEMPTS`] and [`AMOUNT`], and counts the sender in
/// [`Uniques`](crate::uniques::Uniques) (never as a tag).
#[derive(Debug, Clone, Copy)]
pub struct PaymentAttempt<'a> {
    /// The amount, in units of `currency` (euros, not cents). From a ledger's integer minor
    /// units: [`Money::from_minor(cents, currency).into()`](crate::money::Money).
    pub amount: f64,
    /// ISO 4217 code, any case; others are recorded as `other`.
    pub currency: &'a str,
    /// How the payment is funded.
    pub payment_method: PaymentMethod,
    /// The sender's id: hashed into the day's unique-senders sketch, never recorded as a tag.
    /// An empty id is not counted.
    pub sender_id: &'a str,
    /// The sender's ISO 3166-1 alpha-2 country, any case; `None` or malformed is `unknown`.
    pub sender_country: Option<&'a str>,
    /// The receiver's country, as `sender_country`.
    pub receiver_country: Option<&'a str>,
}

/// A payment's outcome: records [`COMPLETIONS`], [`SUCCESS_RATE`], [`PROCESSING_TIME`] (when
/// timed) and, for completed payments, [`TRANSACTION_VALUE`] and [`FEES`] (when given).
#[derive(Debug, Clone, Copy)]
pub struct PaymentCompletion<'a> {
    /// How it ended.
    pub status: PaymentStatus,
    /// The amount, in units of `currency` (from minor units: [`Money`](crate::money::Money)).
    pub amount: f64,
    /// The fees earned, in units of `currency`, if any were computed (from minor units:
    /// [`Money`](crate::money::Money)).
    pub fees: Option<f64>,
    /// ISO 4217 code, any case; others are recorded as `other`.
    pub currency: &'a str,
    /// How the payment was funded ([`PaymentMethod::Unknown`] if not known here).
    pub payment_method: PaymentMethod,
    /// Milliseconds from submission to outcome, if measured.
    pub processing_time_ms: Option<f64>,
}

/// The payment events' handle tables.
#[derive(Default)]
pub(super) struct Caches {
    attempts: Cache<AttemptSeries>,
    completions: Cache<CompletionSeries>,
}

struct AttemptSeries {
    labels: Vec<Label>,
    attempts: OnceLock<Counter>,
    amount: OnceLock<Histogram>,
}

struct CompletionSeries {
    labels: Vec<Label>,
    success_labels: Vec<Label>,
    completions: OnceLock<Counter>,
    success_rate: OnceLock<Counter>,
    processing_time: OnceLock<Histogram>,
    transaction_value: OnceLock<Histogram>,
    fees: OnceLock<Histogram>,
}

impl BusinessEvents {
    /// Records a payment attempt (see [`PaymentAttempt`]).
    pub fn payment_attempt(&self, event: &PaymentAttempt<'_>) {
        let currency = currency_index(event.currency);
        let method = event.payment_method;
        let range = AmountRange::of(event.amount);
        let sender = country_code(event.sender_country);
        let receiver = country_code(event.receiver_country);
        let key = u64::from(currency)
            | u64::from(method as u8) << 8
            | u64::from(range as u8) << 16
            | u64::from(sender) << 24
            | u64::from(receiver) << 40;
        self.inner.payment.attempts.record(
            key,
            || AttemptSeries {
                labels: vec![
                    Label::from_static_parts(CURRENCY, currency_str(currency)),
                    Label::from_static_parts(PAYMENT_METHOD, method.as_str()),
                    Label::from_static_parts(AMOUNT_RANGE, range.as_str()),
                    Label::from_static_parts(SENDER_COUNTRY, country_str(sender)),
                    Label::from_static_parts(RECEIVER_COUNTRY, country_str(receiver)),
                ],
                attempts: OnceLock::new(),
                amount: OnceLock::new(),
            },
            |s| {
                counter(&s.attempts, ATTEMPTS, &s.labels).increment(1);
                histogram(&s.amount, AMOUNT, &s.labels).record(event.amount);
            },
        );
        if !event.sender_id.is_empty() {
            self.inner.uniques.observe_sender(event.sender_id);
        }
    }

    /// Records a payment's outcome (see [`PaymentCompletion`]).
    pub fn payment_completion(&self, event: &PaymentCompletion<'_>) {
        let status = event.status;
        let currency = currency_index(event.currency);
        let method = event.payment_method;
        let bucket = ProcessingTimeBucket::of_optional(event.processing_time_ms);
        let key = u64::from(status as u8)
            | u64::from(currency) << 8
            | u64::from(method as u8) << 16
            | u64::from(bucket as u8) << 24;
        self.inner.payment.completions.record(
            key,
            || {
                let labels = vec![
                    Label::from_static_parts(STATUS, status.as_str()),
                    Label::from_static_parts(CURRENCY, currency_str(currency)),
                    Label::from_static_parts(PAYMENT_METHOD, method.as_str()),
                    Label::from_static_parts(PROCESSING_TIME_BUCKET, bucket.as_str()),
                ];
                CompletionSeries {
                    success_labels: with_label(&labels, SUCCESS, bool_str(status.is_success())),
                    labels,
                    completions: OnceLock::new(),
                    success_rate: OnceLock::new(),
                    processing_time: OnceLock::new(),
                    transaction_value: OnceLock::new(),
                    fees: OnceLock::new(),
                }
            },
            |s| {
                counter(&s.completions, COMPLETIONS, &s.labels).increment(1);
                if let Some(ms) = event.processing_time_ms {
                    histogram(&s.processing_time, PROCESSING_TIME, &s.labels).record(ms);
                }
                counter(&s.success_rate, SUCCESS_RATE, &s.success_labels).increment(1);
                if status.is_success() {
                    histogram(&s.transaction_value, TRANSACTION_VALUE, &s.labels)
                        .record(event.amount);
                    if let Some(fees) = event.fees {
                        histogram(&s.fees, FEES, &s.labels).record(fees);
                    }
                }
            },
        );
    }
}
