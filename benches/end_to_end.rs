//! End-to-end delivery, bytes on the wire and memory per series: paymetrics against
//! `metrics-exporter-dogstatsd` 0.9.8.
//!
//! A plain program (`harness = false`) that prints tables. Every measurement runs in a fresh
//! child process (this same executable, re-run with `--child ...`), so resident memory and
//! background threads of one measurement never leak into another.
//!
//! * **end to end**: 1,000,000 `counter!` increments (five labels, values `format!`ed per call)
//!   spread over 1,000 and over 100,000 series, a 1 s flush interval, sent over UDP to a
//!   receiver with an 8 MiB receive buffer; the counts received (parsed as the Agent does, with
//!   `paymetrics_testkit::agent::Aggregate`) must sum to 1,000,000.
//! * **bytes per line**: the same five-tag counter line from both exporters.
//! * **memory**: resident set size (`VmRSS`) before and after registering 100,000 five-label
//!   series and flushing, divided by the series count; then, for paymetrics, after the series
//!   have expired.
//!
//! `cargo bench --bench end_to_end` runs the full sizes; without `--bench` (as `cargo test
//! --benches` runs it) a small smoke version runs instead. See `benches/README.md`.

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::{SocketAddr, UdpSocket},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use metrics::counter;
use metrics_exporter_dogstatsd::DogStatsDBuilder;
use paymetrics::{Paymetrics, PaymetricsBuilder, dogstatsd::DogStatsdBuilder};
use paymetrics_testkit::agent::{Aggregate, MetricType};
use socket2::{Domain, Protocol, Socket, Type};

/// The receive buffer the end-to-end receiver asks for, as the Agent's `dogstatsd_so_rcvbuf`.
const RCVBUF: usize = 8 << 20;
const E2E_NAME: &str = "bench.e2e.requests";
const MEM_NAME: &str = "bench.mem.series";
const METHODS: [&str; 4] = ["card", "sepa", "paypal", "apple_pay"];
const CURRENCIES: [&str; 4] = ["EUR", "USD", "GBP", "JPY"];
const PAY: &str = "paymetrics";
const MED: &str = "metrics-exporter-dogstatsd";

/// Five label values for series `i`, built at run time (three with `format!`, two copied from
/// tables); series differ by the last one.
fn labels(i: u64) -> [String; 5] {
    [
        METHODS[(i & 3) as usize].to_owned(),
        CURRENCIES[((i >> 2) & 3) as usize].to_owned(),
        format!("{}", 200 + (i >> 4) % 5),
        format!("eu-west-{}", (i >> 5) % 3),
        format!("m{i:08}"),
    ]
}

