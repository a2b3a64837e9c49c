//! The paymetrics demo: a small payments API under ten seconds of load, every layer of it
//! instrumented, and what reaches DogStatsD shown as it arrives.
//!
//! ```sh
//! cargo run -p paymetrics-demo                                   # to a DogStatsD listener inside the demo
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p paymetrics-demo  # with a Redis cache in front of SQLite
//! DD_AGENT_HOST=localhost cargo run -p paymetrics-demo           # to your Datadog Agent instead
//! ```
//!
//! Everything runs in this process, on 127.0.0.1, and needs nothing installed:
//!
//! * **The payments API** (axum): `POST /v1/payments` and `GET /v1/payments/{id}`, behind
//!   [`ApiMetricsLayer`] (`api.requests.*`, tagged with the route template and the caller's
//!   tier, which a small auth middleware outside the layer sets).
//! * **Its card processor**, `card-processor`: a second axum service taking 10 to 60 ms, that
//!   now and then answers 503 or 429 or declines a card, and is down for half a second six
//!   seconds into the run. The API calls it through [`ExternalServiceMetricsLayer`] over a
//!   `tower::retry` policy that retries 503 and 429 twice (`external_service.calls.*`).
//! * **Its database**: an in-memory SQLite behind paymetrics-sqlx's [`InstrumentedPool`]
//!   (`database.*`). Each payment is inserted as pending before the processor is called, then
//!   updated with its outcome; `GET` selects it by id.
//! * **Its cache**, when `REDIS_URL` is set: paymetrics-redis's [`InstrumentedConnection`] over
//!   a `ConnectionManager` caches `GET /v1/payments/{id}` (`cache.*`).
//!   Without `REDIS_URL` there is no cache, and every `GET` reads SQLite.
//! * **Business events**: the handlers record payment attempts and completions (status,
//!   processing time, amount, fees), fraud decisions and user activity through
//!   [`BusinessEvents`] (`business.*`). The automation scheduler publishes the KPIs every two
//!   seconds (`kpi.*`), the distinct-user estimates, and process and tokio runtime gauges.
//! * **A load generator**: four workers, each a customer app calling the API over loopback
//!   with plain hyper: 45 % new payments, the rest mostly lookups of recent ones and a few of
//!   unknown ids, 5 to 25 ms apart, for ten seconds and at most 2,000 requests.
//!
//! paymetrics flushes every second. With no agent configured, the demo starts its own DogStatsD
//! listener, parses what arrives by the Agent's rules and shows it as a table, redrawn every
//! second on a terminal (printed once at the end otherwise), grouped so that it fits a screen.
//! With `DD_AGENT_HOST` or `DD_DOGSTATSD_URL` set, paymetrics sends to that agent and the table
//! shows paymetrics' own account instead: the snapshots of its flushes, kept in memory.
//!
//! At the end the demo checks what arrived against what it did (requests answered, payments
//! created, rows in SQLite, outcomes, processor calls and retries, lookups, revenue, packets),
//! and exits non-zero if anything differs.

