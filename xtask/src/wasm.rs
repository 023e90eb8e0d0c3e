//! Building the filter for wasm32. The normal path is a toolchain with the wasm32 standard
//! library (`rustup target add wasm32-unknown-unknown`); where that cannot be downloaded, it
//! falls back to Debian's `rustc-web` with `rust-web-src` and `-Zbuild-std` (TOOLCHAIN.md).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

use crate::tools::{apt_install, root, run};

const TARGET: &str = "wasm32-unknown-unknown";
const ARTIFACT: &str = "meshmux_filter.wasm";

/// Builds the filter and returns the path of the `.wasm` file.
pub fn build() -> Result<PathBuf> {
    let target_dir = root().join("target/wasm");
    let mut cmd = if has_wasm_std("rustc") {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "filter", "--release", "--target", TARGET]);
        cmd
    } else {
        eprintln!(
            "xtask: the default toolchain has no {TARGET} std; building std from source with Debian's rustc-web"
        );
        apt_install(&["rustc-web", "cargo-web", "rust-web-src"])?;
        let lld = rust_lld()?;
        let mut cmd = Command::new("/usr/bin/cargo");
        let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
        cmd.env("PATH", path)
            .env("RUSTC", "/usr/bin/rustc")
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", format!("-C linker={}", lld.display()))
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .args([
                "build",
                "-p",
                "filter",
                "--release",
                "--target",
                TARGET,
                "-Zbuild-std=std,panic_abort",
            ]);
        cmd
    };
    cmd.current_dir(root()).arg("--target-dir").arg(&target_dir);
    run(&mut cmd)?;
    let artifact = target_dir.join(TARGET).join("release").join(ARTIFACT);
    if !artifact.exists() {
        bail!("the build succeeded but {} is missing", artifact.display());
    }
    Ok(artifact)
}

fn has_wasm_std(rustc: &str) -> bool {
    let Ok(out) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
    else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    })
}

/// rustup's `rust-lld` (Debian's rustc-web does not ship a wasm linker).
fn rust_lld() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let lld = sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld");
    if !lld.exists() {
        bail!(
            "{} is missing; the wasm fallback needs rustup's rust-lld",
            lld.display()
        );
    }
    Ok(lld)
}
