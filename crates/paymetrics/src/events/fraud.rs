//! Fraud detections and confirmed-fraud outcomes, which the
//! fraud-effectiveness KPI needs: the share of confirmed fraud that was blocked.
//!
//! ```
//! use paymetrics::events::{BusinessEvents, ConfirmedFraud, FraudAction, FraudDetection, fraud};
//!
//! let recorded = paymetrics::testing::capture(|| {
//!     let events = BusinessEvents::default();
//!     events.fraud_detection(&FraudDetection {
//!         action: FraudAction::Block,
//!         risk_score: 91.5,
//!         model_version: Some("gbm-2024.06"),
//!         detection_time_ms: Some(12.0),
//!         amount: Some(2_400.0),
//!     });
//!     events.confirmed_fraud(&ConfirmedFraud { blocked: true, amount: 2_400.0 });
//! });
//! let tags = [
//!     (fraud::ACTION, "block"),
//!     (fraud::RISK_LEVEL, "high"),
//!     (fraud::MODEL_VERSION, "gbm-2024.06"),
//! ];
//! assert_eq!(recorded.histogram(fraud::LOSS_PREVENTED, &tags), Some(vec![2_400.0]));
//! assert_eq!(recorded.counter(fraud::CONFIRMED, &[(fraud::BLOCKED, "true")]), Some(1));
//! ```

use std::sync::OnceLock;

use metrics::{Counter, Histogram, Label};

use super::{
    BusinessEvents,
    buckets::RiskLevel,
    business::{Cache, bool_str, counter, histogram},
    normalize::{Interner, UNKNOWN},
};

/// Counter, fraud-model decisions. Tags: [`ACTION`], [`RISK_LEVEL`], [`MODEL_VERSION`].
pub const DETECTIONS: &str = "business.fraud.detections";
/// Distribution, the model's risk score (0 to 100). Tags as [`DETECTIONS`].
pub const RISK_SCORE: &str = "business.fraud.risk_score";
/// Distribution, milliseconds the model took to decide; only when timed. Tags as
/// [`DETECTIONS`].
pub const DETECTION_TIME: &str = "business.fraud.detection_time";
/// Counter, transactions blocked (decisions with action `block`). Tags as [`DETECTIONS`].
pub const BLOCKED_TRANSACTIONS: &str = "business.fraud.blocked_transactions";
/// Distribution, the amount of each blocked transaction that carries one, in units of its
/// currency. Tags as [`DETECTIONS`].
pub const LOSS_PREVENTED: &str = "business.fraud.loss_prevented";
/// Counter, transactions later confirmed fraudulent (chargeback, investigation), split by
/// [`BLOCKED`]: the fraud-effectiveness KPI is `blocked:true` over all. Tags: [`BLOCKED`].
pub const CONFIRMED: &str = "business.fraud.confirmed";
/// Distribution, the amount of each confirmed-fraudulent transaction, in units of its currency.
/// Tags: [`BLOCKED`].
pub const CONFIRMED_AMOUNT: &str = "business.fraud.confirmed_amount";

/// Tag key: a [`FraudAction`].
pub const ACTION: &str = "action";
/// Tag key: a [`RiskLevel`].
pub const RISK_LEVEL: &str = "risk_level";
/// Tag key: the model's version, sanitised and bounded per handle; `unknown` when none.
pub const MODEL_VERSION: &str = "model_version";
/// Tag key: `true` when the confirmed-fraudulent transaction had been blocked, else `false`.
pub const BLOCKED: &str = "blocked";

tag_enum! {
    /// What the fraud model decided (`action` tag). Only [`Block`](Self::Block) records
    /// [`BLOCKED_TRANSACTIONS`] and [`LOSS_PREVENTED`].
    FraudAction {
        /// `allow`: let through.
        Allow => "allow",
        /// `review`: let through, queued for manual review.
        Review => "review",
        /// `challenge`: step-up authentication asked (3-D Secure, one-time code).
        Challenge => "challenge",
        /// `block`: refused.
        Block => "block",
    }
}