use std::{
    collections::{BTreeMap, HashMap},
    error::Error,
    fmt::Write as _,
    io::{self, IsTerminal, Write as _},
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{
            AtomicBool, AtomicU64,
            Ordering::{self, Relaxed},
        },
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Extension, Json, Router,
    extract::{Path, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use paymetrics::{
    Paymetrics, PaymetricsBuilder,
    dogstatsd::{ClientTelemetry, DogStatsdBuilder, sanitize},
    events::{
        self, ActivityType, BusinessEvents, DeviceType, FraudAction, FraudDetection,
        PaymentAttempt, PaymentCompletion, PaymentMethod, PaymentStatus, UserActivity, external,
        fraud, payment, user,
    },
    export::{MemoryExporter, MemoryReader},
    histogram::RELATIVE_ERROR,
    kpi::{self, PeriodTotals},
    message::Message as Queued,
    snapshot::{SeriesValue, Snapshot},
    uniques::Uniques,
};
use paymetrics_automation::Automation;
use paymetrics_collectors::{
    process::{self, ProcessCollector},
    runtime::{self, TokioRuntimeCollector},
};
use paymetrics_redis::InstrumentedConnection;
use paymetrics_sqlx::InstrumentedPool;
use paymetrics_testkit::agent::{
    Aggregate, Message, MetricType, SeriesKey, UdpReceiver, parse_payload,
};
use paymetrics_tower::{
    ApiMetricsLayer, EndpointTemplate, ExternalServiceMetricsLayer, UserTier, client, server,
};
use redis::{
    AsyncCommands,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde::{Deserialize, Serialize};
use sqlx::{Sqlite, sqlite::SqlitePoolOptions};
use tokio::{net::TcpListener, sync::oneshot, task::JoinSet};
use tower::{ServiceBuilder, ServiceExt, retry::Policy};

/// How long the load runs.
const RUN_FOR: Duration = Duration::from_secs(10);
/// How often paymetrics flushes, and the table is redrawn.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often the automation scheduler publishes the KPIs.
const KPI_INTERVAL: Duration = Duration::from_secs(2);
/// Concurrent workers of the load generator: modest, for a small machine.
const LOAD_WORKERS: u64 = 4;
/// The most requests the load generator sends, whatever the machine's speed.
const MAX_REQUESTS: u64 = 2_000;
/// How long a customer waits for an answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Simulated customers: `user-1` to `user-250`.
const USERS: u64 = 250;
/// When the card processor is down, from the start of the load.
const OUTAGE: std::ops::Range<Duration> =
    Duration::from_millis(6_000)..Duration::from_millis(6_500);
/// Retries of a charge the processor answered with 503 or 429.
const MAX_RETRIES: u32 = 2;
/// Wait before the first retry; doubled for the second.
const RETRY_BACKOFF: Duration = Duration::from_millis(10);
/// Lifetime of a cached payment, in seconds.
const CACHE_TTL_SECONDS: u64 = 60;

// The routes, which are also the `endpoint` tags.
const PAYMENTS: &str = "/v1/payments";
const PAYMENT: &str = "/v1/payments/{id}";
const CARD_PROCESSOR: &str = "card-processor";
const CHARGES: &str = "/v1/charges";

/// The `database` tag of the service's pool.
const DATABASE: &str = "payments";
const SCHEMA: &str = "CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    fees_cents INTEGER
)";

fn main() -> Result<(), Box<dyn Error>> {
    let agent_variable = ["DD_DOGSTATSD_URL", "DD_AGENT_HOST"]
        .into_iter()
        .find(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());

    // With no agent configured, listen in process and send there; otherwise the builder reads
    // DD_DOGSTATSD_URL, or DD_AGENT_HOST and DD_DOGSTATSD_PORT, itself.
    let listener = match agent_variable {
        None => Some(Listener::start()?),
        Some(_) => None,
    };
    // The exporter counts what it sends and drops either way (`dogstatsd_telemetry()`, shown
    // under the table). Reporting those counts as `datadog.dogstatsd.client.*` metrics, on by
    // default every 10 s, is off here so that the listener receives exactly the packets the
    // client counts; leave it on in a service.
    let mut dogstatsd = DogStatsdBuilder::new()
        .service("paymetrics-demo")
        .telemetry(None);
    if let Some(listener) = &listener {
        dogstatsd = dogstatsd.address(&listener.url);
    }
    let config = dogstatsd.resolve()?;
    // Every flush's snapshot is also kept in memory: paymetrics' own account of what it sent.
    let (flush_log, flushes) = MemoryExporter::new();
    // The windows the scheduler's KPIs are computed from.
    let (window_exporter, windows) = PeriodTotals::window_config().build();
    // Installed globally: the runtime's workers, the flusher and the scheduler all record here.
    let metrics = PaymetricsBuilder::new()
        .flush_interval(FLUSH_INTERVAL)
        .dogstatsd(dogstatsd)
        .exporter(flush_log)
        .exporter(window_exporter)
        .install()?;

    let screen = Screen {
        destination: match agent_variable {
            None => format!("{} (the demo's own listener)", config.address),
            Some(variable) => format!("{} (your agent, from {variable})", config.address),
        },
        source: match listener {
            Some(_) => "What the listener received",
            None => "What paymetrics sent",
        },
        global_tags: config.global_tags.join(" "),
        cache: redis_url.is_some(),
        live: io::stdout().is_terminal(),
    };
    if !screen.live {
        println!(
            "Serving payments for {} s, metrics sent to {}.",
            RUN_FOR.as_secs(),
            screen.destination
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let run = runtime.block_on(serve_under_load(
        &metrics,
        windows,
        redis_url.as_deref(),
        &screen,
        listener.as_ref(),
        &flushes,
    ))?;
    drop(runtime);

    // Send what the last moments recorded, read the exporter's telemetry, and read the listener
    // before shutting paymetrics down: the final flush of `shutdown` sends the gauges again (a
    // gauge goes out at every flush until it has been idle for 30 of them), after the count.
    // An explicit flush puts the next periodic one a whole interval away, so nothing is sent
    // between this flush and the listener's stop.
    metrics.flush();
    let telemetry = metrics.dogstatsd_telemetry().unwrap_or_default();
    let received = listener.map(Listener::finish);
    metrics.shutdown();

    let series = match &received {
        Some(received) => received_series(received),
        None => recorded_series(&flushes.snapshots()),
    };
    let status = status_lines(received.as_ref().map(|r| &r.aggregate), &telemetry);
    let clock = format!("done in {:.1} s", run.elapsed.as_secs_f64());
    if screen.live {
        print!("\x1b[H\x1b[J");
    }
    println!(
        "{}",
        screen.frame(&clock, run.load.answered(), &series, &status)
    );

    let failed = summarize(&run, &series, received.as_ref(), &telemetry);
    if failed > 0 {
        return Err(format!("{failed} check(s) failed").into());
    }
    Ok(())
}

/// What the run did, counted apart from the metrics, to check them against.
struct Run {
    load: LoadReport,
    elapsed: Duration,
    /// Rows in the payments table at the end.
    rows: i64,
    /// Requests the card processor answered, retries included.
    processor_requests: u64,
    /// Whether `GET` went through the Redis cache.
    cache: bool,
}

/// Starts the scheduler, the card processor and the payments API, runs the load against them
/// while drawing the table, then stops everything but paymetrics.
async fn serve_under_load(
    metrics: &Paymetrics,
    windows: paymetrics::window::Windows,
    redis_url: Option<&str>,
    screen: &Screen,
    listener: Option<&Listener>,
    flushes: &MemoryReader,
) -> Result<Run, Box<dyn Error>> {
    // Distinct users, counted in process: the business events feed them, the scheduler
    // publishes them.
    let uniques = Arc::new(Uniques::new(metrics.clock()));
    let events = BusinessEvents::new(Arc::clone(&uniques));
    let automation = Automation::builder(metrics, windows)
        .uniques(uniques)
        .collector(ProcessCollector::new())
        .collector(TokioRuntimeCollector::new(
            &tokio::runtime::Handle::current(),
        ))
        .collector_interval(FLUSH_INTERVAL)
        .kpi_interval(KPI_INTERVAL)
        .hourly_rollups(false)
        .daily_rollups(false)
        .spawn()?;

    let db = open_database().await?;
    let cache = match redis_url {
        Some(url) => Some(connect_cache(url).await?),
        None => None,
    };

    let started = Instant::now();
    let processor = CardProcessor {
        started,
        requests: Arc::new(AtomicU64::new(0)),
        seed: Arc::new(AtomicU64::new(seed())),
    };
    let (processor_addr, stop_processor, processor_server) =
        serve(card_processor(&processor)).await?;
    let api = Api::new(db.clone(), cache, events, processor_addr);
    let (api_addr, stop_api, api_server) = serve(payments_api(api)).await?;

    let load = Arc::new(Mutex::new(Load::default()));
    let mut workers = JoinSet::new();
    for worker in 0..LOAD_WORKERS {
        workers.spawn(generate_load(
            api_addr,
            Arc::clone(&load),
            started + RUN_FOR,
            seed() ^ worker,
        ));
    }

    // On a terminal, redraw the table every second while the load runs. SIGTERM or Ctrl-C ends
    // the run early, and everything recorded so far is still flushed below.
    let seconds = RUN_FOR.as_secs();
    let mut signal = std::pin::pin!(paymetrics::shutdown_signal());
    for second in 0..seconds {
        tokio::select! {
            () = tokio::time::sleep_until((started + Duration::from_secs(second)).into()) => {}
            () = &mut signal => {
                lock(&load).stopped = true;
                break;
            }
        }
        if screen.live {
            let telemetry = metrics.dogstatsd_telemetry().unwrap_or_default();
            let answered = lock(&load).report.answered();
            let frame = {
                let received = listener.map(|l| lock(&l.received));
                let series = match received.as_deref() {
                    Some(received) => received_series(received),
                    None => recorded_series(&flushes.snapshots()),
                };
                let status = status_lines(received.as_deref().map(|r| &r.aggregate), &telemetry);
                drop(received); // let the listener go on while the frame is drawn
                screen.frame(
                    &format!("{second} s of {seconds}"),
                    answered,
                    &series,
                    &status,
                )
            };
            // Cursor to the top left, clear the screen from there, draw.
            print!("\x1b[H\x1b[J{frame}");
            io::stdout().flush()?;
        }
    }
    while let Some(done) = workers.join_next().await {
        done?;
    }
    let elapsed = started.elapsed();

    // Read through the bare pool, so that this count is not itself a recorded query.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(db.get_ref())
        .await?;

    // Stop the API, then the processor it calls, each once its connections are done (so every
    // request has been recorded), then the scheduler, before paymetrics' last flush.
    for (stop, server) in [(stop_api, api_server), (stop_processor, processor_server)] {
        let _ = stop.send(());
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(served) => served??,
            Err(_) => return Err("a server did not stop within 5 s".into()),
        }
    }
    automation.shutdown().await;
    db.close().await;

    let load = std::mem::take(&mut lock(&load).report);
    Ok(Run {
        load,
        elapsed,
        rows,
        processor_requests: processor.requests.load(Relaxed),
        cache: redis_url.is_some(),
    })
}

/// Serves `app` on 127.0.0.1 until the returned sender fires.
async fn serve(
    app: Router,
) -> io::Result<(
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<io::Result<()>>,
)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok((addr, stop, server))
}

// The payments API.

/// The service's state: its database, cache, card processor client and business events.
#[derive(Clone)]
struct Api {
    db: InstrumentedPool<Sqlite>,
    cache: Option<InstrumentedConnection<ConnectionManager>>,
    processor: ProcessorClient,
    charges_url: Arc<str>,
    events: BusinessEvents,
    /// When each user was first seen: their session so far, for `user_activity`.
    sessions: Arc<Mutex<HashMap<String, Instant>>>,
    /// Payment ids: this run's prefix (the Redis cache outlives the in-memory database) and a
    /// sequence number.
    run: u32,
    next_id: Arc<AtomicU64>,
    seed: Arc<AtomicU64>,
}

/// The card processor's client: one logical call per charge, recorded by the client layer
/// outside the retries.
type ProcessorClient = client::ExternalServiceMetrics<
    tower::retry::Retry<client::CountRetries<RetryTransient>, HttpClient>,
>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

impl Api {
    fn new(
        db: InstrumentedPool<Sqlite>,
        cache: Option<InstrumentedConnection<ConnectionManager>>,
        events: BusinessEvents,
        processor: SocketAddr,
    ) -> Self {
        let processor_client = ServiceBuilder::new()
            .layer(
                ExternalServiceMetricsLayer::new(CARD_PROCESSOR)
                    .retry(RetryTransient { left: MAX_RETRIES }),
            )
            .service(http_client());
        Self {
            db,
            cache,
            processor: processor_client,
            charges_url: format!("http://{processor}{CHARGES}").into(),
            events,
            sessions: Arc::default(),
            run: seed() as u32,
            next_id: Arc::new(AtomicU64::new(1)),
            seed: Arc::new(AtomicU64::new(seed())),
        }
    }

    fn rng(&self) -> Rng {
        Rng(self.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed))
    }

    fn session_ms(&self, user_id: &str) -> f64 {
        let mut sessions = lock(&self.sessions);
        let first = sessions
            .entry(user_id.to_owned())
            .or_insert_with(Instant::now);
        first.elapsed().as_secs_f64() * 1e3
    }
}

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The caller, as the auth middleware found it.
#[derive(Debug, Clone)]
struct Caller {
    user_id: String,
    tier: events::UserTier,
    device: DeviceType,
}

impl Caller {
    /// `user-N`: every 20th user is a business, every 5th premium; most are on mobile.
    fn from_user_id(user_id: &str) -> Option<Self> {
        let n: u64 = user_id.strip_prefix("user-")?.parse().ok()?;
        let tier = match n {
            n if n % 20 == 0 => events::UserTier::Business,
            n if n % 5 == 0 => events::UserTier::Premium,
            _ => events::UserTier::Standard,
        };
        let device = [
            DeviceType::Mobile,
            DeviceType::Mobile,
            DeviceType::Desktop,
            DeviceType::Tablet,
        ][(n % 4) as usize];
        Some(Self {
            user_id: user_id.to_owned(),
            tier,
            device,
        })
    }
}

/// A stand-in for authentication, outside the metrics layer: finds the caller and puts their
/// tier where [`ApiMetricsLayer`] reads the `user_tier` tag from.
async fn authenticate(mut request: Request, next: Next) -> Response {
    let user_id = request.headers().get("x-user-id");
    let caller = user_id
        .and_then(|id| id.to_str().ok())
        .and_then(Caller::from_user_id);
    let Some(caller) = caller else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    request
        .extensions_mut()
        .insert(UserTier::new(caller.tier.as_str()));
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn payments_api(api: Api) -> Router {
    Router::new()
        .route(PAYMENTS, post(create_payment))
        .route(PAYMENT, get(get_payment))
        .layer(ApiMetricsLayer::new())
        .layer(middleware::from_fn(authenticate))
        .with_state(api)
}

/// `POST /v1/payments`.
#[derive(Debug, Serialize, Deserialize)]
struct NewPayment {
    amount: f64,
    currency: String,
    payment_method: String,
    sender_country: String,
    receiver_country: String,
}

/// A payment, as the API returns it.
#[derive(Debug, Serialize, Deserialize)]
struct PaymentView {
    id: String,
    amount: f64,
    currency: String,
    payment_method: String,
    status: String,
    reason: Option<String>,
    fees: Option<f64>,
}

/// A row of the payments table, as `GET` selects it.
type PaymentRow = (
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
);

impl From<PaymentRow> for PaymentView {
    fn from(
        (id, amount_cents, currency, payment_method, status, reason, fees_cents): PaymentRow,
    ) -> Self {
        Self {
            id,
            amount: amount_cents as f64 / 100.0,
            currency,
            payment_method,
            status,
            reason,
            fees: fees_cents.map(|cents| cents as f64 / 100.0),
        }
    }
}

fn payment_method(name: &str) -> PaymentMethod {
    match name {
        "card" => PaymentMethod::Card,
        "bank" => PaymentMethod::Bank,
        "wallet" => PaymentMethod::Wallet,
        _ => PaymentMethod::Other,
    }
}

fn internal_error(error: impl std::fmt::Display) -> Response {
    let body = format!("{{\"error\":{:?}}}", error.to_string());
    json_response(StatusCode::INTERNAL_SERVER_ERROR, body)
}

fn json_response(status: StatusCode, body: String) -> Response {
    let content_type = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    (status, content_type, body).into_response()
}

/// Records the attempt, stores the payment as pending, screens it for fraud, charges the card
/// unless the fraud model blocked it, stores the outcome and records the completion. Answers
/// 201 when completed, 402 when declined (by the fraud model or the issuer), 502 when the
/// processor failed.
async fn create_payment(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Json(new): Json<NewPayment>,
) -> Response {
    let started = Instant::now();
    let method = payment_method(&new.payment_method);
    api.events.user_activity(&UserActivity {
        user_id: &caller.user_id,
        activity_type: ActivityType::PaymentSent,
        user_tier: caller.tier,
        device_type: caller.device,
        session_duration_ms: Some(api.session_ms(&caller.user_id)),
    });
    api.events.payment_attempt(&PaymentAttempt {
        amount: new.amount,
        currency: &new.currency,
        payment_method: method,
        sender_id: &caller.user_id,
        sender_country: Some(&new.sender_country),
        receiver_country: Some(&new.receiver_country),
    });

    let id = format!(
        "pay_{:08x}{:06}",
        api.run,
        api.next_id.fetch_add(1, Relaxed)
    );
    let amount_cents = (new.amount * 100.0).round() as i64;
    let inserted = sqlx::query(
        "INSERT INTO payments (id, user_id, amount_cents, currency, payment_method, status) \
         VALUES (?, ?, ?, ?, ?, 'pending')",
    )
    .bind(id.clone())
    .bind(caller.user_id.clone())
    .bind(amount_cents)
    .bind(new.currency.clone())
    .bind(new.payment_method.clone())
    .execute(&api.db)
    .await;
    if let Err(e) = inserted {
        return internal_error(e);
    }

    let (status, reason) = match screen_for_fraud(&api, &new).await {
        FraudAction::Block => (PaymentStatus::Declined, Some("fraud")),
        _ => charge(&api, amount_cents, &new.currency).await,
    };
    // 2.9 % + 0.30, on completed payments only.
    let fees = status.is_success().then_some(new.amount * 0.029 + 0.30);
    let fees_cents = fees.map(|f| (f * 100.0).round() as i64);
    let updated =
        sqlx::query("UPDATE payments SET status = ?, reason = ?, fees_cents = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(reason)
            .bind(fees_cents)
            .bind(id.clone())
            .execute(&api.db)
            .await;
    if let Err(e) = updated {
        return internal_error(e);
    }
    api.events.payment_completion(&PaymentCompletion {
        status,
        amount: new.amount,
        fees,
        currency: &new.currency,
        payment_method: method,
        processing_time_ms: Some(started.elapsed().as_secs_f64() * 1e3),
    });

    let code = match status {
        PaymentStatus::Completed => StatusCode::CREATED,
        PaymentStatus::Declined => StatusCode::PAYMENT_REQUIRED,
        _ => StatusCode::BAD_GATEWAY,
    };
    let view = PaymentView {
        id,
        amount: amount_cents as f64 / 100.0,
        currency: new.currency,
        payment_method: new.payment_method,
        status: status.as_str().to_owned(),
        reason: reason.map(str::to_owned),
        fees: fees_cents.map(|cents| cents as f64 / 100.0),
    };
    (code, Json(view)).into_response()
}

/// A stand-in fraud model: a score skewed low, higher for large amounts and cross-border
/// payments; above 90 it blocks, above 75 it queues for review, above 60 it asks for 3-D
/// Secure (which the demo's customers always pass).
async fn screen_for_fraud(api: &Api, new: &NewPayment) -> FraudAction {
    let started = Instant::now();
    let mut rng = api.rng();
    tokio::time::sleep(Duration::from_micros(500 + rng.below(1_500))).await;
    let mut score = 100.0 * rng.unit().powi(4);
    if new.amount > 1_000.0 {
        score += 15.0;
    }
    if new.sender_country != new.receiver_country {
        score += 5.0;
    }
    let score = score.min(100.0);
    let action = match score {
        s if s > 90.0 => FraudAction::Block,
        s if s > 75.0 => FraudAction::Review,
        s if s > 60.0 => FraudAction::Challenge,
        _ => FraudAction::Allow,
    };
    api.events.fraud_detection(&FraudDetection {
        action,
        risk_score: score,
        model_version: Some("demo-2025.1"),
        detection_time_ms: Some(started.elapsed().as_secs_f64() * 1e3),
        amount: Some(new.amount),
    });
    action
}

/// `POST /v1/charges` to the card processor.
#[derive(Debug, Serialize, Deserialize)]
struct Charge {
    amount_cents: i64,
    currency: String,
}

/// Charges the card: completed on 200, declined on 402, failed on anything else once the
/// retries are spent (or on a connection error).
async fn charge(
    api: &Api,
    amount_cents: i64,
    currency: &str,
) -> (PaymentStatus, Option<&'static str>) {
    let body = serde_json::to_vec(&Charge {
        amount_cents,
        currency: currency.to_owned(),
    })
    .expect("a charge serialises");
    let request = http::Request::post(&*api.charges_url)
        .header(CONTENT_TYPE, "application/json")
        .extension(EndpointTemplate::new(CHARGES))
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request");
    match api.processor.clone().oneshot(request).await {
        Ok(response) => {
            let status = response.status();
            // Read the body to its end, so that the connection goes back to the pool.
            let _ = response.into_body().collect().await;
            match status {
                StatusCode::OK => (PaymentStatus::Completed, None),
                StatusCode::PAYMENT_REQUIRED => (PaymentStatus::Declined, Some("card_declined")),
                _ => (PaymentStatus::Failed, Some("processor_unavailable")),
            }
        }
        Err(_) => (PaymentStatus::Failed, Some("processor_unreachable")),
    }
}

/// Retries a charge the processor answered with 503 or 429, or could not be sent, up to
/// [`MAX_RETRIES`] times with a doubling backoff. Tower clones it for each call.
#[derive(Debug, Clone)]
struct RetryTransient {
    left: u32,
}

impl<E> Policy<http::Request<Full<Bytes>>, http::Response<Incoming>, E> for RetryTransient {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut http::Request<Full<Bytes>>,
        result: &mut Result<http::Response<Incoming>, E>,
    ) -> Option<Self::Future> {
        let transient = match result {
            Ok(response) => matches!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
            ),
            Err(_) => true,
        };
        if !transient || self.left == 0 {
            return None;
        }
        self.left -= 1;
        let attempt = MAX_RETRIES - self.left;
        Some(tokio::time::sleep(RETRY_BACKOFF * attempt))
    }

    fn clone_request(
        &mut self,
        request: &http::Request<Full<Bytes>>,
    ) -> Option<http::Request<Full<Bytes>>> {
        let mut clone = http::Request::new(request.body().clone());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.headers_mut() = request.headers().clone();
        Some(clone)
    }
}

/// `GET /v1/payments/{id}`: from the cache if there is one and it has the payment, else from
/// SQLite (then cached); 404 for an unknown id.
async fn get_payment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let key = format!("payment:{id}");
    if let Some(mut cache) = api.cache.clone() {
        // A cache error is a miss: the database answers.
        let cached: redis::RedisResult<Option<String>> = cache.get(key.as_str()).await;
        if let Ok(Some(cached)) = cached {
            return json_response(StatusCode::OK, cached);
        }
    }
    let row: Result<Option<PaymentRow>, _> = sqlx::query_as(
        "SELECT id, amount_cents, currency, payment_method, status, reason, fees_cents \
         FROM payments WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(&api.db)
    .await;
    let view = match row {
        Ok(Some(row)) => PaymentView::from(row),
        Ok(None) => {
            let body = String::from("{\"error\":\"no such payment\"}");
            return json_response(StatusCode::NOT_FOUND, body);
        }
        Err(e) => return internal_error(e),
    };
    let body = serde_json::to_string(&view).expect("a payment serialises");
    if let Some(mut cache) = api.cache.clone() {
        let _: redis::RedisResult<()> = cache
            .set_ex(key.as_str(), body.as_str(), CACHE_TTL_SECONDS)
            .await;
    }
    json_response(StatusCode::OK, body)
}

/// An in-memory SQLite database with the payments table. The pool's connections share it
/// (sqlx opens `sqlite::memory:` in shared-cache mode), and it lives while one of them is
/// open, so the pool keeps one.
async fn open_database() -> Result<InstrumentedPool<Sqlite>, sqlx::Error> {
    let bare = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await?;
    // Through the bare pool: only the service's own queries are recorded.
    sqlx::raw_sql(SCHEMA).execute(&bare).await?;
    Ok(InstrumentedPool::builder(bare).database(DATABASE).build())
}

async fn connect_cache(url: &str) -> Result<InstrumentedConnection<ConnectionManager>, String> {
    // Neither message repeats the URL: it may hold a password.
    let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    let manager = client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|e| {
            format!(
                "REDIS_URL is set but Redis did not answer ({e}); unset it to run without a cache"
            )
        })?;
    Ok(InstrumentedConnection::new(manager))
}

