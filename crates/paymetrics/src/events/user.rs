//! User registrations, verifications and activity (the original strategy's `track_user_registration`,
//! `track_user_verification` and `track_user_activity`).
//!
//! A DogStatsD set of user ids counts uniques per flush, not per day (`business.user.daily_active`,
//! `business.user.monthly_active`). Here an activity hashes the id into the in-process
//! [`Uniques`](crate::uniques::Uniques) sketches instead, and the KPI job publishes the
//! estimates as the gauges [`DAILY_ACTIVE`] and [`MONTHLY_ACTIVE`]: no user id is ever a tag.
//!
//! ```
//! use paymetrics::events::{
//!     ActivityType, BusinessEvents, DeviceType, UserActivity, UserTier, user,
//! };
//!
//! let events = BusinessEvents::default();
//! let recorded = paymetrics::testing::capture(|| {
//!     events.user_activity(&UserActivity {
//!         user_id: "user-1842",
//!         activity_type: ActivityType::Login,
//!         user_tier: UserTier::Premium,
//!         device_type: DeviceType::Mobile,
//!         session_duration_ms: Some(95_000.0),
//!     });
//! });
//! let tags = [
//!     (user::ACTIVITY_TYPE, "login"),
//!     (user::USER_TIER, "premium"),
//!     (user::DEVICE_TYPE, "mobile"),
//! ];
//! assert_eq!(recorded.histogram(user::SESSION_DURATION, &tags), Some(vec![95_000.0]));
//! assert_eq!(events.uniques().current().daily_active.estimate().round(), 1.0);
//! ```

use std::sync::OnceLock;

use metrics::{Counter, Histogram, Label};

use super::{
    BusinessEvents,
    business::{Cache, bool_str, counter, histogram, with_label},
    normalize::{Interner, country_code, country_str},
};

/// Counter, completed registrations. Tags: [`REGISTRATION_METHOD`], [`COUNTRY`], [`REFERRER`].
pub const REGISTRATIONS: &str = "business.user.registrations";
/// Counter, registrations entering the funnel (the original strategy increments it with
/// [`REGISTRATIONS`]). Tags as [`REGISTRATIONS`].
pub const FUNNEL_REGISTRATION_STARTED: &str = "business.user.funnel.registration_started";

/// Counter, verification attempts. Tags: [`VERIFICATION_TYPE`], [`STATUS`], [`METHOD`].
pub const VERIFICATION_ATTEMPTS: &str = "business.user.verification_attempts";
/// Counter, verification attempts split by [`SUCCESS`] (`true` when the status is
/// `verified`); the rate is a ratio of two queries. Tags as [`VERIFICATION_ATTEMPTS`] plus
/// [`SUCCESS`].
pub const VERIFICATION_SUCCESS_RATE: &str = "business.user.verification_success_rate";
/// Distribution, milliseconds a verification took; only when timed. Tags as
/// [`VERIFICATION_ATTEMPTS`].
pub const VERIFICATION_TIME: &str = "business.user.verification_time";

/// Distribution, session duration in milliseconds; only when the activity carries one. Tags:
/// [`ACTIVITY_TYPE`], [`USER_TIER`], [`DEVICE_TYPE`].
pub const SESSION_DURATION: &str = "business.user.session_duration";
/// Gauge, distinct active users this UTC day, estimated in process from
/// [`Uniques`](crate::uniques::Uniques) (fed by every activity) and published by the KPI job;
/// no event records it directly.
pub const DAILY_ACTIVE: &str = "business.user.daily_active";
/// Gauge, distinct active users this UTC month, as [`DAILY_ACTIVE`].
pub const MONTHLY_ACTIVE: &str = "business.user.monthly_active";

