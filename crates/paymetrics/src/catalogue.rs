//! The metric catalogue: every metric paymetrics can emit, as `const` data built from the same
//! constants the recording code uses, so what is recorded and what is watched cannot drift.
//!
//! Each crate that records metrics publishes its own `catalogue::METRICS` slice (this module
//! holds the core's: business events, KPIs, rollups); a [`Catalogue`] joins the slices of the
//! crates a service uses. Alert rules, dashboards, SLOs and the generated metrics reference
//! (`docs/METRICS.md`) are all checked against it. What does not live here: how a metric is
//! recorded (its domain module) or queried (`paymetrics-alerts`).
//!
//! # Adding entries from a new integration crate
//!
//! Give the crate a `src/catalogue.rs` with `pub const METRICS: &[MetricDef]` built from its
//! own name and tag-key constants, and a test that records through the crate and checks every
//! recorded name and tag key with [`Catalogue::check_recorded`]. Users then add the slice:
//!
//! ```
//! use paymetrics::catalogue::{Catalogue, MetricDef, MetricKind, TagDef};
//!
//! const MY_METRICS: &[MetricDef] = &[MetricDef {
//!     name: "queue.rabbitmq.published",
//!     kind: MetricKind::Count,
//!     unit: "message",
//!     tags: &[TagDef::any("queue_name")],
//!     description: "Messages published.",
//!     source: "my-crate",
//! }];
//!
//! let mut catalogue = Catalogue::core();
//! catalogue.extend(MY_METRICS)?;
//! assert_eq!(catalogue.get("queue.rabbitmq.published").unwrap().kind, MetricKind::Count);
//! assert!(catalogue.get("business.payment.attempts").is_some());
//! # Ok::<(), paymetrics::catalogue::CatalogueError>(())
//! ```

use std::{collections::BTreeMap, fmt};

use crate::{
    events::{fraud, health, payment, queue, user},
    kpi, rollup,
};

/// The DogStatsD type a metric is sent as, which decides how it may be queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    /// A counter (`|c`): summed, queried with `.as_count()` or `.as_rate()`.
    Count,
    /// A gauge (`|g`): last value per interval, queried with `avg`, `min` or `max`.
    Gauge,
    /// A distribution (`|d`, a `metrics` histogram): percentiles are global across hosts.
    Distribution,
}

impl MetricKind {
    /// `count`, `gauge` or `distribution`, as Datadog names the types.
    ///
    /// ```
    /// assert_eq!(paymetrics::catalogue::MetricKind::Distribution.as_str(), "distribution");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Count => "count",
            MetricKind::Gauge => "gauge",
            MetricKind::Distribution => "distribution",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tag key a metric carries, with its values when they are a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagDef {
    /// The tag key, for example `currency`.
    pub key: &'static str,
    /// The only values it takes, when known (`None`: bounded by an interner or template, but open).
    pub values: Option<&'static [&'static str]>,
}

impl TagDef {
    /// A tag whose values are bounded but not listed.
    ///
    /// ```
    /// assert_eq!(paymetrics::catalogue::TagDef::any("currency").values, None);
    /// ```
    pub const fn any(key: &'static str) -> Self {
        TagDef { key, values: None }
    }

    /// A tag that takes only `values`.
    ///
    /// ```
    /// let t = paymetrics::catalogue::TagDef::one_of("success", &["true", "false"]);
    /// assert_eq!(t.values, Some(&["true", "false"][..]));
    /// ```
    pub const fn one_of(key: &'static str, values: &'static [&'static str]) -> Self {
        TagDef {
            key,
            values: Some(values),
        }
    }
}

/// `true` and `false`: the values of every boolean tag.
pub const BOOL: &[&str] = &["true", "false"];

/// One metric paymetrics can emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// The metric name, for example `business.payment.attempts`.
    pub name: &'static str,
    /// Its DogStatsD type.
    pub kind: MetricKind,
    /// Its unit (`ms`, `byte`, `percent`, `request`, a currency `unit`, ...).
    pub unit: &'static str,
    /// The tag keys it is recorded with (global tags such as `env:` are not listed).
    pub tags: &'static [TagDef],
    /// One sentence saying what it measures.
    pub description: &'static str,
    /// Which crate (and part of it) records it.
    pub source: &'static str,
}

