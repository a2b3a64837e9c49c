//! The CloudWatch collector: RDS, ElastiCache and SQS metrics of the resources you name,
//! read with one batched `GetMetricData` call per round and sent with their CloudWatch
//! timestamps. The lease and the rounds live in [`fleet`](crate::fleet).
//!
//! The credentials need `cloudwatch:GetMetricData`, nothing else. CloudWatch bills per metric
//! requested: a round requests one metric per query, whatever the number of calls.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_sdk_cloudwatch::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    primitives::DateTime,
    types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy},
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use paymetrics::message::TimestampedMetric;

use crate::{
    fleet::{FleetCollector, RoundFuture, Sink},
    report::{self, Reporter},
};

/// Gauge, percent, timestamped: an RDS instance's `CPUUtilization` (average per period),
/// tagged [`DB_INSTANCE`] (and [`CLUSTER`]). Watched by the default `aws_rds_cpu_high` rule.
pub const RDS_CPU_UTILIZATION: &str = "aws.rds.cpu.utilization";
/// Gauge, connections, timestamped: an RDS instance's `DatabaseConnections` (average per
/// period), tagged [`DB_INSTANCE`].
pub const RDS_CONNECTIONS: &str = "aws.rds.connections.count";
/// Gauge, percent, timestamped: an ElastiCache cluster's `CPUUtilization` (average per
/// period), tagged [`CACHE_CLUSTER`].
pub const ELASTICACHE_CPU_UTILIZATION: &str = "aws.elasticache.cpu.utilization";
/// Gauge, percent, timestamped: an ElastiCache cluster's `DatabaseMemoryUsagePercentage`
/// (average per period), tagged [`CACHE_CLUSTER`].
pub const ELASTICACHE_MEMORY_UTILIZATION: &str = "aws.elasticache.memory.utilization";
/// Gauge, messages, timestamped: an SQS queue's `ApproximateNumberOfMessagesVisible`
/// (maximum per period: the backlog at its worst), tagged [`QUEUE`].
pub const SQS_QUEUE_DEPTH: &str = "aws.sqs.queue.depth";
/// Gauge, seconds, timestamped: an SQS queue's `ApproximateAgeOfOldestMessage` (maximum per
/// period), tagged [`QUEUE`].
pub const SQS_OLDEST_MESSAGE_AGE: &str = "aws.sqs.queue.oldest_message_age";

/// Tag key: the RDS `DBInstanceIdentifier` (the key Datadog's AWS integration uses).
pub const DB_INSTANCE: &str = "dbinstanceidentifier";
/// Tag key: the ElastiCache `CacheClusterId` (as Datadog's AWS integration names it).
pub const CACHE_CLUSTER: &str = "cacheclusterid";
/// Tag key: the SQS `QueueName` (as Datadog's AWS integration names it).
pub const QUEUE: &str = "queuename";
/// Tag key: the cluster's name, from `CLUSTER_NAME` (absent when it is not set).
pub const CLUSTER: &str = crate::CLUSTER;

/// The [`report::COLLECTOR`] tag of this collector.
pub const COLLECTOR_NAME: &str = "cloudwatch";
/// [`report::CALL`]: one `GetMetricData` request (one per batch of
/// [`MAX_QUERIES_PER_CALL`] queries and per page of answers).
pub const CALL_GET_METRIC_DATA: &str = "get_metric_data";

/// `GetMetricData` takes at most this many queries per call.
pub const MAX_QUERIES_PER_CALL: usize = 500;
/// Default period of a datapoint: CloudWatch's basic resolution.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(60);
/// Default window asked each round: datapoints arrive minutes late, and Datadog takes
/// timestamped points up to an hour old.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(600);
/// Default bound on each API request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What CloudWatch metric feeds which paymetrics metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The paymetrics metric name.
    pub metric: &'static str,
    /// The CloudWatch namespace (`AWS/RDS`).
    pub namespace: &'static str,
    /// The CloudWatch metric name (`CPUUtilization`).
    pub cloudwatch_name: &'static str,
    /// The CloudWatch dimension naming the resource (`DBInstanceIdentifier`).
    pub dimension: &'static str,
    /// The statistic (`Average`, `Maximum`).
    pub stat: &'static str,
    /// The tag key carrying the resource's identifier.
    pub tag: &'static str,
}

