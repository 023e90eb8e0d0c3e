//! Envoy for the benchmark: the plain passthrough config and starting it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::net::http;
use crate::server::Server;

/// A plain Envoy that forwards `/mcp` to the backend: the baseline.
pub fn plain_bootstrap(port: u16, admin_port: u16, backend_port: u16) -> String {
    let addr = |port: u16| json!({"socket_address": {"address": "127.0.0.1", "port_value": port}});
    json!({
        "admin": {"address": addr(admin_port)},
        "static_resources": {
            "listeners": [{
                "name": "plain",
                "address": addr(port),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "plain",
                        // The same stdout access log meshmux's generated config has, so the
                        // comparison measures the filter, not logging.
                        "access_log": [{"name": "envoy.access_loggers.stdout", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"}}],
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/mcp"}, "route": {"cluster": "backend"}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
                    }
                }]}]
            }],
            "clusters": [{
                "name": "backend", "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": addr(backend_port)}}]}]}
            }]
        }
    })
    .to_string()
}

/// Starts Envoy on `config` with one worker thread; ready when its admin `/ready` says so.
pub fn start(envoy: &Path, config: &Path, log: &Path, admin_port: u16) -> Result<Server> {
    start_with_modules(envoy, config, log, admin_port, None)
}

/// [`start`], with `modules` as the dynamic-module search path (the native filter's
/// directory).
pub fn start_with_modules(
    envoy: &Path,
    config: &Path,
    log: &Path,
    admin_port: u16,
    modules: Option<&Path>,
) -> Result<Server> {
    let mut cmd = Command::new(envoy);
    if let Some(dir) = modules {
        cmd.env(SEARCH_PATH_VAR, dir);
    }
    cmd.arg("-c").arg(config).args([
        "--concurrency",
        "1",
        "--log-level",
        "warn",
        "--disable-hot-restart",
    ]);
    // stdout carries the access log; it goes nowhere, as in the previous runs.
    Server::start(cmd, "Envoy", log, false, Duration::from_secs(30), || {
        matches!(http(admin_port, "GET", "/ready", ""), Ok((200, _)))
    })
}

/// Where Envoy looks for `lib<name>.so` of a dynamic module.
pub const SEARCH_PATH_VAR: &str = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH";

/// The native filter's directory, if `filter` is one (a `.so`).
pub fn modules_dir(filter: &Path) -> Option<&Path> {
    is_native(filter).then(|| filter.parent()).flatten()
}

fn is_native(filter: &Path) -> bool {
    filter.extension().is_some_and(|e| e == "so")
}

/// Runs `meshmux discover` as a user would: `config` in, the Envoy files into `out`, the
/// listener on `port` and the admin on `admin`. `quiet` drops its report.
pub fn discover(
    meshmux: &Path,
    filter: &Path,
    config: &Path,
    out: &Path,
    (port, admin): (u16, u16),
    quiet: bool,
) -> Result<()> {
    let mut cmd = Command::new(meshmux);
    cmd.arg("discover")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg("--filter")
        .arg(filter)
        .args(if is_native(filter) {
            &["--filter-kind", "native"][..]
        } else {
            &[]
        })
        .args([
            "--port",
            &port.to_string(),
            "--admin-port",
            &admin.to_string(),
        ]);
    if quiet {
        cmd.stdout(Stdio::null());
    }
    let status = cmd.status().context("running meshmux discover")?;
    if !status.success() {
        bail!(
            "meshmux discover for {} failed with {status}",
            config.display()
        );
    }
    Ok(())
}