impl MetricDef {
    /// A definition, in `const` context: each crate's `METRICS` table is a list of these.
    ///
    /// ```
    /// use paymetrics::catalogue::{MetricDef, MetricKind, TagDef};
    /// const DEF: MetricDef = MetricDef::new(
    ///     "queue.nats.published", MetricKind::Count, "message",
    ///     &[TagDef::any("subject")], "Messages published.", "my-crate",
    /// );
    /// assert_eq!(DEF.tag("subject").unwrap().values, None);
    /// ```
    pub const fn new(
        name: &'static str,
        kind: MetricKind,
        unit: &'static str,
        tags: &'static [TagDef],
        description: &'static str,
        source: &'static str,
    ) -> Self {
        MetricDef {
            name,
            kind,
            unit,
            tags,
            description,
            source,
        }
    }

    /// The tag definition for `key`, if this metric carries it.
    ///
    /// ```
    /// let m = paymetrics::catalogue::Catalogue::core();
    /// let completions = m.get("business.payment.success_rate").unwrap();
    /// assert!(completions.tag("success").is_some());
    /// assert!(completions.tag("user_id").is_none());
    /// ```
    pub fn tag(&self, key: &str) -> Option<&TagDef> {
        self.tags.iter().find(|t| t.key == key)
    }
}

/// Why a catalogue could not be built, or why something recorded is not in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// Two entries name the same metric with different definitions.
    #[error("metric {name:?} is defined twice, by {first} and {second}: keep one definition")]
    Duplicate {
        /// The metric name.
        name: String,
        /// The source of the first definition.
        first: String,
        /// The source of the second.
        second: String,
    },
    /// A recorded metric is not catalogued.
    #[error("metric {name:?} is recorded but not in the catalogue: add a MetricDef for it")]
    UnknownMetric {
        /// The metric name.
        name: String,
    },
    /// A recorded metric carries a tag key its entry does not list.
    #[error(
        "metric {name:?} is recorded with tag key {key:?}, which its catalogue entry does not list"
    )]
    UnknownTag {
        /// The metric name.
        name: String,
        /// The tag key.
        key: String,
    },
    /// A recorded metric's type differs from its entry.
    #[error("metric {name:?} is recorded as a {recorded} but catalogued as a {catalogued}")]
    WrongKind {
        /// The metric name.
        name: String,
        /// The type it was recorded as.
        recorded: MetricKind,
        /// The type the catalogue gives.
        catalogued: MetricKind,
    },
}

/// A set of metric definitions, keyed by name: the core's plus those of the integrations used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    // BTreeMap so the reference and dashboards list metrics in a stable order.
    defs: BTreeMap<&'static str, MetricDef>,
}

impl Catalogue {
    /// An empty catalogue.
    ///
    /// ```
    /// assert!(paymetrics::catalogue::Catalogue::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The core crate's metrics ([`METRICS`]).
    ///
    /// ```
    /// assert!(paymetrics::catalogue::Catalogue::core().get("kpi.transaction.success_rate").is_some());
    /// ```
    pub fn core() -> Self {
        let mut c = Self::new();
        c.extend(METRICS)
            .expect("the core catalogue has no duplicates");
        c
    }