const fn source(
    metric: &'static str,
    namespace: &'static str,
    cloudwatch_name: &'static str,
    dimension: &'static str,
    stat: &'static str,
    tag: &'static str,
) -> Source {
    Source {
        metric,
        namespace,
        cloudwatch_name,
        dimension,
        stat,
        tag,
    }
}

/// The metrics read for each RDS instance.
pub const RDS: [Source; 2] = [
    source(
        RDS_CPU_UTILIZATION,
        "AWS/RDS",
        "CPUUtilization",
        "DBInstanceIdentifier",
        "Average",
        DB_INSTANCE,
    ),
    source(
        RDS_CONNECTIONS,
        "AWS/RDS",
        "DatabaseConnections",
        "DBInstanceIdentifier",
        "Average",
        DB_INSTANCE,
    ),
];
/// The metrics read for each ElastiCache cluster.
pub const ELASTICACHE: [Source; 2] = [
    source(
        ELASTICACHE_CPU_UTILIZATION,
        "AWS/ElastiCache",
        "CPUUtilization",
        "CacheClusterId",
        "Average",
        CACHE_CLUSTER,
    ),
    source(
        ELASTICACHE_MEMORY_UTILIZATION,
        "AWS/ElastiCache",
        "DatabaseMemoryUsagePercentage",
        "CacheClusterId",
        "Average",
        CACHE_CLUSTER,
    ),
];
/// The metrics read for each SQS queue.
pub const SQS: [Source; 2] = [
    source(
        SQS_QUEUE_DEPTH,
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        "Maximum",
        QUEUE,
    ),
    source(
        SQS_OLDEST_MESSAGE_AGE,
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "QueueName",
        "Maximum",
        QUEUE,
    ),
];

/// Every metric this collector sends.
pub const METRICS: [&str; 6] = [
    RDS_CPU_UTILIZATION,
    RDS_CONNECTIONS,
    ELASTICACHE_CPU_UTILIZATION,
    ELASTICACHE_MEMORY_UTILIZATION,
    SQS_QUEUE_DEPTH,
    SQS_OLDEST_MESSAGE_AGE,
];

/// The resources to read and how.
#[derive(Debug, Clone)]
pub struct CloudWatchSettings {
    /// RDS `DBInstanceIdentifier`s.
    pub rds_instances: Vec<String>,
    /// ElastiCache `CacheClusterId`s (for Redis with replicas, each node's id, such as
    /// `payments-cache-001`).
    pub elasticache_clusters: Vec<String>,
    /// SQS queue names.
    pub sqs_queues: Vec<String>,
    /// A datapoint's period (a multiple of 60 s; 1, 5, 10, 30 s for high-resolution
    /// metrics).
    pub period: Duration,
    /// How far back each round asks (datapoints already sent are not sent again).
    pub lookback: Duration,
    /// The [`CLUSTER`] tag value; `None` for no tag.
    pub cluster: Option<String>,
    /// Bound on each API request.
    pub request_timeout: Duration,
}