// The card processor.

/// A fake card processor: 10 to 60 ms per charge; 4 % answered 503 and 2 % 429 (which the
/// API retries), 5 % of cards declined (402); down (503) during [`OUTAGE`].
#[derive(Clone)]
struct CardProcessor {
    started: Instant,
    /// Requests answered, retries included.
    requests: Arc<AtomicU64>,
    seed: Arc<AtomicU64>,
}

fn card_processor(processor: &CardProcessor) -> Router {
    Router::new()
        .route(CHARGES, post(process_charge))
        .with_state(processor.clone())
}

async fn process_charge(
    State(processor): State<CardProcessor>,
    Json(_charge): Json<Charge>,
) -> Response {
    let mut rng = Rng(processor.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed));
    let latency_ms = (22.0 * (0.45 * rng.normal()).exp()).clamp(10.0, 60.0);
    tokio::time::sleep(Duration::from_secs_f64(latency_ms / 1e3)).await;
    let down = OUTAGE.contains(&processor.started.elapsed());
    let roll = rng.unit();
    let (status, body) = match roll {
        _ if down => (StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"outage\"}"),
        r if r < 0.04 => (StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"busy\"}"),
        r if r < 0.06 => (
            StatusCode::TOO_MANY_REQUESTS,
            "{\"error\":\"rate_limited\"}",
        ),
        r if r < 0.11 => (
            StatusCode::PAYMENT_REQUIRED,
            "{\"decline_code\":\"insufficient_funds\"}",
        ),
        _ => (StatusCode::OK, "{\"outcome\":\"approved\"}"),
    };
    processor.requests.fetch_add(1, Relaxed);
    json_response(status, body.to_owned())
}

