//! Building the native filter (`filter-native`, an Envoy 1.40 dynamic module). The cargo
//! profile `native` is the release profile with `panic = "unwind"`: the module's ABI hooks
//! catch panics, which `panic = "abort"` would turn into an Envoy crash (the module refuses
//! to load when built that way).

use std::path::PathBuf;

use anyhow::Result;

use crate::tools;

/// Builds `target/native/libmeshmux_native.so`.
pub fn build() -> Result<PathBuf> {
    tools::cargo(&["build", "--profile", "native", "-p", "filter-native"])?;
    Ok(tools::root().join("target/native/libmeshmux_native.so"))
}

/// Builds the test-only `panic-probe` variant into `target/native-probe/` (its own target
/// directory, so it never replaces the shipped build).
pub fn build_probe() -> Result<PathBuf> {
    tools::cargo(&[
        "build",
        "--profile",
        "native",
        "-p",
        "filter-native",
        "--features",
        "panic-probe",
        "--target-dir",
        "target/native-probe",
    ])?;
    Ok(tools::root().join("target/native-probe/native/libmeshmux_native.so"))
}
