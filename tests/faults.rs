//! The fault suite: what a real deployment does to a metrics client, each scenario checked
//! against the promise it threatens, with its figures printed.
//!
//! * `sigterm`: a service written as the README shows gets SIGTERM; everything recorded before
//!   the signal arrives (and, for comparison, a service without `shutdown_signal()`).
//! * `stream_agent_never_accepts`: a Unix-stream Agent whose backlog is full; flushes return by
//!   their deadline, and the next flush after it accepts is delivered.
//! * `telemetry_counts_every_drop`: an Agent down for a known window; the drops the client
//!   telemetry reports account for every lost payload.
//! * `stream_agent_restart`: the gap between an Agent coming back and the first payload.
//! * `hostile_names_and_tags`: names and tags that break Datadog's rules, on the wire.
//! * `flood_of_names`: 300,000 distinct names against the global series cap, and the memory
//!   given back after they expire.
//! * `flush_burst`: 100,000 series flushed every second into a receiver with the kernel's
//!   default receive buffer, paced and unpaced.
//!
//! The fleet store's faults (a Redis restart) are in `paymetrics-automation`'s tests.
//!
//! It runs as its own harness (`harness = false`) so the figures are printed whatever the test
//! runner captures; it ends with `faults: N passed, M failed`. Run one scenario with
//! `cargo test --test faults -- <name>`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    os::unix::net::{UnixListener, UnixStream},
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use metrics::with_local_recorder;
use paymetrics::{PaymetricsBuilder, dogstatsd::DogStatsdBuilder};
use paymetrics_testkit::agent::{Aggregate, MetricType, UdpReceiver};

/// Generous: the machine is a shared 2-core box.
const DEADLINE: Duration = Duration::from_secs(60);
/// Set in the child process of the `sigterm` scenario: which service to run.
const CHILD_ENV: &str = "PAYMETRICS_FAULTS_CHILD";

type Scenario = fn() -> String;

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        child::serve(&mode);
        return;
    }
    let scenarios: &[(&str, Scenario)] = &[
        ("sigterm", sigterm),
        ("stream_agent_never_accepts", stream_agent_never_accepts),
        ("telemetry_counts_every_drop", telemetry_counts_every_drop),
        ("stream_agent_restart", stream_agent_restart),
        ("hostile_names_and_tags", hostile_names_and_tags),
        ("flood_of_names", flood_of_names),
        ("flush_burst", flush_burst),
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, scenario) in scenarios {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(scenario)) {
            Ok(figures) => {
                passed += 1;
                println!(
                    "fault {name} ... ok ({:.1} s)\n    {}",
                    started.elapsed().as_secs_f64(),
                    figures.replace('\n', "\n    ")
                );
            }
            Err(_) => {
                failed += 1;
                println!("fault {name} ... FAILED");
            }
        }
    }
    println!("\nfaults: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

fn dogstatsd(address: &str) -> DogStatsdBuilder {
    DogStatsdBuilder::new()
        .address(address)
        .env_lookup(|_| None)
        .origin_detection(false)
        .telemetry(None)
}

/// Runs `f` on a thread and waits at most `DEADLINE` for it.
fn within_deadline<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} did not finish within {DEADLINE:?}"))
}

// ---------------------------------------------------------------------------------------------
// SIGTERM

mod child {
    //! The service of the `sigterm` scenario, written as the README shows.

    use axum::{Router, routing::get};

    pub(super) fn serve(mode: &str) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime
            .block_on(run(mode == "graceful"))
            .expect("the service runs");
    }

    async fn run(graceful: bool) -> Result<(), Box<dyn std::error::Error>> {
        let metrics = paymetrics::init()?;
        let app = Router::new()
            .route(
                "/pay",
                get(|| async {
                    metrics::counter!("faults.payments").increment(1);
                    "paid"
                }),
            )
            .layer(paymetrics_tower::ApiMetricsLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        if graceful {
            axum::serve(listener, app)
                .with_graceful_shutdown(paymetrics::shutdown_signal())
                .await?;
        } else {
            axum::serve(listener, app).await?;
        }
        drop(metrics);
        Ok(())
    }
}

