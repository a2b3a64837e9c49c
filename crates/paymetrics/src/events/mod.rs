//! Typed business and technical events: one call records every metric the original strategy's
//! `BusinessMetrics` and `TechnicalMetrics` record for that event, through the `metrics` facade.
//!
//! Each event is a plain struct with named, unit-suffixed fields, recorded by one method of the
//! [`BusinessEvents`] handle:
//!
//! | method | event | module (names, tag keys) |
//! |---|---|---|
//! | [`payment_attempt`](BusinessEvents::payment_attempt) | [`PaymentAttempt`] | [`payment`] |
//! | [`payment_completion`](BusinessEvents::payment_completion) | [`PaymentCompletion`] | [`payment`] |
//! | [`user_registration`](BusinessEvents::user_registration) | [`UserRegistration`] | [`user`] |
//! | [`user_verification`](BusinessEvents::user_verification) | [`UserVerification`] | [`user`] |
//! | [`user_activity`](BusinessEvents::user_activity) | [`UserActivity`] | [`user`] |
//! | [`fraud_detection`](BusinessEvents::fraud_detection) | [`FraudDetection`] | [`fraud`] |
//! | [`confirmed_fraud`](BusinessEvents::confirmed_fraud) | [`ConfirmedFraud`] | [`fraud`] |
//! | [`queue_operation`](BusinessEvents::queue_operation) | [`QueueOperation`] | [`queue`] |
//! | [`health_check`](BusinessEvents::health_check) | [`HealthCheck`] | [`health`] |
//! | [`external_call`](BusinessEvents::external_call) | [`ExternalServiceCall`] | [`external`] |
//!
//! Metric names and tag keys are constants next to their documentation (type, unit, tags), in
//! the module of the domain that records them. Histograms go out as DogStatsD distributions.
//!
//! * **Bounded tags.** Closed sets are enums. Open-ended tag values (currencies, countries,
//!   model versions, queue names, ...) are [normalised](normalize) and capped per tag key, so
//!   no caller can explode cardinality. Amounts, processing times and risk scores are also
//!   tagged by their [`buckets`].
//! * **No user ids.** A DogStatsD set of user ids counts uniques per flush, not per day. Here they go into the handle's
//!   in-process [`Uniques`](crate::uniques::Uniques) sketches, and no event puts one in a tag.
//! * **Cached handles.** Each series' `metrics` handles are registered on first use and kept,
//!   so a hot event formats nothing and looks nothing up in the recorder's registry. They are
//!   registered with the recorder that is current at that first use: install the recorder
//!   before recording, and in tests create the `BusinessEvents` inside
//!   `paymetrics::testing::capture` (feature `testing`) or `capture_async`, or
//!   `with_local_recorder`.
//! * **Ratios are queries.** The `*.success_rate` counters are kept, split by a
//!   `success:true|false` tag, for dashboards; rates themselves are the KPI job's gauges.
//!
//! ```
//! use paymetrics::events::{
//!     BusinessEvents, FraudAction, FraudDetection, PaymentAttempt, PaymentMethod, fraud,
//!     payment,
//! };
//!
//! let recorded = paymetrics::testing::capture(|| {
//!     // One handle per process (clone it freely), created once the recorder is installed.
//!     let events = BusinessEvents::default();
//!     for sender in ["user-1", "user-2", "user-1"] {
//!         events.payment_attempt(&PaymentAttempt {
//!             amount: 250.0,
//!             currency: "USD",
//!             payment_method: PaymentMethod::Wallet,
//!             sender_id: sender,
//!             sender_country: Some("US"),
//!             receiver_country: None,
//!         });
//!     }
//!     events.fraud_detection(&FraudDetection {
//!         action: FraudAction::Review,
//!         risk_score: 45.0,
//!         model_version: None,
//!         detection_time_ms: Some(8.5),
//!         amount: Some(250.0),
//!     });
//!     assert_eq!(events.uniques().current().daily_senders.estimate().round(), 2.0);
//! });
//!
//! let attempt = [
//!     (payment::CURRENCY, "USD"),
//!     (payment::PAYMENT_METHOD, "wallet"),
//!     (payment::AMOUNT_RANGE, "medium"),
//!     (payment::SENDER_COUNTRY, "US"),
//!     (payment::RECEIVER_COUNTRY, "unknown"),
//! ];
//! assert_eq!(recorded.counter(payment::ATTEMPTS, &attempt), Some(3));
//! let detection = [
//!     (fraud::ACTION, "review"),
//!     (fraud::RISK_LEVEL, "medium"),
//!     (fraud::MODEL_VERSION, "unknown"),
//! ];
//! assert_eq!(recorded.counter(fraud::DETECTIONS, &detection), Some(1));
//! assert_eq!(recorded.counter(fraud::BLOCKED_TRANSACTIONS, &detection), None);
//! ```

/// A closed set of tag values: a `#[repr(u8)]` enum (its discriminant packs into the handle
/// caches' keys) with `as_str` giving each variant's tag value.
macro_rules! tag_enum {
    (
        $(#[$doc:meta])*
        $name:ident { $($(#[$vdoc:meta])* $variant:ident => $value:literal,)* }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant,)*];

            /// The tag value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value,)*
                }
            }
        }
    };
}

pub mod buckets;
mod business;
pub mod external;
pub mod fraud;
pub mod health;
pub mod normalize;
pub mod payment;
pub mod queue;
pub mod user;

pub use buckets::{AmountRange, ProcessingTimeBucket, RiskLevel};
pub use business::{BusinessEvents, MAX_CACHED_SERIES};
pub use external::{CircuitState, ExternalServiceCall};
pub use fraud::{ConfirmedFraud, FraudAction, FraudDetection};
pub use health::HealthCheck;
pub use payment::{PaymentAttempt, PaymentCompletion, PaymentMethod, PaymentStatus};
pub use queue::{QueueOperation, QueueOperationKind};
pub use user::{
    ActivityType, DeviceType, RegistrationMethod, UserActivity, UserRegistration, UserTier,
    UserVerification, VerificationMethod, VerificationStatus, VerificationType,
};