/// `counter!(name, five formatted labels of series i).increment(1)`.
macro_rules! count_series {
    ($name:expr, $i:expr) => {{
        let [method, currency, status, region, merchant] = labels($i);
        counter!($name, "method" => method, "currency" => currency, "status" => status,
            "region" => region, "merchant" => merchant)
        .increment(1);
    }};
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Asks glibc to hand free heap memory back to the kernel, to tell retained from live bytes.
fn malloc_trim() {
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists; it is
    // thread-safe and takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The kernel's count of UDP datagrams dropped on full receive buffers (this network namespace).
fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let header: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let i = header.iter().position(|h| *h == "RcvbufErrors")?;
    values.get(i)?.parse().ok()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A UDP receiver with a large receive buffer that stores every datagram, on its own thread.
struct Receiver {
    addr: SocketAddr,
    /// What `getsockopt(SO_RCVBUF)` reports after the request.
    granted: usize,
    /// Whether `SO_RCVBUFFORCE` was needed.
    forced: bool,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Vec<u8>>>,
}

impl Receiver {
    fn start() -> Self {
        Self::with_buffer(Some(RCVBUF))
    }

    /// A receiver asking for `rcvbuf` bytes of receive buffer, or keeping the kernel's default.
    fn with_buffer(rcvbuf: Option<usize>) -> Self {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        // What the Agent does with `dogstatsd_so_rcvbuf: 8388608`: SO_RCVBUF, which the kernel
        // caps at net.core.rmem_max and then doubles for its bookkeeping.
        if let Some(rcvbuf) = rcvbuf {
            socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        }
        let mut granted = socket.recv_buffer_size().expect("SO_RCVBUF");
        let mut forced = false;
        if let Some(rcvbuf) = rcvbuf
            && granted < rcvbuf
            && is_root()
        {
            // Past rmem_max only root may go, with SO_RCVBUFFORCE (also doubled by the kernel).
            let value = libc::c_int::try_from(rcvbuf / 2).expect("fits");
            // SAFETY: a valid socket descriptor, and a pointer to a live c_int with its size.
            let rc = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&socket),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const value).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            forced = rc == 0;
            granted = socket.recv_buffer_size().expect("SO_RCVBUF");
        }
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        let socket: UdpSocket = socket.into();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let addr = socket.local_addr().expect("bound");
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut payloads = Vec::new();
                let mut buf = vec![0u8; 65_536];
                loop {
                    match socket.recv(&mut buf) {
                        Ok(n) => {
                            payloads.push(buf[..n].to_vec());
                            received.fetch_add(1, Relaxed);
                        }
                        Err(_) if stop.load(Relaxed) => return payloads,
                        Err(_) => {}
                    }
                }
            })
        };
        Self {
            addr,
            granted,
            forced,
            received,
            stop,
            thread,
        }
    }

    /// Waits until no datagram arrived for `quiet`.
    fn wait_quiet(&self, quiet: Duration) {
        let mut last = self.received.load(Relaxed);
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.received.load(Relaxed);
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
    }

    fn finish(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Relaxed);
        self.thread.join().expect("receiver thread")
    }
}

fn build_paymetrics(address: SocketAddr, builder: PaymetricsBuilder) -> Paymetrics {
    builder
        .dogstatsd(
            DogStatsdBuilder::new()
                .address(format!("udp://{address}"))
                .env_lookup(|_| None),
        )
        .build()
        .expect("build paymetrics")
}

/// Prints one `RESULT key=value ...` line for the parent.
fn result(fields: &[(&str, String)]) {
    let mut line = String::from("RESULT");
    for (k, v) in fields {
        line.push_str(&format!("\t{k}={v}"));
    }
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Lines of `payloads` that are messages of metric `name`: (count, bytes with the newline).
fn lines_of(payloads: &[Vec<u8>], name: &str) -> (u64, u64) {
    let prefix = format!("{name}:");
    let mut lines = 0;
    let mut bytes = 0;
    for p in payloads {
        for line in p
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(prefix.as_bytes()))
        {
            lines += 1;
            bytes += line.len() as u64 + 1;
        }
    }
    (lines, bytes)
}

// ---- children --------------------------------------------------------------------------------

