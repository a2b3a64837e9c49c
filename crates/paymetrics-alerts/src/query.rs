//! A checker for the subset of Datadog's metric query syntax that paymetrics writes: monitor
//! queries, dashboard queries and SLO queries. It parses (recursive descent) and returns each
//! metric query it found, so tests can check every name, tag key and aggregation against the
//! catalogue. It is deliberately strict: anything paymetrics does not write is refused, so a
//! typo in generated JSON fails a test instead of failing in Datadog.
//!
//! Grammar:
//!
//! ```text
//! monitor  := time_agg "(" "last_" window ")" ":" expr SP cmp SP number
//! time_agg := "avg" | "sum" | "min" | "max" | "percentile"
//! expr     := term (SP ("+" | "-" | "*" | "/") SP term)*
//! term     := number | "(" expr ")" | metric
//! metric   := space_agg ":" name "{" scope "}" [SP "by" SP "{" key ("," key)* "}"] [suffix]
//! space_agg:= "avg" | "sum" | "min" | "max" | "p50" | "p75" | "p90" | "p95" | "p99"
//! scope    := "*" | filter ("," filter)*
//! filter   := ["!"] key ":" value
//! suffix   := ".as_count()" | ".as_rate()"
//! ```

use paymetrics::catalogue::{Catalogue, MetricKind};

/// One metric query found in a larger query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricQuery {
    /// The space aggregator (`sum`, `p95`, ...).
    pub aggregator: String,
    /// The metric name.
    pub metric: String,
    /// Tag keys in the scope and in `by {...}`.
    pub tag_keys: Vec<String>,
    /// `as_count`, `as_rate` or empty.
    pub suffix: String,
}

/// Why a query does not parse, or does not fit the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {at} of {query:?}")]
pub struct QueryError {
    /// The query.
    pub query: String,
    /// Byte offset of the problem.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    found: Vec<MetricQuery>,
}

