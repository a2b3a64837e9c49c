//! Datadog dashboard JSON (the body of `POST /api/v1/dashboard`), generated from a metric
//! [`Catalogue`]: one group per area, one widget per catalogued metric with the aggregation its
//! type calls for, plus the ratios a payments team reads first. Only metrics in the catalogue
//! appear, so a dashboard never charts a name that is not recorded.

use paymetrics::catalogue::{Catalogue, MetricDef, MetricKind};
use serde_json::{Value, json};

/// The areas of the dashboard, in order, with the metric-name prefixes each one shows. A
/// metric matching none lands in the last group, so nothing catalogued is left off.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "Business",
        &[
            "business.",
            "kpi.transaction.",
            "kpi.customer.",
            "kpi.fraud.",
            "aggregated.",
        ],
    ),
    ("API", &["api."]),
    ("Data stores", &["database.", "cache.", "kpi.cache."]),
    ("External services", &["external_service."]),
    (
        "Queues and health",
        &["queue.", "system.health.", "kpi.system."],
    ),
    (
        "Infrastructure",
        &["process.", "tokio.", "container.", "k8s.", "aws."],
    ),
];

/// The query (or queries) that chart one metric: `sum:...as_count()` for a count, `p50`,
/// `p95` and `p99` for a distribution, `avg` for a gauge.
///
/// ```
/// use paymetrics::catalogue::Catalogue;
/// use paymetrics_alerts::dashboard::queries_for;
/// let c = Catalogue::core();
/// assert_eq!(queries_for(c.get("business.payment.attempts").unwrap()), ["sum:business.payment.attempts{*}.as_count()"]);
/// assert_eq!(queries_for(c.get("kpi.fraud.effectiveness").unwrap()), ["avg:kpi.fraud.effectiveness{*}"]);
/// assert_eq!(queries_for(c.get("business.payment.amount").unwrap()).len(), 3);
/// ```
pub fn queries_for(def: &MetricDef) -> Vec<String> {
    match def.kind {
        MetricKind::Count => vec![format!("sum:{}{{*}}.as_count()", def.name)],
        MetricKind::Gauge => vec![format!("avg:{}{{*}}", def.name)],
        MetricKind::Distribution => ["p50", "p95", "p99"]
            .iter()
            .map(|p| format!("{p}:{}{{*}}", def.name))
            .collect(),
    }
}

fn queries(list: &[String], scalar: bool) -> Value {
    Value::Array(
        list.iter()
            .enumerate()
            .map(|(i, q)| {
                let mut v = json!({ "data_source": "metrics", "name": format!("query{}", i + 1), "query": q });
                if scalar {
                    v["aggregator"] = json!("sum");
                }
                v
            })
            .collect(),
    )
}

fn timeseries(def: &MetricDef) -> Value {
    let qs = queries_for(def);
    let formulas: Vec<Value> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| json!({ "formula": format!("query{}", i + 1), "alias": q.split(':').next().unwrap_or("") }))
        .collect();
    let display = if def.kind == MetricKind::Count {
        "bars"
    } else {
        "line"
    };
    json!({ "definition": {
        "type": "timeseries",
        "title": format!("{} ({})", def.name, def.unit),
        "requests": [{
            "response_format": "timeseries",
            "queries": queries(&qs, false),
            "formulas": formulas,
            "display_type": display,
        }],
    }})
}

/// A percentage of a count: `100 * tagged / all`, as a query value.
fn ratio(title: &str, metric: &str, numerator: &str) -> Value {
    let qs = [
        format!("sum:{metric}{{{numerator}}}.as_count()"),
        format!("sum:{metric}{{*}}.as_count()"),
    ];
    json!({ "definition": {
        "type": "query_value",
        "title": title,
        "precision": 2,
        "requests": [{
            "response_format": "scalar",
            "queries": queries(&qs, true),
            "formulas": [{ "formula": "100 * query1 / query2" }],
        }],
    }})
}

fn toplist(title: &str, query: String) -> Value {
    json!({ "definition": {
        "type": "toplist",
        "title": title,
        "requests": [{
            "response_format": "scalar",
            "queries": queries(&[query], true),
            "formulas": [{ "formula": "query1", "limit": { "count": 10, "order": "desc" } }],
        }],
    }})
}

/// The headline widgets of a group, written only when the metrics they read are catalogued.
fn headline(group: &str, c: &Catalogue) -> Vec<Value> {
    let has = |m: &str| c.get(m).is_some();
    let mut out = vec![];
    match group {
        "Business" if has("business.payment.success_rate") => {
            out.push(ratio(
                "Payment success (%)",
                "business.payment.success_rate",
                "success:true",
            ));
        }
        "API" if has("api.requests.error_rate") => {
            out.push(toplist(
                "Errors by endpoint and status",
                "sum:api.requests.error_rate{error:true} by {endpoint,status_code}.as_count()"
                    .into(),
            ));
        }
        "Data stores" if has("cache.operations.hit_miss") => {
            out.push(ratio(
                "Cache hit rate (%)",
                "cache.operations.hit_miss",
                "result:hit",
            ));
        }
        "External services" if has("external_service.calls.success_rate") => {
            out.push(ratio(
                "External call success (%)",
                "external_service.calls.success_rate",
                "success:true",
            ));
        }
        _ => {}
    }
    out
}

/// The group a metric belongs to (the last one when no prefix matches).
pub fn group_of(name: &str) -> &'static str {
    GROUPS
        .iter()
        .find(|(_, prefixes)| prefixes.iter().any(|p| name.starts_with(p)))
        .map_or(GROUPS[GROUPS.len() - 1].0, |(g, _)| g)
}

/// The dashboard for every metric of `catalogue`; groups with no metric are left out (so the
/// infrastructure group appears only when a collector's entries are in the catalogue).
///
/// ```
/// use paymetrics::catalogue::Catalogue;
/// let d = paymetrics_alerts::dashboard::dashboard(&Catalogue::core(), "Payments");
/// assert_eq!(d["layout_type"], "ordered");
/// assert_eq!(d["widgets"][0]["definition"]["type"], "group");
/// assert_eq!(d["widgets"][0]["definition"]["title"], "Business");
/// ```
pub fn dashboard(catalogue: &Catalogue, title: &str) -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .filter_map(|(group, _)| {
            let metrics: Vec<&MetricDef> = catalogue
                .iter()
                .filter(|d| group_of(d.name) == *group)
                .collect();
            if metrics.is_empty() {
                return None;
            }
            let mut widgets = headline(group, catalogue);
            widgets.extend(metrics.into_iter().map(timeseries));
            Some(json!({ "definition": {
                "type": "group",
                "title": group,
                "layout_type": "ordered",
                "widgets": widgets,
            }}))
        })
        .collect();
    json!({
        "title": title,
        "description": "Generated by paymetrics from its metric catalogue (docs/METRICS.md).",
        "layout_type": "ordered",
        "widgets": groups,
    })
}

/// Every metric query string in a dashboard body, for checking.
///
/// ```
/// use paymetrics::catalogue::Catalogue;
/// let d = paymetrics_alerts::dashboard::dashboard(&Catalogue::core(), "Payments");
/// assert!(paymetrics_alerts::dashboard::all_queries(&d).len() > 40);
/// ```
pub fn all_queries(v: &Value) -> Vec<String> {
    let mut out = vec![];
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let (Some(Value::String(q)), Some(_)) = (m.get("query"), m.get("data_source")) {
                    out.push(q.clone());
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}