fn child_e2e(exporter: &str, series: u64, increments: u64) {
    let receiver = Receiver::start();
    let drops_before = udp_rcvbuf_errors();
    let mut extra = vec![];
    let drive = || {
        for i in 0..increments {
            count_series!(E2E_NAME, i % series);
        }
    };
    let started = Instant::now();
    let elapsed;
    if exporter == PAY {
        let metrics = build_paymetrics(
            receiver.addr,
            PaymetricsBuilder::new()
                .flush_interval(Duration::from_secs(1))
                .max_series_per_metric(series as usize),
        );
        metrics::with_local_recorder(metrics.recorder(), drive);
        elapsed = started.elapsed();
        metrics.flush();
        let t = metrics.dogstatsd_telemetry().unwrap_or_default();
        extra.push(("client_packets_sent", t.packets_sent.to_string()));
        extra.push(("client_packets_dropped", t.packets_dropped.to_string()));
        metrics.shutdown();
        receiver.wait_quiet(Duration::from_millis(500));
    } else {
        let recorder = DogStatsDBuilder::default()
            .with_remote_address(receiver.addr.to_string())
            .expect("address")
            .with_flush_interval(Duration::from_secs(1))
            .build()
            .expect("build metrics-exporter-dogstatsd");
        metrics::with_local_recorder(&recorder, drive);
        elapsed = started.elapsed();
        // No flush call: wait for two more of its 1 s flushes (it has no shutdown either).
        std::thread::sleep(Duration::from_millis(2500));
    }
    let granted = receiver.granted;
    let forced = receiver.forced;
    let payloads = receiver.finish();
    let drops_after = udp_rcvbuf_errors();
    let mut aggregate = Aggregate::default();
    for p in &payloads {
        aggregate.ingest(p);
    }
    let (received, series_seen) = aggregate
        .named(E2E_NAME)
        .filter(|(k, _)| k.kind == MetricType::Count)
        .fold((0.0, 0u64), |(sum, n), (_, t)| (sum + t.count, n + 1));
    let (lines, bytes) = lines_of(&payloads, E2E_NAME);
    let mut fields = vec![
        ("exporter", exporter.to_owned()),
        ("series", series.to_string()),
        ("increments", increments.to_string()),
        ("received", format!("{received}")),
        ("series_seen", series_seen.to_string()),
        ("lost", format!("{}", increments as f64 - received)),
        ("parse_errors", aggregate.errors.len().to_string()),
        ("datagrams", payloads.len().to_string()),
        ("lines", lines.to_string()),
        (
            "bytes_per_line",
            format!("{:.1}", bytes as f64 / lines.max(1) as f64),
        ),
        (
            "record_ns",
            format!("{:.0}", elapsed.as_nanos() as f64 / increments as f64),
        ),
        ("rcvbuf_granted", granted.to_string()),
        ("rcvbuf_forced", forced.to_string()),
        (
            "kernel_rcvbuf_drops",
            drops_before
                .zip(drops_after)
                .map_or("?".into(), |(b, a)| (a - b).to_string()),
        ),
    ];
    fields.extend(extra);
    result(&fields);
}

fn child_lines() {
    const NAME: &str = "bench.line";
    let find = |payloads: Vec<Vec<u8>>| {
        payloads
            .iter()
            .flat_map(|p| p.split(|b| *b == b'\n'))
            .find(|l| l.starts_with(format!("{NAME}:").as_bytes()))
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .unwrap_or_default()
    };
    let receiver = Receiver::start();
    let pay = build_paymetrics(receiver.addr, PaymetricsBuilder::new());
    metrics::with_local_recorder(pay.recorder(), || count_series!(NAME, 7));
    pay.shutdown();
    receiver.wait_quiet(Duration::from_millis(200));
    let pay_line = find(receiver.finish());
    let receiver = Receiver::start();
    let med = DogStatsDBuilder::default()
        .with_remote_address(receiver.addr.to_string())
        .expect("address")
        .build()
        .expect("build metrics-exporter-dogstatsd");
    metrics::with_local_recorder(&med, || count_series!(NAME, 7));
    std::thread::sleep(Duration::from_millis(3500)); // its default 3 s flush
    let med_line = find(receiver.finish());
    result(&[("paymetrics", pay_line), ("med", med_line)]);
}