    /// Adds `defs`; an identical redefinition is accepted (two crates may both list a metric
    /// they share), a different one is an error.
    ///
    /// ```
    /// use paymetrics::catalogue::{Catalogue, METRICS};
    /// let mut c = Catalogue::core();
    /// c.extend(METRICS)?; // the same definitions again: fine
    /// # Ok::<(), paymetrics::catalogue::CatalogueError>(())
    /// ```
    pub fn extend(&mut self, defs: &[MetricDef]) -> Result<&mut Self, CatalogueError> {
        for def in defs {
            match self.defs.get(def.name) {
                Some(existing) if existing != def => {
                    return Err(CatalogueError::Duplicate {
                        name: def.name.to_owned(),
                        first: existing.source.to_owned(),
                        second: def.source.to_owned(),
                    });
                }
                _ => {
                    self.defs.insert(def.name, *def);
                }
            }
        }
        Ok(self)
    }

    /// The definition of `name`.
    ///
    /// ```
    /// use paymetrics::catalogue::{Catalogue, MetricKind};
    /// assert_eq!(Catalogue::core().get("business.payment.amount").unwrap().kind, MetricKind::Distribution);
    /// ```
    pub fn get(&self, name: &str) -> Option<&MetricDef> {
        self.defs.get(name)
    }

    /// Every definition, by name.
    ///
    /// ```
    /// assert!(paymetrics::catalogue::Catalogue::core().iter().count() > 30);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &MetricDef> {
        self.defs.values()
    }

    /// How many metrics are catalogued.
    ///
    /// ```
    /// assert_eq!(paymetrics::catalogue::Catalogue::core().len(), paymetrics::catalogue::METRICS.len());
    /// ```
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether nothing is catalogued.
    ///
    /// ```
    /// assert!(!paymetrics::catalogue::Catalogue::core().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Checks one recorded series against the catalogue: its name, type and every tag key.
    /// Integration crates call it from a test over everything they record.
    ///
    /// ```
    /// use paymetrics::catalogue::{Catalogue, MetricKind};
    /// let c = Catalogue::core();
    /// assert!(c.check_recorded("business.payment.attempts", MetricKind::Count, ["currency"]).is_ok());
    /// assert!(c.check_recorded("business.payment.attempts", MetricKind::Count, ["user_id"]).is_err());
    /// assert!(c.check_recorded("business.payment.attempts", MetricKind::Gauge, ["currency"]).is_err());
    /// ```
    pub fn check_recorded<'a>(
        &self,
        name: &str,
        kind: MetricKind,
        tag_keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), CatalogueError> {
        let def = self
            .get(name)
            .ok_or_else(|| CatalogueError::UnknownMetric {
                name: name.to_owned(),
            })?;
        if def.kind != kind {
            return Err(CatalogueError::WrongKind {
                name: name.to_owned(),
                recorded: kind,
                catalogued: def.kind,
            });
        }
        for key in tag_keys {
            if def.tag(key).is_none() {
                return Err(CatalogueError::UnknownTag {
                    name: name.to_owned(),
                    key: key.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Checks everything a `metrics_util` debugging recorder saw (counters, gauges and
    /// histograms, with their tag keys): integration crates record through their real code
    /// under a [`DebuggingRecorder`](metrics_util::debugging::DebuggingRecorder) and call this,
    /// so the catalogue and the recording code cannot drift. With the `testing` feature.
    ///
    /// ```
    /// use metrics_util::debugging::DebuggingRecorder;
    /// use paymetrics::catalogue::Catalogue;
    ///
    /// let recorder = DebuggingRecorder::new();
    /// let snapshotter = recorder.snapshotter();
    /// metrics::with_local_recorder(&recorder, || {
    ///     metrics::counter!("business.payment.attempts", "currency" => "EUR").increment(1);
    /// });
    /// assert!(Catalogue::core().check_snapshotter(&snapshotter).is_ok());
    ///
    /// metrics::with_local_recorder(&recorder, || metrics::counter!("made.up").increment(1));
    /// assert!(Catalogue::core().check_snapshotter(&snapshotter).is_err());
    /// ```
    #[cfg(feature = "testing")]
    pub fn check_snapshotter(
        &self,
        snapshotter: &metrics_util::debugging::Snapshotter,
    ) -> Result<(), CatalogueError> {
        for (key, _, _, _) in snapshotter.snapshot().into_vec() {
            let kind = match key.kind() {
                metrics_util::MetricKind::Counter => MetricKind::Count,
                metrics_util::MetricKind::Gauge => MetricKind::Gauge,
                metrics_util::MetricKind::Histogram => MetricKind::Distribution,
            };
            let k = key.key();
            self.check_recorded(k.name(), kind, k.labels().map(|l| l.key()))?;
        }
        Ok(())
    }

    /// Runs `f` under a fresh debugging recorder (on this thread), checks everything it
    /// recorded ([`check_snapshotter`](Self::check_snapshotter)) and returns the names recorded,
    /// sorted, so a test can also assert it exercised every catalogued metric. With the
    /// `testing` feature.
    ///
    /// ```
    /// use paymetrics::{catalogue::Catalogue, events::health};
    ///
    /// let names = Catalogue::core().check_during(|| {
    ///     metrics::counter!(health::CHECKS, health::COMPONENT => "redis", health::HEALTHY => "true")
    ///         .increment(1);
    /// })?;
    /// assert_eq!(names, ["system.health.checks"]);
    /// # Ok::<(), paymetrics::catalogue::CatalogueError>(())
    /// ```
    #[cfg(feature = "testing")]
    pub fn check_during(&self, f: impl FnOnce()) -> Result<Vec<String>, CatalogueError> {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        self.check_snapshotter(&snapshotter)?;
        let mut names: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, _)| k.key().name().to_owned())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The metrics reference: one Markdown table (name, type, unit, tags, description, source),
    /// sorted by name. `docs/METRICS.md` is this text, checked by a test.
    ///
    /// ```
    /// let md = paymetrics::catalogue::Catalogue::core().to_markdown();
    /// assert!(md.contains("| `business.payment.attempts` | count |"));
    /// ```
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| name | type | unit | tags | description | source |\n|---|---|---|---|---|---|\n",
        );
        for d in self.iter() {
            let tags = d
                .tags
                .iter()
                .map(|t| match t.values {
                    Some(v) => format!("`{}` ({})", t.key, v.join(", ")),
                    None => format!("`{}`", t.key),
                })
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} |\n",
                d.name,
                d.kind,
                d.unit,
                tags,
                d.description.replace('|', "\\|"),
                d.source
            ));
        }
        out
    }
}