// The load generator.

/// What the load generator saw, from the customers' side of the API.
#[derive(Debug, Default)]
struct LoadReport {
    /// Responses by method, route and status.
    responses: BTreeMap<(&'static str, &'static str, u16), u64>,
    /// Requests that got no response.
    transport_errors: u64,
    /// Payments created (answered with an id), by their status.
    payments: BTreeMap<String, u64>,
    /// Payments the fraud model blocked.
    blocked: u64,
    /// Total of completed payments' amounts.
    completed_volume: f64,
}

impl LoadReport {
    fn answered(&self) -> u64 {
        self.responses.values().sum()
    }

    fn created(&self) -> u64 {
        self.payments.values().sum()
    }

    fn lookups(&self) -> u64 {
        let gets = self.responses.iter().filter(|((m, ..), _)| *m == "GET");
        gets.map(|(_, n)| n).sum()
    }
}

/// Shared by the workers: the ids created so far, the requests sent, the report.
#[derive(Debug, Default)]
struct Load {
    ids: Vec<String>,
    sent: u64,
    /// Set on SIGTERM or Ctrl-C: workers finish the request they are in, then stop.
    stopped: bool,
    report: LoadReport,
}

/// One customer app's worker: requests until `deadline` or until [`MAX_REQUESTS`] are sent,
/// 5 to 25 ms apart.
async fn generate_load(api: SocketAddr, load: Arc<Mutex<Load>>, deadline: Instant, seed: u64) {
    let client = http_client();
    let mut rng = Rng(seed);
    let base = format!("http://{api}");
    while Instant::now() < deadline {
        let known = {
            let mut load = lock(&load);
            if load.sent == MAX_REQUESTS || load.stopped {
                break;
            }
            load.sent += 1;
            // Mostly recent payments: a customer looks at what they just paid.
            let back = (load.ids.len() as f64 * rng.unit().powi(5)) as usize;
            let index = load.ids.len().checked_sub(1 + back);
            index.map(|i| load.ids[i].clone())
        };
        let user = format!("user-{}", 1 + rng.below(USERS));
        let roll = rng.unit();
        let (method, route, request) = match known {
            Some(id) if roll >= 0.45 => {
                let id = if roll < 0.97 {
                    id
                } else {
                    format!("pay_unknown{}", rng.below(1_000_000))
                };
                let request =
                    http::Request::get(format!("{base}/v1/payments/{id}")).body(Full::default());
                ("GET", PAYMENT, request)
            }
            _ => {
                let new = NewPayment::random(&mut rng);
                let body = serde_json::to_vec(&new).expect("a payment serialises");
                let request = http::Request::post(format!("{base}{PAYMENTS}"))
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)));
                ("POST", PAYMENTS, request)
            }
        };
        let mut request = request.expect("a valid request");
        let user = HeaderValue::from_str(&user).expect("a valid header");
        request.headers_mut().insert("x-user-id", user);

        let exchange = async {
            let response = client.request(request).await.ok()?;
            let status = response.status();
            let body = response.into_body().collect().await.ok()?;
            Some((status, body.to_bytes()))
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await;
        let answer = answer.ok().flatten();
        {
            let mut load = lock(&load);
            match answer {
                Some((status, body)) => {
                    let key = (method, route, status.as_u16());
                    *load.report.responses.entry(key).or_default() += 1;
                    if method == "POST"
                        && let Ok(payment) = serde_json::from_slice::<PaymentView>(&body)
                    {
                        load.record_payment(payment);
                    }
                }
                None => load.report.transport_errors += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(5 + rng.below(21))).await;
    }
}

