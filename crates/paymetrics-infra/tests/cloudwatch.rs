//! The real aws-sdk-cloudwatch client against moto's server (started here on a free loopback
//! port, killed by pid when the test ends), seeded with PutMetricData through the SDK; and
//! against loopback sockets that refuse or never answer. Fake credentials and region.
#![cfg(feature = "cloudwatch")]

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_sdk_cloudwatch::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    primitives::DateTime,
    types::{Dimension, MetricDatum},
};
use paymetrics::{
    export::{MemoryExporter, MemoryReader},
    message::Message,
};
use paymetrics_infra::{
    Sink,
    cloudwatch::{self as cw, CloudWatchCollector, CloudWatchSettings},
    report,
};

/// moto's server as a child process, killed when dropped (also on panic).
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn moto() -> Moto {
    let bin = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let port = free_port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (run scripts/services-aws)"));
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "moto_server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling, with a deadline
    }
    moto
}

fn client(url: &str, timeout: Duration) -> Client {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(url)
        .http_client(cw::http_client())
        .timeout_config(
            aws_sdk_cloudwatch::config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .build(),
        )
        .retry_config(aws_sdk_cloudwatch::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

fn instance() -> (paymetrics::Paymetrics, MemoryReader) {
    let (memory, reader) = MemoryExporter::new();
    let metrics = paymetrics::builder()
        .without_dogstatsd()
        .flush_interval(Duration::from_secs(3600))
        .exporter(memory)
        .build()
        .unwrap();
    (metrics, reader)
}

/// Every timestamped point sent: (name, unix seconds, value, tags).
fn points(reader: &MemoryReader) -> Vec<(String, u64, f64, Vec<String>)> {
    reader
        .messages()
        .into_iter()
        .filter_map(|m| match m {
            Message::Timestamped(t) => Some((t.name, t.timestamp, t.value, t.tags)),
            _ => None,
        })
        .collect()
}

fn minute_start(ago_minutes: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now - now % 60 - ago_minutes * 60
}

async fn put(client: &Client, namespace: &str, name: &str, dim: (&str, &str), at: u64, value: f64) {
    client
        .put_metric_data()
        .namespace(namespace)
        .metric_data(
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(Dimension::builder().name(dim.0).value(dim.1).build())
                .timestamp(DateTime::from_secs(at as i64))
                .value(value)
                .build(),
        )
        .send()
        .await
        .expect("PutMetricData to moto");
}

fn settings() -> CloudWatchSettings {
    CloudWatchSettings {
        rds_instances: vec!["payments-primary".into()],
        elasticache_clusters: vec!["payments-cache-001".into()],
        sqs_queues: vec!["settlements".into()],
        cluster: Some("test-cluster".into()),
        request_timeout: Duration::from_secs(30),
        ..CloudWatchSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batched_call_per_round_and_each_datapoint_sent_once_with_its_timestamp() {
    let moto = moto().await;
    let sdk = client(&moto.url, Duration::from_secs(30));
    let rds = ("DBInstanceIdentifier", "payments-primary");
    let (t1, t2) = (minute_start(4) + 10, minute_start(2) + 10);
    put(&sdk, "AWS/RDS", "CPUUtilization", rds, t1, 42.0).await;
    put(&sdk, "AWS/RDS", "CPUUtilization", rds, t2, 85.0).await;
    put(
        &sdk,
        "AWS/ElastiCache",
        "DatabaseMemoryUsagePercentage",
        ("CacheClusterId", "payments-cache-001"),
        t2,
        61.0,
    )
    .await;
    put(
        &sdk,
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        ("QueueName", "settlements"),
        t1,
        17.0,
    )
    .await;

    let (metrics, reader) = instance();
    let sink = Sink::new(&metrics);
    let mut collector = CloudWatchCollector::new(sdk.clone(), settings());
    assert_eq!(collector.query_count(), 6);
    collector.collect(&sink).await;
    metrics.flush();

    let sent = points(&reader);
    let rds_cpu: Vec<_> = sent
        .iter()
        .filter(|p| p.0 == cw::RDS_CPU_UTILIZATION)
        .collect();
    assert_eq!(rds_cpu.len(), 2, "{sent:?}");
    // Stamped with the start of their CloudWatch period, oldest first.
    assert_eq!((rds_cpu[0].1, rds_cpu[0].2), (t1 - 10, 42.0));
    assert_eq!((rds_cpu[1].1, rds_cpu[1].2), (t2 - 10, 85.0));
    assert!(
        rds_cpu[0]
            .3
            .contains(&"dbinstanceidentifier:payments-primary".to_owned())
    );
    assert!(rds_cpu[0].3.contains(&"cluster:test-cluster".to_owned()));
    assert!(sent.iter().any(|p| {
        p.0 == cw::ELASTICACHE_MEMORY_UTILIZATION
            && p.2 == 61.0
            && p.3
                .contains(&"cacheclusterid:payments-cache-001".to_owned())
    }));
    assert!(
        sent.iter()
            .any(|p| p.0 == cw::SQS_QUEUE_DEPTH && p.2 == 17.0)
    );
    let calls = || {
        reader.counter_total(
            report::API_CALLS,
            &[
                ("collector", "cloudwatch"),
                ("call", cw::CALL_GET_METRIC_DATA),
            ],
        )
    };
    assert_eq!(calls(), 1);

    // The next round sends nothing already sent, and a new datapoint once.
    let t3 = minute_start(1) + 5;
    put(&sdk, "AWS/RDS", "CPUUtilization", rds, t3, 90.0).await;
    collector.collect(&sink).await;
    metrics.flush();
    let again = points(&reader);
    let new: Vec<_> = again[sent.len()..].iter().collect();
    assert!(
        new.iter()
            .all(|p| p.0 == cw::RDS_CPU_UTILIZATION && p.1 == t3 - 5 && p.2 == 90.0),
        "{new:?}"
    );
    assert!(new.len() <= 1, "{new:?}");
    assert_eq!(calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_five_hundred_queries_take_two_calls() {
    let moto = moto().await;
    let (metrics, reader) = instance();
    let sink = Sink::new(&metrics);
    let settings = CloudWatchSettings {
        rds_instances: (0..300).map(|i| format!("db-{i}")).collect(),
        ..settings()
    };
    let mut collector =
        CloudWatchCollector::new(client(&moto.url, Duration::from_secs(60)), settings);
    assert_eq!(collector.query_count(), 600 + 6 - 2);
    collector.collect(&sink).await;
    metrics.flush();
    assert_eq!(
        reader.counter_total(
            report::API_CALLS,
            &[
                ("collector", "cloudwatch"),
                ("call", cw::CALL_GET_METRIC_DATA)
            ]
        ),
        2
    );
    assert_eq!(
        reader.counter_total(
            report::COLLECTOR_ERRORS,
            &[
                ("collector", "cloudwatch"),
                ("reason", report::REASON_OTHER)
            ]
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_endpoint_times_out_and_a_closed_one_is_unreachable() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    // Accepts and holds connections without answering.
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let closed_url = format!("http://127.0.0.1:{}", free_port());
    let (metrics, reader) = instance();
    let sink = Sink::new(&metrics);
    let short = Duration::from_millis(500);
    let mut timing_out = CloudWatchCollector::new(
        client(&silent_url, short),
        CloudWatchSettings {
            request_timeout: short,
            ..settings()
        },
    );
    timing_out.collect(&sink).await;
    let mut refused =
        CloudWatchCollector::new(client(&closed_url, Duration::from_secs(30)), settings());
    refused.collect(&sink).await;
    metrics.flush();
    let errors = |reason| {
        reader.counter_total(
            report::COLLECTOR_ERRORS,
            &[("collector", "cloudwatch"), ("reason", reason)],
        )
    };
    assert_eq!(errors(report::REASON_TIMEOUT), 1);
    assert_eq!(errors(report::REASON_UNREACHABLE), 1);
    assert!(points(&reader).is_empty());
    held.abort();
}
