//! Rules, dashboards, SLOs and the metrics reference checked against the full catalogue:
//! every query parses under `query`'s grammar and names only catalogued metrics and tag keys.
//!
//! Regenerate golden files and docs/METRICS.md with `UPDATE_GOLDEN=1 cargo test -p
//! paymetrics-alerts`, then read the diff.

#[path = "support/full_catalogue.rs"]
mod support;

use std::path::PathBuf;

use paymetrics_alerts::{
    dashboard, default_rules, monitor, parse_rules_checked, query, rules_to_toml, slo,
    validate::check_rules,
};
use support::full_catalogue;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden(path: PathBuf, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[test]
fn default_rules_fit_the_full_catalogue() {
    let c = full_catalogue().unwrap();
    check_rules(&default_rules(), &c).unwrap_or_else(|e| panic!("{e}"));
    // And through the TOML path a user takes.
    parse_rules_checked(&rules_to_toml(&default_rules()), "defaults.toml", &c).unwrap();
}

#[test]
fn every_monitor_query_parses_and_names_catalogue_metrics() {
    let c = full_catalogue().unwrap();
    for rule in default_rules() {
        let q = monitor::query(&rule);
        let found = query::parse_monitor(&q).unwrap_or_else(|e| panic!("{e}"));
        query::check_against(&found, &c).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
    }
}

#[test]
fn every_dashboard_query_parses_and_names_catalogue_metrics() {
    let c = full_catalogue().unwrap();
    let d = dashboard::dashboard(&c, "Payments service");
    let queries = dashboard::all_queries(&d);
    for q in &queries {
        let found = query::parse_metric_query(q).unwrap_or_else(|e| panic!("{e}"));
        query::check_against(&found, &c).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    // Every catalogued metric is charted.
    for def in c.iter() {
        assert!(
            queries
                .iter()
                .any(|q| q.contains(&format!(":{}{{", def.name))),
            "{} is not on the dashboard",
            def.name
        );
    }
    let groups: Vec<_> = d["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["definition"]["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        groups,
        [
            "Business",
            "API",
            "Data stores",
            "External services",
            "Queues and health",
            "Infrastructure"
        ]
    );
    golden(
        root().join("tests/golden/dashboard.json"),
        &(serde_json::to_string_pretty(&d).unwrap() + "\n"),
    );
}

#[test]
fn without_collectors_there_is_no_infrastructure_group() {
    let d = dashboard::dashboard(&paymetrics::catalogue::Catalogue::core(), "Core");
    assert!(!d.to_string().contains("\"Infrastructure\""));
}

#[test]
fn every_slo_query_parses_and_names_catalogue_metrics() {
    let c = full_catalogue().unwrap();
    let slos = slo::slos(&Default::default());
    for s in &slos {
        let qs = slo::queries(s);
        assert!(!qs.is_empty());
        for q in qs {
            let found = query::parse_metric_query(&q).unwrap_or_else(|e| panic!("{e}"));
            query::check_against(&found, &c).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }
    golden(
        root().join("tests/golden/slos.json"),
        &(serde_json::to_string_pretty(&slos).unwrap() + "\n"),
    );
}

#[test]
fn slo_targets_and_windows_are_configurable() {
    let mut s = slo::SloSettings::default();
    s.api_availability.target = 99.5;
    s.api_availability.timeframe = "7d".into();
    s.api_latency_threshold_ms = 250.0;
    let slos = slo::slos(&s);
    assert_eq!(slos[1]["thresholds"][0]["target"], 99.5);
    assert_eq!(slos[1]["thresholds"][0]["timeframe"], "7d");
    assert_eq!(
        slos[2]["sli_specification"]["time_slice"]["threshold"],
        250.0
    );
}

#[test]
fn metrics_reference_matches_the_catalogue() {
    let c = full_catalogue().unwrap();
    let text = format!(
        "# Metrics reference\n\nEvery metric paymetrics and its integrations can emit, generated from the \
         catalogue (`paymetrics::catalogue` and each crate's `catalogue` module). Global tags \
         (`env`, `service`, `version`) are not listed. Regenerate with `UPDATE_GOLDEN=1 cargo \
         test -p paymetrics-alerts --test catalogue`.\n\n{}",
        c.to_markdown()
    );
    golden(root().join("../../docs/METRICS.md"), &text);
}

#[test]
fn a_user_rules_file_naming_an_unknown_metric_is_refused_with_rule_and_field() {
    let path = std::env::temp_dir().join(format!("paymetrics-rules-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[rule]]\nname = \"refunds_high\"\nmetric = \"business.refunds\"\nmetric_type = \"count\"\n\
         aggregation = { kind = \"sum\" }\ncomparison = \">\"\nthreshold = 50\nwindow = \"1h\"\nseverity = \"warning\"\n",
    )
    .unwrap();
    let err = paymetrics_alerts::load_rules_checked(&path, &full_catalogue().unwrap()).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    let text = err.to_string();
    assert!(
        text.contains(
            ":2: rule `refunds_high`, field `metric`: `business.refunds` is not a metric"
        ),
        "{text}"
    );
}