impl Load {
    fn record_payment(&mut self, payment: PaymentView) {
        let report = &mut self.report;
        *report.payments.entry(payment.status.clone()).or_default() += 1;
        if payment.reason.as_deref() == Some("fraud") {
            report.blocked += 1;
        }
        if payment.status == PaymentStatus::Completed.as_str() {
            report.completed_volume += payment.amount;
        }
        self.ids.push(payment.id);
    }
}

impl NewPayment {
    /// Amounts log-normal around 80 (a few of every amount range), in USD, EUR or GBP, by
    /// card, bank or wallet, mostly domestic.
    fn random(rng: &mut Rng) -> Self {
        let amount = (80.0 * (1.3 * rng.normal()).exp()).clamp(1.0, 50_000.0);
        let currency = match rng.unit() {
            r if r < 0.5 => "USD",
            r if r < 0.8 => "EUR",
            _ => "GBP",
        };
        let countries: &[&str] = match currency {
            "USD" => &["US"],
            "EUR" => &["DE", "FR", "NL", "ES"],
            _ => &["GB"],
        };
        let sender = rng.choose(countries);
        let receiver = if rng.unit() < 0.85 {
            sender
        } else {
            rng.choose(&["US", "GB", "DE", "FR", "IE", "CA"])
        };
        Self {
            amount: (amount * 100.0).round() / 100.0,
            currency: currency.to_owned(),
            payment_method: rng.choose(&["card", "card", "bank", "wallet"]).to_owned(),
            sender_country: sender.to_owned(),
            receiver_country: receiver.to_owned(),
        }
    }
}

/// SplitMix64: the demo needs variety, not a dependency.
struct Rng(u64);

/// A seed from the clock.
fn seed() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    Rng(now.unwrap_or_default().as_nanos() as u64).next_u64()
}

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn choose<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit(); // in (0, 1]: its logarithm is finite
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// The in-process DogStatsD listener.

/// A stand-in for the Datadog Agent: a UDP socket read on a background thread, each payload
/// parsed and aggregated as the Agent would.
struct Listener {
    url: String,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// What arrived: the Agent's aggregate, and each distribution's values with their weights
/// (what the Agent's sketches are built from), for percentiles.
#[derive(Default)]
struct Received {
    aggregate: Aggregate,
    samples: HashMap<SeriesKey, Vec<(f64, f64)>>,
}

impl Received {
    fn ingest(&mut self, payload: &[u8]) {
        self.aggregate.ingest(payload);
        let Ok(messages) = parse_payload(payload) else {
            return; // counted as a parse error by the aggregate
        };
        for message in messages {
            let Message::Metric(m) = message else {
                continue;
            };
            if m.kind != MetricType::Distribution {
                continue;
            }
            // The Agent's weight of a sampled value: 1 / rate, truncated.
            let weight = if m.sample_rate > 0.0 && m.sample_rate <= 1.0 {
                (1.0 / m.sample_rate).trunc()
            } else {
                1.0
            };
            let mut tags = m.tags;
            tags.sort();
            let key = SeriesKey {
                name: m.name,
                kind: m.kind,
                tags,
            };
            let samples = self.samples.entry(key).or_default();
            samples.extend(m.values.iter().map(|&v| (v, weight)));
        }
    }
}

impl Listener {
    fn start() -> io::Result<Self> {
        let socket = UdpReceiver::bind()?;
        let url = socket.url();
        let received = Arc::new(Mutex::new(Received::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let received = Arc::clone(&received);
            let stop = Arc::clone(&stop);
            move || {
                loop {
                    match socket.recv_timeout(Duration::from_millis(100)) {
                        Some(payload) => lock(&received).ingest(&payload),
                        // Stopped, and nothing left to read.
                        None if stop.load(Ordering::Acquire) => break,
                        None => {}
                    }
                }
            }
        });
        Ok(Self {
            url,
            received,
            stop,
            thread,
        })
    }

    /// Reads everything sent before this call, then stops and returns what arrived.
    fn finish(self) -> Received {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("the listener thread panicked");
        std::mem::take(&mut lock(&self.received))
    }
}

// Series, from the listener or from paymetrics' snapshots.

/// One series, as the listener received it or as paymetrics' flushes sent it.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    /// `key:value`, sorted.
    tags: Vec<String>,
    value: Value,
}

#[derive(Debug, Clone)]
enum Value {
    /// A counter's total.
    Count(f64),
    /// A gauge's last value.
    Gauge(f64),
    /// A distribution's samples.
    Distribution(Distribution),
}

/// Samples: their number and sum, and the values they were sent as, with their weights.
#[derive(Debug, Clone, Default)]
struct Distribution {
    count: f64,
    sum: f64,
    values: Vec<(f64, f64)>,
}

impl Distribution {
    fn merge(&mut self, other: &Distribution) {
        self.count += other.count;
        self.sum += other.sum;
        self.values.extend_from_slice(&other.values);
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The sum of samples that are whole numbers (retry counts), each value rounded back from
    /// its bucket to the number it stands for.
    fn whole_sum(&self) -> f64 {
        let values = self.values.iter();
        values.fold(0.0, |sum, (value, weight)| sum + value.round() * weight)
    }

    /// The `q` quantile, as the Agent computes it from the values it was sent (within the
    /// buckets' relative error).
    fn quantile(&self, q: f64) -> Option<f64> {
        let mut values = self.values.clone();
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = values.iter().map(|(_, w)| w).sum();
        let rank = q * total;
        let mut seen = 0.0;
        for (value, weight) in values {
            seen += weight;
            if seen >= rank {
                return Some(value);
            }
        }
        None
    }
}

impl Series {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find_map(|tag| {
            let (k, v) = tag.split_once(':')?;
            (k == key).then_some(v)
        })
    }

    fn has(&self, tags: &[(&str, &str)]) -> bool {
        tags.iter().all(|&(k, v)| self.tag(k) == Some(v))
    }

    /// A counter's total, a distribution's number of samples; 0 for a gauge.
    fn count(&self) -> f64 {
        match &self.value {
            Value::Count(n) => *n,
            Value::Distribution(d) => d.count,
            Value::Gauge(_) => 0.0,
        }
    }
}

/// What the listener received, totalled over every payload as the Agent would.
fn received_series(received: &Received) -> Vec<Series> {
    let aggregate = &received.aggregate;
    let rows = aggregate.series.iter().map(|(key, total)| {
        let value = match key.kind {
            MetricType::Count | MetricType::Set => Value::Count(total.count),
            MetricType::Gauge => Value::Gauge(total.sum),
            MetricType::Distribution | MetricType::Histogram | MetricType::Timing => {
                Value::Distribution(Distribution {
                    count: total.count,
                    sum: total.sum,
                    values: received.samples.get(key).cloned().unwrap_or_default(),
                })
            }
        };
        Series {
            name: key.name.clone(),
            tags: key.tags.clone(),
            value,
        }
    });
    rows.collect()
}

/// What paymetrics sent, merged over its flushes: counter totals, gauges' last values, every
/// sample of each distribution (as its bucket), and the scheduler's timestamped points.
fn recorded_series(snapshots: &[Snapshot]) -> Vec<Series> {
    let mut merged: BTreeMap<(String, Vec<String>), Value> = BTreeMap::new();
    for snapshot in snapshots {
        for series in &snapshot.series {
            let value = match &series.value {
                SeriesValue::Counter(c) => Value::Count(c.delta as f64),
                SeriesValue::Gauge(g) => Value::Gauge(g.value),
                SeriesValue::Histogram(h) => Value::Distribution(Distribution {
                    count: h.count as f64,
                    sum: h.sum,
                    values: h.buckets().map(|(v, n)| (v, n as f64)).collect(),
                }),
            };
            // As they go out on the wire: `{id}` becomes `:id`, for one.
            let labels = series.key.labels();
            let mut tags: Vec<String> = labels.map(|l| sanitize::tag(l.key(), l.value())).collect();
            tags.sort();
            add_series(&mut merged, series.key.name().to_owned(), tags, value);
        }
        for message in &snapshot.messages {
            if let Queued::Timestamped(point) = message {
                let mut tags: Vec<String> =
                    point.tags.iter().map(|t| sanitize::raw_tag(t)).collect();
                tags.sort();
                add_series(
                    &mut merged,
                    point.name.clone(),
                    tags,
                    Value::Gauge(point.value),
                );
            }
        }
    }
    let rows = merged
        .into_iter()
        .map(|((name, tags), value)| Series { name, tags, value });
    rows.collect()
}

