//! The typed business events as a user sees them: every metric name, type, tag key and value
//! each event records, and nothing else; the original strategy's bucket boundaries; the bounding of open tag
//! values; and the in-process uniques that replace the original strategy's sets.

use std::{collections::BTreeSet, sync::Arc};

use metrics_util::{
    MetricKind,
    debugging::{DebugValue, DebuggingRecorder},
};
use paymetrics::{
    clock::SystemClock,
    events::{
        ActivityType, BusinessEvents, CircuitState, ConfirmedFraud, DeviceType,
        ExternalServiceCall, FraudAction, FraudDetection, HealthCheck, PaymentAttempt,
        PaymentCompletion, PaymentMethod, PaymentStatus, QueueOperation, QueueOperationKind,
        RegistrationMethod, UserActivity, UserRegistration, UserTier, UserVerification,
        VerificationMethod, VerificationStatus, VerificationType, external, fraud, health,
        normalize, payment, queue, user,
    },
    testing::Recorded,
    uniques::Uniques,
};

/// One series as recorded: kind, name and tags in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    kind: &'static str,
    name: String,
    tags: Vec<(String, String)>,
}

/// What a run recorded: the user-facing view, and every series' key.
struct Run {
    recorded: Recorded,
    series: Vec<SeriesKey>,
}

impl Run {
    /// The values of tag `key` across every series of metric `name`.
    fn tag_values(&self, name: &str, key: &str) -> BTreeSet<String> {
        self.series
            .iter()
            .filter(|s| s.name == name)
            .flat_map(|s| {
                s.tags
                    .iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }
}

fn kind_str(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
    }
}

/// Runs `f` with a fresh handle, created inside a fresh local recorder.
fn run(f: impl FnOnce(&BusinessEvents)) -> Run {
    run_with(BusinessEvents::default, f)
}

fn run_with(make: impl FnOnce() -> BusinessEvents, f: impl FnOnce(&BusinessEvents)) -> Run {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || f(&make()));
    // `Recorded` reads (and drains) the values; the keys stay registered for the second look.
    let recorded = Recorded::from_snapshotter(&snapshotter);
    let mut series: Vec<SeriesKey> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            if let DebugValue::Histogram(values) = &value {
                assert!(values.is_empty(), "drained by Recorded");
            }
            SeriesKey {
                kind: kind_str(key.kind()),
                name: key.key().name().to_owned(),
                tags: key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect(),
            }
        })
        .collect();
    series.sort();
    Run { recorded, series }
}

#[derive(Debug, Clone, Copy)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(&'static [f64]),
}

type Tags = &'static [(&'static str, &'static str)];

#[derive(Debug)]
struct Expect {
    name: &'static str,
    tags: Tags,
    value: Value,
}

const fn c(name: &'static str, tags: Tags, n: u64) -> Expect {
    Expect {
        name,
        tags,
        value: Value::Counter(n),
    }
}

const fn g(name: &'static str, tags: Tags, v: f64) -> Expect {
    Expect {
        name,
        tags,
        value: Value::Gauge(v),
    }
}

const fn h(name: &'static str, tags: Tags, values: &'static [f64]) -> Expect {
    Expect {
        name,
        tags,
        value: Value::Histogram(values),
    }
}