/// Starts the child service, sends `requests` requests, SIGTERMs it; returns its exit code
/// (`None`: killed by the signal) and what the Agent received.
fn serve_then_sigterm(mode: &str, requests: u64) -> (Option<i32>, Aggregate) {
    let rx = UdpReceiver::bind().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, mode)
        .env("DD_DOGSTATSD_URL", rx.url())
        .env("DD_ORIGIN_DETECTION_ENABLED", "false")
        .env("DD_SERVICE", "faults")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let port: u16 = within_deadline("the child's start", move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().parse().unwrap()
    });
    for _ in 0..requests {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream
            .write_all(b"GET /pay HTTP/1.1\r\nHost: faults\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    // SAFETY: `kill` only sends a signal to the child's pid, which we own and have not reaped.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = within_deadline("the child's exit", move || child.wait().unwrap());
    let mut agg = Aggregate::default();
    while let Some(p) = rx.recv_timeout(Duration::from_millis(500)) {
        agg.ingest(&p);
    }
    (status.code(), agg)
}

fn sigterm() -> String {
    const REQUESTS: u64 = 25;
    let (code, agg) = serve_then_sigterm("graceful", REQUESTS);
    assert_eq!(code, Some(0), "the service exits cleanly on SIGTERM");
    let payments = agg
        .get("faults.payments", MetricType::Count, &["service:faults"])
        .map_or(0.0, |t| t.count);
    let requests: f64 = agg.named("api.requests.count").map(|(_, t)| t.count).sum();
    assert_eq!(
        payments, REQUESTS as f64,
        "every payment recorded before SIGTERM"
    );
    assert_eq!(
        requests, REQUESTS as f64,
        "every request recorded before SIGTERM"
    );

    let (code_without, agg_without) = serve_then_sigterm("killed", REQUESTS);
    assert_eq!(
        code_without, None,
        "without shutdown_signal() SIGTERM kills the process"
    );
    format!(
        "with shutdown_signal(): exit 0, {} datagrams, {payments}/{REQUESTS} payments and {requests}/{REQUESTS} requests delivered\n\
         without it (for comparison): killed by SIGTERM, {} datagrams",
        agg.payloads, agg_without.payloads
    )
}

// ---------------------------------------------------------------------------------------------
// A Unix-stream Agent that does not accept

fn socket_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paymetrics-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// A listener with a backlog of 0 and one connection already waiting in it: every further
/// connect finds the backlog full, as with an Agent that stopped accepting.
fn full_listener(path: &Path) -> (socket2::Socket, UnixStream) {
    let listener =
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&socket2::SockAddr::unix(path).unwrap())
        .unwrap();
    listener.listen(0).unwrap();
    let waiting = UnixStream::connect(path).unwrap();
    (listener, waiting)
}

/// Reads length-prefixed frames from every accepted connection into a channel.
fn read_frames(listener: UnixListener) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            thread::spawn(move || {
                loop {
                    let mut len = [0u8; 4];
                    if conn.read_exact(&mut len).is_err() {
                        return;
                    }
                    let mut payload = vec![0; u32::from_le_bytes(len) as usize];
                    if conn.read_exact(&mut payload).is_err() || tx.send(payload).is_err() {
                        return;
                    }
                }
            });
        }
    });
    rx
}