fn add_series(
    merged: &mut BTreeMap<(String, Vec<String>), Value>,
    name: String,
    tags: Vec<String>,
    value: Value,
) {
    use std::collections::btree_map::Entry;
    match merged.entry((name, tags)) {
        Entry::Vacant(entry) => {
            entry.insert(value);
        }
        Entry::Occupied(mut entry) => match (entry.get_mut(), value) {
            (Value::Count(total), Value::Count(more)) => *total += more,
            (Value::Gauge(last), Value::Gauge(newer)) => *last = newer,
            (Value::Distribution(d), Value::Distribution(more)) => d.merge(&more),
            _ => {}
        },
    }
}

/// Queries over a set of series.
struct View<'a>(&'a [Series]);

impl View<'_> {
    fn matching<'s>(
        &'s self,
        name: &'s str,
        tags: &'s [(&'s str, &'s str)],
    ) -> impl Iterator<Item = &'s Series> + 's {
        self.0.iter().filter(move |s| s.name == name && s.has(tags))
    }

    /// A counter's total, or a distribution's number of samples, over the matching series.
    fn count(&self, name: &str, tags: &[(&str, &str)]) -> f64 {
        // A fold from 0.0: `sum()` of no floats is -0.0, which prints as "-0".
        self.matching(name, tags)
            .fold(0.0, |total, s| total + s.count())
    }

    /// The matching distributions, merged.
    fn distribution(&self, name: &str, tags: &[(&str, &str)]) -> Distribution {
        let mut merged = Distribution::default();
        for s in self.matching(name, tags) {
            if let Value::Distribution(d) = &s.value {
                merged.merge(d);
            }
        }
        merged
    }

    /// The last value of the matching gauges, summed over them.
    fn gauge(&self, name: &str, tags: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, tags)
            .filter_map(|s| match s.value {
                Value::Gauge(v) => Some(v),
                _ => None,
            })
            .reduce(|a, b| a + b)
    }

    /// The values of tag `key` on the series named `name`, with the count of each.
    fn by_tag(&self, name: &str, key: &str) -> BTreeMap<String, f64> {
        let mut values = BTreeMap::new();
        for s in self.matching(name, &[]) {
            if let Some(value) = s.tag(key) {
                *values.entry(value.to_owned()).or_default() += s.count();
            }
        }
        values
    }

    /// The distinct combinations of the tags `keys` on the series named `name`.
    fn groups(&self, name: &str, keys: &[&str]) -> Vec<Vec<String>> {
        let mut groups: Vec<Vec<String>> = self
            .matching(name, &[])
            .map(|s| {
                let values = keys.iter().map(|k| s.tag(k).unwrap_or("-").to_owned());
                values.collect()
            })
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }
}

// The table.

/// What the screen shows around the table.
struct Screen {
    destination: String,
    source: &'static str,
    global_tags: String,
    cache: bool,
    live: bool,
}

impl Screen {
    fn frame(&self, clock: &str, requests: u64, series: &[Series], status: &str) -> String {
        let mut out = format!(
            "paymetrics demo · {clock} · {requests} requests · to {}\n",
            self.destination
        );
        let _ = writeln!(
            out,
            "{} over the run, times in ms · every series tagged {}",
            self.source, self.global_tags
        );
        let view = View(series);
        render_api(&view, &mut out);
        render_external(&view, &mut out);
        render_business(&view, &mut out);
        render_database(&view, &mut out);
        render_cache(&view, self.cache, &mut out);
        render_automation(&view, &mut out);
        let _ = write!(out, "\n{status}");
        out
    }
}

/// `  avg ms  p95 ms` of a distribution, or blanks.
fn times(d: &Distribution) -> String {
    match (d.mean(), d.quantile(0.95)) {
        (Some(mean), Some(p95)) => format!("{mean:>8.1}{p95:>8.1}"),
        _ => format!("{:>8}{:>8}", "-", "-"),
    }
}

fn render_api(view: &View, out: &mut String) {
    use server::{
        ENDPOINT, ERROR, METHOD, REQUESTS_COUNT, REQUESTS_ERROR_RATE, REQUESTS_IN_FLIGHT,
        REQUESTS_RESPONSE_TIME, STATUS_CODE, USER_TIER,
    };
    let _ = writeln!(
        out,
        "{:<50}{:>8}{:>8}{:>8}",
        "API · api.requests.*", "requests", "avg", "p95"
    );
    let groups = view.groups(REQUESTS_COUNT, &[METHOD, ENDPOINT, STATUS_CODE]);
    if groups.is_empty() {
        out.push_str("  (nothing yet)\n");
    }
    // Routes in the order a client meets them: POST first.
    let mut groups = groups;
    groups.sort_by(|a, b| b[0].cmp(&a[0]).then_with(|| a[1..].cmp(&b[1..])));
    for group in &groups {
        let tags = [
            (METHOD, group[0].as_str()),
            (ENDPOINT, group[1].as_str()),
            (STATUS_CODE, group[2].as_str()),
        ];
        let route = format!("{:<4} {}", group[0], group[1]);
        let _ = writeln!(
            out,
            "  {route:<38}{:>10}{:>8.0}{}",
            group[2],
            view.count(REQUESTS_COUNT, &tags),
            times(&view.distribution(REQUESTS_RESPONSE_TIME, &tags))
        );
    }
    let total = view.count(REQUESTS_COUNT, &[]);
    let errors = view.count(REQUESTS_ERROR_RATE, &[(ERROR, "true")]);
    let tiers = view.by_tag(REQUESTS_COUNT, USER_TIER);
    let tiers: Vec<String> = tiers.iter().map(|(t, n)| format!("{t} {n:.0}")).collect();
    let in_flight = view.gauge(REQUESTS_IN_FLIGHT, &[]).unwrap_or(0.0);
    let _ = writeln!(
        out,
        "  error rate {:.1} % · in flight {in_flight:.0} · by tier: {}",
        100.0 * errors / total.max(1.0),
        tiers.join(" · ")
    );
}

fn render_external(view: &View, out: &mut String) {
    use external::{
        CALLS_COUNT, CALLS_RESPONSE_TIME, CALLS_RETRY_COUNT, CALLS_SUCCESS_RATE, ENDPOINT, METHOD,
        SERVICE_NAME, SUCCESS,
    };
    let _ = writeln!(
        out,
        "{:<34}{:>8}{:>8}{:>8}{:>8}{:>8}",
        "External · external_service.calls.*", "calls", "failed", "retries", "avg", "p95"
    );
    for group in view.groups(CALLS_COUNT, &[SERVICE_NAME, METHOD, ENDPOINT]) {
        let tags = [
            (SERVICE_NAME, group[0].as_str()),
            (METHOD, group[1].as_str()),
            (ENDPOINT, group[2].as_str()),
        ];
        let failed = [tags[0], tags[1], tags[2], (SUCCESS, "false")];
        let _ = writeln!(
            out,
            "  {:<32}{:>8.0}{:>8.0}{:>8.0}{}",
            group.join(" "),
            view.count(CALLS_COUNT, &tags),
            view.count(CALLS_SUCCESS_RATE, &failed),
            view.distribution(CALLS_RETRY_COUNT, &tags).whole_sum(),
            times(&view.distribution(CALLS_RESPONSE_TIME, &tags))
        );
    }
}

