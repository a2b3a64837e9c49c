//! Golden files for the eight default monitors, and rules files with mistakes.
//!
//! Regenerate the golden files with `UPDATE_GOLDEN=1 cargo test -p paymetrics-alerts`, then
//! read the diff: a changed query changes what pages someone.

use std::path::PathBuf;

use paymetrics_alerts::{
    default_rules, load_rules,
    monitor::{MonitorSettings, monitor},
    parse_rules, rules_to_toml,
};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn every_default_monitor_matches_its_golden_file() {
    let settings = MonitorSettings::default();
    for rule in default_rules() {
        let json = serde_json::to_string_pretty(&monitor(&rule, &settings)).unwrap() + "\n";
        let path = golden_dir().join(format!("{}.json", rule.name));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &json).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(json, expected, "{}", rule.name);
    }
}

#[test]
fn queries_fix_the_seed() {
    let settings = MonitorSettings::default();
    let by_name = |n: &str| default_rules().into_iter().find(|r| r.name == n).unwrap();
    let q = |n: &str| {
        monitor(&by_name(n), &settings)["query"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A rate is a formula over counts, not avg() of a counter.
    assert_eq!(
        q("cache_hit_rate_low"),
        "sum(last_10m):sum:cache.operations.hit_miss{result:hit}.as_count() / sum:cache.operations.hit_miss{*}.as_count() * 100 < 80"
    );
    // A percentile of a distribution, global across hosts.
    assert_eq!(
        q("database_query_time_high"),
        "percentile(last_5m):p95:database.queries.execution_time{*} > 1000"
    );
    assert_eq!(
        q("fraud_detection_rate_high"),
        "sum(last_1h):sum:business.fraud.detections{*}.as_count() > 100"
    );
    let critical = monitor(&by_name("payment_success_rate_low"), &settings);
    assert!(
        critical["message"]
            .as_str()
            .unwrap()
            .starts_with("@pagerduty-critical")
    );
    assert_eq!(critical["type"], "query alert");
    assert_eq!(critical["options"]["notify_audit"], true);
    let warning = monitor(&by_name("aws_rds_cpu_high"), &settings);
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .starts_with("@slack-alerts")
    );
    assert_eq!(warning["type"], "metric alert");
    let custom = MonitorSettings {
        warning_handle: "@slack-payments".into(),
        ..settings
    };
    assert!(
        monitor(&by_name("aws_rds_cpu_high"), &custom)["message"]
            .as_str()
            .unwrap()
            .starts_with("@slack-payments")
    );
}

#[test]
fn rules_round_trip_through_toml() {
    let text = rules_to_toml(&default_rules());
    assert_eq!(
        parse_rules(&text, "defaults.toml").unwrap(),
        default_rules()
    );
    let dir = std::env::temp_dir().join(format!("paymetrics-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.toml");
    std::fs::write(&path, &text).unwrap();
    assert_eq!(load_rules(&path).unwrap().len(), 8);
    let missing = load_rules(dir.join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing.toml"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_files_name_the_line_and_the_field() {
    let base = "[[rule]]\nname = \"r\"\nmetric = \"m\"\nmetric_type = \"count\"\naggregation = { kind = \"sum\" }\ncomparison = \">\"\nthreshold = 1\nwindow = \"5m\"\nseverity = \"warning\"\n";
    assert!(parse_rules(base, "ok.toml").is_ok());
    let cases = [
        (
            base.replace("window = \"5m\"", "window = \"5 minutes\""),
            8,
            "window",
        ),
        (
            base.replace("comparison = \">\"", "comparison = \"bigger\""),
            6,
            "comparison",
        ),
        (
            base.replace("severity = \"warning\"", "severity = \"meh\""),
            9,
            "severity",
        ),
        (
            base.replace("threshold = 1", "threshold = \"high\""),
            7,
            "threshold",
        ),
        (
            base.replace(
                "aggregation = { kind = \"sum\" }",
                "aggregation = { kind = \"p42\" }",
            ),
            5,
            "p42",
        ),
        (
            base.replace("metric = \"m\"\n", "metric = \"m\"\nmetrik = \"typo\"\n"),
            4,
            "metrik",
        ),
        (base.replace("name = \"r\"\n", ""), 1, "name"),
        (format!("{base}{base}"), 11, "duplicate"),
    ];
    for (text, line, mentions) in cases {
        let err = parse_rules(&text, "rules.toml").unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("rules.toml:{line}: ")),
            "{mentions}: {err}"
        );
        assert!(err.contains(mentions), "{mentions}: {err}");
    }
}