fn stream_agent_never_accepts() -> String {
    let path = socket_path("never-accepts.sock");
    let (listener, _waiting) = full_listener(&path);
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .shutdown_timeout(Duration::from_secs(10))
        .dogstatsd(dogstatsd(&format!("unixstream://{}", path.display())))
        .build()
        .unwrap();
    let mut slowest = Duration::ZERO;
    for round in 0..5 {
        with_local_recorder(metrics.recorder(), || {
            metrics::counter!("faults.stuck", "round" => round.to_string()).increment(1)
        });
        let started = Instant::now();
        assert!(!metrics.flush(), "nothing can be delivered");
        slowest = slowest.max(started.elapsed());
        assert!(metrics.latest_snapshot().is_some(), "the flush completed");
    }
    let t = metrics.dogstatsd_telemetry().unwrap();
    assert_eq!((t.packets_sent, t.packets_dropped_writer), (0, 5), "{t:?}");

    // The Agent starts accepting: the next flush is delivered.
    let listener: UnixListener = UnixListener::from(std::os::fd::OwnedFd::from(listener));
    // Take the connection that filled the backlog here, so paymetrics' connect finds room
    // whatever the reader thread's timing.
    let _first = listener.accept().unwrap();
    let frames = read_frames(listener);
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("faults.unstuck").increment(1)
    });
    let started = Instant::now();
    assert!(metrics.flush(), "delivered once the Agent accepts");
    let after = started.elapsed();
    let payload = frames.recv_timeout(DEADLINE).unwrap();
    assert_eq!(String::from_utf8(payload).unwrap(), "faults.unstuck:1|c\n");
    assert!(metrics.close());
    format!(
        "5 flushes with the backlog full: each returned false in at most {} ms (was: stuck in connect() until the listener went away)\n\
         the first flush once it accepted: delivered in {} ms",
        slowest.as_millis(),
        after.as_millis()
    )
}

// ---------------------------------------------------------------------------------------------
// Telemetry while the Agent is down

fn telemetry_counts_every_drop() -> String {
    const FLUSHES: u64 = 30;
    const DOWN: std::ops::Range<u64> = 10..20;
    const EVENTS_PER_FLUSH: u64 = 100;
    let mut rx = Some(UdpReceiver::bind().unwrap());
    let address = rx.as_ref().unwrap().socket().local_addr().unwrap();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .dogstatsd(dogstatsd(&format!("udp://{address}")).telemetry(Some(Duration::ZERO)))
        .build()
        .unwrap();
    let mut agg = Aggregate::default();
    let drain = |rx: &UdpReceiver, agg: &mut Aggregate| {
        while let Some(p) = rx.recv_timeout(Duration::from_millis(100)) {
            agg.ingest(&p);
        }
    };
    for flush in 0..FLUSHES {
        if flush == DOWN.start {
            drain(rx.as_ref().unwrap(), &mut agg);
            rx = None; // the Agent goes away: its port is closed
        }
        if flush == DOWN.end {
            rx = Some(UdpReceiver::bind_to(&address.to_string()).unwrap());
        }
        with_local_recorder(metrics.recorder(), || {
            metrics::counter!("faults.events").increment(EVENTS_PER_FLUSH)
        });
        metrics.flush();
    }
    assert!(metrics.close());
    drain(rx.as_ref().unwrap(), &mut agg);

    let total = |name: &str| agg.named(name).map(|(_, t)| t.count).sum::<f64>() as u64;
    let received_events = total("faults.events");
    let lost_events = FLUSHES * EVENTS_PER_FLUSH - received_events;
    let reported_dropped = total("datadog.dogstatsd.client.packets_dropped");
    let reported_sent = total("datadog.dogstatsd.client.packets_sent");
    let client = metrics.dogstatsd_telemetry().unwrap();
    assert_eq!(lost_events, (DOWN.end - DOWN.start) * EVENTS_PER_FLUSH);
    assert_eq!(
        reported_dropped, client.packets_dropped,
        "every drop reached the Agent in a later report"
    );
    // One payload per flush carried the events: the reported drops cover every lost event.
    assert!(reported_dropped >= lost_events / EVENTS_PER_FLUSH);
    // What the reports say was sent arrived (but the last report, which cannot count itself).
    assert!(
        agg.payloads as u64 >= reported_sent && agg.payloads as u64 - reported_sent <= 3,
        "{} payloads received, {reported_sent} reported sent",
        agg.payloads
    );
    format!(
        "Agent down for {} of {FLUSHES} flushes: {lost_events} of {} events lost ({:.1} %)\n\
         payloads dropped: {} counted by the client, {reported_dropped} reported to the Agent (was: 6 counted, 2 reported)\n\
         payloads sent: {reported_sent} reported, {} received",
        DOWN.end - DOWN.start,
        FLUSHES * EVENTS_PER_FLUSH,
        100.0 * lost_events as f64 / (FLUSHES * EVENTS_PER_FLUSH) as f64,
        client.packets_dropped,
        agg.payloads
    )
}