/// A fraud-model decision: records [`DETECTIONS`], [`RISK_SCORE`], [`DETECTION_TIME`] (when
/// timed) and, for blocks, [`BLOCKED_TRANSACTIONS`] and [`LOSS_PREVENTED`] (when the amount is
/// given).
#[derive(Debug, Clone, Copy)]
pub struct FraudDetection<'a> {
    /// The decision.
    pub action: FraudAction,
    /// The risk score, 0 to 100 (bucketed into [`RiskLevel`]s at 30 and 70).
    pub risk_score: f64,
    /// The model's version; `None` is `unknown`. Sanitised and bounded per handle.
    pub model_version: Option<&'a str>,
    /// Milliseconds the model took, if measured.
    pub detection_time_ms: Option<f64>,
    /// The transaction's amount in units of its currency, if known (from minor units:
    /// [`Money`](crate::money::Money)).
    pub amount: Option<f64>,
}

/// A transaction confirmed fraudulent after the fact: records [`CONFIRMED`] and
/// [`CONFIRMED_AMOUNT`].
#[derive(Debug, Clone, Copy)]
pub struct ConfirmedFraud {
    /// Whether the fraud model had blocked it.
    pub blocked: bool,
    /// Its amount, in units of its currency (from minor units: [`Money`](crate::money::Money)).
    pub amount: f64,
}

/// The fraud events' handle tables.
pub(super) struct Caches {
    model_version: Interner,
    detections: Cache<DetectionSeries>,
    confirmed: Cache<ConfirmedSeries>,
}

impl Caches {
    pub(super) fn new(max_values_per_tag: usize) -> Self {
        Self {
            model_version: Interner::new(UNKNOWN, max_values_per_tag),
            detections: Cache::default(),
            confirmed: Cache::default(),
        }
    }
}

struct DetectionSeries {
    labels: Vec<Label>,
    detections: OnceLock<Counter>,
    risk_score: OnceLock<Histogram>,
    detection_time: OnceLock<Histogram>,
    blocked: OnceLock<Counter>,
    loss_prevented: OnceLock<Histogram>,
}

struct ConfirmedSeries {
    labels: Vec<Label>,
    confirmed: OnceLock<Counter>,
    amount: OnceLock<Histogram>,
}

impl BusinessEvents {
    /// Records a fraud-model decision (see [`FraudDetection`]).
    pub fn fraud_detection(&self, event: &FraudDetection<'_>) {
        let caches = &self.inner.fraud;
        let action = event.action;
        let level = RiskLevel::of(event.risk_score);
        let version = caches.model_version.id(event.model_version);
        let key = u64::from(action as u8) | u64::from(level as u8) << 8 | u64::from(version) << 16;
        caches.detections.record(
            key,
            || DetectionSeries {
                labels: vec![
                    Label::from_static_parts(ACTION, action.as_str()),
                    Label::from_static_parts(RISK_LEVEL, level.as_str()),
                    Label::new(MODEL_VERSION, caches.model_version.value(version)),
                ],
                detections: OnceLock::new(),
                risk_score: OnceLock::new(),
                detection_time: OnceLock::new(),
                blocked: OnceLock::new(),
                loss_prevented: OnceLock::new(),
            },
            |s| {
                counter(&s.detections, DETECTIONS, &s.labels).increment(1);
                histogram(&s.risk_score, RISK_SCORE, &s.labels).record(event.risk_score);
                if let Some(ms) = event.detection_time_ms {
                    histogram(&s.detection_time, DETECTION_TIME, &s.labels).record(ms);
                }
                if action == FraudAction::Block {
                    counter(&s.blocked, BLOCKED_TRANSACTIONS, &s.labels).increment(1);
                    if let Some(amount) = event.amount {
                        histogram(&s.loss_prevented, LOSS_PREVENTED, &s.labels).record(amount);
                    }
                }
            },
        );
    }

    /// Records a confirmed-fraud outcome (see [`ConfirmedFraud`]).
    pub fn confirmed_fraud(&self, event: &ConfirmedFraud) {
        let blocked = event.blocked;
        self.inner.fraud.confirmed.record(
            u64::from(blocked),
            || ConfirmedSeries {
                labels: vec![Label::from_static_parts(BLOCKED, bool_str(blocked))],
                confirmed: OnceLock::new(),
                amount: OnceLock::new(),
            },
            |s| {
                counter(&s.confirmed, CONFIRMED, &s.labels).increment(1);
                histogram(&s.amount, CONFIRMED_AMOUNT, &s.labels).record(event.amount);
            },
        );
    }
}
