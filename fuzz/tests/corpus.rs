//! Replays the kept corpus through every check on stable Rust (no libFuzzer): a quick smoke
//! run, and the regression test for every crash the fuzzers found (their inputs are kept in
//! the corpus). `cargo test --manifest-path fuzz/Cargo.toml --no-default-features`.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{}", path.display());
        check(&data);
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

#[test]
fn request_parse() {
    replay("request_parse", meshmux_fuzz::request_parse::check);
}

#[test]
fn gateway() {
    replay("gateway", meshmux_fuzz::gateway::check);
}

#[test]
fn scanners() {
    replay("scanners", meshmux_fuzz::scanners::check);
}

#[test]
fn claims() {
    replay("claims", meshmux_fuzz::claims::check);
}