/// Tag key: a [`RegistrationMethod`].
pub const REGISTRATION_METHOD: &str = "registration_method";
/// Tag key: ISO 3166-1 alpha-2 country, or `unknown`.
pub const COUNTRY: &str = "country";
/// Tag key: where the user came from, sanitised and bounded; `direct` when none.
pub const REFERRER: &str = "referrer";
/// Tag key: a [`VerificationType`].
pub const VERIFICATION_TYPE: &str = "verification_type";
/// Tag key: a [`VerificationStatus`].
pub const STATUS: &str = "status";
/// Tag key: a [`VerificationMethod`].
pub const METHOD: &str = "method";
/// Tag key: `true` or `false`.
pub const SUCCESS: &str = "success";
/// Tag key: an [`ActivityType`].
pub const ACTIVITY_TYPE: &str = "activity_type";
/// Tag key: a [`UserTier`].
pub const USER_TIER: &str = "user_tier";
/// Tag key: a [`DeviceType`].
pub const DEVICE_TYPE: &str = "device_type";

/// The referrer of a registration without one (the default).
pub const DIRECT: &str = "direct";

tag_enum! {
    /// How a user signed up (`registration_method` tag; the default is `email`).
    RegistrationMethod {
        /// `email`: email and password.
        Email => "email",
        /// `phone`: phone number and one-time code.
        Phone => "phone",
        /// `google`: Sign in with Google.
        Google => "google",
        /// `apple`: Sign in with Apple.
        Apple => "apple",
        /// `facebook`: Facebook login.
        Facebook => "facebook",
        /// `other`: any other method.
        Other => "other",
    }
}

tag_enum! {
    /// What is being verified (`verification_type` tag).
    VerificationType {
        /// `email`: the email address.
        Email => "email",
        /// `phone`: the phone number.
        Phone => "phone",
        /// `identity`: an identity document (KYC).
        Identity => "identity",
        /// `address`: a proof of address.
        Address => "address",
        /// `bank_account`: ownership of a bank account.
        BankAccount => "bank_account",
        /// `card`: ownership of a card.
        Card => "card",
        /// `other`: anything else.
        Other => "other",
    }
}

tag_enum! {
    /// A verification's outcome (`status` tag). Only [`Verified`](Self::Verified) counts as a
    /// success.
    VerificationStatus {
        /// `verified`: passed.
        Verified => "verified",
        /// `pending`: awaiting a result (manual review, micro-deposits).
        Pending => "pending",
        /// `failed`: did not pass (wrong code, unreadable document).
        Failed => "failed",
        /// `rejected`: refused (fraud suspected, document invalid).
        Rejected => "rejected",
        /// `expired`: not completed in time.
        Expired => "expired",
    }
}

impl VerificationStatus {
    /// Whether this status counts as a success (`success:true`).
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Verified)
    }
}

tag_enum! {
    /// How the verification is performed (`method` tag; the default is `unknown`).
    VerificationMethod {
        /// `sms`: a code sent by SMS.
        Sms => "sms",
        /// `email_link`: a link sent by email.
        EmailLink => "email_link",
        /// `document`: an uploaded document.
        Document => "document",
        /// `selfie`: a biometric selfie check.
        Selfie => "selfie",
        /// `micro_deposit`: small deposits to confirm.
        MicroDeposit => "micro_deposit",
        /// `manual`: reviewed by a person.
        Manual => "manual",
        /// `other`: any other method.
        Other => "other",
        /// `unknown`: not known.
        Unknown => "unknown",
    }
}

tag_enum! {
    /// What the user did (`activity_type` tag).
    ActivityType {
        /// `login`: signed in.
        Login => "login",
        /// `logout`: signed out.
        Logout => "logout",
        /// `payment_sent`: sent a payment.
        PaymentSent => "payment_sent",
        /// `payment_requested`: requested a payment.
        PaymentRequested => "payment_requested",
        /// `profile_update`: changed their profile or settings.
        ProfileUpdate => "profile_update",
        /// `other`: anything else.
        Other => "other",
    }
}