fn child_mem(exporter: &str, series: u64) {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let address = sink.local_addr().expect("bound");
    let register = || {
        let started = Instant::now();
        for i in 0..series {
            count_series!(MEM_NAME, i);
        }
        started.elapsed()
    };
    let mut fields = vec![
        ("exporter", exporter.to_owned()),
        ("series", series.to_string()),
    ];
    let per_series =
        |after: u64, before: u64| format!("{:.0}", (after as f64 - before as f64) / series as f64);
    if exporter == PAY {
        let metrics = build_paymetrics(
            address,
            PaymetricsBuilder::new()
                .flush_interval(Duration::from_secs(3600))
                .max_series_per_metric(series as usize)
                .expire_after_idle_flushes(2),
        );
        metrics::with_local_recorder(metrics.recorder(), || count_series!("bench.warmup", 0));
        metrics.flush();
        let rss0 = rss_bytes();
        let took = metrics::with_local_recorder(metrics.recorder(), register);
        let rss_registered = rss_bytes();
        metrics.flush();
        metrics.flush();
        let rss1 = rss_bytes();
        let live = metrics.latest_snapshot().map_or(0, |s| s.stats.live_series);
        malloc_trim();
        let rss1t = rss_bytes();
        // Idle from now: expired on the second idle flush, counted in the snapshot after it.
        let mut flushes = 0;
        while metrics
            .latest_snapshot()
            .is_some_and(|s| s.stats.live_series > 0)
            && flushes < 10
        {
            metrics.flush();
            flushes += 1;
        }
        let stats = metrics.latest_snapshot().map(|s| s.stats);
        let rss2 = rss_bytes();
        malloc_trim();
        let rss2t = rss_bytes();
        fields.extend([
            (
                "register_ns",
                format!("{:.0}", took.as_nanos() as f64 / series as f64),
            ),
            ("rss_before", rss0.to_string()),
            ("rss_after_flushes", rss1.to_string()),
            (
                "bytes_per_series_before_flush",
                per_series(rss_registered, rss0),
            ),
            ("bytes_per_series", per_series(rss1, rss0)),
            ("bytes_per_series_trimmed", per_series(rss1t, rss0)),
            ("live_series_after_flushes", live.to_string()),
            ("idle_flushes_until_expired", flushes.to_string()),
            (
                "live_series_after_expiry",
                stats
                    .as_ref()
                    .map_or("?".into(), |s| s.live_series.to_string()),
            ),
            (
                "series_expired",
                stats
                    .as_ref()
                    .map_or("?".into(), |s| s.series_expired.to_string()),
            ),
            ("rss_after_expiry", rss2.to_string()),
            ("rss_after_expiry_trimmed", rss2t.to_string()),
        ]);
        metrics.shutdown();
    } else {
        let recorder = DogStatsDBuilder::default()
            .with_remote_address(address.to_string())
            .expect("address")
            .build()
            .expect("build metrics-exporter-dogstatsd");
        metrics::with_local_recorder(&recorder, || count_series!("bench.warmup", 0));
        std::thread::sleep(Duration::from_millis(3500)); // one flush of its default 3 s
        let rss0 = rss_bytes();
        let took = metrics::with_local_recorder(&recorder, register);
        let rss_registered = rss_bytes();
        std::thread::sleep(Duration::from_millis(7000)); // two more flushes
        let rss1 = rss_bytes();
        malloc_trim();
        let rss1t = rss_bytes();
        std::thread::sleep(Duration::from_millis(6500)); // idle flushes: nothing is ever freed
        let rss2 = rss_bytes();
        malloc_trim();
        let rss2t = rss_bytes();
        fields.extend([
            (
                "register_ns",
                format!("{:.0}", took.as_nanos() as f64 / series as f64),
            ),
            ("rss_before", rss0.to_string()),
            ("rss_after_flushes", rss1.to_string()),
            (
                "bytes_per_series_before_flush",
                per_series(rss_registered, rss0),
            ),
            ("bytes_per_series", per_series(rss1, rss0)),
            ("bytes_per_series_trimmed", per_series(rss1t, rss0)),
            ("rss_after_expiry", rss2.to_string()),
            ("rss_after_expiry_trimmed", rss2t.to_string()),
        ]);
    }
    drop(sink);
    result(&fields);
}

