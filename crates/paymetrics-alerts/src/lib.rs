//! Alert rules for paymetrics: the same rules export Datadog monitor definitions and evaluate
//! in process.
//!
//! * [`AlertRule`]: the original strategy's fields (metric, aggregation, comparison, threshold, window,
//!   severity) plus name, message, runbook URL and tags. [`default_rules`] are the original strategy's eight,
//!   fixed where its queries were wrong; [`load_rules`] reads a TOML file.
//! * [`monitor`]: the JSON bodies Datadog's monitor API accepts (`cargo run -p paymetrics-alerts --example monitors
//!   -- export`).
//! * [`validate`]: every rule checked against a metric catalogue
//!   ([`paymetrics::catalogue`]) when loaded ([`parse_rules_checked`], [`load_rules_checked`]):
//!   an unknown metric, a wrong type, a percentile of a non-distribution, `.as_count()` of a
//!   non-count or an unknown tag key is an error naming the rule and the field.
//! * [`dashboard`] and [`slo`]: the dashboard and SLO bodies for a payments service, generated
//!   from the catalogue; [`query`] checks every query they and the monitors contain.
//! * [`eval`]: local evaluation against the recorder's [windows](paymetrics::window) with
//!   hysteresis; transitions go out as DogStatsD events and service checks.
//!
//! ```
//! use paymetrics_alerts::{default_rules, monitor};
//!
//! let rules = default_rules();
//! let success = &rules[0];
//! assert_eq!(
//!     monitor::query(success),
//!     "sum(last_10m):sum:business.payment.success_rate{success:true}.as_count() \
//!      / sum:business.payment.success_rate{*}.as_count() * 100 < 95"
//! );
//! ```

pub mod catalogue;
pub mod dashboard;
pub mod eval;
pub mod monitor;
pub mod query;
pub mod rule;
pub mod slo;
pub mod validate;

pub use eval::{AlertState, Evaluator, Transition};
pub use rule::{Aggregation, AlertRule, Comparison, MetricType, Severity, default_rules};

/// A rules file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read alert rules from {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is invalid or a rule is malformed.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The path (or `<string>`).
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default, rename = "rule")]
    rules: Vec<AlertRule>,
}

/// Parses rules from TOML text: an array of `[[rule]]` tables.
///
/// ```
/// let rules = paymetrics_alerts::parse_rules(r#"
/// [[rule]]
/// name = "refund_rate_high"
/// metric = "business.refunds"
/// metric_type = "count"
/// aggregation = { kind = "sum" }
/// comparison = ">"
/// threshold = 50
/// window = "1h"
/// severity = "warning"
/// "#, "rules.toml").unwrap();
/// assert_eq!(rules[0].window.as_secs(), 3600);
///
/// let err = paymetrics_alerts::parse_rules("[[rule]]\nname = \"x\"\nthreshold = \"high\"\n", "bad.toml")
///     .unwrap_err();
/// assert!(err.to_string().starts_with("bad.toml:3: "), "{err}");
/// ```
pub fn parse_rules(text: &str, path: &str) -> Result<Vec<AlertRule>, RulesError> {
    let file: RulesFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        });
        // toml names the line; name the field too when the line assigns one.
        let field = text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim())
            .filter(|k| !k.is_empty() && !e.message().contains(&format!("`{k}`")));
        let message = match field {
            Some(k) => format!("field `{k}`: {}", e.message()),
            None => e.message().to_owned(),
        };
        RulesError::Invalid {
            path: path.to_owned(),
            line,
            message,
        }
    })?;
    let mut seen = std::collections::HashSet::new();
    for rule in &file.rules {
        if !seen.insert(rule.name.clone()) {
            let line = text
                .rfind(&format!("\"{}\"", rule.name))
                .map_or(1, |i| text[..i].matches('\n').count() + 1);
            return Err(RulesError::Invalid {
                path: path.to_owned(),
                line,
                message: format!("duplicate rule name `{}`", rule.name),
            });
        }
    }
    Ok(file.rules)
}

/// Parses rules as [`parse_rules`] does, then checks each against `catalogue`
/// ([`validate::check_rule`]): a rule watching an unknown metric, or querying it in a way its
/// type does not allow, is an error naming the file, the rule's line, the rule and the field.
///
/// ```
/// use paymetrics::catalogue::Catalogue;
///
/// let text = r#"
/// [[rule]]
/// name = "attempts_p95"
/// metric = "business.payment.attempts"
/// metric_type = "count"
/// aggregation = { kind = "p95" }
/// comparison = ">"
/// threshold = 50
/// window = "1h"
/// severity = "warning"
/// "#;
/// let err = paymetrics_alerts::parse_rules_checked(text, "rules.toml", &Catalogue::core()).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "rules.toml:3: rule `attempts_p95`, field `aggregation`: a percentile needs a distribution, \
///      and `business.payment.attempts` is a count"
/// );
/// ```
pub fn parse_rules_checked(
    text: &str,
    path: &str,
    catalogue: &paymetrics::catalogue::Catalogue,
) -> Result<Vec<AlertRule>, RulesError> {
    let rules = parse_rules(text, path)?;
    for rule in &rules {
        validate::check_rule(rule, catalogue).map_err(|e| RulesError::Invalid {
            path: path.to_owned(),
            line: text
                .find(&format!("\"{}\"", rule.name))
                .map_or(1, |i| text[..i].matches('\n').count() + 1),
            message: e.to_string(),
        })?;
    }
    Ok(rules)
}

/// Reads rules from a TOML file and checks them against `catalogue` (see
/// [`parse_rules_checked`]).
pub fn load_rules_checked(
    path: impl AsRef<std::path::Path>,
    catalogue: &paymetrics::catalogue::Catalogue,
) -> Result<Vec<AlertRule>, RulesError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_rules_checked(&text, &path.display().to_string(), catalogue)
}

/// Reads rules from a TOML file (see [`parse_rules`]).
pub fn load_rules(path: impl AsRef<std::path::Path>) -> Result<Vec<AlertRule>, RulesError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_rules(&text, &path.display().to_string())
}

/// Writes rules as TOML (the format [`parse_rules`] reads).
pub fn rules_to_toml(rules: &[AlertRule]) -> String {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        rule: &'a [AlertRule],
    }
    toml::to_string(&Out { rule: rules }).unwrap_or_default()
}