tag_enum! {
    /// The user's tier (`user_tier` tag; the default is `standard`).
    ///
    /// `paymetrics-tower` has a free-form `paymetrics_tower::UserTier` for its `api.*`
    /// metrics (any tier name an auth layer puts in a request's extensions). From this enum to
    /// that one: `paymetrics_tower::UserTier::from(tier.as_str())` (its `From<&'static str>`);
    /// back: [`UserTier::from_tag`] with its `as_str()`.
    UserTier {
        /// `standard`: a personal account.
        Standard => "standard",
        /// `premium`: a paid personal tier.
        Premium => "premium",
        /// `business`: a business account.
        Business => "business",
    }
}

impl UserTier {
    /// The tier whose [`as_str`](Self::as_str) is `tag`, ignoring ASCII case and surrounding
    /// spaces; `None` for any other name.
    ///
    /// ```
    /// use paymetrics::events::UserTier;
    /// assert_eq!(UserTier::from_tag("premium"), Some(UserTier::Premium));
    /// assert_eq!(UserTier::from_tag(" Business "), Some(UserTier::Business));
    /// assert_eq!(UserTier::from_tag("gold"), None);
    /// ```
    pub fn from_tag(tag: &str) -> Option<Self> {
        let tag = tag.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str().eq_ignore_ascii_case(tag))
    }
}

tag_enum! {
    /// The device used (`device_type` tag; the default is `unknown`).
    DeviceType {
        /// `desktop`: a desktop browser or app.
        Desktop => "desktop",
        /// `mobile`: a phone.
        Mobile => "mobile",
        /// `tablet`: a tablet.
        Tablet => "tablet",
        /// `other`: anything else (API clients, point of sale).
        Other => "other",
        /// `unknown`: not known.
        Unknown => "unknown",
    }
}

/// A user registration: records [`REGISTRATIONS`] and [`FUNNEL_REGISTRATION_STARTED`].
#[derive(Debug, Clone, Copy)]
pub struct UserRegistration<'a> {
    /// How the user signed up.
    pub method: RegistrationMethod,
    /// The user's ISO 3166-1 alpha-2 country, any case; `None` or malformed is `unknown`.
    pub country: Option<&'a str>,
    /// Where the user came from (a campaign or partner name, not a URL with ids); `None` is
    /// [`DIRECT`]. Sanitised and bounded per handle.
    pub referrer: Option<&'a str>,
}

/// A verification attempt: records [`VERIFICATION_ATTEMPTS`], [`VERIFICATION_SUCCESS_RATE`]
/// and [`VERIFICATION_TIME`] (when timed).
#[derive(Debug, Clone, Copy)]
pub struct UserVerification {
    /// What is verified.
    pub verification_type: VerificationType,
    /// The outcome.
    pub status: VerificationStatus,
    /// How it is verified.
    pub method: VerificationMethod,
    /// Milliseconds the verification took, if measured.
    pub processing_time_ms: Option<f64>,
}

/// A user's activity: counts the user as active today and this month in
/// [`Uniques`](crate::uniques::Uniques), and records [`SESSION_DURATION`] when given.
#[derive(Debug, Clone, Copy)]
pub struct UserActivity<'a> {
    /// The user's id: hashed into the sketches, never recorded as a tag. An empty id is not
    /// counted.
    pub user_id: &'a str,
    /// What the user did.
    pub activity_type: ActivityType,
    /// The user's tier.
    pub user_tier: UserTier,
    /// The device used.
    pub device_type: DeviceType,
    /// The session's duration so far, in milliseconds, if known.
    pub session_duration_ms: Option<f64>,
}

/// The user events' handle tables.
pub(super) struct Caches {
    referrer: Interner,
    registrations: Cache<RegistrationSeries>,
    verifications: Cache<VerificationSeries>,
    sessions: Cache<SessionSeries>,
}

impl Caches {
    pub(super) fn new(max_values_per_tag: usize) -> Self {
        Self {
            referrer: Interner::new(DIRECT, max_values_per_tag),
            registrations: Cache::default(),
            verifications: Cache::default(),
            sessions: Cache::default(),
        }
    }
}