/// `series` counters, all incremented before each of `flushes` 1 s flushes, into a receiver
/// with the kernel's default receive buffer: what a flush burst loses at the receiving socket.
fn child_burst(exporter: &str, series: u64, flushes: u64, pacing: f64) {
    let receiver = Receiver::with_buffer(None);
    let granted = receiver.granted;
    let drops_before = udp_rcvbuf_errors();
    let handles = |recorder: &dyn metrics::Recorder| -> Vec<metrics::Counter> {
        metrics::with_local_recorder(recorder, || {
            (0..series)
                .map(|i| {
                    let [method, currency, status, region, merchant] = labels(i);
                    counter!(E2E_NAME, "method" => method, "currency" => currency,
                        "status" => status, "region" => region, "merchant" => merchant)
                })
                .collect()
        })
    };
    let mut client_sent = String::from("-");
    if exporter == PAY {
        let metrics = build_paymetrics(
            receiver.addr,
            PaymetricsBuilder::new()
                .flush_interval(Duration::from_secs(1))
                .flush_pacing(pacing)
                .max_series_per_metric(series as usize),
        );
        let counters = handles(metrics.recorder());
        for _ in 0..flushes {
            counters.iter().for_each(|c| c.increment(1));
            std::thread::sleep(Duration::from_secs(1));
        }
        metrics.close();
        client_sent = metrics
            .dogstatsd_telemetry()
            .map_or("-".into(), |t| t.packets_sent.to_string());
    } else {
        let recorder = DogStatsDBuilder::default()
            .with_remote_address(receiver.addr.to_string())
            .expect("address")
            .with_flush_interval(Duration::from_secs(1))
            .build()
            .expect("build metrics-exporter-dogstatsd");
        let counters = handles(&recorder);
        for _ in 0..flushes {
            counters.iter().for_each(|c| c.increment(1));
            std::thread::sleep(Duration::from_secs(1));
        }
        std::thread::sleep(Duration::from_millis(1500)); // its last flush
    }
    receiver.wait_quiet(Duration::from_millis(500));
    let payloads = receiver.finish();
    let drops_after = udp_rcvbuf_errors();
    let mut aggregate = Aggregate::default();
    for p in &payloads {
        aggregate.ingest(p);
    }
    let received: f64 = aggregate.named(E2E_NAME).map(|(_, t)| t.count).sum();
    result(&[
        ("received", format!("{received}")),
        ("expected", (series * flushes).to_string()),
        ("datagrams", payloads.len().to_string()),
        ("client_sent", client_sent),
        ("rcvbuf_granted", granted.to_string()),
        (
            "kernel_rcvbuf_drops",
            drops_before
                .zip(drops_after)
                .map_or("?".into(), |(b, a)| (a - b).to_string()),
        ),
    ]);
}

/// `names` distinct metric names (one counter each) against the default global series cap;
/// RSS before, at the peak and after the series expired.
fn child_flood(names: u64) {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let metrics = build_paymetrics(
        sink.local_addr().expect("bound"),
        PaymetricsBuilder::new()
            .flush_interval(Duration::from_secs(3600))
            .shutdown_timeout(Duration::from_secs(120))
            .expire_after_idle_flushes(1),
    );
    let rss0 = rss_bytes();
    metrics::with_local_recorder(metrics.recorder(), || {
        for i in 0..names {
            counter!(format!("bench.flood.{i}")).increment(1);
        }
    });
    let rss_registered = rss_bytes();
    metrics.flush();
    let live = metrics.latest_snapshot().map_or(0, |s| s.stats.live_series);
    let rss_peak = rss_bytes().max(rss_registered);
    metrics.flush(); // idle: everything expires
    metrics.flush();
    let rss_after = rss_bytes();
    let live_after = metrics.latest_snapshot().map_or(0, |s| s.stats.live_series);
    metrics.shutdown();
    drop(sink);
    result(&[
        ("names", names.to_string()),
        ("live", live.to_string()),
        ("live_after", live_after.to_string()),
        ("rss_before", rss0.to_string()),
        ("rss_peak", rss_peak.to_string()),
        ("rss_after_expiry", rss_after.to_string()),
    ]);
}

