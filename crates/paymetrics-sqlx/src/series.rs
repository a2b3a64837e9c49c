//! The metric handles one instrumented pool records into, registered once per series and cached:
//! per table, a slot per operation (and per error type); per pool, the gauges and the acquire
//! time. The hot path looks a table up under a read lock and touches atomics; labels are built
//! only when a series is first used.
//!
//! Handles are registered with the `metrics` recorder that is current when a series is first
//! used, so a pool should first be used after paymetrics is installed (or, in tests, inside
//! `metrics::with_local_recorder`).

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, PoisonError, RwLock},
};

use metrics::{Counter, Gauge, Histogram, Label, SharedString};

use crate::{
    DATABASE_TAG, ERROR_TYPE_TAG, OPERATION_TAG, OVERFLOW_TABLE, POOL_ACQUIRE_TIME,
    POOL_ACTIVE_CONNECTIONS, POOL_IDLE_CONNECTIONS, POOL_TOTAL_CONNECTIONS, QUERIES_COUNT,
    QUERIES_ERRORS, QUERIES_EXECUTION_TIME, QUERIES_ROWS_AFFECTED, TABLE_TAG, UNKNOWN_TABLE,
    error::ErrorType,
    sql::{self, Operation, TableName},
};

/// Everything one pool records into.
pub(crate) struct PoolMetrics {
    database: SharedString,
    max_tables: usize,
    tables: RwLock<HashMap<Box<str>, Arc<TableSeries>>>,
    unknown: Arc<TableSeries>,
    overflow: Arc<TableSeries>,
    gauges: OnceLock<PoolGauges>,
    acquire_time: OnceLock<Histogram>,
}

struct PoolGauges {
    active: Gauge,
    idle: Gauge,
    total: Gauge,
}

impl PoolMetrics {
    pub(crate) fn new(database: &str, max_tables: usize) -> Self {
        let database = SharedString::from(Arc::<str>::from(database));
        Self {
            unknown: Arc::new(TableSeries::new(&database, UNKNOWN_TABLE.into())),
            overflow: Arc::new(TableSeries::new(&database, OVERFLOW_TABLE.into())),
            database,
            max_tables,
            tables: RwLock::default(),
            gauges: OnceLock::new(),
            acquire_time: OnceLock::new(),
        }
    }

    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    /// The series of `table` (already sanitised): `unknown` for none, `other` past the cap.
    pub(crate) fn table(&self, table: Option<&TableName>) -> Arc<TableSeries> {
        let Some(table) = table else {
            return Arc::clone(&self.unknown);
        };
        let name = table.as_str();
        if let Some(series) = self
            .tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Arc::clone(series);
        }
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = tables.get(name) {
            return Arc::clone(series);
        }
        if tables.len() >= self.max_tables {
            return Arc::clone(&self.overflow);
        }
        let series = Arc::new(TableSeries::new(
            &self.database,
            SharedString::from(Arc::<str>::from(name)),
        ));
        tables.insert(name.into(), Arc::clone(&series));
        series
    }

    /// The series for a table the caller names; sanitised like a parsed one.
    pub(crate) fn named_table(&self, table: &str) -> Arc<TableSeries> {
        self.table(TableName::sanitize(table).as_ref())
    }

    /// A recording of one query of `sql`, tagged with `table` when the caller set one.
    pub(crate) fn recording(&self, sql: &str, table: Option<&Arc<TableSeries>>) -> QueryRecording {
        let (operation, parsed) = sql::parse(sql, table.is_none());
        let series = match table {
            Some(series) => Arc::clone(series),
            None => self.table(parsed.as_ref()),
        };
        QueryRecording::new(series, operation)
    }

    pub(crate) fn record_acquire_time(&self, ms: f64) {
        self.acquire_time
            .get_or_init(|| metrics::histogram!(POOL_ACQUIRE_TIME, self.pool_labels()))
            .record(ms);
    }

    pub(crate) fn record_pool(&self, total: u32, idle: usize) {
        let gauges = self.gauges.get_or_init(|| PoolGauges {
            active: metrics::gauge!(POOL_ACTIVE_CONNECTIONS, self.pool_labels()),
            idle: metrics::gauge!(POOL_IDLE_CONNECTIONS, self.pool_labels()),
            total: metrics::gauge!(POOL_TOTAL_CONNECTIONS, self.pool_labels()),
        });
        let total = f64::from(total);
        // Connections are counted by two atomics read apart; never report a negative.
        let idle = (idle as f64).min(total);
        gauges.total.set(total);
        gauges.idle.set(idle);
        gauges.active.set(total - idle);
    }

    fn pool_labels(&self) -> Vec<Label> {
        vec![Label::new(DATABASE_TAG, self.database.clone())]
    }
}

/// The series of one table of one pool.
pub(crate) struct TableSeries {
    database: SharedString,
    table: SharedString,
    operations: [OperationSeries; Operation::ALL.len()],
}

#[derive(Default)]
struct OperationSeries {
    series: OnceLock<QuerySeries>,
    errors: OnceLock<Box<[OnceLock<Counter>; ErrorType::COUNT]>>,
}

struct QuerySeries {
    count: Counter,
    execution_time: Histogram,
    rows_affected: OnceLock<Histogram>,
}

impl TableSeries {
    fn new(database: &SharedString, table: SharedString) -> Self {
        Self {
            database: database.clone(),
            table,
            operations: Default::default(),
        }
    }

    fn labels(&self, operation: Operation) -> Vec<Label> {
        vec![
            Label::new(OPERATION_TAG, operation.as_str()),
            Label::new(TABLE_TAG, self.table.clone()),
            Label::new(DATABASE_TAG, self.database.clone()),
        ]
    }