const SPACE_AGGS: &[&str] = &[
    "avg", "sum", "min", "max", "p50", "p75", "p90", "p95", "p99",
];
const TIME_AGGS: &[&str] = &["avg", "sum", "min", "max", "percentile"];

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s,
            i: 0,
            found: vec![],
        }
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T, QueryError> {
        Err(QueryError {
            query: self.s.to_owned(),
            at: self.i,
            message: message.into(),
        })
    }
    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }
    fn eat(&mut self, t: &str) -> bool {
        if self.rest().starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, t: &str) -> Result<(), QueryError> {
        if self.eat(t) {
            Ok(())
        } else {
            self.err(format!("expected {t:?}"))
        }
    }
    fn word(&mut self, ok: impl Fn(char) -> bool) -> &'a str {
        let start = self.i;
        let len = self
            .rest()
            .find(|c: char| !ok(c))
            .unwrap_or(self.rest().len());
        self.i += len;
        &self.s[start..self.i]
    }
    fn one_of(&mut self, options: &[&str], what: &str) -> Result<String, QueryError> {
        let w = self.word(|c| c.is_ascii_alphanumeric());
        if options.contains(&w) {
            Ok(w.to_owned())
        } else {
            self.i -= w.len();
            self.err(format!("expected {what} ({})", options.join(", ")))
        }
    }
    fn number(&mut self) -> Result<(), QueryError> {
        let w = self.word(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == 'e');
        if w.parse::<f64>().is_ok() {
            Ok(())
        } else {
            self.err("expected a number")
        }
    }
    fn key(&mut self) -> Result<String, QueryError> {
        let k = self
            .word(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '/');
        if k.starts_with(|c: char| c.is_ascii_alphabetic()) {
            Ok(k.to_owned())
        } else {
            self.i -= k.len();
            self.err("expected a tag key starting with a letter")
        }
    }
    fn metric(&mut self) -> Result<(), QueryError> {
        let aggregator = self.one_of(SPACE_AGGS, "a space aggregator")?;
        self.expect(":")?;
        let name = self.word(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) || name.ends_with('.') {
            return self.err("expected a metric name");
        }
        let metric = name.to_owned();
        self.expect("{")?;
        let mut tag_keys = vec![];
        if !self.eat("*") {
            loop {
                self.eat("!");
                tag_keys.push(self.key()?);
                self.expect(":")?;
                let v = self.word(|c| c.is_ascii_alphanumeric() || "_.-/:*".contains(c));
                if v.is_empty() {
                    return self.err("expected a tag value");
                }
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.expect("}")?;
        if self.eat(" by {") {
            loop {
                tag_keys.push(self.key()?);
                if !self.eat(",") {
                    break;
                }
            }
            self.expect("}")?;
        }
        let suffix = if self.eat(".as_count()") {
            "as_count"
        } else if self.eat(".as_rate()") {
            "as_rate"
        } else {
            ""
        };
        self.found.push(MetricQuery {
            aggregator,
            metric,
            tag_keys,
            suffix: suffix.to_owned(),
        });
        Ok(())
    }
    fn term(&mut self) -> Result<(), QueryError> {
        if self.eat("(") {
            self.expr()?;
            self.expect(")")
        } else if self.rest().starts_with(|c: char| c.is_ascii_digit()) {
            self.number()
        } else {
            self.metric()
        }
    }
    fn expr(&mut self) -> Result<(), QueryError> {
        self.term()?;
        while [" + ", " - ", " * ", " / "]
            .iter()
            .any(|op| self.rest().starts_with(op))
        {
            self.i += 3;
            self.term()?;
        }
        Ok(())
    }
    fn end(self) -> Result<Vec<MetricQuery>, QueryError> {
        if self.i == self.s.len() {
            Ok(self.found)
        } else {
            self.err("unexpected text")
        }
    }
}

/// Parses a monitor query (`sum(last_10m):... < 95`).
///
/// ```
/// use paymetrics_alerts::query::parse_monitor;
/// let found = parse_monitor("percentile(last_5m):p95:api.requests.response_time{*} > 2000")?;
/// assert_eq!(found[0].metric, "api.requests.response_time");
/// assert!(parse_monitor("p95(last_5m):api.requests.response_time{*} > 2000").is_err());
/// # Ok::<(), paymetrics_alerts::query::QueryError>(())
/// ```
pub fn parse_monitor(query: &str) -> Result<Vec<MetricQuery>, QueryError> {
    let mut p = Parser::new(query);
    p.one_of(TIME_AGGS, "a time aggregator")?;
    p.expect("(last_")?;
    let n = p.word(|c| c.is_ascii_digit());
    if n.is_empty() {
        return p.err("expected a window length");
    }
    p.one_of(&["s", "m", "h", "d", "w"], "a window unit")?;
    p.expect("):")?;
    p.expr()?;
    p.expect(" ")?;
    p.one_of_ops()?;
    p.expect(" ")?;
    p.number()?;
    p.end()
}

impl Parser<'_> {
    fn one_of_ops(&mut self) -> Result<(), QueryError> {
        for op in [">=", "<=", ">", "<"] {
            if self.eat(op) {
                return Ok(());
            }
        }
        self.err("expected a comparison (>, >=, <, <=)")
    }
}

/// Parses a dashboard or SLO metric query: one metric query, or a formula of them.
///
/// ```
/// use paymetrics_alerts::query::parse_metric_query;
/// let found = parse_metric_query("sum:api.requests.count{!status_code:5*} by {endpoint}.as_count()")?;
/// assert_eq!(found[0].tag_keys, ["status_code", "endpoint"]);
/// assert!(parse_metric_query("sum:api.requests.count").is_err()); // no scope
/// # Ok::<(), paymetrics_alerts::query::QueryError>(())
/// ```
pub fn parse_metric_query(query: &str) -> Result<Vec<MetricQuery>, QueryError> {
    let mut p = Parser::new(query);
    p.expr()?;
    p.end()
}