impl Default for CloudWatchSettings {
    /// No resources, [`DEFAULT_PERIOD`], [`DEFAULT_LOOKBACK`], the cluster from
    /// `CLUSTER_NAME`, [`DEFAULT_REQUEST_TIMEOUT`].
    fn default() -> Self {
        Self {
            rds_instances: Vec::new(),
            elasticache_clusters: Vec::new(),
            sqs_queues: Vec::new(),
            period: DEFAULT_PERIOD,
            lookback: DEFAULT_LOOKBACK,
            cluster: crate::cluster_from_env(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// One query of the batch: a source for one resource, and the newest datapoint sent.
#[derive(Debug)]
struct Query {
    id: String,
    source: Source,
    resource: String,
    last_sent: Option<i64>,
}

/// An HTTPS client for the SDK with rustls on *ring* (the crypto kube uses too), for
/// [`aws_config::ConfigLoader::http_client`] or a client's config.
pub fn http_client() -> aws_sdk_cloudwatch::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Reads CloudWatch once per round (a [`FleetCollector`]).
///
/// ```no_run
/// # async fn demo() {
/// use paymetrics_infra::cloudwatch::{CloudWatchCollector, CloudWatchSettings};
///
/// // The standard credential chain and region (environment, profile, web identity, ECS, IMDS).
/// let collector = CloudWatchCollector::from_env(CloudWatchSettings {
///     rds_instances: vec!["payments-primary".into()],
///     elasticache_clusters: vec!["payments-cache-001".into()],
///     sqs_queues: vec!["settlements".into()],
///     ..CloudWatchSettings::default()
/// })
/// .await;
/// # }
/// ```
#[derive(Debug)]
pub struct CloudWatchCollector {
    client: Client,
    settings: CloudWatchSettings,
    queries: Vec<Query>,
    reporter: Reporter,
}

impl CloudWatchCollector {
    /// A collector on aws-config's standard credential chain and region, with
    /// [`http_client`] and the request timeout as the operation timeout.
    pub async fn from_env(settings: CloudWatchSettings) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(settings.request_timeout)
            .build();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .timeout_config(timeouts)
            .load()
            .await;
        Self::new(Client::new(&config), settings)
    }

    /// A collector on a client built by the caller.
    pub fn new(client: Client, settings: CloudWatchSettings) -> Self {
        let resources = [
            (&RDS, &settings.rds_instances),
            (&ELASTICACHE, &settings.elasticache_clusters),
            (&SQS, &settings.sqs_queues),
        ];
        let mut queries = Vec::new();
        for (sources, names) in resources {
            for name in names {
                for source in sources {
                    queries.push(Query {
                        // Ids must start with a lower-case letter.
                        id: format!("q{}", queries.len()),
                        source: *source,
                        resource: name.clone(),
                        last_sent: None,
                    });
                }
            }
        }
        Self {
            client,
            settings,
            queries,
            reporter: Reporter::new(COLLECTOR_NAME),
        }
    }

    /// How many queries a round asks (one metric each).
    pub fn query_count(&self) -> usize {
        self.queries.len()
    }

    fn request(&self, batch: &[Query]) -> Vec<MetricDataQuery> {
        let period = i32::try_from(self.settings.period.as_secs().max(1)).unwrap_or(60);
        batch
            .iter()
            .map(|q| {
                let metric = Metric::builder()
                    .namespace(q.source.namespace)
                    .metric_name(q.source.cloudwatch_name)
                    .dimensions(
                        Dimension::builder()
                            .name(q.source.dimension)
                            .value(&q.resource)
                            .build(),
                    )
                    .build();
                MetricDataQuery::builder()
                    .id(&q.id)
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric)
                            .period(period)
                            .stat(q.source.stat)
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect()
    }

    /// One round: one `GetMetricData` call per [`MAX_QUERIES_PER_CALL`] queries (plus one per
    /// further page of answers), each new datapoint sent once with its own timestamp. A
    /// failed call is counted and logged; the other batches still run.
    pub async fn collect(&mut self, sink: &Sink) {
        if self.queries.is_empty() {
            return;
        }
        // Whole periods only: the period in progress would be sent partial and never again.
        let period = self.settings.period.as_secs().max(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let end = now - now % period;
        let start = end.saturating_sub(self.settings.lookback.as_secs().max(period));
        let (start, end) = (
            DateTime::from_secs(start as i64),
            DateTime::from_secs(end as i64),
        );
        let mut first = 0;
        while first < self.queries.len() {
            let last = (first + MAX_QUERIES_PER_CALL).min(self.queries.len());
            self.collect_batch(sink, first..last, start, end).await;
            first = last;
        }
        self.reporter.end_round(sink);
    }

    async fn collect_batch(
        &mut self,
        sink: &Sink,
        range: std::ops::Range<usize>,
        start: DateTime,
        end: DateTime,
    ) {
        let request = self.request(&self.queries[range.clone()]);
        let by_id: HashMap<String, usize> = range
            .clone()
            .map(|i| (self.queries[i].id.clone(), i))
            .collect();
        let mut next_token: Option<String> = None;
        // Collected over every page, then sent oldest first per query.
        let mut points: HashMap<usize, Vec<(i64, f64)>> = HashMap::new();
        loop {
            self.reporter.call(sink, CALL_GET_METRIC_DATA);
            let call = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(request.clone()))
                .start_time(start)
                .end_time(end)
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(next_token.take())
                .send();
            let answer = match tokio::time::timeout(self.settings.request_timeout, call).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => {
                    let reason = classify(&e);
                    let e = aws_sdk_cloudwatch::error::DisplayErrorContext(e);
                    self.reporter.failed(sink, CALL_GET_METRIC_DATA, reason, &e);
                    break;
                }
                Err(_) => {
                    self.reporter.failed(
                        sink,
                        CALL_GET_METRIC_DATA,
                        report::REASON_TIMEOUT,
                        &"no answer in time",
                    );
                    break;
                }
            };
            for result in answer.metric_data_results() {
                let Some(&index) = result.id().and_then(|id| by_id.get(id)) else {
                    continue;
                };
                let entry = points.entry(index).or_default();
                for (at, value) in result.timestamps().iter().zip(result.values()) {
                    entry.push((at.secs(), *value));
                }
            }
            match answer.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => break,
            }
        }
        for (index, mut found) in points {
            found.sort_by_key(|(at, _)| *at);
            let query = &mut self.queries[index];
            for (at, value) in found {
                if query.last_sent.is_some_and(|last| at <= last) || at <= 0 {
                    continue;
                }
                let mut point = TimestampedMetric::gauge(
                    query.source.metric,
                    value,
                    UNIX_EPOCH + Duration::from_secs(at as u64),
                )
                .tag(query.source.tag, &query.resource);
                if let Some(cluster) = &self.settings.cluster {
                    point = point.tag(CLUSTER, cluster);
                }
                sink.send(point);
                query.last_sent = Some(at);
            }
        }
    }
}

impl FleetCollector for CloudWatchCollector {
    fn name(&self) -> &'static str {
        COLLECTOR_NAME
    }

    fn round<'a>(&'a mut self, sink: &'a Sink) -> RoundFuture<'a> {
        Box::pin(self.collect(sink))
    }
}

/// The `REASON_*` of a failed SDK call.
fn classify<E, R>(error: &SdkError<E, R>) -> &'static str
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::TimeoutError(_) => report::REASON_TIMEOUT,
        SdkError::DispatchFailure(failure) => {
            if failure.is_timeout() {
                report::REASON_TIMEOUT
            } else if failure.is_io() {
                report::REASON_UNREACHABLE
            } else {
                report::REASON_OTHER
            }
        }
        SdkError::ResponseError(_) => report::REASON_INVALID_RESPONSE,
        SdkError::ServiceError(_) => match error.code() {
            Some(
                "Throttling"
                | "ThrottlingException"
                | "TooManyRequestsException"
                | "RequestLimitExceeded",
            ) => report::REASON_THROTTLED,
            Some("ExpiredToken" | "ExpiredTokenException" | "RequestExpired") => {
                report::REASON_CREDENTIALS_EXPIRED
            }
            Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation") => {
                report::REASON_FORBIDDEN
            }
            Some(
                "InvalidClientTokenId"
                | "UnrecognizedClientException"
                | "SignatureDoesNotMatch"
                | "MissingAuthenticationToken"
                | "IncompleteSignature",
            ) => report::REASON_UNAUTHORIZED,
            Some(code) if code.starts_with("InternalService") => report::REASON_SERVER_ERROR,
            _ => report::REASON_OTHER,
        },
        // Credentials that cannot be loaded fail before any request is sent.
        _ if std::error::Error::source(error)
            .is_some_and(|s| format!("{s:?}").contains("Credentials")) =>
        {
            report::REASON_NO_CREDENTIALS
        }
        _ => report::REASON_OTHER,
    }
}
