//! The original strategy's `_categorize_*` helpers as closed enums: amount ranges, processing-time buckets and
//! risk levels, each with its thresholds as constants.
//!
//! Every bucket is half-open: a value exactly at a threshold belongs to the bucket above it
//! (`10.0` is [`AmountRange::Small`], `100.0` ms is [`ProcessingTimeBucket::Normal`], a risk
//! score of `30.0` is [`RiskLevel::Medium`]). As in the original strategy, the comparisons are `<` chains, so
//! a NaN falls through to the top bucket; the recorder drops the NaN value itself.
//!
//! ```
//! use paymetrics::events::buckets::{AmountRange, ProcessingTimeBucket, RiskLevel};
//!
//! assert_eq!(AmountRange::of(9.99).as_str(), "micro");
//! assert_eq!(AmountRange::of(10.0).as_str(), "small");
//! assert_eq!(ProcessingTimeBucket::of(2_000.0).as_str(), "very_slow");
//! assert_eq!(RiskLevel::of(70.0).as_str(), "high");
//! ```

/// The `amount_range` tag value of a payment amount (in units of its currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AmountRange {
    /// Below [`SMALL_FROM`](Self::SMALL_FROM): `micro`.
    Micro,
    /// From [`SMALL_FROM`](Self::SMALL_FROM) to below [`MEDIUM_FROM`](Self::MEDIUM_FROM): `small`.
    Small,
    /// From [`MEDIUM_FROM`](Self::MEDIUM_FROM) to below [`LARGE_FROM`](Self::LARGE_FROM): `medium`.
    Medium,
    /// From [`LARGE_FROM`](Self::LARGE_FROM) to below [`ENTERPRISE_FROM`](Self::ENTERPRISE_FROM): `large`.
    Large,
    /// From [`ENTERPRISE_FROM`](Self::ENTERPRISE_FROM) up: `enterprise`.
    Enterprise,
}

impl AmountRange {
    /// Lowest amount of [`Small`](Self::Small).
    pub const SMALL_FROM: f64 = 10.0;
    /// Lowest amount of [`Medium`](Self::Medium).
    pub const MEDIUM_FROM: f64 = 100.0;
    /// Lowest amount of [`Large`](Self::Large).
    pub const LARGE_FROM: f64 = 1_000.0;
    /// Lowest amount of [`Enterprise`](Self::Enterprise).
    pub const ENTERPRISE_FROM: f64 = 10_000.0;

    /// The range `amount` falls in.
    pub fn of(amount: f64) -> Self {
        if amount < Self::SMALL_FROM {
            Self::Micro
        } else if amount < Self::MEDIUM_FROM {
            Self::Small
        } else if amount < Self::LARGE_FROM {
            Self::Medium
        } else if amount < Self::ENTERPRISE_FROM {
            Self::Large
        } else {
            Self::Enterprise
        }
    }

    /// The tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Micro => "micro",
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
            Self::Enterprise => "enterprise",
        }
    }
}

/// The `processing_time_bucket` tag value of a processing time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ProcessingTimeBucket {
    /// Below [`NORMAL_FROM_MS`](Self::NORMAL_FROM_MS): `fast`.
    Fast,
    /// From [`NORMAL_FROM_MS`](Self::NORMAL_FROM_MS) to below [`SLOW_FROM_MS`](Self::SLOW_FROM_MS): `normal`.
    Normal,
    /// From [`SLOW_FROM_MS`](Self::SLOW_FROM_MS) to below [`VERY_SLOW_FROM_MS`](Self::VERY_SLOW_FROM_MS): `slow`.
    Slow,
    /// From [`VERY_SLOW_FROM_MS`](Self::VERY_SLOW_FROM_MS) up: `very_slow`.
    VerySlow,
    /// No processing time was given: `unknown`. (The original strategy filed these under `fast`, by
    /// categorising a default of 0 ms, which made the fast bucket look better than it was.)
    Unknown,
}

impl ProcessingTimeBucket {
    /// Lowest time of [`Normal`](Self::Normal), in milliseconds.
    pub const NORMAL_FROM_MS: f64 = 100.0;
    /// Lowest time of [`Slow`](Self::Slow), in milliseconds.
    pub const SLOW_FROM_MS: f64 = 500.0;
    /// Lowest time of [`VerySlow`](Self::VerySlow), in milliseconds.
    pub const VERY_SLOW_FROM_MS: f64 = 2_000.0;

    /// The bucket `time_ms` falls in.
    pub fn of(time_ms: f64) -> Self {
        if time_ms < Self::NORMAL_FROM_MS {
            Self::Fast
        } else if time_ms < Self::SLOW_FROM_MS {
            Self::Normal
        } else if time_ms < Self::VERY_SLOW_FROM_MS {
            Self::Slow
        } else {
            Self::VerySlow
        }
    }

    /// The bucket of an optional time: [`Unknown`](Self::Unknown) when there is none.
    pub fn of_optional(time_ms: Option<f64>) -> Self {
        time_ms.map_or(Self::Unknown, Self::of)
    }

    /// The tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Normal => "normal",
            Self::Slow => "slow",
            Self::VerySlow => "very_slow",
            Self::Unknown => "unknown",
        }
    }
}

/// The `risk_level` tag value of a fraud risk score (0 to 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RiskLevel {
    /// Below [`MEDIUM_FROM`](Self::MEDIUM_FROM): `low`.
    Low,
    /// From [`MEDIUM_FROM`](Self::MEDIUM_FROM) to below [`HIGH_FROM`](Self::HIGH_FROM): `medium`.
    Medium,
    /// From [`HIGH_FROM`](Self::HIGH_FROM) up: `high`.
    High,
}

impl RiskLevel {
    /// Lowest score of [`Medium`](Self::Medium).
    pub const MEDIUM_FROM: f64 = 30.0;
    /// Lowest score of [`High`](Self::High).
    pub const HIGH_FROM: f64 = 70.0;

    /// The level of `score`.
    pub fn of(score: f64) -> Self {
        if score < Self::MEDIUM_FROM {
            Self::Low
        } else if score < Self::HIGH_FROM {
            Self::Medium
        } else {
            Self::High
        }
    }

    /// The tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_belong_to_the_bucket_above() {
        let amounts = [
            (-1.0, "micro"),
            (9.99, "micro"),
            (10.0, "small"),
            (99.99, "small"),
            (100.0, "medium"),
            (999.99, "medium"),
            (1_000.0, "large"),
            (9_999.99, "large"),
            (10_000.0, "enterprise"),
        ];
        for (amount, want) in amounts {
            assert_eq!(AmountRange::of(amount).as_str(), want, "{amount}");
        }
        let times = [
            (0.0, "fast"),
            (99.99, "fast"),
            (100.0, "normal"),
            (499.99, "normal"),
            (500.0, "slow"),
            (1_999.99, "slow"),
            (2_000.0, "very_slow"),
        ];
        for (ms, want) in times {
            assert_eq!(ProcessingTimeBucket::of(ms).as_str(), want, "{ms}");
        }
        assert_eq!(ProcessingTimeBucket::of_optional(None).as_str(), "unknown");
        let scores = [
            (0.0, "low"),
            (29.99, "low"),
            (30.0, "medium"),
            (69.99, "medium"),
            (70.0, "high"),
        ];
        for (score, want) in scores {
            assert_eq!(RiskLevel::of(score).as_str(), want, "{score}");
        }
    }
}