const SOURCE_PAYMENT: &str = "paymetrics (events::payment)";
const SOURCE_USER: &str = "paymetrics (events::user)";
const SOURCE_FRAUD: &str = "paymetrics (events::fraud)";
const SOURCE_QUEUE: &str = "paymetrics (events::queue)";
const SOURCE_HEALTH: &str = "paymetrics (events::health)";
const SOURCE_KPI: &str = "paymetrics (kpi)";
const SOURCE_ROLLUP: &str = "paymetrics (rollup)";

const PAYMENT_ATTEMPT_TAGS: &[TagDef] = &[
    TagDef::any(payment::CURRENCY),
    TagDef::any(payment::PAYMENT_METHOD),
    TagDef::any(payment::AMOUNT_RANGE),
    TagDef::any(payment::SENDER_COUNTRY),
    TagDef::any(payment::RECEIVER_COUNTRY),
];
const COMPLETION_TAGS: &[TagDef] = &[
    TagDef::any(payment::STATUS),
    TagDef::any(payment::CURRENCY),
    TagDef::any(payment::PAYMENT_METHOD),
    TagDef::any(payment::PROCESSING_TIME_BUCKET),
];
const COMPLETION_SUCCESS_TAGS: &[TagDef] = &[
    TagDef::any(payment::STATUS),
    TagDef::any(payment::CURRENCY),
    TagDef::any(payment::PAYMENT_METHOD),
    TagDef::any(payment::PROCESSING_TIME_BUCKET),
    TagDef::one_of(payment::SUCCESS, BOOL),
];
const REGISTRATION_TAGS: &[TagDef] = &[
    TagDef::any(user::REGISTRATION_METHOD),
    TagDef::any(user::COUNTRY),
    TagDef::any(user::REFERRER),
];
const VERIFICATION_TAGS: &[TagDef] = &[
    TagDef::any(user::VERIFICATION_TYPE),
    TagDef::any(user::STATUS),
    TagDef::any(user::METHOD),
];
const VERIFICATION_SUCCESS_TAGS: &[TagDef] = &[
    TagDef::any(user::VERIFICATION_TYPE),
    TagDef::any(user::STATUS),
    TagDef::any(user::METHOD),
    TagDef::one_of(user::SUCCESS, BOOL),
];
const ACTIVITY_TAGS: &[TagDef] = &[
    TagDef::any(user::ACTIVITY_TYPE),
    TagDef::any(user::USER_TIER),
    TagDef::any(user::DEVICE_TYPE),
];
const FRAUD_TAGS: &[TagDef] = &[
    TagDef::any(fraud::ACTION),
    TagDef::any(fraud::RISK_LEVEL),
    TagDef::any(fraud::MODEL_VERSION),
];
const CONFIRMED_TAGS: &[TagDef] = &[TagDef::one_of(fraud::BLOCKED, BOOL)];
const QUEUE_TAGS: &[TagDef] = &[
    TagDef::any(queue::QUEUE_NAME),
    TagDef::any(queue::OPERATION),
    TagDef::any(queue::MESSAGE_TYPE),
];
const HEALTH_TAGS: &[TagDef] = &[
    TagDef::any(health::COMPONENT),
    TagDef::one_of(health::HEALTHY, BOOL),
];
const HOURLY_TAGS: &[TagDef] = &[TagDef::one_of(rollup::AGGREGATION, &["hourly"])];
const DAILY_TAGS: &[TagDef] = &[TagDef::one_of(rollup::AGGREGATION, &["daily"])];

