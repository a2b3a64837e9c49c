//! Business KPIs, computed from windows rather than from
//! counters kept by hand in Redis.
//!
//! [`PeriodTotals`] reads one period's business totals from [`Windows`]; a fleet sums every
//! instance's totals (see `paymetrics-automation`). [`Kpis::from_totals`] applies the original strategy's
//! formulas and its rules for empty windows, and [`Kpis::publish`] records them as gauges.
//!
//! A "success rate" counter is a counter; a rate is a ratio. The counters stay (with their
//! `success:` tag, for dashboards) and the ratio is published here as a gauge.
//!
//! ```
//! use paymetrics::kpi::{Kpis, PeriodTotals};
//! let hour = PeriodTotals { payments: 200, payments_succeeded: 190, volume: 9_500.0, ..Default::default() };
//! let day = PeriodTotals { registrations: 42, ..Default::default() };
//! let kpis = Kpis::from_totals(&hour, &day);
//! assert_eq!(kpis.success_rate_percent, 95.0);
//! assert_eq!(kpis.avg_value, 50.0);
//! assert_eq!(kpis.acquisition_rate, 42.0);
//! assert_eq!(kpis.fraud_effectiveness_percent, 100.0); // no confirmed fraud
//! ```

use std::time::SystemTime;

use crate::{
    events::{fraud, health, payment, user},
    window::{Span, WindowConfig, Windows},
};

/// Gauge, percent (0 to 100, two decimals): completed payments over all completions in the last
/// hour; 100 when there were none.
pub const TRANSACTION_SUCCESS_RATE: &str = "kpi.transaction.success_rate";
/// Gauge, currency units: mean value of successful payments in the last hour; 0 when none.
pub const TRANSACTION_AVG_VALUE: &str = "kpi.transaction.avg_value";
/// Gauge, registrations in the last 24 hours.
pub const CUSTOMER_ACQUISITION_RATE: &str = "kpi.customer.acquisition_rate";
/// Gauge, percent: confirmed fraud that was blocked, over all confirmed fraud, in the last hour;
/// 100 when there was none.
pub const FRAUD_EFFECTIVENESS: &str = "kpi.fraud.effectiveness";
/// Gauge, percent: healthy checks over all health checks in the last hour; 100 when none.
pub const SYSTEM_AVAILABILITY: &str = "kpi.system.availability";

/// One period's business totals: what KPIs and rollups are computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeriodTotals {
    /// Payment completions of any status.
    pub payments: u64,
    /// Completions with `success:true`.
    pub payments_succeeded: u64,
    /// Sum of successful payments' values (`business.revenue.transaction_value`).
    pub volume: f64,
    /// Sum of fees (`business.revenue.fees`).
    pub fees: f64,
    /// User registrations.
    pub registrations: u64,
    /// Confirmed fraudulent payments.
    pub confirmed_fraud: u64,
    /// Confirmed fraudulent payments that had been blocked.
    pub confirmed_fraud_blocked: u64,
    /// Health checks.
    pub health_checks: u64,
    /// Healthy health checks.
    pub health_checks_ok: u64,
}

impl PeriodTotals {
    /// The metrics a [`Windows`] must track for these totals.
    pub fn window_config() -> WindowConfig {
        WindowConfig::tracking([
            payment::SUCCESS_RATE,
            payment::TRANSACTION_VALUE,
            payment::FEES,
            user::REGISTRATIONS,
            fraud::CONFIRMED,
            health::CHECKS,
        ])
    }

    /// Reads the totals of `span` from `windows`.
    pub fn from_windows(windows: &Windows, span: Span, now: SystemTime) -> Self {
        let yes = "true";
        Self {
            payments: windows.counter_sum(payment::SUCCESS_RATE, None, span, now),
            payments_succeeded: windows.counter_sum(
                payment::SUCCESS_RATE,
                Some((payment::SUCCESS, yes)),
                span,
                now,
            ),
            volume: windows
                .histogram(payment::TRANSACTION_VALUE, None, span, now)
                .sum,
            fees: windows.histogram(payment::FEES, None, span, now).sum,
            registrations: windows.counter_sum(user::REGISTRATIONS, None, span, now),
            confirmed_fraud: windows.counter_sum(fraud::CONFIRMED, None, span, now),
            confirmed_fraud_blocked: windows.counter_sum(
                fraud::CONFIRMED,
                Some((fraud::BLOCKED, yes)),
                span,
                now,
            ),
            health_checks: windows.counter_sum(health::CHECKS, None, span, now),
            health_checks_ok: windows.counter_sum(
                health::CHECKS,
                Some((health::HEALTHY, yes)),
                span,
                now,
            ),
        }
    }

    /// Adds another instance's totals (a fleet's totals are the sum of its instances').
    pub fn add(&mut self, other: &PeriodTotals) {
        self.payments += other.payments;
        self.payments_succeeded += other.payments_succeeded;
        self.volume += other.volume;
        self.fees += other.fees;
        self.registrations += other.registrations;
        self.confirmed_fraud += other.confirmed_fraud;
        self.confirmed_fraud_blocked += other.confirmed_fraud_blocked;
        self.health_checks += other.health_checks;
        self.health_checks_ok += other.health_checks_ok;
    }