struct RegistrationSeries {
    labels: Vec<Label>,
    registrations: OnceLock<Counter>,
    started: OnceLock<Counter>,
}

struct VerificationSeries {
    labels: Vec<Label>,
    success_labels: Vec<Label>,
    attempts: OnceLock<Counter>,
    success_rate: OnceLock<Counter>,
    time: OnceLock<Histogram>,
}

struct SessionSeries {
    labels: Vec<Label>,
    duration: OnceLock<Histogram>,
}

impl BusinessEvents {
    /// Records a user registration (see [`UserRegistration`]).
    pub fn user_registration(&self, event: &UserRegistration<'_>) {
        let caches = &self.inner.user;
        let method = event.method;
        let country = country_code(event.country);
        let referrer = caches.referrer.id(event.referrer);
        let key = u64::from(method as u8) | u64::from(country) << 8 | u64::from(referrer) << 24;
        caches.registrations.record(
            key,
            || RegistrationSeries {
                labels: vec![
                    Label::from_static_parts(REGISTRATION_METHOD, method.as_str()),
                    Label::from_static_parts(COUNTRY, country_str(country)),
                    Label::new(REFERRER, caches.referrer.value(referrer)),
                ],
                registrations: OnceLock::new(),
                started: OnceLock::new(),
            },
            |s| {
                counter(&s.registrations, REGISTRATIONS, &s.labels).increment(1);
                counter(&s.started, FUNNEL_REGISTRATION_STARTED, &s.labels).increment(1);
            },
        );
    }

    /// Records a verification attempt (see [`UserVerification`]).
    pub fn user_verification(&self, event: &UserVerification) {
        let UserVerification {
            verification_type,
            status,
            method,
            processing_time_ms,
        } = *event;
        let key = u64::from(verification_type as u8)
            | u64::from(status as u8) << 8
            | u64::from(method as u8) << 16;
        self.inner.user.verifications.record(
            key,
            || {
                let labels = vec![
                    Label::from_static_parts(VERIFICATION_TYPE, verification_type.as_str()),
                    Label::from_static_parts(STATUS, status.as_str()),
                    Label::from_static_parts(METHOD, method.as_str()),
                ];
                VerificationSeries {
                    success_labels: with_label(&labels, SUCCESS, bool_str(status.is_success())),
                    labels,
                    attempts: OnceLock::new(),
                    success_rate: OnceLock::new(),
                    time: OnceLock::new(),
                }
            },
            |s| {
                counter(&s.attempts, VERIFICATION_ATTEMPTS, &s.labels).increment(1);
                counter(
                    &s.success_rate,
                    VERIFICATION_SUCCESS_RATE,
                    &s.success_labels,
                )
                .increment(1);
                if let Some(ms) = processing_time_ms {
                    histogram(&s.time, VERIFICATION_TIME, &s.labels).record(ms);
                }
            },
        );
    }

    /// Records a user's activity (see [`UserActivity`]).
    pub fn user_activity(&self, event: &UserActivity<'_>) {
        if !event.user_id.is_empty() {
            self.inner.uniques.observe_active_user(event.user_id);
        }
        let Some(duration_ms) = event.session_duration_ms else {
            return;
        };
        let (activity, tier, device) = (event.activity_type, event.user_tier, event.device_type);
        let key =
            u64::from(activity as u8) | u64::from(tier as u8) << 8 | u64::from(device as u8) << 16;
        self.inner.user.sessions.record(
            key,
            || SessionSeries {
                labels: vec![
                    Label::from_static_parts(ACTIVITY_TYPE, activity.as_str()),
                    Label::from_static_parts(USER_TIER, tier.as_str()),
                    Label::from_static_parts(DEVICE_TYPE, device.as_str()),
                ],
                duration: OnceLock::new(),
            },
            |s| histogram(&s.duration, SESSION_DURATION, &s.labels).record(duration_ms),
        );
    }
}
