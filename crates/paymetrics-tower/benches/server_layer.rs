//! What the server layer adds to a request, next to axum-prometheus's layer, in one run.
//!
//! A trivial in-process tower service is called directly (no sockets, no runtime): its response
//! future is polled and its body driven to the end, so that both layers record. Three variants:
//! bare, with `ApiMetricsLayer` (recording into paymetrics, installed as this thread's
//! recorder; the endpoint from `endpoint_fn`), and with axum-prometheus's layer (recording into
//! its own Prometheus recorder, installed globally). Then the same through an axum `Router`,
//! where the endpoint comes from `MatchedPath`, compared with the router under an identity
//! layer (axum re-boxes and clones a layered route per request, whatever the layer).
//!
//! After criterion, a table of medians and ratios, and an interleaved check (rounds of each
//! variant back to back, so the ratios see the same background noise). Figures and the command
//! that reproduces them: `benches/README.md`.

use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    hint::black_box,
    path::{Path, PathBuf},
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant, SystemTime},
};

use axum::{Router, routing::get};
use axum_prometheus::PrometheusMetricLayer;
use bytes::Bytes;
use criterion::{BatchSize, Criterion};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{Empty, Full};
use paymetrics_tower::ApiMetricsLayer;
use tower::{Layer, Service, layer::util::Identity, service_fn};

type Req = Request<Empty<Bytes>>;

fn request() -> Req {
    Request::get("/v1/payments/pay_8f3a")
        .body(Empty::new())
        .expect("request")
}

fn handler<B>(_req: Request<B>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
}

/// Calls `service` once and drives the response body to its end, without a runtime.
fn drive<S, B>(service: &mut S, request: Req)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let mut future = pin!(service.call(request));
    let response = loop {
        if let Poll::Ready(response) = future.as_mut().poll(&mut cx) {
            break response.expect("response");
        }
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        let _ = black_box(frame);
    }
}

const GROUPS: [&str; 2] = ["tower_service", "axum_router"];
const BARE: &str = "bare";
/// axum's `Router::layer` re-boxes every route and clones it per request, whatever the layer:
/// an identity layer measures that, the baseline of what a metrics layer itself adds there.
const IDENTITY: &str = "identity_layer";
const OURS: &str = "paymetrics_tower";
const THEIRS: &str = "axum_prometheus";

/// The baseline each group's layers are compared with.
fn baseline(group: &str) -> &'static str {
    if group == GROUPS[1] { IDENTITY } else { BARE }
}

/// Serves one request.
type Serve = Box<dyn FnMut(Req)>;

/// The services under test: (group, function, server).
struct Services {
    run: Vec<(&'static str, &'static str, Serve)>,
}

fn services() -> Services {
    // axum-prometheus installs its Prometheus recorder globally; ours is this thread's (main).
    let (prometheus_layer, _prometheus_handle) = PrometheusMetricLayer::pair();
    let template = |req: &http::request::Parts| {
        req.uri
            .path()
            .starts_with("/v1/payments/")
            .then_some("/v1/payments/{id}".into())
    };
    let app = || Router::new().route("/v1/payments/{id}", get(|| async { "ok" }));

    let mut bare = service_fn(handler::<Empty<Bytes>>);
    let mut ours = ApiMetricsLayer::new()
        .endpoint_fn(template)
        .layer(service_fn(handler::<_>));
    let mut theirs = prometheus_layer
        .clone()
        .layer(service_fn(handler::<Empty<Bytes>>));
    let mut router_bare = app();
    let mut router_identity = app().layer(Identity::new());
    let mut router_ours = app().layer(ApiMetricsLayer::new());
    let mut router_theirs = app().layer(prometheus_layer);
    Services {
        run: vec![
            (GROUPS[0], BARE, Box::new(move |r| drive(&mut bare, r))),
            (GROUPS[0], OURS, Box::new(move |r| drive(&mut ours, r))),
            (GROUPS[0], THEIRS, Box::new(move |r| drive(&mut theirs, r))),
            (
                GROUPS[1],
                BARE,
                Box::new(move |r| drive(&mut router_bare, r)),
            ),
            (
                GROUPS[1],
                IDENTITY,
                Box::new(move |r| drive(&mut router_identity, r)),
            ),
            (
                GROUPS[1],
                OURS,
                Box::new(move |r| drive(&mut router_ours, r)),
            ),
            (
                GROUPS[1],
                THEIRS,
                Box::new(move |r| drive(&mut router_theirs, r)),
            ),
        ],
    }
}

