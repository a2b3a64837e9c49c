//! Exports the alert rules as Datadog monitors, with the dashboard and SLOs, all checked
//! against the full metric catalogue first.
//!
//! ```text
//! cargo run -p paymetrics-alerts --example monitors -- export                 # one JSON object on stdout
//! cargo run -p paymetrics-alerts --example monitors -- export --out datadog/  # datadog/{monitors,dashboards,slos}/*.json
//! cargo run -p paymetrics-alerts --example monitors -- export --rules rules.toml   # your rules instead of the defaults
//!     [--critical-handle @pagerduty-payments] [--warning-handle @slack-payments]
//!     [--title "Payments"] [--slo-timeframe 7d|30d|90d] [--success-target 99.5]
//!     [--availability-target 99.9] [--latency-target 99] [--latency-threshold-ms 500]
//! cargo run -p paymetrics-alerts --example monitors -- rules                  # the default rules as TOML
//! ```
//! POST monitors to `/api/v1/monitor`, the dashboard to `/api/v1/dashboard` and each SLO to
//! `/api/v1/slo`. A rule that names a metric paymetrics does not record, or queries it in a way
//! its type does not allow, stops the export with the rule and field named.

#[path = "../tests/support/full_catalogue.rs"]
mod support;

use std::{io::Write, path::PathBuf, process::ExitCode};

use paymetrics_alerts::{
    dashboard::dashboard,
    default_rules, load_rules_checked,
    monitor::{MonitorSettings, monitor, monitors},
    rules_to_toml,
    slo::{SloSettings, slos},
    validate::check_rules,
};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`| head`) is not a failure of the export.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("monitors: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let mut args = args.into_iter();
    let command = args.next().unwrap_or_default();
    let (mut out, mut rules_file) = (None::<PathBuf>, None::<PathBuf>);
    let mut settings = MonitorSettings::default();
    let mut slo = SloSettings::default();
    let mut title = "Payments service".to_owned();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => out = Some(value()?.into()),
            "--rules" => rules_file = Some(value()?.into()),
            "--critical-handle" => settings.critical_handle = value()?,
            "--warning-handle" => settings.warning_handle = value()?,
            "--title" => title = value()?,
            "--slo-timeframe" => {
                let t = value()?;
                for o in [
                    &mut slo.payment_success,
                    &mut slo.api_availability,
                    &mut slo.api_latency,
                ] {
                    o.timeframe = t.clone();
                }
            }
            "--success-target" => slo.payment_success.target = value()?.parse()?,
            "--availability-target" => slo.api_availability.target = value()?.parse()?,
            "--latency-target" => slo.api_latency.target = value()?.parse()?,
            "--latency-threshold-ms" => slo.api_latency_threshold_ms = value()?.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let catalogue = support::full_catalogue()?;
    let rules = match &rules_file {
        Some(path) => load_rules_checked(path, &catalogue)?,
        None => {
            let rules = default_rules();
            check_rules(&rules, &catalogue)?;
            rules
        }
    };
    let mut stdout = std::io::stdout().lock();
    match command.as_str() {
        "export" => {
            let board = dashboard(&catalogue, &title);
            let slo_bodies = slos(&slo);
            match out {
                Some(dir) => {
                    let mut write = |path: PathBuf, body: &serde_json::Value| -> Result<(), Box<dyn std::error::Error>> {
                        std::fs::create_dir_all(path.parent().unwrap_or(&dir))?;
                        std::fs::write(&path, serde_json::to_string_pretty(body)? + "\n")?;
                        writeln!(stdout, "{}", path.display())?;
                        Ok(())
                    };
                    for rule in &rules {
                        write(dir.join("monitors").join(format!("{}.json", rule.name)), &monitor(rule, &settings))?;
                    }
                    write(dir.join("dashboards/payments.json"), &board)?;
                    for (name, body) in ["payment_success", "api_availability", "api_latency"].iter().zip(&slo_bodies) {
                        write(dir.join("slos").join(format!("{name}.json")), body)?;
                    }
                }
                None => {
                    let all = serde_json::json!({
                        "monitors": monitors(&rules, &settings),
                        "dashboards": [board],
                        "slos": slo_bodies,
                    });
                    writeln!(stdout, "{}", serde_json::to_string_pretty(&all)?)?;
                }
            }
        }
        "rules" => write!(stdout, "{}", rules_to_toml(&rules))?,
        _ => return Err("usage: monitors export [--out DIR] [--rules FILE] [--critical-handle H] [--warning-handle H] [--title T] [--slo-timeframe 30d] [--success-target N] [--availability-target N] [--latency-target N] [--latency-threshold-ms N] | monitors rules".into()),
    }
    Ok(())
}