    /// The fields as `(name, value)`, for storage (every value is exact in an `f64`).
    pub fn fields(&self) -> [(&'static str, f64); 9] {
        [
            ("payments", self.payments as f64),
            ("payments_succeeded", self.payments_succeeded as f64),
            ("volume", self.volume),
            ("fees", self.fees),
            ("registrations", self.registrations as f64),
            ("confirmed_fraud", self.confirmed_fraud as f64),
            (
                "confirmed_fraud_blocked",
                self.confirmed_fraud_blocked as f64,
            ),
            ("health_checks", self.health_checks as f64),
            ("health_checks_ok", self.health_checks_ok as f64),
        ]
    }

    /// Rebuilds totals from [`fields`](Self::fields); unknown names are ignored.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        let mut t = Self::default();
        for (name, v) in fields {
            let n = v.max(0.0) as u64;
            match name {
                "payments" => t.payments = n,
                "payments_succeeded" => t.payments_succeeded = n,
                "volume" => t.volume = v,
                "fees" => t.fees = v,
                "registrations" => t.registrations = n,
                "confirmed_fraud" => t.confirmed_fraud = n,
                "confirmed_fraud_blocked" => t.confirmed_fraud_blocked = n,
                "health_checks" => t.health_checks = n,
                "health_checks_ok" => t.health_checks_ok = n,
                _ => {}
            }
        }
        t
    }
}

/// Percent with two decimals, or `empty` when there is nothing to divide.
pub(crate) fn percent(part: u64, whole: u64, empty: f64) -> f64 {
    if whole == 0 {
        empty
    } else {
        round2(part as f64 * 100.0 / whole as f64)
    }
}

/// Rounds to two decimals, as the KPIs and rollups are published.
pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The five business KPIs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kpis {
    /// [`TRANSACTION_SUCCESS_RATE`], percent.
    pub success_rate_percent: f64,
    /// [`TRANSACTION_AVG_VALUE`], currency units.
    pub avg_value: f64,
    /// [`CUSTOMER_ACQUISITION_RATE`], registrations per 24 hours.
    pub acquisition_rate: f64,
    /// [`FRAUD_EFFECTIVENESS`], percent.
    pub fraud_effectiveness_percent: f64,
    /// [`SYSTEM_AVAILABILITY`], percent.
    pub availability_percent: f64,
}

impl Kpis {
    /// Applies the KPI formulas to the last hour's and the last 24 hours' totals.
    pub fn from_totals(last_hour: &PeriodTotals, last_day: &PeriodTotals) -> Self {
        Self {
            success_rate_percent: percent(last_hour.payments_succeeded, last_hour.payments, 100.0),
            avg_value: if last_hour.payments_succeeded == 0 {
                0.0
            } else {
                round2(last_hour.volume / last_hour.payments_succeeded as f64)
            },
            acquisition_rate: last_day.registrations as f64,
            fraud_effectiveness_percent: percent(
                last_hour.confirmed_fraud_blocked,
                last_hour.confirmed_fraud,
                100.0,
            ),
            availability_percent: percent(
                last_hour.health_checks_ok,
                last_hour.health_checks,
                100.0,
            ),
        }
    }

    /// Computes the KPIs of one process from its windows (tracking [`PeriodTotals::window_config`]).
    pub fn from_windows(windows: &Windows, now: SystemTime) -> Self {
        let hour = PeriodTotals::from_windows(
            windows,
            Span::Last(std::time::Duration::from_secs(3600)),
            now,
        );
        let day = PeriodTotals::from_windows(
            windows,
            Span::Last(std::time::Duration::from_secs(86_400)),
            now,
        );
        Self::from_totals(&hour, &day)
    }

    /// Records the KPIs as gauges through the `metrics` facade.
    pub fn publish(&self) {
        metrics::gauge!(TRANSACTION_SUCCESS_RATE).set(self.success_rate_percent);
        metrics::gauge!(TRANSACTION_AVG_VALUE).set(self.avg_value);
        metrics::gauge!(CUSTOMER_ACQUISITION_RATE).set(self.acquisition_rate);
        metrics::gauge!(FRAUD_EFFECTIVENESS).set(self.fraud_effectiveness_percent);
        metrics::gauge!(SYSTEM_AVAILABILITY).set(self.availability_percent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_rules_for_empty_windows() {
        let none = PeriodTotals::default();
        let k = Kpis::from_totals(&none, &none);
        assert_eq!(
            k,
            Kpis {
                success_rate_percent: 100.0,
                avg_value: 0.0,
                acquisition_rate: 0.0,
                fraud_effectiveness_percent: 100.0,
                availability_percent: 100.0,
            }
        );
    }

    #[test]
    fn ratios_round_to_two_decimals() {
        let hour = PeriodTotals {
            payments: 3,
            payments_succeeded: 2,
            volume: 100.0,
            confirmed_fraud: 3,
            confirmed_fraud_blocked: 1,
            health_checks: 7,
            health_checks_ok: 6,
            ..Default::default()
        };
        let k = Kpis::from_totals(&hour, &PeriodTotals::default());
        assert_eq!(k.success_rate_percent, 66.67);
        assert_eq!(k.avg_value, 50.0);
        assert_eq!(k.fraud_effectiveness_percent, 33.33);
        assert_eq!(k.availability_percent, 85.71);
    }

    #[test]
    fn fields_round_trip_and_add() {
        let t = PeriodTotals {
            payments: 5,
            volume: 12.5,
            health_checks_ok: 2,
            ..Default::default()
        };
        assert_eq!(PeriodTotals::from_fields(t.fields()), t);
        let mut sum = t;
        sum.add(&t);
        assert_eq!(sum.payments, 10);
        assert_eq!(sum.volume, 25.0);
    }
}
