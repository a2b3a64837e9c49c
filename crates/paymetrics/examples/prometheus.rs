//! A Prometheus `/metrics` endpoint beside Datadog.
//!
//! paymetrics keeps its own aggregation and DogStatsD exporter; any other `metrics` recorder
//! attached with `PaymetricsBuilder::attach_recorder` sees every series too. Here
//! `metrics-exporter-prometheus` (with its default features off: no HTTP server of its own) is
//! attached, and a plain `std::net` server answers `GET /metrics` with its rendering, so the
//! example needs no web framework; in a service, return `handle.render()` from an axum or
//! hyper route instead.
//!
//! ```sh
//! cargo run -p paymetrics --example prometheus            # serves 127.0.0.1:9898 until Ctrl-C
//! curl -s 127.0.0.1:9898/metrics | grep business_payment
//! cargo run -p paymetrics --example prometheus -- --once  # prints one rendering and exits
//! ```
//!
//! DogStatsD keeps its defaults (`DD_AGENT_HOST`, `DD_DOGSTATSD_URL`, ...): with no agent
//! listening, its datagrams are dropped and counted, and the example runs all the same.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    thread,
    time::Duration,
};

use metrics_exporter_prometheus::PrometheusBuilder;
use paymetrics::events::{BusinessEvents, PaymentAttempt, PaymentMethod};

const ADDRESS: &str = "127.0.0.1:9898";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prometheus = PrometheusBuilder::new().build_recorder();
    let handle = prometheus.handle();
    let metrics = paymetrics::builder()
        .attach_recorder(prometheus)
        .install()?;

    // Some traffic: one payment attempt now, then one a second.
    let events = BusinessEvents::default();
    let attempt = move || {
        events.payment_attempt(&PaymentAttempt {
            amount: 42.0,
            currency: "EUR",
            payment_method: PaymentMethod::Card,
            sender_id: "user-1842",
            sender_country: Some("DE"),
            receiver_country: Some("FR"),
        })
    };
    attempt();

    if std::env::args().any(|a| a == "--once") {
        print!("{}", handle.render());
        metrics.shutdown();
        return Ok(());
    }
    thread::spawn(move || {
        loop {
            thread::sleep(Duration::from_secs(1));
            attempt();
        }
    });

    let listener = TcpListener::bind(ADDRESS)?;
    println!("serving http://{ADDRESS}/metrics");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request_line = String::new();
        if BufReader::new(&stream)
            .read_line(&mut request_line)
            .is_err()
        {
            continue;
        }
        let (status, body) = if request_line.starts_with("GET /metrics ") {
            ("200 OK", handle.render())
        } else {
            ("404 Not Found", String::from("try /metrics\n"))
        };
        // A client that hung up is not this server's problem.
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    Ok(())
}
