//! Checks alert rules against a metric [`Catalogue`], so a rule cannot watch a metric that is
//! never recorded, or query it in a way its type does not support. What lives elsewhere: the
//! catalogue itself (`paymetrics::catalogue` and each integration's `catalogue` module).

use paymetrics::catalogue::{Catalogue, MetricKind};

use crate::rule::{Aggregation, AlertRule, MetricType};

/// A rule that does not fit the catalogue: names the rule and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule}`, field `{field}`: {message}")]
pub struct RuleCheckError {
    /// The rule's name.
    pub rule: String,
    /// The field at fault (`metric`, `metric_type`, `aggregation`, `aggregation.numerator`).
    pub field: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

fn kind_of(t: MetricType) -> MetricKind {
    match t {
        MetricType::Count => MetricKind::Count,
        MetricType::Gauge => MetricKind::Gauge,
        MetricType::Distribution => MetricKind::Distribution,
    }
}

/// Checks one rule: its metric is catalogued with the type the rule states; percentiles only
/// on distributions; `.as_count()` queries (a sum of a counter, a ratio) only on counts; the
/// ratio's numerator tag is one the metric carries, with a value it takes when those are known.
///
/// ```
/// use paymetrics::catalogue::Catalogue;
/// use paymetrics_alerts::{default_rules, validate::check_rule};
///
/// let catalogue = Catalogue::core();
/// let mut rule = default_rules().remove(0); // payment_success_rate_low
/// assert!(check_rule(&rule, &catalogue).is_ok());
///
/// rule.metric = "business.payment.sucess_rate".into();
/// let err = check_rule(&rule, &catalogue).unwrap_err();
/// assert_eq!(err.field, "metric");
/// assert!(err.to_string().starts_with("rule `payment_success_rate_low`, field `metric`"));
/// ```
pub fn check_rule(rule: &AlertRule, catalogue: &Catalogue) -> Result<(), RuleCheckError> {
    let err = |field, message: String| RuleCheckError {
        rule: rule.name.clone(),
        field,
        message,
    };
    let def = catalogue.get(&rule.metric).ok_or_else(|| {
        err(
            "metric",
            format!(
                "`{}` is not a metric paymetrics records (see docs/METRICS.md); add it to a catalogue if your code records it",
                rule.metric
            ),
        )
    })?;
    let kind = kind_of(rule.metric_type);
    if kind != def.kind {
        return Err(err(
            "metric_type",
            format!(
                "`{}` is recorded as a {}, not a {kind}",
                rule.metric, def.kind
            ),
        ));
    }
    match &rule.aggregation {
        Aggregation::P50 | Aggregation::P95 | Aggregation::P99
            if def.kind != MetricKind::Distribution =>
        {
            Err(err(
                "aggregation",
                format!(
                    "a percentile needs a distribution, and `{}` is a {}",
                    rule.metric, def.kind
                ),
            ))
        }
        Aggregation::Ratio { .. } if def.kind != MetricKind::Count => Err(err(
            "aggregation",
            format!(
                "a ratio is written with `.as_count()`, which needs a count, and `{}` is a {}",
                rule.metric, def.kind
            ),
        )),
        Aggregation::Ratio { numerator } => {
            let (key, value) = numerator.split_once(':').ok_or_else(|| {
                err(
                    "aggregation.numerator",
                    format!("`{numerator}` must be `key:value`"),
                )
            })?;
            let tag = def.tag(key).ok_or_else(|| {
                let keys: Vec<_> = def.tags.iter().map(|t| t.key).collect();
                err(
                    "aggregation.numerator",
                    format!(
                        "`{}` has no tag `{key}` (its tags: {})",
                        rule.metric,
                        keys.join(", ")
                    ),
                )
            })?;
            match tag.values {
                Some(values) if !values.contains(&value) => Err(err(
                    "aggregation.numerator",
                    format!(
                        "tag `{key}` of `{}` takes {}, never `{value}`",
                        rule.metric,
                        values.join(", ")
                    ),
                )),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Checks every rule (see [`check_rule`]), stopping at the first that does not fit.
///
/// ```
/// use paymetrics::catalogue::Catalogue;
/// use paymetrics_alerts::{default_rules, validate::check_rules};
///
/// // The core alone does not know `api.*`: the full catalogue joins the integrations'.
/// let err = check_rules(&default_rules(), &Catalogue::core()).unwrap_err();
/// assert_eq!(err.rule, "api_response_time_high");
/// ```
pub fn check_rules(rules: &[AlertRule], catalogue: &Catalogue) -> Result<(), RuleCheckError> {
    rules.iter().try_for_each(|r| check_rule(r, catalogue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_rules, rule::Aggregation};

    fn success_rule() -> AlertRule {
        default_rules().remove(0)
    }

    #[test]
    fn percentile_on_a_counter_is_refused() {
        let mut r = success_rule();
        r.aggregation = Aggregation::P95;
        let e = check_rule(&r, &Catalogue::core()).unwrap_err();
        assert_eq!(e.field, "aggregation");
        assert!(e.message.contains("percentile"), "{e}");
    }

    #[test]
    fn ratio_on_a_gauge_is_refused() {
        let mut r = success_rule();
        r.metric = "kpi.transaction.success_rate".into();
        r.metric_type = MetricType::Gauge;
        let e = check_rule(&r, &Catalogue::core()).unwrap_err();
        assert_eq!(e.field, "aggregation");
        assert!(e.message.contains(".as_count()"), "{e}");
    }

    #[test]
    fn wrong_type_is_refused() {
        let mut r = success_rule();
        r.metric_type = MetricType::Gauge;
        assert_eq!(
            check_rule(&r, &Catalogue::core()).unwrap_err().field,
            "metric_type"
        );
    }

    #[test]
    fn unknown_tag_key_and_value_are_refused() {
        let mut r = success_rule();
        r.aggregation = Aggregation::Ratio {
            numerator: "succes:true".into(),
        };
        let e = check_rule(&r, &Catalogue::core()).unwrap_err();
        assert_eq!(e.field, "aggregation.numerator");
        assert!(e.message.contains("no tag `succes`"), "{e}");
        r.aggregation = Aggregation::Ratio {
            numerator: "success:yes".into(),
        };
        let e = check_rule(&r, &Catalogue::core()).unwrap_err();
        assert!(e.message.contains("never `yes`"), "{e}");
    }
}