type Case = (&'static str, Box<dyn Fn(&BusinessEvents)>, Vec<Expect>);

const ATTEMPT_TAGS: Tags = &[
    ("currency", "EUR"),
    ("payment_method", "card"),
    ("amount_range", "small"),
    ("sender_country", "DE"),
    ("receiver_country", "FR"),
];
const ATTEMPT_DEFAULT_TAGS: Tags = &[
    ("currency", "other"),
    ("payment_method", "bank"),
    ("amount_range", "enterprise"),
    ("sender_country", "unknown"),
    ("receiver_country", "unknown"),
];
const COMPLETED: Tags = &[
    ("status", "completed"),
    ("currency", "USD"),
    ("payment_method", "wallet"),
    ("processing_time_bucket", "slow"),
];
const COMPLETED_SUCCESS: Tags = &[
    ("status", "completed"),
    ("currency", "USD"),
    ("payment_method", "wallet"),
    ("processing_time_bucket", "slow"),
    ("success", "true"),
];
const COMPLETED_UNTIMED: Tags = &[
    ("status", "completed"),
    ("currency", "GBP"),
    ("payment_method", "unknown"),
    ("processing_time_bucket", "unknown"),
];
const COMPLETED_UNTIMED_SUCCESS: Tags = &[
    ("status", "completed"),
    ("currency", "GBP"),
    ("payment_method", "unknown"),
    ("processing_time_bucket", "unknown"),
    ("success", "true"),
];
const DECLINED: Tags = &[
    ("status", "declined"),
    ("currency", "EUR"),
    ("payment_method", "card"),
    ("processing_time_bucket", "fast"),
];
const DECLINED_FAILURE: Tags = &[
    ("status", "declined"),
    ("currency", "EUR"),
    ("payment_method", "card"),
    ("processing_time_bucket", "fast"),
    ("success", "false"),
];
const REGISTRATION: Tags = &[
    ("registration_method", "google"),
    ("country", "BR"),
    ("referrer", "spring_campaign"),
];
const REGISTRATION_DEFAULTS: Tags = &[
    ("registration_method", "email"),
    ("country", "unknown"),
    ("referrer", "direct"),
];
const VERIFIED: Tags = &[
    ("verification_type", "identity"),
    ("status", "verified"),
    ("method", "document"),
];
const VERIFIED_SUCCESS: Tags = &[
    ("verification_type", "identity"),
    ("status", "verified"),
    ("method", "document"),
    ("success", "true"),
];
const VERIFICATION_FAILED: Tags = &[
    ("verification_type", "phone"),
    ("status", "failed"),
    ("method", "unknown"),
];
const VERIFICATION_FAILED_FAILURE: Tags = &[
    ("verification_type", "phone"),
    ("status", "failed"),
    ("method", "unknown"),
    ("success", "false"),
];
const ACTIVITY: Tags = &[
    ("activity_type", "payment_sent"),
    ("user_tier", "business"),
    ("device_type", "desktop"),
];
const BLOCK: Tags = &[
    ("action", "block"),
    ("risk_level", "high"),
    ("model_version", "gbm-7"),
];
const ALLOW: Tags = &[
    ("action", "allow"),
    ("risk_level", "low"),
    ("model_version", "unknown"),
];
const QUEUE_FULL: Tags = &[
    ("queue_name", "payouts"),
    ("operation", "nack"),
    ("message_type", "payout_v2"),
];
const QUEUE_MINIMAL: Tags = &[
    ("queue_name", "payouts"),
    ("operation", "publish"),
    ("message_type", "unknown"),
];
const CARD_PROCESSOR: Tags = &[
    ("service_name", "card-processor"),
    ("endpoint", "/v1/charges/{id}"),
    ("method", "POST"),
];
const CARD_PROCESSOR_OK: Tags = &[
    ("service_name", "card-processor"),
    ("endpoint", "/v1/charges/{id}"),
    ("method", "POST"),
    ("success", "true"),
];
const CARD_PROCESSOR_FAILED: Tags = &[
    ("service_name", "card-processor"),
    ("endpoint", "/v1/charges/{id}"),
    ("method", "POST"),
    ("success", "false"),
];

fn card_processor_call(
    success: bool,
    circuit_breaker: Option<CircuitState>,
) -> ExternalServiceCall {
    ExternalServiceCall {
        service_name: "card-processor".into(),
        endpoint: "/v1/charges/{id}".into(),
        method: "POST".into(),
        duration_ms: 182.0,
        success,
        retry_count: 2,
        circuit_breaker,
    }
}

fn cases() -> Vec<Case> {
    vec![
        (
            "payment attempt",
            Box::new(|e| {
                e.payment_attempt(&PaymentAttempt {
                    amount: 42.0,
                    currency: "eur",
                    payment_method: PaymentMethod::Card,
                    sender_id: "sender-secret-1",
                    sender_country: Some("de"),
                    receiver_country: Some("FR"),
                })
            }),
            vec![
                c(payment::ATTEMPTS, ATTEMPT_TAGS, 1),
                h(payment::AMOUNT, ATTEMPT_TAGS, &[42.0]),
            ],
        ),
        (
            "payment attempt, unlisted currency and no countries",
            Box::new(|e| {
                e.payment_attempt(&PaymentAttempt {
                    amount: 12_000.0,
                    currency: "bitcoin",
                    payment_method: PaymentMethod::Bank,
                    sender_id: "sender-secret-2",
                    sender_country: None,
                    receiver_country: Some("Germany"),
                })
            }),
            vec![
                c(payment::ATTEMPTS, ATTEMPT_DEFAULT_TAGS, 1),
                h(payment::AMOUNT, ATTEMPT_DEFAULT_TAGS, &[12_000.0]),
            ],
        ),
        (
            "payment completed, timed, with fees",
            Box::new(|e| {
                e.payment_completion(&PaymentCompletion {
                    status: PaymentStatus::Completed,
                    amount: 300.0,
                    fees: Some(8.7),
                    currency: "USD",
                    payment_method: PaymentMethod::Wallet,
                    processing_time_ms: Some(750.0),
                })
            }),
            vec![
                c(payment::COMPLETIONS, COMPLETED, 1),
                h(payment::PROCESSING_TIME, COMPLETED, &[750.0]),
                c(payment::SUCCESS_RATE, COMPLETED_SUCCESS, 1),
                h(payment::TRANSACTION_VALUE, COMPLETED, &[300.0]),
                h(payment::FEES, COMPLETED, &[8.7]),
            ],
        ),
        (
            "payment completed, untimed, no fees",
            Box::new(|e| {
                e.payment_completion(&PaymentCompletion {
                    status: PaymentStatus::Completed,
                    amount: 20.0,
                    fees: None,
                    currency: "gbp",
                    payment_method: PaymentMethod::Unknown,
                    processing_time_ms: None,
                })
            }),
            vec![
                c(payment::COMPLETIONS, COMPLETED_UNTIMED, 1),
                c(payment::SUCCESS_RATE, COMPLETED_UNTIMED_SUCCESS, 1),
                h(payment::TRANSACTION_VALUE, COMPLETED_UNTIMED, &[20.0]),
            ],
        ),
        (
            "payment declined: no revenue",
            Box::new(|e| {
                e.payment_completion(&PaymentCompletion {
                    status: PaymentStatus::Declined,
                    amount: 99.0,
                    fees: Some(2.0),
                    currency: "EUR",
                    payment_method: PaymentMethod::Card,
                    processing_time_ms: Some(40.0),
                })
            }),
            vec![
                c(payment::COMPLETIONS, DECLINED, 1),
                h(payment::PROCESSING_TIME, DECLINED, &[40.0]),
                c(payment::SUCCESS_RATE, DECLINED_FAILURE, 1),
            ],
        ),
        (
            "user registration",
            Box::new(|e| {
                e.user_registration(&UserRegistration {
                    method: RegistrationMethod::Google,
                    country: Some("br"),
                    referrer: Some("spring_campaign"),
                })
            }),
            vec![
                c(user::REGISTRATIONS, REGISTRATION, 1),
                c(user::FUNNEL_REGISTRATION_STARTED, REGISTRATION, 1),
            ],
        ),
        (
            "user registration, seed defaults",
            Box::new(|e| {
                e.user_registration(&UserRegistration {
                    method: RegistrationMethod::Email,
                    country: None,
                    referrer: None,
                })
            }),
            vec![
                c(user::REGISTRATIONS, REGISTRATION_DEFAULTS, 1),
                c(user::FUNNEL_REGISTRATION_STARTED, REGISTRATION_DEFAULTS, 1),
            ],
        ),
        (
            "user verified, timed",
            Box::new(|e| {
                e.user_verification(&UserVerification {
                    verification_type: VerificationType::Identity,
                    status: VerificationStatus::Verified,
                    method: VerificationMethod::Document,
                    processing_time_ms: Some(4_200.0),
                })
            }),
            vec![
                c(user::VERIFICATION_ATTEMPTS, VERIFIED, 1),
                c(user::VERIFICATION_SUCCESS_RATE, VERIFIED_SUCCESS, 1),
                h(user::VERIFICATION_TIME, VERIFIED, &[4_200.0]),
            ],
        ),
        (
            "user verification failed, untimed",
            Box::new(|e| {
                e.user_verification(&UserVerification {
                    verification_type: VerificationType::Phone,
                    status: VerificationStatus::Failed,
                    method: VerificationMethod::Unknown,
                    processing_time_ms: None,
                })
            }),
            vec![
                c(user::VERIFICATION_ATTEMPTS, VERIFICATION_FAILED, 1),
                c(
                    user::VERIFICATION_SUCCESS_RATE,
                    VERIFICATION_FAILED_FAILURE,
                    1,
                ),
            ],
        ),
        (
            "user activity with a session",
            Box::new(|e| {
                e.user_activity(&UserActivity {
                    user_id: "user-secret-3",
                    activity_type: ActivityType::PaymentSent,
                    user_tier: UserTier::Business,
                    device_type: DeviceType::Desktop,
                    session_duration_ms: Some(61_000.0),
                })
            }),
            vec![h(user::SESSION_DURATION, ACTIVITY, &[61_000.0])],
        ),
        (
            "user activity without a session: uniques only",
            Box::new(|e| {
                e.user_activity(&UserActivity {
                    user_id: "user-secret-4",
                    activity_type: ActivityType::Login,
                    user_tier: UserTier::Standard,
                    device_type: DeviceType::Unknown,
                    session_duration_ms: None,
                })
            }),
            vec![],
        ),
        (
            "fraud block, timed, with amount",
            Box::new(|e| {
                e.fraud_detection(&FraudDetection {
                    action: FraudAction::Block,
                    risk_score: 88.0,
                    model_version: Some("gbm-7"),
                    detection_time_ms: Some(14.0),
                    amount: Some(5_000.0),
                })
            }),
            vec![
                c(fraud::DETECTIONS, BLOCK, 1),
                h(fraud::RISK_SCORE, BLOCK, &[88.0]),
                h(fraud::DETECTION_TIME, BLOCK, &[14.0]),
                c(fraud::BLOCKED_TRANSACTIONS, BLOCK, 1),
                h(fraud::LOSS_PREVENTED, BLOCK, &[5_000.0]),
            ],
        ),
        (
            "fraud block without amount",
            Box::new(|e| {
                e.fraud_detection(&FraudDetection {
                    action: FraudAction::Block,
                    risk_score: 75.0,
                    model_version: Some(" gbm-7 "),
                    detection_time_ms: None,
                    amount: None,
                })
            }),
            vec![
                c(fraud::DETECTIONS, BLOCK, 1),
                h(fraud::RISK_SCORE, BLOCK, &[75.0]),
                c(fraud::BLOCKED_TRANSACTIONS, BLOCK, 1),
            ],
        ),
        (
            "fraud allow: nothing blocked",
            Box::new(|e| {
                e.fraud_detection(&FraudDetection {
                    action: FraudAction::Allow,
                    risk_score: 3.0,
                    model_version: None,
                    detection_time_ms: None,
                    amount: Some(10.0),
                })
            }),
            vec![
                c(fraud::DETECTIONS, ALLOW, 1),
                h(fraud::RISK_SCORE, ALLOW, &[3.0]),
            ],
        ),
        (
            "confirmed fraud, blocked and missed",
            Box::new(|e| {
                e.confirmed_fraud(&ConfirmedFraud {
                    blocked: true,
                    amount: 700.0,
                });
                e.confirmed_fraud(&ConfirmedFraud {
                    blocked: false,
                    amount: 90.0,
                });
                e.confirmed_fraud(&ConfirmedFraud {
                    blocked: false,
                    amount: 15.0,
                });
            }),
            vec![
                c(fraud::CONFIRMED, &[("blocked", "true")], 1),
                c(fraud::CONFIRMED, &[("blocked", "false")], 2),
                h(fraud::CONFIRMED_AMOUNT, &[("blocked", "true")], &[700.0]),
                h(
                    fraud::CONFIRMED_AMOUNT,
                    &[("blocked", "false")],
                    &[90.0, 15.0],
                ),
            ],
        ),
        (
            "queue operation, everything given, dead-lettered",
            Box::new(|e| {
                e.queue_operation(&QueueOperation {
                    queue_name: "payouts",
                    operation: QueueOperationKind::Nack,
                    message_type: Some("payout_v2"),
                    processing_time_ms: Some(12.5),
                    depth: Some(4_211),
                    message_size_bytes: Some(1_536),
                    retry_count: Some(5),
                    dead_lettered: true,
                })
            }),
            vec![
                c(queue::OPERATIONS_COUNT, QUEUE_FULL, 1),
                h(queue::OPERATIONS_PROCESSING_TIME, QUEUE_FULL, &[12.5]),
                g(queue::DEPTH_CURRENT, QUEUE_FULL, 4_211.0),
                h(queue::MESSAGE_SIZE, QUEUE_FULL, &[1_536.0]),
                h(queue::MESSAGE_RETRY_COUNT, QUEUE_FULL, &[5.0]),
                c(queue::DLQ_MESSAGES, QUEUE_FULL, 1),
            ],
        ),
        (
            "queue operation, nothing optional",
            Box::new(|e| {
                e.queue_operation(&QueueOperation {
                    queue_name: "payouts",
                    operation: QueueOperationKind::Publish,
                    message_type: None,
                    processing_time_ms: None,
                    depth: None,
                    message_size_bytes: None,
                    retry_count: None,
                    dead_lettered: false,
                })
            }),
            vec![c(queue::OPERATIONS_COUNT, QUEUE_MINIMAL, 1)],
        ),
        (
            "health checks",
            Box::new(|e| {
                for healthy in [true, true, false] {
                    e.health_check(&HealthCheck {
                        component: "postgres",
                        healthy,
                    });
                }
            }),
            vec![
                c(
                    health::CHECKS,
                    &[("component", "postgres"), ("healthy", "true")],
                    2,
                ),
                c(
                    health::CHECKS,
                    &[("component", "postgres"), ("healthy", "false")],
                    1,
                ),
            ],
        ),
        (
            "external call with an open circuit breaker",
            Box::new(|e| e.external_call(&card_processor_call(false, Some(CircuitState::Open)))),
            vec![
                c(external::CALLS_COUNT, CARD_PROCESSOR, 1),
                h(external::CALLS_RESPONSE_TIME, CARD_PROCESSOR, &[182.0]),
                c(external::CALLS_SUCCESS_RATE, CARD_PROCESSOR_FAILED, 1),
                h(external::CALLS_RETRY_COUNT, CARD_PROCESSOR, &[2.0]),
                g(external::CIRCUIT_BREAKER_STATE, CARD_PROCESSOR, 1.0),
            ],
        ),
        (
            "external call without a breaker",
            Box::new(|e| e.external_call(&card_processor_call(true, None))),
            vec![
                c(external::CALLS_COUNT, CARD_PROCESSOR, 1),
                h(external::CALLS_RESPONSE_TIME, CARD_PROCESSOR, &[182.0]),
                c(external::CALLS_SUCCESS_RATE, CARD_PROCESSOR_OK, 1),
                h(external::CALLS_RETRY_COUNT, CARD_PROCESSOR, &[2.0]),
            ],
        ),
    ]
}

fn owned(tags: Tags) -> Vec<(String, String)> {
    tags.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn every_event_records_exactly_the_seed_metrics() {
    for (case, record, expected) in cases() {
        let run = run(|e| record(e));

        let mut names: Vec<String> = expected.iter().map(|x| x.name.to_owned()).collect();
        names.sort();
        names.dedup();
        assert_eq!(run.recorded.names(), names, "{case}: metric names");

        let mut want: Vec<SeriesKey> = expected
            .iter()
            .map(|x| SeriesKey {
                kind: match x.value {
                    Value::Counter(_) => "counter",
                    Value::Gauge(_) => "gauge",
                    Value::Histogram(_) => "histogram",
                },
                name: x.name.to_owned(),
                tags: owned(x.tags),
            })
            .collect();
        want.sort();
        assert_eq!(
            run.series, want,
            "{case}: series (type, name, tags in order)"
        );

        for x in &expected {
            match x.value {
                Value::Counter(n) => {
                    assert_eq!(
                        run.recorded.counter(x.name, x.tags),
                        Some(n),
                        "{case}: {x:?}"
                    )
                }
                Value::Gauge(v) => {
                    assert_eq!(run.recorded.gauge(x.name, x.tags), Some(v), "{case}: {x:?}")
                }
                Value::Histogram(values) => assert_eq!(
                    run.recorded.histogram(x.name, x.tags),
                    Some(values.to_vec()),
                    "{case}: {x:?}"
                ),
            }
        }
    }
}

#[test]
fn the_handle_records_external_calls_as_the_event_itself_does() {
    for circuit in [None, Some(CircuitState::Closed), Some(CircuitState::Open)] {
        for success in [true, false] {
            let call = card_processor_call(success, circuit);
            let through_handle = run(|e| e.external_call(&call));
            let by_hand = run(|_| call.record());
            assert_eq!(through_handle.series, by_hand.series);
        }
    }
}

#[test]
fn amount_ranges_split_exactly_at_the_thresholds() {
    let cases = [
        (9.99, "micro"),
        (10.0, "small"),
        (99.99, "small"),
        (100.0, "medium"),
        (999.99, "medium"),
        (1_000.0, "large"),
        (9_999.99, "large"),
        (10_000.0, "enterprise"),
    ];
    for (amount, want) in cases {
        let run = run(|e| {
            e.payment_attempt(&PaymentAttempt {
                amount,
                currency: "EUR",
                payment_method: PaymentMethod::Card,
                sender_id: "s",
                sender_country: None,
                receiver_country: None,
            })
        });
        let ranges = run.tag_values(payment::ATTEMPTS, payment::AMOUNT_RANGE);
        assert_eq!(ranges, BTreeSet::from([want.to_owned()]), "{amount}");
    }
}

#[test]
fn processing_time_buckets_split_exactly_at_the_thresholds() {
    let cases = [
        (99.99, "fast"),
        (100.0, "normal"),
        (499.99, "normal"),
        (500.0, "slow"),
        (1_999.99, "slow"),
        (2_000.0, "very_slow"),
    ];
    for (ms, want) in cases {
        let run = run(|e| {
            e.payment_completion(&PaymentCompletion {
                status: PaymentStatus::Failed,
                amount: 1.0,
                fees: None,
                currency: "EUR",
                payment_method: PaymentMethod::Card,
                processing_time_ms: Some(ms),
            })
        });
        for name in [
            payment::COMPLETIONS,
            payment::PROCESSING_TIME,
            payment::SUCCESS_RATE,
        ] {
            let buckets = run.tag_values(name, payment::PROCESSING_TIME_BUCKET);
            assert_eq!(buckets, BTreeSet::from([want.to_owned()]), "{name} {ms}");
        }
    }
}

#[test]
fn risk_levels_split_exactly_at_the_thresholds() {
    let cases = [
        (29.99, "low"),
        (30.0, "medium"),
        (69.99, "medium"),
        (70.0, "high"),
    ];
    for (risk_score, want) in cases {
        let run = run(|e| {
            e.fraud_detection(&FraudDetection {
                action: FraudAction::Review,
                risk_score,
                model_version: None,
                detection_time_ms: None,
                amount: None,
            })
        });
        let levels = run.tag_values(fraud::DETECTIONS, fraud::RISK_LEVEL);
        assert_eq!(levels, BTreeSet::from([want.to_owned()]), "{risk_score}");
    }
}

#[test]
fn a_thousand_model_versions_keep_the_cap_and_fold_the_rest_into_other() {
    let run = run(|e| {
        for i in 0..1_000 {
            e.fraud_detection(&FraudDetection {
                action: FraudAction::Challenge,
                risk_score: 50.0,
                model_version: Some(&format!("model-{i}")),
                detection_time_ms: None,
                amount: None,
            });
        }
    });
    let versions = run.tag_values(fraud::DETECTIONS, fraud::MODEL_VERSION);
    assert_eq!(versions.len(), normalize::DEFAULT_MAX_VALUES_PER_TAG + 1);
    assert!(versions.contains(normalize::OTHER));
    assert!(versions.contains("model-0") && versions.contains("model-49"));
    let total: u64 = versions
        .iter()
        .map(|v| {
            let tags = [
                (fraud::ACTION, "challenge"),
                (fraud::RISK_LEVEL, "medium"),
                (fraud::MODEL_VERSION, v.as_str()),
            ];
            run.recorded.counter(fraud::DETECTIONS, &tags).unwrap()
        })
        .sum();
    assert_eq!(total, 1_000, "nothing is lost, only folded");
    let other = [
        (fraud::ACTION, "challenge"),
        (fraud::RISK_LEVEL, "medium"),
        (fraud::MODEL_VERSION, "other"),
    ];
    assert_eq!(run.recorded.counter(fraud::DETECTIONS, &other), Some(950));
}

#[test]
fn the_cap_on_open_values_is_configurable() {
    let uniques = Arc::new(Uniques::new(Arc::new(SystemClock)));
    let run = run_with(
        || BusinessEvents::with_max_values_per_tag(uniques, 2),
        |e| {
            for name in ["a", "b", "c", "d"] {
                e.health_check(&HealthCheck {
                    component: name,
                    healthy: true,
                });
            }
        },
    );
    let components = run.tag_values(health::CHECKS, health::COMPONENT);
    assert_eq!(
        components,
        BTreeSet::from(["a", "b", "other"].map(String::from))
    );
}

#[test]
fn open_values_are_normalised() {
    let run = run(|e| {
        for currency in ["bitcoin", "€", "", "US D", "XXX", "Dollars"] {
            e.payment_attempt(&PaymentAttempt {
                amount: 1.0,
                currency,
                payment_method: PaymentMethod::Other,
                sender_id: "s",
                sender_country: Some("d"),
                receiver_country: Some("🇩🇪"),
            });
        }
        e.payment_attempt(&PaymentAttempt {
            amount: 1.0,
            currency: " usd ",
            payment_method: PaymentMethod::Other,
            sender_id: "s",
            sender_country: Some(" ch "),
            receiver_country: Some("jp"),
        });
        e.queue_operation(&QueueOperation {
            queue_name: "payments settle|#prod,eu\n",
            operation: QueueOperationKind::Consume,
            message_type: Some(&"x".repeat(1_000)),
            processing_time_ms: None,
            depth: None,
            message_size_bytes: None,
            retry_count: None,
            dead_lettered: false,
        });
        e.health_check(&HealthCheck {
            component: "   ",
            healthy: true,
        });
    });
    let set = |values: &[&str]| {
        values
            .iter()
            .map(|v| (*v).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        run.tag_values(payment::ATTEMPTS, payment::CURRENCY),
        set(&["USD", "other"])
    );
    assert_eq!(
        run.tag_values(payment::ATTEMPTS, payment::SENDER_COUNTRY),
        set(&["CH", "unknown"])
    );
    assert_eq!(
        run.tag_values(payment::ATTEMPTS, payment::RECEIVER_COUNTRY),
        set(&["JP", "unknown"])
    );
    assert_eq!(
        run.tag_values(queue::OPERATIONS_COUNT, queue::QUEUE_NAME),
        set(&["payments_settle__prod_eu"])
    );
    let message_types = run.tag_values(queue::OPERATIONS_COUNT, queue::MESSAGE_TYPE);
    assert_eq!(
        message_types,
        set(&[&"x".repeat(normalize::MAX_VALUE_LENGTH)])
    );
    assert_eq!(
        run.tag_values(health::CHECKS, health::COMPONENT),
        set(&["unknown"])
    );
}

#[test]
fn no_user_id_leaves_the_process() {
    let run = run(|e| {
        for i in 0..20 {
            let id = format!("user-secret-{i}");
            e.payment_attempt(&PaymentAttempt {
                amount: 5.0,
                currency: "EUR",
                payment_method: PaymentMethod::Card,
                sender_id: &id,
                sender_country: Some("NL"),
                receiver_country: Some("BE"),
            });
            e.user_activity(&UserActivity {
                user_id: &id,
                activity_type: ActivityType::Login,
                user_tier: UserTier::Premium,
                device_type: DeviceType::Mobile,
                session_duration_ms: Some(1_000.0),
            });
        }
    });
    assert!(!run.series.is_empty());
    for series in &run.series {
        assert!(!series.name.contains("secret"), "{series:?}");
        for (key, value) in &series.tags {
            assert!(
                !key.contains("secret") && !value.contains("secret"),
                "{series:?}"
            );
        }
    }
    for name in [
        payment::UNIQUE_SENDERS,
        user::DAILY_ACTIVE,
        user::MONTHLY_ACTIVE,
    ] {
        assert!(
            !run.recorded.names().iter().any(|n| n == name),
            "{name} is the KPI job's gauge, never a set"
        );
    }
}

#[test]
fn attempts_and_activity_feed_the_uniques() {
    let events = BusinessEvents::default();
    let _ = paymetrics::testing::capture(|| {
        for sender in ["alice", "bob", "carol", "alice", "bob", ""] {
            events.payment_attempt(&PaymentAttempt {
                amount: 30.0,
                currency: "EUR",
                payment_method: PaymentMethod::Card,
                sender_id: sender,
                sender_country: None,
                receiver_country: None,
            });
        }
        for user_id in ["dave", "erin", "dave"] {
            events.user_activity(&UserActivity {
                user_id,
                activity_type: ActivityType::Login,
                user_tier: UserTier::Standard,
                device_type: DeviceType::Tablet,
                session_duration_ms: None,
            });
        }
    });
    let current = events.uniques().current();
    assert_eq!(current.daily_senders.estimate().round(), 3.0);
    assert_eq!(current.daily_active.estimate().round(), 2.0);
    assert_eq!(current.monthly_active.estimate().round(), 2.0);
    let shared = BusinessEvents::new(Arc::clone(events.uniques()));
    assert!(Arc::ptr_eq(shared.uniques(), events.uniques()));
}

#[test]
fn clones_share_cached_handles_across_threads() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<BusinessEvents>();

    let attempt = |e: &BusinessEvents| {
        e.payment_attempt(&PaymentAttempt {
            amount: 15.0,
            currency: "CHF",
            payment_method: PaymentMethod::Card,
            sender_id: "s",
            sender_country: Some("CH"),
            receiver_country: Some("CH"),
        })
    };
    let run = run(|e| {
        // The first use registers the series with this thread's local recorder; the threads
        // below (which have no recorder of their own) record through the cached handles.
        attempt(e);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let e = e.clone();
                scope.spawn(move || (0..1_000).for_each(|_| attempt(&e)));
            }
        });
    });
    let tags = [
        (payment::CURRENCY, "CHF"),
        (payment::PAYMENT_METHOD, "card"),
        (payment::AMOUNT_RANGE, "small"),
        (payment::SENDER_COUNTRY, "CH"),
        (payment::RECEIVER_COUNTRY, "CH"),
    ];
    assert_eq!(run.recorded.counter(payment::ATTEMPTS, &tags), Some(4_001));
}

