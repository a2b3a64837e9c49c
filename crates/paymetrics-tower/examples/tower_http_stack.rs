//! An axum service with tower-http's Trace, Cors, Compression and Timeout layers and
//! `ApiMetricsLayer` outermost, so that every request is recorded as the client received it.
//!
//! It serves on 127.0.0.1, sends itself a request that is answered (gzipped) and one that times
//! out, and prints the `api.requests.count` series it recorded:
//!
//! ```text
//! cargo run -p paymetrics-tower --example tower_http_stack
//! ```

use std::time::Duration;

use axum::{Router, http::StatusCode, routing::get};
use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use paymetrics::{export::MemoryExporter, snapshot::SeriesValue};
use paymetrics_tower::{ApiMetricsLayer, server::REQUESTS_COUNT};
use tower::ServiceBuilder;
use tower_http::{
    compression::CompressionLayer, cors::CorsLayer, timeout::TimeoutLayer, trace::TraceLayer,
};

const TIMEOUT: Duration = Duration::from_millis(500);

fn app() -> Router {
    Router::new()
        .route(
            "/v1/payments/{id}",
            get(|| async { r#"{"amount":1250,"currency":"EUR"}"#.repeat(100) }),
        )
        .route(
            "/v1/reports/{id}",
            get(|| async {
                tokio::time::sleep(TIMEOUT * 4).await;
                "too late"
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(
            // Listed outermost first: the metrics layer sees the response each layer below
            // produced, as the client gets it (gzipped, with CORS headers, or the timeout's 504).
            ServiceBuilder::new()
                .layer(ApiMetricsLayer::new().ignore_route("/health"))
                .layer(TraceLayer::new_for_http())
                .layer(CorsLayer::permissive())
                .layer(CompressionLayer::new())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::GATEWAY_TIMEOUT,
                    TIMEOUT,
                )),
        )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // In a service: `let _metrics = paymetrics::init()?;`. Here, a memory exporter to print from.
    let (exporter, reader) = MemoryExporter::new();
    let metrics = paymetrics::builder()
        .without_dogstatsd()
        .exporter(exporter)
        .install()?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app()).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for path in ["/v1/payments/pay_1", "/v1/reports/rep_1", "/health"] {
        let request = Request::get(format!("http://{addr}{path}"))
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Empty::new())?;
        let response = client.request(request).await?;
        let status = response.status();
        let encoding = response.headers().get(header::CONTENT_ENCODING).cloned();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "GET {path}: {status}, {} bytes{}",
            body.len(),
            encoding.map_or(String::new(), |e| format!(
                " ({})",
                e.to_str().unwrap_or("?")
            ))
        );
    }

    metrics.flush();
    let snapshot = reader.latest().ok_or("no snapshot")?;
    println!("\nrecorded:");
    for series in snapshot
        .series
        .iter()
        .filter(|s| s.key.name() == REQUESTS_COUNT)
    {
        let mut tags: Vec<String> = series
            .key
            .labels()
            .map(|l| format!("{}:{}", l.key(), l.value()))
            .collect();
        tags.sort();
        if let SeriesValue::Counter(count) = &series.value {
            println!("  {REQUESTS_COUNT} {} {}", count.total, tags.join(","));
        }
    }
    Ok(())
}
