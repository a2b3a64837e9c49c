//! Where paymetrics reads the wall clock: snapshots, windows, uniques, KPIs and rollups all ask
//! a [`Clock`], so tests can script time instead of sleeping.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use paymetrics::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(3_600));
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(3_690));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// Seconds since the Unix epoch (0 before it).
pub fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The start of the UTC hour containing `at`.
pub fn hour_start(at: SystemTime) -> SystemTime {
    let s = unix_seconds(at);
    SystemTime::UNIX_EPOCH + Duration::from_secs(s - s % 3_600)
}

/// The start of the UTC day containing `at`.
pub fn day_start(at: SystemTime) -> SystemTime {
    let s = unix_seconds(at);
    SystemTime::UNIX_EPOCH + Duration::from_secs(s - s % 86_400)
}

/// `(year, month)` of the UTC calendar month containing `at`.
pub fn year_month(at: SystemTime) -> (i64, u32) {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let days = (unix_seconds(at) / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_helpers() {
        // 2026-11-28T02:40:00Z
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_833_600);
        assert_eq!(unix_seconds(hour_start(t)), 1_795_831_200);
        assert_eq!(unix_seconds(day_start(t)), 1_795_824_000);
        assert_eq!(year_month(t), (2026, 11));
        assert_eq!(year_month(SystemTime::UNIX_EPOCH), (1970, 1));
        let feb29 = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(year_month(feb29), (2000, 2));
    }
}