// ---------------------------------------------------------------------------------------------
// An Agent restart on a Unix stream

fn stream_agent_restart() -> String {
    const INTERVAL: Duration = Duration::from_millis(250);
    const OUTAGE: Duration = Duration::from_secs(2);
    let path = socket_path("restart.sock");
    let frames = read_frames(UnixListener::bind(&path).unwrap());
    let metrics = PaymetricsBuilder::new()
        .flush_interval(INTERVAL)
        .dogstatsd(dogstatsd(&format!("unixstream://{}", path.display())))
        .build()
        .unwrap();
    let recorded = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = metrics.recorder().clone();
    let writer = {
        let (recorded, stop) = (Arc::clone(&recorded), Arc::clone(&stop));
        thread::spawn(move || {
            let counter = with_local_recorder(&recorder, || metrics::counter!("faults.restart"));
            while !stop.load(Relaxed) {
                counter.increment(1);
                recorded.fetch_add(1, Relaxed);
                thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let received = |frames: &mpsc::Receiver<Vec<u8>>, wait: Duration| {
        let mut events = 0u64;
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(p) = frames.recv_timeout(left) else {
                break;
            };
            let mut agg = Aggregate::default();
            agg.ingest(&p);
            events += agg
                .named("faults.restart")
                .map(|(_, t)| t.count)
                .sum::<f64>() as u64;
        }
        events
    };
    let mut events = received(&frames, Duration::from_secs(1));
    // The Agent goes away (its socket file with it) for the outage, then comes back.
    std::fs::remove_file(&path).unwrap();
    drop(frames);
    thread::sleep(OUTAGE); // the outage's length, not a synchronisation
    let back = Instant::now();
    let frames = read_frames(UnixListener::bind(&path).unwrap());
    let first = frames
        .recv_timeout(DEADLINE)
        .expect("a payload after the restart");
    let gap = back.elapsed();
    let mut agg = Aggregate::default();
    agg.ingest(&first);
    events += agg
        .named("faults.restart")
        .map(|(_, t)| t.count)
        .sum::<f64>() as u64;
    events += received(&frames, Duration::from_secs(1));
    stop.store(true, Relaxed);
    writer.join().unwrap();
    assert!(metrics.close());
    events += received(&frames, Duration::from_millis(500));
    let recorded = recorded.load(Relaxed);
    assert!(
        gap < INTERVAL * 4,
        "first payload {gap:?} after the Agent came back (interval {INTERVAL:?})"
    );
    format!(
        "flush interval {} ms, Agent down {} s: first payload {} ms after it came back (was 1.4 s with a 1 s interval)\n\
         {} of {recorded} events lost ({:.1} %; the outage was {:.0} % of the run)",
        INTERVAL.as_millis(),
        OUTAGE.as_secs(),
        gap.as_millis(),
        recorded - events,
        100.0 * (recorded - events) as f64 / recorded as f64,
        100.0 * OUTAGE.as_secs_f64() / (OUTAGE.as_secs_f64() + 2.0)
    )
}

// ---------------------------------------------------------------------------------------------
// Hostile names and tags

fn hostile_names_and_tags() -> String {
    let rx = UdpReceiver::bind().unwrap();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .dogstatsd(dogstatsd(&rx.url()).prefix("payments"))
        .build()
        .unwrap();
    let long_value = format!("{}:", "v".repeat(195));
    let tags: Vec<(String, String)> = vec![
        ("-dash".into(), String::new()),
        ("9region".into(), "eu_west_".into()),
        (String::new(), "v".into()),
        ("_".into(), "v".into()),
        ("version".into(), ":1.0:".into()),
        ("k".into(), long_value),
        ("région".into(), "São Paulo|#@,".into()),
    ];
    let names = [
        "x".repeat(300),
        "_sc.fake".into(),
        "9lives".into(),
        "a|b:c@d#e".into(),
    ];
    with_local_recorder(metrics.recorder(), || {
        for name in &names {
            for (k, v) in &tags {
                metrics::counter!(name.clone(), k.clone() => v.clone()).increment(1);
            }
        }
    });
    assert!(metrics.flush());
    let mut lines = 0;
    while let Some(p) = rx.recv_timeout(Duration::from_millis(500)) {
        for line in String::from_utf8(p).unwrap().lines() {
            lines += 1;
            let (name, rest) = line.split_once(':').unwrap();
            assert!(name.len() <= 200 && name.starts_with("payments."), "{name}");
            let tags = rest.split_once("|#").map_or("", |(_, t)| t);
            for tag in tags.split(',').filter(|t| !t.is_empty()) {
                assert!(tag.starts_with(char::is_alphabetic), "{line}");
                assert!(!tag.ends_with(':') && tag.chars().count() <= 200, "{line}");
                assert!(
                    tag.chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/')),
                    "{line}"
                );
            }
        }
    }
    assert_eq!(lines, names.len() * tags.len());
    format!(
        "{lines} lines from {} hostile names x {} hostile tags: every name within 200 characters with its prefix, every tag starting with a letter, none ending with ':'",
        names.len(),
        tags.len()
    )
}

// ---------------------------------------------------------------------------------------------
// A flood of names

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf only reads a system constant.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn flood_of_names() -> String {
    const NAMES: u64 = 300_000;
    const CAP: usize = 50_000;
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .shutdown_timeout(Duration::from_secs(60))
        .max_series(CAP)
        .expire_after_idle_flushes(1)
        .without_dogstatsd()
        .build()
        .unwrap();
    let before = rss_bytes();
    with_local_recorder(metrics.recorder(), || {
        for i in 0..NAMES {
            metrics::counter!(format!("flood.{i}")).increment(1);
        }
    });
    assert!(metrics.flush());
    let snapshot = metrics.latest_snapshot().unwrap();
    let live = snapshot.stats.live_series;
    let total: u64 = snapshot
        .series
        .iter()
        .map(|s| match &s.value {
            paymetrics::snapshot::SeriesValue::Counter(c) => c.delta,
            _ => 0,
        })
        .sum();
    let overflow: u64 = snapshot
        .series
        .iter()
        .filter(|s| s.key.name() == paymetrics::OVERFLOW_METRIC_NAME)
        .map(|s| match &s.value {
            paymetrics::snapshot::SeriesValue::Counter(c) => c.delta,
            _ => 0,
        })
        .sum();
    drop(snapshot);
    let peak = rss_bytes();
    assert_eq!(live, CAP, "the global cap holds");
    assert_eq!(total, NAMES, "nothing recorded is lost, only folded");
    assert_eq!(overflow, NAMES - CAP as u64);
    // Idle for one flush: everything expires.
    assert!(metrics.flush());
    assert!(metrics.flush());
    let after = rss_bytes();
    assert_eq!(metrics.latest_snapshot().unwrap().stats.live_series, 0);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    assert!(
        after < peak,
        "memory goes back after expiry: {:.1} MiB -> {:.1} MiB",
        mib(peak),
        mib(after)
    );
    format!(
        "{NAMES} names, global cap {CAP}: {live} live series, {overflow} increments folded into {}, {total}/{NAMES} increments kept (was: 1M names gave 1M live series, +413 MiB)\n\
         RSS: {:.1} MiB before, {:.1} MiB at the peak, {:.1} MiB after expiry (was: no memory returned)",
        paymetrics::OVERFLOW_METRIC_NAME,
        mib(before),
        mib(peak),
        mib(after)
    )
}

// ---------------------------------------------------------------------------------------------
// Flush bursts

/// `series` counters flushed every second for `flushes` flushes into a UDP receiver with the
/// kernel's default buffer, drained by a thread; returns (payloads sent, payloads received).
fn burst(series: u64, flushes: u32, pacing: f64) -> (u64, u64) {
    let rx = UdpReceiver::bind().unwrap();
    let socket = rx.socket().try_clone().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Relaxed) {
                if socket.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Relaxed);
                }
            }
        })
    };
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(1))
        .flush_pacing(pacing)
        .max_series_per_metric(series as usize)
        .shutdown_timeout(Duration::from_secs(30))
        .dogstatsd(dogstatsd(&rx.url()))
        .build()
        .unwrap();
    let handles: Vec<metrics::Counter> = with_local_recorder(metrics.recorder(), || {
        (0..series)
            .map(|i| metrics::counter!("burst.series", "id" => i.to_string()))
            .collect()
    });
    // Every series changes in every interval, so every flush sends all of them.
    let mut last = metrics.dogstatsd_telemetry().unwrap().packets_sent;
    for _ in 0..flushes {
        for h in &handles {
            h.increment(1);
        }
        let deadline = Instant::now() + DEADLINE;
        while metrics.dogstatsd_telemetry().unwrap().packets_sent == last {
            assert!(Instant::now() < deadline, "the flusher stopped");
            thread::sleep(Duration::from_millis(20));
        }
        // Wait for the flush to finish sending before the next round of increments.
        let mut settled = 0;
        while settled < 3 {
            thread::sleep(Duration::from_millis(100));
            let now = metrics.dogstatsd_telemetry().unwrap().packets_sent;
            settled = if now == last { settled + 1 } else { 0 };
            last = now;
        }
    }
    // The final flush sends too: count what was sent once nothing more will be.
    metrics.close();
    let sent = metrics.dogstatsd_telemetry().unwrap().packets_sent;
    // Let the drainer empty the buffer: nothing is sent any more.
    let deadline = Instant::now() + Duration::from_secs(2);
    while received.load(Relaxed) < sent && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Relaxed);
    drainer.join().unwrap();
    (sent, received.load(Relaxed))
}

fn flush_burst() -> String {
    const SERIES: u64 = 100_000;
    let (sent, got) = burst(SERIES, 2, paymetrics::DEFAULT_FLUSH_PACING);
    let (sent_unpaced, got_unpaced) = burst(SERIES, 2, 0.0);
    let lost = sent.saturating_sub(got);
    let lost_unpaced = sent_unpaced.saturating_sub(got_unpaced);
    assert!(
        got <= sent && got_unpaced <= sent_unpaced,
        "more received than sent"
    );
    assert!(
        lost * 100 <= sent,
        "paced: {lost} of {sent} payloads lost at the receiver"
    );
    format!(
        "{SERIES} series, 1 s flushes, default receive buffer (a debug build: slower than release)\n\
         paced over half the interval: {lost} of {sent} payloads lost ({:.2} %)\n\
         unpaced, for comparison: {lost_unpaced} of {sent_unpaced} lost ({:.2} %) (the release bench: 0 % paced, 5.6 % unpaced)",
        100.0 * lost as f64 / sent as f64,
        100.0 * lost_unpaced as f64 / sent_unpaced as f64
    )
}