fn render_business(view: &View, out: &mut String) {
    out.push_str("Business · business.*\n");
    let attempts = view.count(payment::ATTEMPTS, &[]);
    let statuses = view.by_tag(payment::COMPLETIONS, payment::STATUS);
    let statuses: Vec<String> = statuses
        .iter()
        .map(|(s, n)| format!("{n:.0} {s}"))
        .collect();
    let processing = view.distribution(payment::PROCESSING_TIME, &[]);
    let _ = writeln!(
        out,
        "  payments  {attempts:.0} attempts: {} · processing avg {:.1}, p95 {:.1} ms",
        statuses.join(", "),
        processing.mean().unwrap_or(0.0),
        processing.quantile(0.95).unwrap_or(0.0)
    );
    let volume = view.distribution(payment::TRANSACTION_VALUE, &[]);
    let fees = view.distribution(payment::FEES, &[]);
    let currencies = view.by_tag(payment::TRANSACTION_VALUE, payment::CURRENCY);
    let currencies: Vec<String> = currencies
        .iter()
        .map(|(c, n)| format!("{c} {n:.0}"))
        .collect();
    let _ = writeln!(
        out,
        "  revenue   {:.2} in {:.0} payments ({}), fees {:.2}",
        volume.sum,
        volume.count,
        currencies.join(" · "),
        fees.sum
    );
    let actions = view.by_tag(fraud::DETECTIONS, fraud::ACTION);
    let actions: Vec<String> = actions.iter().map(|(a, n)| format!("{a} {n:.0}")).collect();
    let risk = view.distribution(fraud::RISK_SCORE, &[]);
    let _ = writeln!(
        out,
        "  fraud     {:.0} decisions: {} · risk score avg {:.1}",
        view.count(fraud::DETECTIONS, &[]),
        actions.join(" · "),
        risk.mean().unwrap_or(0.0)
    );
    let sessions = view.distribution(user::SESSION_DURATION, &[]);
    let _ = writeln!(
        out,
        "  users     {:.0} active today (estimated in process: no id is sent) · sessions avg {:.1} s",
        view.gauge(user::DAILY_ACTIVE, &[]).unwrap_or(0.0),
        sessions.mean().unwrap_or(0.0) / 1e3
    );
}

fn render_database(view: &View, out: &mut String) {
    use paymetrics_sqlx::{
        DATABASE_TAG, OPERATION_TAG, POOL_ACQUIRE_TIME, POOL_IDLE_CONNECTIONS,
        POOL_TOTAL_CONNECTIONS, QUERIES_COUNT, QUERIES_ERRORS, QUERIES_EXECUTION_TIME,
        QUERIES_ROWS_AFFECTED, TABLE_TAG,
    };
    let _ = writeln!(
        out,
        "{:<42}{:>8}{:>8}{:>8}{:>8}",
        "Database · database.* (SQLite in memory)", "queries", "rows", "avg", "p95"
    );
    for group in view.groups(QUERIES_COUNT, &[DATABASE_TAG, OPERATION_TAG, TABLE_TAG]) {
        let tags = [
            (DATABASE_TAG, group[0].as_str()),
            (OPERATION_TAG, group[1].as_str()),
            (TABLE_TAG, group[2].as_str()),
        ];
        let rows = view.distribution(QUERIES_ROWS_AFFECTED, &tags);
        let rows = match rows.count {
            0.0 => String::from("-"),
            _ => format!("{:.0}", rows.sum),
        };
        let _ = writeln!(
            out,
            "  {:<40}{:>8.0}{rows:>8}{}",
            format!("{} {} (database:{})", group[1], group[2], group[0]),
            view.count(QUERIES_COUNT, &tags),
            times(&view.distribution(QUERIES_EXECUTION_TIME, &tags))
        );
    }
    let total = view.gauge(POOL_TOTAL_CONNECTIONS, &[]).unwrap_or(0.0);
    let idle = view.gauge(POOL_IDLE_CONNECTIONS, &[]).unwrap_or(0.0);
    let acquire = view.distribution(POOL_ACQUIRE_TIME, &[]);
    let _ = writeln!(
        out,
        "  pool {total:.0} connections, {idle:.0} idle · {:.0} acquires, avg wait {:.2} ms · {:.0} errors",
        acquire.count,
        acquire.mean().unwrap_or(0.0),
        view.count(QUERIES_ERRORS, &[])
    );
}

fn render_cache(view: &View, on: bool, out: &mut String) {
    use paymetrics_redis::{
        CACHE_TTL_DISTRIBUTION, KEY_PATTERN, OPERATION, OPERATIONS_COUNT, OPERATIONS_ERRORS,
        OPERATIONS_HIT_MISS, OPERATIONS_RESPONSE_TIME, RESULT, RESULT_HIT,
    };
    if !on {
        let hint = "set REDIS_URL=redis://127.0.0.1:6379 to cache GET /v1/payments/{id}";
        let _ = writeln!(out, "Cache · off: {hint}");
        return;
    }
    let title = format!(
        "Cache · cache.* (Redis), {:.0} errors",
        view.count(OPERATIONS_ERRORS, &[])
    );
    let _ = writeln!(out, "{title:<50}{:>8}{:>8}{:>8}", "commands", "avg", "p95");
    for group in view.groups(OPERATIONS_COUNT, &[OPERATION, KEY_PATTERN]) {
        let tags = [
            (OPERATION, group[0].as_str()),
            (KEY_PATTERN, group[1].as_str()),
        ];
        let reads = view.count(OPERATIONS_HIT_MISS, &tags);
        let hits = view.count(
            OPERATIONS_HIT_MISS,
            &[tags[0], tags[1], (RESULT, RESULT_HIT)],
        );
        let ttl = view.distribution(CACHE_TTL_DISTRIBUTION, &tags).mean();
        let detail = match ttl {
            _ if reads > 0.0 => format!(
                "{hits:.0} hits, {:.0} misses ({:.0} % hits)",
                reads - hits,
                100.0 * hits / reads
            ),
            Some(ttl) => format!("ttl {ttl:.0} s"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<48}{:>8.0}{}",
            format!("{} {} · {detail}", group[0], group[1]),
            view.count(OPERATIONS_COUNT, &tags),
            times(&view.distribution(OPERATIONS_RESPONSE_TIME, &tags))
        );
    }
}

