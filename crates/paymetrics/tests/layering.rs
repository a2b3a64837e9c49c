//! The core crate holds two halves in one crate: the general recorder and DogStatsD exporter,
//! and the payment domain built on its snapshots. The rule that keeps them separable is that
//! imports point one way: the domain may use the recorder half, never the reverse. This test
//! reads the sources and fails on an import that points up.

use std::path::Path;

/// The payment domain's modules.
const DOMAIN: [&str; 5] = ["events", "kpi", "rollup", "uniques", "window"];
/// The recorder half: files and folders that must never import the domain.
const RECORDER: [&str; 9] = [
    "recorder",
    "dogstatsd",
    "export",
    "flusher.rs",
    "builder.rs",
    "snapshot.rs",
    "message.rs",
    "clock.rs",
    "signal.rs",
];

fn rust_files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

#[test]
fn the_recorder_half_never_imports_the_payment_domain() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    for part in RECORDER {
        rust_files(&src.join(part), &mut files);
    }
    assert!(
        files.len() >= 10,
        "the recorder half was not found: {files:?}"
    );
    let mut violations = vec![];
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for module in DOMAIN {
                if code.contains(&format!("crate::{module}"))
                    || code.contains(&format!("super::{module}"))
                {
                    violations.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports pointing up:\n{}",
        violations.join("\n")
    );
}