    fn query(&self, operation: Operation) -> &QuerySeries {
        self.operations[operation.index()]
            .series
            .get_or_init(|| QuerySeries {
                count: metrics::counter!(QUERIES_COUNT, self.labels(operation)),
                execution_time: metrics::histogram!(QUERIES_EXECUTION_TIME, self.labels(operation)),
                rows_affected: OnceLock::new(),
            })
    }

    fn rows_affected(&self, operation: Operation) -> &Histogram {
        self.query(operation)
            .rows_affected
            .get_or_init(|| metrics::histogram!(QUERIES_ROWS_AFFECTED, self.labels(operation)))
    }

    fn errors(&self, operation: Operation, error: ErrorType) -> &Counter {
        let errors = self.operations[operation.index()]
            .errors
            .get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())));
        errors[error.index()].get_or_init(|| {
            let mut labels = self.labels(operation);
            labels.push(Label::new(ERROR_TYPE_TAG, error.as_str()));
            metrics::counter!(QUERIES_ERRORS, labels)
        })
    }
}

/// One query's measurements, recorded exactly once: when its rows end, when it fails, or when
/// it is dropped part-way (the caller stopped polling). A query never polled is not recorded:
/// it never reached the database.
pub(crate) struct QueryRecording {
    series: Arc<TableSeries>,
    operation: Operation,
    state: State,
    rows_returned: u64,
    rows_affected: Option<u64>,
}

enum State {
    NotStarted,
    Running(std::time::Instant),
    Recorded,
}

impl QueryRecording {
    fn new(series: Arc<TableSeries>, operation: Operation) -> Self {
        Self {
            series,
            operation,
            state: State::NotStarted,
            rows_returned: 0,
            rows_affected: None,
        }
    }

    /// Starts the clock at the first poll.
    #[inline]
    pub(crate) fn start(&mut self) {
        if let State::NotStarted = self.state {
            self.state = State::Running(std::time::Instant::now());
        }
    }

    #[inline]
    pub(crate) fn row(&mut self) {
        self.rows_returned += 1;
    }

    #[inline]
    pub(crate) fn affected(&mut self, rows: u64) {
        *self.rows_affected.get_or_insert(0) += rows;
    }

    pub(crate) fn finish(&mut self) {
        self.record(None);
    }

    pub(crate) fn fail(&mut self, error: &sqlx::Error) {
        self.record(Some(ErrorType::of(error)));
    }

    fn record(&mut self, error: Option<ErrorType>) {
        let State::Running(start) = std::mem::replace(&mut self.state, State::Recorded) else {
            return;
        };
        let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
        let series = self.series.query(self.operation);
        series.count.increment(1);
        series.execution_time.record(elapsed_ms);
        if let Some(error) = error {
            self.series.errors(self.operation, error).increment(1);
            return;
        }
        // Selects report the rows they returned. Writes report what the database says they
        // changed, when sqlx hands that over (not through `fetch_one`/`fetch_optional`); SQLite's
        // count is stale after anything but a write, so other statements report nothing.
        let rows = match self.operation {
            Operation::Select => Some(self.rows_returned),
            Operation::Insert | Operation::Update | Operation::Delete => self.rows_affected,
            Operation::Other => None,
        };
        if let Some(rows) = rows {
            self.series
                .rows_affected(self.operation)
                .record(rows as f64);
        }
    }
}

impl Drop for QueryRecording {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_past_the_cap_fold_into_other() {
        let metrics = PoolMetrics::new("primary", 2);
        let name = |n: &str| TableName::sanitize(n).unwrap();
        let a = metrics.table(Some(&name("a")));
        let b = metrics.table(Some(&name("b")));
        let c = metrics.table(Some(&name("c")));
        assert_eq!(&*a.table, "a");
        assert_eq!(&*b.table, "b");
        assert_eq!(&*c.table, OVERFLOW_TABLE);
        assert!(Arc::ptr_eq(&a, &metrics.table(Some(&name("A")))));
        assert_eq!(&*metrics.table(None).table, UNKNOWN_TABLE);
    }

    #[test]
    fn records_once_and_only_when_started() {
        let recorded = paymetrics::testing::capture(|| {
            let metrics = PoolMetrics::new("primary", 8);
            drop(metrics.recording("SELECT * FROM never_polled", None));

            let mut rec = metrics.recording("SELECT * FROM t", None);
            rec.start();
            rec.row();
            rec.finish();
            rec.finish();
            drop(rec);
        });
        let tags = [
            ("operation", "select"),
            ("table", "t"),
            ("database", "primary"),
        ];
        assert_eq!(recorded.counter(QUERIES_COUNT, &tags), Some(1));
        assert_eq!(
            recorded.histogram(QUERIES_ROWS_AFFECTED, &tags),
            Some(vec![1.0])
        );
        let never = [
            ("operation", "select"),
            ("table", "never_polled"),
            ("database", "primary"),
        ];
        assert_eq!(recorded.counter(QUERIES_COUNT, &never), None);
    }

    #[test]
    fn pool_gauges_never_go_negative() {
        let recorded = paymetrics::testing::capture(|| {
            PoolMetrics::new("ledger", 8).record_pool(2, 3);
        });
        let tags = [("database", "ledger")];
        assert_eq!(recorded.gauge(POOL_TOTAL_CONNECTIONS, &tags), Some(2.0));
        assert_eq!(recorded.gauge(POOL_IDLE_CONNECTIONS, &tags), Some(2.0));
        assert_eq!(recorded.gauge(POOL_ACTIVE_CONNECTIONS, &tags), Some(0.0));
    }
}