fn render_automation(view: &View, out: &mut String) {
    let percent = |name| {
        view.gauge(name, &[])
            .map_or(String::from("-"), |v| format!("{v:.0} %"))
    };
    // The scheduler's latest round: timestamped gauges, sent once each.
    let _ = writeln!(
        out,
        "KPIs · kpi.*: success rate {} · avg value {} · fraud effectiveness {} · availability {}",
        percent(kpi::TRANSACTION_SUCCESS_RATE),
        view.gauge(kpi::TRANSACTION_AVG_VALUE, &[])
            .map_or(String::from("-"), |v| format!("{v:.2}")),
        percent(kpi::FRAUD_EFFECTIVENESS),
        percent(kpi::SYSTEM_AVAILABILITY),
    );
    let gauge = |name| view.gauge(name, &[]).unwrap_or(0.0);
    let _ = writeln!(
        out,
        "Process · rss {:.1} MiB · cpu {:.0} % · {:.0} threads · {:.0} tokio workers, {:.0} % busy",
        gauge(process::RESIDENT_MEMORY_BYTES) / (1024.0 * 1024.0),
        gauge(process::CPU_UTILIZATION),
        gauge(process::THREADS),
        gauge(runtime::WORKERS),
        100.0 * gauge(runtime::BUSY_RATIO),
    );
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// The lines about packets: what the listener received, if the demo runs one, and what the
/// client sent.
fn status_lines(received: Option<&Aggregate>, telemetry: &ClientTelemetry) -> String {
    let mut status = String::new();
    if let Some(received) = received {
        let _ = writeln!(
            status,
            "listener:         {} packets, {} received, {} parse errors",
            received.payloads,
            kib(received.bytes as u64),
            received.errors.len()
        );
    }
    let _ = write!(
        status,
        "client telemetry: {} packets, {} sent, {} dropped",
        telemetry.packets_sent,
        kib(telemetry.bytes_sent),
        telemetry.packets_dropped
    );
    status
}

// The checks.

/// One line of the summary.
struct Check {
    what: &'static str,
    detail: String,
    /// `None` when there is nothing to compare with.
    ok: Option<bool>,
}

impl Check {
    fn new(what: &'static str, detail: String, ok: bool) -> Self {
        Self {
            what,
            detail,
            ok: Some(ok),
        }
    }
}

/// Prints what the run did and how the metrics compare; returns the number of failed checks.
///
/// `series` is what the listener received if the demo ran one, else what paymetrics' flushes
/// sent.
fn summarize(
    run: &Run,
    series: &[Series],
    received: Option<&Received>,
    telemetry: &ClientTelemetry,
) -> usize {
    let view = View(series);
    let load = &run.load;
    let source = match received {
        Some(_) => "received",
        None => "sent",
    };
    println!(
        "The load generator had {} requests answered in {:.1} s: {} payments, {} lookups.",
        load.answered(),
        run.elapsed.as_secs_f64(),
        load.created(),
        load.lookups()
    );
    let mut checks = vec![];

    // Every request the load generator got an answer to, and no other, is counted once, under
    // its route template and status.
    {
        use server::{ENDPOINT, METHOD, REQUESTS_COUNT, REQUESTS_IN_FLIGHT, STATUS_CODE};
        let counted = view.count(REQUESTS_COUNT, &[]);
        let split_matches = load.responses.iter().all(|(&(method, route, status), &n)| {
            let (route, status) = (
                paymetrics_tower::server::endpoint_tag(route).into_owned(),
                status.to_string(),
            );
            let tags = [(METHOD, method), (ENDPOINT, &route), (STATUS_CODE, &status)];
            view.count(REQUESTS_COUNT, &tags) == n as f64
        });
        checks.push(Check::new(
            "api requests",
            format!(
                "{} answered, {} unanswered; {counted} api.requests.count {source}, \
                 the same by route and status",
                load.answered(),
                load.transport_errors
            ),
            counted == load.answered() as f64 && split_matches && load.transport_errors == 0,
        ));
        let in_flight = view.gauge(REQUESTS_IN_FLIGHT, &[]);
        checks.push(Check::new(
            "in flight",
            format!(
                "api.requests.in_flight ends at {}",
                in_flight.map_or(String::from("-"), |v| format!("{v:.0}"))
            ),
            in_flight == Some(0.0),
        ));
    }

    // Each payment created is one attempt, one row, one insert and one update.
    {
        use paymetrics_sqlx::{OPERATION_TAG, QUERIES_COUNT, QUERIES_ERRORS, TABLE_TAG};
        let created = load.created() as f64;
        let attempts = view.count(payment::ATTEMPTS, &[]);
        let query = |operation| {
            view.count(
                QUERIES_COUNT,
                &[(OPERATION_TAG, operation), (TABLE_TAG, "payments")],
            )
        };
        let (inserts, updates) = (query("insert"), query("update"));
        let errors = view.count(QUERIES_ERRORS, &[]);
        checks.push(Check::new(
            "payments",
            format!(
                "{created} created, {} rows in SQLite; {attempts} attempts, {inserts} inserts, \
                 {updates} updates and {errors} query errors {source}",
                run.rows
            ),
            run.rows as f64 == created
                && attempts == created
                && inserts == created
                && updates == created
                && errors == 0.0,
        ));
    }

    // Each payment's outcome, as the customer saw it, is one completion of that status.
    {
        let completions = view.by_tag(payment::COMPLETIONS, payment::STATUS);
        let same = completions.len() == load.payments.len()
            && load
                .payments
                .iter()
                .all(|(status, &n)| completions.get(status) == Some(&(n as f64)));
        let answered: Vec<String> = load
            .payments
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let counted = match same {
            true => String::from("the same"),
            false => {
                let counted = completions.iter().map(|(s, n)| format!("{n} {s}"));
                counted.collect::<Vec<_>>().join(", ")
            }
        };
        checks.push(Check::new(
            "outcomes",
            format!(
                "{} answered; business.payment.completions {source}: {counted}",
                answered.join(", ")
            ),
            same,
        ));
    }

    // The fraud model decides on every payment; the ones it blocks are never charged.
    {
        let decisions = view.count(fraud::DETECTIONS, &[]);
        let blocked = view.count(fraud::BLOCKED_TRANSACTIONS, &[]);
        checks.push(Check::new(
            "fraud",
            format!(
                "{decisions} decisions {source}, {blocked} blocked; {} payments declined as fraud",
                load.blocked
            ),
            decisions == load.created() as f64 && blocked == load.blocked as f64,
        ));
    }

    // One call per charge, whatever its retries; the processor saw each attempt.
    {
        use external::{CALLS_COUNT, CALLS_RETRY_COUNT};
        let calls = view.count(CALLS_COUNT, &[]);
        let retries = view.distribution(CALLS_RETRY_COUNT, &[]).whole_sum();
        let charges = (load.created() - load.blocked) as f64;
        checks.push(Check::new(
            "card-processor",
            format!(
                "{charges} charges; {calls} external_service.calls and {retries} retries {source}; \
                 {} requests served",
                run.processor_requests
            ),
            calls == charges && calls + retries == run.processor_requests as f64,
        ));
    }

    // Each lookup reads the cache, if there is one; each one the cache does not answer (a miss,
    // or an error) reads SQLite.
    {
        use paymetrics_redis::{
            OPERATION, OPERATIONS_ERRORS, OPERATIONS_HIT_MISS, RESULT, RESULT_HIT, RESULT_MISS,
        };
        use paymetrics_sqlx::{OPERATION_TAG, QUERIES_COUNT, TABLE_TAG};
        let lookups = load.lookups() as f64;
        let selects = view.count(
            QUERIES_COUNT,
            &[(OPERATION_TAG, "select"), (TABLE_TAG, "payments")],
        );
        let check = if run.cache {
            let read =
                |result| view.count(OPERATIONS_HIT_MISS, &[(OPERATION, "get"), (RESULT, result)]);
            let (hits, misses) = (read(RESULT_HIT), read(RESULT_MISS));
            let errors = view.count(OPERATIONS_ERRORS, &[(OPERATION, "get")]);
            Check::new(
                "lookups",
                format!(
                    "{lookups} GETs; {hits} cache hits, {misses} misses, {errors} errors and \
                     {selects} selects {source}"
                ),
                hits + misses + errors == lookups && selects == lookups - hits,
            )
        } else {
            Check::new(
                "lookups",
                format!("{lookups} GETs, no cache; {selects} selects {source}"),
                selects == lookups,
            )
        };
        checks.push(check);
    }

    // paymetrics sums a distribution's samples exactly (up to floating-point rounding). On the
    // wire each sample travels as its bucket's value, within RELATIVE_ERROR of it, and so is the
    // sum the Agent computes.
    {
        let expected = load.completed_volume;
        let total = view.distribution(payment::TRANSACTION_VALUE, &[]).sum;
        let error = (total - expected) / expected.max(f64::MIN_POSITIVE);
        let (bound, within) = match received {
            Some(_) => (
                RELATIVE_ERROR,
                format!("bound ±{:.3} %", 100.0 * RELATIVE_ERROR),
            ),
            None => (1e-9, String::from("summed exactly")),
        };
        checks.push(Check::new(
            "revenue",
            format!(
                "{expected:.2} paid, {total:.2} business.revenue.transaction_value {source} \
                 ({:+.3} %, {within})",
                100.0 * error
            ),
            error.abs() <= bound,
        ));
    }

    let mut packets = Check {
        what: "packets",
        detail: format!(
            "{} sent ({}), {} dropped",
            telemetry.packets_sent,
            kib(telemetry.bytes_sent),
            telemetry.packets_dropped
        ),
        ok: None,
    };
    match received.map(|r| &r.aggregate) {
        Some(aggregate) => {
            let _ = write!(
                packets.detail,
                ", {} received ({}), {} parse errors",
                aggregate.payloads,
                kib(aggregate.bytes as u64),
                aggregate.errors.len()
            );
            packets.ok = Some(
                telemetry.packets_dropped == 0
                    && telemetry.packets_sent == aggregate.payloads as u64
                    && telemetry.bytes_sent == aggregate.bytes as u64
                    && aggregate.errors.is_empty(),
            );
        }
        None if telemetry.packets_dropped > 0 => {
            packets.detail += " (refused by the socket: is the agent listening?)";
        }
        None => {}
    }
    checks.push(packets);

    let width = checks.iter().map(|c| c.what.len() + 1).max().unwrap_or(0);
    for check in &checks {
        let verdict = match check.ok {
            Some(true) => ": ok",
            Some(false) => ": MISMATCH",
            None => "",
        };
        let what = format!("{}:", check.what);
        println!("  {what:width$} {}{verdict}", check.detail);
    }
    let failed = checks.iter().filter(|c| c.ok == Some(false)).count();
    if failed == 0 {
        println!("All checks pass.");
    }
    failed
}