fn benches(c: &mut Criterion, services: &mut Services) {
    for group_name in GROUPS {
        let mut group = c.benchmark_group(group_name);
        for (g, function, run) in &mut services.run {
            if *g == group_name {
                group.bench_function(*function, |b| {
                    b.iter_batched(request, &mut *run, BatchSize::SmallInput)
                });
            }
        }
        group.finish();
    }
}

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    // target/release/deps/server_layer-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// The median in ns of `group/function`, if this run measured it (written after `since`).
fn median_ns(dir: &Path, group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(group).join(function).join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn row(group: &str, base: f64, ours: f64, theirs: f64, bare: f64) {
    let (added_ours, added_theirs) = (ours - base, theirs - base);
    let verdict = if group != GROUPS[0] {
        "(not the target's case)"
    } else if added_ours <= 500.0 && added_ours < added_theirs {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "| {group} | {bare:.0} | {base:.0} | {ours:.0} | {theirs:.0} | {added_ours:.0} | {added_theirs:.0} | {:.2} | {:.2} | {verdict} |",
        added_ours / added_theirs,
        ours / theirs,
    );
}

const HEADER: &str = "| group | bare ns | baseline ns | paymetrics-tower ns | axum-prometheus ns | paymetrics-tower adds ns | axum-prometheus adds ns | added ratio (pt / ap) | total ratio (pt / ap) | target: adds <= 500 ns and < ap |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|";
const BASELINES: &str = "Baseline: the bare service for tower_service; the router with an identity layer for axum_router.";

fn print_table(since: SystemTime) {
    let dir = criterion_dir();
    println!("\nCriterion medians, ns per request, this run ({dir:?}). {BASELINES}\n\n{HEADER}");
    for group in GROUPS {
        let [bare, base, o, t] =
            [BARE, baseline(group), OURS, THEIRS].map(|f| median_ns(&dir, group, f, since));
        if let (Some(bare), Some(base), Some(o), Some(t)) = (bare, base, o, t) {
            row(group, base, o, t, bare);
        }
    }
}

/// CPU time this thread has used: unlike the wall clock, it does not count the time the
/// thread spends descheduled while other processes use the machine's two cores.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always available
    // on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Back-to-back rounds of each variant, the median per variant: the ratios under the same
/// background noise, whatever the machine's neighbours do meanwhile. Reported twice: wall
/// clock, and this thread's CPU time (robust to a loaded machine).
fn print_interleaved(services: &mut Services) {
    const ROUNDS: usize = 9;
    const REQUESTS: u32 = 100_000;
    let mut wall = vec![Vec::with_capacity(ROUNDS); services.run.len()];
    let mut cpu = vec![Vec::with_capacity(ROUNDS); services.run.len()];
    for _ in 0..ROUNDS {
        for (i, (_, _, run)) in services.run.iter_mut().enumerate() {
            let requests: Vec<Req> = (0..REQUESTS).map(|_| request()).collect();
            let (start, start_cpu) = (Instant::now(), thread_cpu_time());
            for r in requests {
                run(r);
            }
            let per_request = |d: Duration| d.as_nanos() as f64 / f64::from(REQUESTS);
            cpu[i].push(per_request(thread_cpu_time() - start_cpu));
            wall[i].push(per_request(start.elapsed()));
        }
    }
    for (clock, samples) in [("wall clock", &wall), ("thread CPU time", &cpu)] {
        let median = |group: &str, function: &str| {
            let i = services
                .run
                .iter()
                .position(|(g, f, _)| *g == group && *f == function)
                .expect("measured");
            let mut s = samples[i].clone();
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        };
        println!(
            "\nInterleaved check, {clock}: median of {ROUNDS} back-to-back rounds of {REQUESTS} requests (request drop included). {BASELINES}\n\n{HEADER}"
        );
        for group in GROUPS {
            row(
                group,
                median(group, baseline(group)),
                median(group, OURS),
                median(group, THEIRS),
                median(group, BARE),
            );
        }
    }
}

fn main() {
    let since = SystemTime::now();
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let paymetrics = paymetrics::builder()
        .without_dogstatsd()
        .build()
        .expect("paymetrics");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    // axum-prometheus spawns its recorder's upkeep (draining histograms) on the ambient runtime:
    // give it one, so it works as it would in a server.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    metrics::with_local_recorder(paymetrics.recorder(), || {
        let mut services = services();
        benches(&mut c, &mut services);
        c.final_summary();
        if benchmarking {
            print_table(since);
            print_interleaved(&mut services);
        }
    });
}
