//! Exports the alert rules as Datadog monitor definitions.
//!
//! ```text
//! cargo run --example monitors -- export                      # a JSON array on stdout
//! cargo run --example monitors -- export --out monitors/      # one file per rule
//! cargo run --example monitors -- export --rules rules.toml   # your rules instead of the defaults
//!     [--critical-handle @pagerduty-payments] [--warning-handle @slack-payments]
//! cargo run --example monitors -- rules                       # the default rules as TOML
//! ```
//! POST each body to `https://api.datadoghq.com/api/v1/monitor`.

use std::{io::Write, path::PathBuf, process::ExitCode};

use paymetrics_alerts::{
    default_rules, load_rules,
    monitor::{MonitorSettings, monitor, monitors},
    rules_to_toml,
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
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => out = Some(value()?.into()),
            "--rules" => rules_file = Some(value()?.into()),
            "--critical-handle" => settings.critical_handle = value()?,
            "--warning-handle" => settings.warning_handle = value()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let mut stdout = std::io::stdout().lock();
    let rules = match &rules_file {
        Some(path) => load_rules(path)?,
        None => default_rules(),
    };
    match command.as_str() {
        "export" => match out {
            Some(dir) => {
                std::fs::create_dir_all(&dir)?;
                for rule in &rules {
                    let path = dir.join(format!("{}.json", rule.name));
                    std::fs::write(&path, serde_json::to_string_pretty(&monitor(rule, &settings))? + "\n")?;
                    writeln!(stdout, "{}", path.display())?;
                }
            }
            None => writeln!(stdout, "{}", serde_json::to_string_pretty(&monitors(&rules, &settings))?)?,
        },
        "rules" => write!(stdout, "{}", rules_to_toml(&rules))?,
        _ => return Err("usage: monitors export [--out DIR] [--rules FILE] [--critical-handle H] [--warning-handle H] | monitors rules".into()),
    }
    Ok(())
}