/// The README's first test: a typed attempt records five tags, and asking for one of them finds
/// it (every series carrying the tag counts).
#[test]
fn one_tag_of_a_typed_attempt_is_enough_to_find_it() {
    let attempt = |amount, currency, payment_method, sender_country| PaymentAttempt {
        amount,
        currency,
        payment_method,
        sender_id: "user-1",
        sender_country: Some(sender_country),
        receiver_country: None,
    };
    let run = run(|events| {
        events.payment_attempt(&attempt(42.0, "EUR", PaymentMethod::Card, "DE"));
        events.payment_attempt(&attempt(900.0, "EUR", PaymentMethod::Wallet, "FR"));
        events.payment_attempt(&attempt(5.0, "USD", PaymentMethod::Card, "US"));
    });
    let recorded = &run.recorded;
    let eur = [(payment::CURRENCY, "EUR")];
    assert_eq!(recorded.counter(payment::ATTEMPTS, &eur), Some(2));
    assert_eq!(
        recorded.histogram(payment::AMOUNT, &eur),
        Some(vec![42.0, 900.0])
    );
    let card = [(payment::PAYMENT_METHOD, "card")];
    assert_eq!(recorded.counter(payment::ATTEMPTS, &card), Some(2));
    let eur_card = [
        (payment::CURRENCY, "EUR"),
        (payment::PAYMENT_METHOD, "card"),
    ];
    assert_eq!(recorded.counter(payment::ATTEMPTS, &eur_card), Some(1));
    assert_eq!(recorded.counter(payment::ATTEMPTS, &[]), Some(3));
    assert_eq!(
        recorded.counter(payment::ATTEMPTS, &[(payment::CURRENCY, "JPY")]),
        None
    );
}
