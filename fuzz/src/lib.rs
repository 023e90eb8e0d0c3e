//! The checks behind meshmux's fuzz targets, one module per target. Each `check` takes the
//! fuzzer's bytes, drives one entry point of the policy core and panics when an invariant
//! fails (libFuzzer reports a panic as a crash and keeps the input). The corpus replay test
//! (`tests/corpus.rs`) runs the same checks over the kept corpus on stable Rust.

pub mod claims;
pub mod gateway;
pub mod request_parse;
pub mod scanners;
