//! Placeholder; the recorder benches replace it.
fn main() {}