/// Checks what a query names against the catalogue: every metric catalogued, percentiles only
/// on distributions, `.as_count()` only on counts, every tag key carried by its metric.
///
/// ```
/// use paymetrics::catalogue::Catalogue;
/// use paymetrics_alerts::query::{check_against, parse_metric_query};
/// let c = Catalogue::core();
/// assert!(check_against(&parse_metric_query("p95:business.payment.amount{*}")?, &c).is_ok());
/// assert!(check_against(&parse_metric_query("p95:business.payment.attempts{*}")?, &c).is_err());
/// # Ok::<(), paymetrics_alerts::query::QueryError>(())
/// ```
pub fn check_against(found: &[MetricQuery], catalogue: &Catalogue) -> Result<(), String> {
    for q in found {
        let def = catalogue
            .get(&q.metric)
            .ok_or_else(|| format!("`{}` is not in the catalogue", q.metric))?;
        if q.aggregator.starts_with('p') && def.kind != MetricKind::Distribution {
            return Err(format!(
                "`{}:{}`: a percentile of a {}",
                q.aggregator, q.metric, def.kind
            ));
        }
        if !q.suffix.is_empty() && def.kind != MetricKind::Count {
            return Err(format!("`{}.{}()` on a {}", q.metric, q.suffix, def.kind));
        }
        if let Some(k) = q.tag_keys.iter().find(|k| def.tag(k).is_none()) {
            return Err(format!("`{}` has no tag `{k}`", q.metric));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_paymetrics_writes() {
        for q in [
            "sum(last_10m):sum:business.payment.success_rate{success:true}.as_count() / sum:business.payment.success_rate{*}.as_count() * 100 < 95",
            "avg(last_10m):avg:aws.rds.cpu.utilization{*} > 80",
            "max(last_5m):max:k8s.pods.failed{*} >= 5.5",
        ] {
            parse_monitor(q).unwrap_or_else(|e| panic!("{e}"));
        }
        let f = parse_metric_query("(sum:a.b{x:1,!y:2*}.as_count() - 3) / sum:a.b{*}.as_rate()")
            .unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].tag_keys, ["x", "y"]);
    }

    #[test]
    fn rejects_what_datadog_would_refuse() {
        for q in [
            "sum(last_10m):sum:m{*}.as_count() <", // no threshold
            "sum(last_10m):sum:m{*} = 3",          // no such comparison
            "median(last_10m):sum:m{*} > 3",       // no such time aggregator
            "sum(10m):sum:m{*} > 3",               // window without last_
            "sum(last_m):sum:m{*} > 3",            // window without length
            "sum(last_10m):p42:m{*} > 3",          // no such percentile
            "sum(last_10m):sum:m{} > 3",           // empty scope
            "sum(last_10m):sum:m{a:} > 3",         // tag without value
            "sum(last_10m):sum:m{*}.as_count > 3", // suffix without ()
            "sum(last_10m):sum:m.{*} > 3",         // name ends with a dot
            "sum(last_10m):sum:m{*} > 3 extra",    // trailing text
            "sum(last_10m):(sum:m{*} > 3",         // unbalanced parenthesis
        ] {
            assert!(parse_monitor(q).is_err(), "accepted {q:?}");
        }
        for q in ["sum:m", "sum:m{*} by {}", "sum:m{*} +", "m{*}", "sum:1m{*}"] {
            assert!(parse_metric_query(q).is_err(), "accepted {q:?}");
        }
    }

    #[test]
    fn checks_types_and_tags() {
        let c = Catalogue::core();
        let check = |q: &str| check_against(&parse_metric_query(q).unwrap(), &c);
        assert!(check("sum:business.payment.attempts{currency:EUR}.as_count()").is_ok());
        assert!(
            check("sum:business.payment.amount{*}.as_count()")
                .unwrap_err()
                .contains("as_count")
        );
        assert!(
            check("sum:business.payment.attempts{user_id:1}.as_count()")
                .unwrap_err()
                .contains("user_id")
        );
        assert!(
            check("avg:made.up{*}")
                .unwrap_err()
                .contains("not in the catalogue")
        );
    }
}