// ---- parent ----------------------------------------------------------------------------------

type Fields = BTreeMap<String, String>;

fn run_child(args: &[String]) -> Fields {
    let exe = std::env::current_exe().expect("own executable");
    let out = Command::new(exe)
        .arg("--child")
        .args(args)
        .output()
        .expect("run a child measurement");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!("child {args:?} failed: {}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("child {args:?} printed no result: {stdout}"));
    line.split('\t')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn get<'a>(f: &'a Fields, k: &str) -> &'a str {
    f.get(k).map_or("-", String::as_str)
}

fn mib(bytes: &str) -> String {
    bytes
        .parse::<f64>()
        .map_or_else(|_| "-".into(), |b| format!("{:.1}", b / (1 << 20) as f64))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let rest = &args[i + 1..];
        let num = |j: usize| rest[j].parse::<u64>().expect("a number");
        match rest[0].as_str() {
            "e2e" => child_e2e(&rest[1], num(2), num(3)),
            "mem" => child_mem(&rest[1], num(2)),
            "lines" => child_lines(),
            "burst" => child_burst(&rest[1], num(2), num(3), rest[4].parse().expect("a pacing")),
            "flood" => child_flood(num(1)),
            other => panic!("unknown child {other}"),
        }
        return;
    }
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let (increments, series_sizes, mem_series, exporters): (u64, Vec<u64>, u64, Vec<&str>) = if full
    {
        (1_000_000, vec![1_000, 100_000], 100_000, vec![PAY, MED])
    } else {
        println!("smoke run (cargo bench --bench end_to_end runs the full sizes)");
        (20_000, vec![100, 2_000], 2_000, vec![PAY])
    };
    let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap_or_default();
    println!(
        "cores: {}, euid 0: {}, net.core.rmem_max: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        is_root(),
        rmem_max.trim()
    );

    println!(
        "\n## End to end: {increments} increments, 1 s flush interval, UDP receiver asking for an {} MiB buffer\n",
        RCVBUF >> 20
    );
    println!(
        "| exporter | series | received | lost | series seen | datagrams | lines | bytes/line | record ns/call | rcvbuf granted | kernel rcvbuf drops | client dropped |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|");
    let mut lost_total = 0.0;
    for &exporter in &exporters {
        for &series in &series_sizes {
            let f = run_child(&[
                "e2e".into(),
                exporter.into(),
                series.to_string(),
                increments.to_string(),
            ]);
            if exporter == PAY {
                lost_total += get(&f, "lost").parse::<f64>().unwrap_or(f64::NAN);
            }
            println!(
                "| {exporter} | {series} | {} | {} | {} | {} | {} | {} | {} | {} MiB{} | {} | {} |",
                get(&f, "received"),
                get(&f, "lost"),
                get(&f, "series_seen"),
                get(&f, "datagrams"),
                get(&f, "lines"),
                get(&f, "bytes_per_line"),
                get(&f, "record_ns"),
                mib(get(&f, "rcvbuf_granted")),
                if get(&f, "rcvbuf_forced") == "true" {
                    " (forced)"
                } else {
                    ""
                },
                get(&f, "kernel_rcvbuf_drops"),
                get(&f, "client_packets_dropped"),
            );
        }
    }
    println!(
        "\npaymetrics zero loss: {}",
        if lost_total == 0.0 { "yes" } else { "NO" }
    );

    if full {
        let f = run_child(&["lines".into()]);
        let (pay, med) = (get(&f, "paymetrics"), get(&f, "med"));
        println!("\n## The same five-tag counter line (value 1)\n");
        println!("| exporter | bytes (with newline) | line |\n|---|---:|---|");
        println!("| paymetrics | {} | `{pay}` |", pay.len() + 1);
        println!("| {MED} | {} | `{med}` |", med.len() + 1);
    }

    let (burst_series, flood_names) = if full {
        (100_000, 1_000_000)
    } else {
        (5_000, 20_000)
    };
    println!(
        "\n## Flush bursts: {burst_series} series, all updated every 1 s flush, 3 flushes, the kernel's default receive buffer\n"
    );
    println!(
        "| exporter | pacing | received | expected | datagrams received | datagrams sent (client) | rcvbuf | kernel rcvbuf drops |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut burst_lost = 0.0;
    let mut burst_runs = vec![(PAY, paymetrics::DEFAULT_FLUSH_PACING), (PAY, 0.0)];
    if full {
        burst_runs.push((MED, 0.0));
    }
    for (exporter, pacing) in burst_runs {
        let f = run_child(&[
            "burst".into(),
            exporter.into(),
            burst_series.to_string(),
            "3".into(),
            pacing.to_string(),
        ]);
        let lost = get(&f, "expected").parse::<f64>().unwrap_or(f64::NAN)
            - get(&f, "received").parse::<f64>().unwrap_or(f64::NAN);
        if exporter == PAY && pacing > 0.0 {
            burst_lost = lost;
        }
        println!(
            "| {exporter} | {} | {} | {} | {} | {} | {} KiB | {} |",
            if exporter == PAY {
                format!("{pacing} of the interval")
            } else {
                "none".into()
            },
            get(&f, "received"),
            get(&f, "expected"),
            get(&f, "datagrams"),
            get(&f, "client_sent"),
            get(&f, "rcvbuf_granted")
                .parse::<u64>()
                .map_or(0, |b| b >> 10),
            get(&f, "kernel_rcvbuf_drops"),
        );
    }
    println!(
        "\npaymetrics (paced) zero loss at the default buffer: {}",
        if burst_lost == 0.0 { "yes" } else { "NO" }
    );

    let f = run_child(&["flood".into(), flood_names.to_string()]);
    println!(
        "\n## A flood of names: {flood_names} distinct names, default global cap {}\n",
        paymetrics::DEFAULT_MAX_SERIES
    );
    println!(
        "| live series | RSS before MiB | RSS at the peak MiB | RSS after expiry MiB | live after expiry |"
    );
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} |",
        get(&f, "live"),
        mib(get(&f, "rss_before")),
        mib(get(&f, "rss_peak")),
        mib(get(&f, "rss_after_expiry")),
        get(&f, "live_after"),
    );

    println!("\n## Memory: {mem_series} series, five formatted labels each, RSS after flushes\n");
    println!(
        "size_of: metrics::Key {} B, metrics::Label {} B, paymetrics::snapshot::Series {} B\n",
        std::mem::size_of::<metrics::Key>(),
        std::mem::size_of::<metrics::Label>(),
        std::mem::size_of::<paymetrics::snapshot::Series>(),
    );
    println!(
        "| exporter | register ns/series | RSS before MiB | RSS after MiB | bytes/series | bytes/series after malloc_trim | bytes/series before any flush | live series | idle flushes to expiry | after expiry: live series | series expired | RSS after expiry MiB (trimmed) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for &exporter in &exporters {
        let f = run_child(&["mem".into(), exporter.into(), mem_series.to_string()]);
        println!(
            "| {exporter} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) |",
            get(&f, "register_ns"),
            mib(get(&f, "rss_before")),
            mib(get(&f, "rss_after_flushes")),
            get(&f, "bytes_per_series"),
            get(&f, "bytes_per_series_trimmed"),
            get(&f, "bytes_per_series_before_flush"),
            get(&f, "live_series_after_flushes"),
            get(&f, "idle_flushes_until_expired"),
            get(&f, "live_series_after_expiry"),
            get(&f, "series_expired"),
            mib(get(&f, "rss_after_expiry")),
            mib(get(&f, "rss_after_expiry_trimmed")),
        );
    }
}
