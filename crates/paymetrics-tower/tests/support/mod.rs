//! Test support: a paymetrics recorder with a memory exporter around a current-thread runtime,
//! real servers on 127.0.0.1:0 and a real hyper client.

#![allow(dead_code, unreachable_pub)]

use std::{
    convert::Infallible,
    future::Future,
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header::HOST};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use paymetrics::{
    Paymetrics, PaymetricsBuilder, PaymetricsHandle,
    dogstatsd::DogStatsdBuilder,
    export::{MemoryExporter, MemoryReader},
    snapshot::{HistogramValue, Snapshot},
};
use tokio::{net::TcpListener, task::JoinHandle};

/// Generous: a busy 2-core box must never time a test out.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Handles a test body uses to look at what was recorded so far.
#[derive(Clone)]
pub struct Ctx {
    handle: PaymetricsHandle,
    reader: MemoryReader,
}

impl Ctx {
    /// Flushes and returns everything recorded so far.
    pub fn recorded(&self) -> Recorded {
        assert!(self.handle.flush(), "flush timed out");
        Recorded {
            snapshots: self.reader.snapshots(),
        }
    }
}

/// Runs `test` on a current-thread runtime with a fresh paymetrics recorder installed on this
/// thread (so spawned server tasks record into it too), then returns what was recorded.
pub fn run<F, Fut>(test: F) -> Recorded
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let (exporter, reader) = MemoryExporter::new();
    let metrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .exporter(exporter)
        .flush_interval(Duration::from_secs(3600))
        .shutdown_timeout(TIMEOUT)
        .build()
        .expect("paymetrics builds");
    let ctx = Ctx {
        handle: metrics.handle(),
        reader: reader.clone(),
    };
    block_on_recording(&metrics, test(ctx.clone()));
    ctx.recorded()
}

/// Runs `test` like [`run`], with paymetrics' real DogStatsD exporter sending to a UDP socket
/// on 127.0.0.1, and returns the lines of every datagram received: what the Datadog Agent reads.
pub fn run_dogstatsd<F, Fut>(test: F) -> Vec<String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let agent = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let address = format!("udp://{}", agent.local_addr().expect("udp addr"));
    let metrics = PaymetricsBuilder::new()
        .dogstatsd(
            DogStatsdBuilder::new()
                .address(address)
                .env_lookup(|_| None)
                .origin_detection(false)
                .telemetry(None),
        )
        .flush_interval(Duration::from_secs(3600))
        .shutdown_timeout(TIMEOUT)
        .build()
        .expect("paymetrics builds");
    block_on_recording(&metrics, test());
    assert!(metrics.flush(), "flush timed out");
    // The flush has handed every datagram to the socket; loopback delivers them at once.
    agent
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("read timeout");
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = agent.recv(&mut buf) {
        let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
        lines.extend(datagram.lines().map(str::to_owned));
    }
    assert!(!lines.is_empty(), "no datagram received");
    lines
}

/// Drives `test` on a current-thread runtime with `metrics`' recorder installed on this thread.
fn block_on_recording(metrics: &Paymetrics, test: impl Future<Output = ()>) {
    metrics::with_local_recorder(metrics.recorder(), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(TIMEOUT, test)
                .await
                .expect("test timed out");
        });
        // Drop the servers' tasks while the recorder is still installed.
        drop(rt);
    });
}

/// Everything flushed so far: counters summed, histograms merged, gauges as last seen.
#[derive(Debug)]
pub struct Recorded {
    snapshots: Vec<Snapshot>,
}

impl Recorded {
    /// Total of counter `name{labels}` (labels exactly, in any order).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.snapshots
            .iter()
            .filter_map(|s| s.counter(name, labels))
            .map(|c| c.delta)
            .sum()
    }

    /// Every sample of histogram `name{labels}`, merged.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> HistogramValue {
        let mut merged = HistogramValue::empty();
        for h in self
            .snapshots
            .iter()
            .filter_map(|s| s.histogram(name, labels))
        {
            merged.merge(h);
        }
        merged
    }

    /// The latest value of gauge `name{labels}`, if it was ever set.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.snapshots
            .iter()
            .rev()
            .find_map(|s| s.gauge(name, labels))
            .map(|g| g.value)
    }

    /// The label sets of every series named `name`, as `key:value` strings, sorted.
    pub fn series(&self, name: &str) -> Vec<Vec<String>> {
        let mut all: Vec<Vec<String>> = self
            .snapshots
            .iter()
            .flat_map(|s| s.series.iter())
            .filter(|s| s.key.name() == name)
            .map(|s| {
                let mut labels: Vec<String> = s
                    .key
                    .labels()
                    .map(|l| format!("{}:{}", l.key(), l.value()))
                    .collect();
                labels.sort();
                labels
            })
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Names of every series recorded, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .snapshots
            .iter()
            .flat_map(|s| s.series.iter())
            .map(|s| s.key.name().to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every label value of every series, for "never the raw URI" checks.
    pub fn label_values(&self) -> Vec<String> {
        self.snapshots
            .iter()
            .flat_map(|s| s.series.iter())
            .flat_map(|s| {
                s.key
                    .labels()
                    .map(|l| l.value().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Serves `app` with `axum::serve` on 127.0.0.1:0.
pub async fn serve_axum(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// Serves a tower service with plain hyper (HTTP/1) on 127.0.0.1:0.
pub async fn serve_hyper<S, B>(service: S) -> SocketAddr
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A hyper HTTP/1 client connection to `addr`, and the task driving it.
pub async fn connect(addr: SocketAddr) -> (SendRequest<Full<Bytes>>, JoinHandle<()>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, task)
}

/// A request for `path` with `body`.
pub fn request(method: &str, path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "127.0.0.1")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request")
}

/// Sends `request` and reads the whole response.
pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> (StatusCode, HeaderMap, Bytes) {
    sender.ready().await.expect("connection ready");
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}

/// Sends one request on a fresh connection.
pub async fn send_once(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> (StatusCode, HeaderMap, Bytes) {
    let (mut sender, _task) = connect(addr).await;
    send(&mut sender, request).await
}

/// A `Result` type for infallible test services.
pub type Never = Infallible;