use MetricKind::{Count, Distribution, Gauge};

/// The core crate's metrics: typed business events, KPIs and rollups. (The distinct-user
/// gauges are recorded by `paymetrics-automation`'s `UniquesCollector`, whose catalogue lists
/// them.) (External-service
/// constants live in [`events::external`](crate::events::external) but are recorded by
/// `paymetrics-tower`, whose catalogue lists them.)
pub const METRICS: &[MetricDef] = &[
    MetricDef::new(
        payment::ATTEMPTS,
        Count,
        "attempt",
        PAYMENT_ATTEMPT_TAGS,
        "Payment attempts.",
        SOURCE_PAYMENT,
    ),
    MetricDef::new(
        payment::AMOUNT,
        Distribution,
        "currency unit",
        PAYMENT_ATTEMPT_TAGS,
        "Attempted amount, in units of its currency.",
        SOURCE_PAYMENT,
    ),
    MetricDef::new(
        payment::COMPLETIONS,
        Count,
        "payment",
        COMPLETION_TAGS,
        "Payment completions, whatever their status.",
        SOURCE_PAYMENT,
    ),
    MetricDef::new(
        payment::PROCESSING_TIME,
        Distribution,
        "ms",
        COMPLETION_TAGS,
        "Time from submission to outcome.",
        SOURCE_PAYMENT,
    ),
    MetricDef::new(
        payment::SUCCESS_RATE,
        Count,
        "payment",
        COMPLETION_SUCCESS_TAGS,
        "Completions split by success:true/false; the rate is a ratio of counts.",
        SOURCE_PAYMENT,
    ),
    MetricDef::new(
        payment::TRANSACTION_VALUE,
        Distribution,
        "currency unit",
        COMPLETION_TAGS,
        "Amount of each completed payment.",
        SOURCE_PAYMENT,
    ),
    MetricDef::new(
        payment::FEES,
        Distribution,
        "currency unit",
        COMPLETION_TAGS,
        "Fees earned on each completed payment.",
        SOURCE_PAYMENT,
    ),
    MetricDef::new(
        user::REGISTRATIONS,
        Count,
        "registration",
        REGISTRATION_TAGS,
        "Completed registrations.",
        SOURCE_USER,
    ),
    MetricDef::new(
        user::FUNNEL_REGISTRATION_STARTED,
        Count,
        "registration",
        REGISTRATION_TAGS,
        "Registrations entering the funnel.",
        SOURCE_USER,
    ),
    MetricDef::new(
        user::VERIFICATION_ATTEMPTS,
        Count,
        "attempt",
        VERIFICATION_TAGS,
        "Identity verification attempts.",
        SOURCE_USER,
    ),
    MetricDef::new(
        user::VERIFICATION_SUCCESS_RATE,
        Count,
        "attempt",
        VERIFICATION_SUCCESS_TAGS,
        "Verification attempts split by success:true/false.",
        SOURCE_USER,
    ),
    MetricDef::new(
        user::VERIFICATION_TIME,
        Distribution,
        "ms",
        VERIFICATION_TAGS,
        "Time a verification took.",
        SOURCE_USER,
    ),
    MetricDef::new(
        user::SESSION_DURATION,
        Distribution,
        "ms",
        ACTIVITY_TAGS,
        "Session duration of a user activity.",
        SOURCE_USER,
    ),
    MetricDef::new(
        fraud::DETECTIONS,
        Count,
        "decision",
        FRAUD_TAGS,
        "Fraud-model decisions.",
        SOURCE_FRAUD,
    ),
    MetricDef::new(
        fraud::RISK_SCORE,
        Distribution,
        "score (0-100)",
        FRAUD_TAGS,
        "The model's risk score.",
        SOURCE_FRAUD,
    ),
    MetricDef::new(
        fraud::DETECTION_TIME,
        Distribution,
        "ms",
        FRAUD_TAGS,
        "Time the model took to decide.",
        SOURCE_FRAUD,
    ),
    MetricDef::new(
        fraud::BLOCKED_TRANSACTIONS,
        Count,
        "transaction",
        FRAUD_TAGS,
        "Transactions blocked.",
        SOURCE_FRAUD,
    ),
    MetricDef::new(
        fraud::LOSS_PREVENTED,
        Distribution,
        "currency unit",
        FRAUD_TAGS,
        "Amount of each blocked transaction.",
        SOURCE_FRAUD,
    ),
    MetricDef::new(
        fraud::CONFIRMED,
        Count,
        "transaction",
        CONFIRMED_TAGS,
        "Transactions later confirmed fraudulent, split by blocked:true/false.",
        SOURCE_FRAUD,
    ),
    MetricDef::new(
        fraud::CONFIRMED_AMOUNT,
        Distribution,
        "currency unit",
        CONFIRMED_TAGS,
        "Amount of each confirmed-fraudulent transaction.",
        SOURCE_FRAUD,
    ),
    MetricDef::new(
        queue::OPERATIONS_COUNT,
        Count,
        "operation",
        QUEUE_TAGS,
        "Queue operations.",
        SOURCE_QUEUE,
    ),
    MetricDef::new(
        queue::OPERATIONS_PROCESSING_TIME,
        Distribution,
        "ms",
        QUEUE_TAGS,
        "Time a queue operation took.",
        SOURCE_QUEUE,
    ),
    MetricDef::new(
        queue::DEPTH_CURRENT,
        Gauge,
        "message",
        QUEUE_TAGS,
        "Messages waiting, as last observed.",
        SOURCE_QUEUE,
    ),
    MetricDef::new(
        queue::MESSAGE_SIZE,
        Distribution,
        "byte",
        QUEUE_TAGS,
        "Message size.",
        SOURCE_QUEUE,
    ),
    MetricDef::new(
        queue::MESSAGE_RETRY_COUNT,
        Distribution,
        "delivery",
        QUEUE_TAGS,
        "Deliveries of the message before this one.",
        SOURCE_QUEUE,
    ),
    MetricDef::new(
        queue::DLQ_MESSAGES,
        Count,
        "message",
        QUEUE_TAGS,
        "Messages sent to the dead-letter queue.",
        SOURCE_QUEUE,
    ),
    MetricDef::new(
        health::CHECKS,
        Count,
        "check",
        HEALTH_TAGS,
        "Health checks run, split by healthy:true/false.",
        SOURCE_HEALTH,
    ),
    MetricDef::new(
        kpi::TRANSACTION_SUCCESS_RATE,
        Gauge,
        "percent",
        &[],
        "Completed payments over all completions, last hour.",
        SOURCE_KPI,
    ),
    MetricDef::new(
        kpi::TRANSACTION_AVG_VALUE,
        Gauge,
        "currency unit",
        &[],
        "Mean value of successful payments, last hour.",
        SOURCE_KPI,
    ),
    MetricDef::new(
        kpi::CUSTOMER_ACQUISITION_RATE,
        Gauge,
        "registration",
        &[],
        "Registrations in the last 24 hours.",
        SOURCE_KPI,
    ),
    MetricDef::new(
        kpi::FRAUD_EFFECTIVENESS,
        Gauge,
        "percent",
        &[],
        "Confirmed fraud that was blocked, last hour.",
        SOURCE_KPI,
    ),
    MetricDef::new(
        kpi::SYSTEM_AVAILABILITY,
        Gauge,
        "percent",
        &[],
        "Healthy checks over all checks, last hour.",
        SOURCE_KPI,
    ),
    MetricDef::new(
        rollup::HOURLY_TOTAL,
        Gauge,
        "payment",
        HOURLY_TAGS,
        "Payments completed in the hour (timestamped).",
        SOURCE_ROLLUP,
    ),
    MetricDef::new(
        rollup::HOURLY_SUCCESS_RATE,
        Gauge,
        "percent",
        HOURLY_TAGS,
        "Percent of the hour's completions that succeeded (timestamped).",
        SOURCE_ROLLUP,
    ),
    MetricDef::new(
        rollup::HOURLY_AVG_VALUE,
        Gauge,
        "currency unit",
        HOURLY_TAGS,
        "Mean value of the hour's successful payments (timestamped).",
        SOURCE_ROLLUP,
    ),
    MetricDef::new(
        rollup::HOURLY_TOTAL_VOLUME,
        Gauge,
        "currency unit",
        HOURLY_TAGS,
        "Sum of the hour's successful payment values (timestamped).",
        SOURCE_ROLLUP,
    ),
    MetricDef::new(
        rollup::HOURLY_TOTAL_FEES,
        Gauge,
        "currency unit",
        HOURLY_TAGS,
        "Sum of the hour's fees (timestamped).",
        SOURCE_ROLLUP,
    ),
    MetricDef::new(
        rollup::DAILY_TOTAL_PAYMENTS,
        Gauge,
        "payment",
        DAILY_TAGS,
        "Payments completed in the day (timestamped).",
        SOURCE_ROLLUP,
    ),
    MetricDef::new(
        rollup::DAILY_TOTAL_VOLUME,
        Gauge,
        "currency unit",
        DAILY_TAGS,
        "Sum of the day's successful payment values (timestamped).",
        SOURCE_ROLLUP,
    ),
    MetricDef::new(
        rollup::DAILY_TOTAL_USERS,
        Gauge,
        "user",
        DAILY_TAGS,
        "Distinct active users of the day (timestamped).",
        SOURCE_ROLLUP,
    ),
    MetricDef::new(
        rollup::DAILY_TOTAL_REVENUE,
        Gauge,
        "currency unit",
        DAILY_TAGS,
        "Sum of the day's fees (timestamped).",
        SOURCE_ROLLUP,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_names_are_unique() {
        let mut names: Vec<_> = METRICS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
    }

    /// Records every business event with every optional field and every closed tag value,
    /// and the KPIs: everything recorded is catalogued and every entry is recorded. (Rollups
    /// are timestamped points handed to the exporter, not facade series; external-service
    /// calls are catalogued by paymetrics-tower, whose layer records them.)
    #[test]
    fn core_catalogue_matches_what_the_core_records() {
        use crate::events::{
            ActivityType, BusinessEvents, ConfirmedFraud, DeviceType, FraudAction, FraudDetection,
            HealthCheck, PaymentAttempt, PaymentCompletion, PaymentMethod, PaymentStatus,
            QueueOperation, QueueOperationKind, RegistrationMethod, UserActivity, UserRegistration,
            UserTier, UserVerification, VerificationMethod, VerificationStatus, VerificationType,
        };
        let names = Catalogue::core()
            .check_during(|| {
                let e = BusinessEvents::default();
                e.payment_attempt(&PaymentAttempt {
                    amount: 42.0,
                    currency: "EUR",
                    payment_method: PaymentMethod::ALL[0],
                    sender_id: "u1",
                    sender_country: Some("DE"),
                    receiver_country: None,
                });
                for status in PaymentStatus::ALL {
                    e.payment_completion(&PaymentCompletion {
                        status: *status,
                        amount: 42.0,
                        fees: Some(1.0),
                        currency: "EUR",
                        payment_method: PaymentMethod::ALL[0],
                        processing_time_ms: Some(100.0),
                    });
                }
                e.user_registration(&UserRegistration {
                    method: RegistrationMethod::ALL[0],
                    country: None,
                    referrer: None,
                });
                for status in VerificationStatus::ALL {
                    e.user_verification(&UserVerification {
                        verification_type: VerificationType::ALL[0],
                        status: *status,
                        method: VerificationMethod::ALL[0],
                        processing_time_ms: Some(5.0),
                    });
                }
                e.user_activity(&UserActivity {
                    user_id: "u1",
                    activity_type: ActivityType::ALL[0],
                    user_tier: UserTier::ALL[0],
                    device_type: DeviceType::ALL[0],
                    session_duration_ms: Some(1.0),
                });
                for action in FraudAction::ALL {
                    e.fraud_detection(&FraudDetection {
                        action: *action,
                        risk_score: 80.0,
                        model_version: Some("m1"),
                        detection_time_ms: Some(3.0),
                        amount: Some(10.0),
                    });
                }
                e.confirmed_fraud(&ConfirmedFraud {
                    blocked: true,
                    amount: 10.0,
                });
                e.queue_operation(&QueueOperation {
                    queue_name: "settlements",
                    operation: QueueOperationKind::ALL[0],
                    message_type: None,
                    processing_time_ms: Some(1.0),
                    depth: Some(3),
                    message_size_bytes: Some(100),
                    retry_count: Some(0),
                    dead_lettered: true,
                });
                e.health_check(&HealthCheck {
                    component: "redis",
                    healthy: true,
                });
                crate::kpi::Kpis {
                    success_rate_percent: 99.0,
                    avg_value: 1.0,
                    acquisition_rate: 1.0,
                    fraud_effectiveness_percent: 100.0,
                    availability_percent: 100.0,
                }
                .publish();
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<String> = {
            let mut v: Vec<String> = METRICS
                .iter()
                .map(|d| d.name.to_owned())
                .filter(|n| !n.starts_with("aggregated."))
                .collect();
            v.sort();
            v
        };
        assert_eq!(names, expected);
    }

    #[test]
    fn a_different_redefinition_is_refused() {
        let mut c = Catalogue::core();
        let mut other = METRICS[0];
        other.kind = MetricKind::Gauge;
        other.source = "elsewhere";
        let err = c.extend(&[other]).unwrap_err();
        assert!(err.to_string().contains("elsewhere"), "{err}");
    }
}
