//! `cargo xtask fuzz`: coverage-guided fuzzing of the policy core with `cargo fuzz`
//! (libFuzzer, AddressSanitizer). The targets live in `fuzz/`, outside the workspace: they
//! build with nightly flags, which the stable toolchain accepts under `RUSTC_BOOTSTRAP=1`.
//! Each target runs for its share of the time, from the corpus kept in `fuzz/corpus/<target>`
//! plus what earlier runs found (`target/fuzz/corpus/<target>`, not committed).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::tools;

/// The `cargo fuzz` release the command installs (crates.io).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub const TARGETS: [&str; 4] = ["request_parse", "gateway", "scanners", "claims"];

/// One target's run, as libFuzzer reported it.
struct Run {
    target: String,
    seconds: u64,
    execs: Option<String>,
    crash: Option<String>,
    status: std::process::ExitStatus,
}

pub fn fuzz(args: &[String]) -> Result<()> {
    let mut minutes: f64 = 10.0;
    let mut targets: Vec<String> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--minutes" => {
                let value = args.next().context("--minutes needs a number")?;
                minutes = value
                    .parse()
                    .ok()
                    .filter(|m: &f64| m.is_finite() && *m > 0.0)
                    .with_context(|| format!("--minutes {value}: not a positive number"))?;
            }
            "--target" => {
                let t = args.next().context("--target needs a name")?;
                if !TARGETS.contains(&t.as_str()) {
                    bail!(
                        "unknown fuzz target `{t}`; the targets: {}",
                        TARGETS.join(", ")
                    );
                }
                targets.push(t.clone());
            }
            other => bail!("fuzz: unknown argument `{other}`"),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    install()?;
    let root = tools::root();
    let target_dir = root.join("target/fuzz");
    cargo_fuzz(&root)
        .args(["build", "-O", "--target-dir"])
        .arg(&target_dir)
        .status()
        .context("running cargo fuzz build")?
        .success()
        .then_some(())
        .context("cargo fuzz build failed")?;
    // Whole seconds per target (at least one).
    let share = ((minutes * 60.0) / targets.len() as f64).max(1.0) as u64;
    let mut runs = Vec::new();
    for target in &targets {
        runs.push(run_one(&root, &target_dir, target, share)?);
    }
    eprintln!("xtask: fuzzing summary");
    for r in &runs {
        eprintln!(
            "  {:<14} {:>5} s  {}  {}",
            r.target,
            r.seconds,
            r.execs.as_deref().unwrap_or("(no stats)"),
            match &r.crash {
                Some(path) => format!("CRASH: {path}"),
                None if r.status.success() => "no crash".to_owned(),
                None => format!("FAILED ({})", r.status),
            }
        );
    }
    let failed: Vec<&Run> = runs
        .iter()
        .filter(|r| r.crash.is_some() || !r.status.success())
        .collect();
    if !failed.is_empty() {
        let lines: Vec<String> = failed
            .iter()
            .map(|r| match &r.crash {
                Some(path) => format!(
                    "{} crashed on {path} (replay: RUSTC_BOOTSTRAP=1 cargo fuzz run -O --target-dir target/fuzz {} {path})",
                    r.target, r.target
                ),
                None => format!("{} failed with {}", r.target, r.status),
            })
            .collect();
        bail!("{}", lines.join("\n"));
    }
    Ok(())
}

/// `cargo fuzz` from crates.io and a C++ compiler (libfuzzer-sys builds libFuzzer).
fn install() -> Result<()> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION)
        });
    if !have {
        eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} from crates.io");
        tools::cargo(&[
            "install",
            "--locked",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
        ])?;
    }
    let cxx = Command::new("c++")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !cxx {
        tools::apt_install(&["g++"])?;
    }
    Ok(())
}

fn cargo_fuzz(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    // The fuzz targets need nightly flags (-Zsanitizer, coverage passes); the stable
    // toolchain accepts them under RUSTC_BOOTSTRAP.
    cmd.current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .arg("fuzz");
    cmd
}

fn run_one(root: &Path, target_dir: &Path, target: &str, seconds: u64) -> Result<Run> {
    let work = target_dir.join("corpus").join(target);
    let artifacts = target_dir.join("artifacts").join(target);
    for dir in [&work, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let mut cmd = Command::new("nice");
    cmd.current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["-n", "19", "cargo", "fuzz", "run", "-O", "--target-dir"])
        .arg(target_dir)
        .arg(target)
        .arg(&work)
        .arg(root.join("fuzz/corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting cargo fuzz run {target}"))?;
    let mut execs = None;
    let mut crash = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            eprintln!("{line}");
            if let Some(rest) = line.strip_prefix("Done ") {
                execs = Some(rest.to_owned());
            }
            if let Some(path) = line
                .split_once("Test unit written to ")
                .map(|(_, p)| p.trim().to_owned())
            {
                crash = Some(path);
            }
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    Ok(Run {
        target: target.to_owned(),
        seconds,
        execs,
        crash,
        status,
    })
}
