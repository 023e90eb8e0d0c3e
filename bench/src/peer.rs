//! mcp-env-mux (seed 000, the tool users would otherwise pick), run from its PyPI release in a
//! venv with a seed-000 config: the given envs, no `auth` block (so no sign-in), and no
//! `metrics` block (its defaults: enabled at /metrics).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::{Map, Value, json};

use crate::net::http;
use crate::server::Server;

/// A seed-000 config: `environments` only.
pub fn config(envs: &[(&str, &str, String)]) -> String {
    let environments: Map<String, Value> = envs
        .iter()
        .map(|(name, description, url)| {
            (
                (*name).to_owned(),
                json!({"description": description, "url": url}),
            )
        })
        .collect();
    json!({ "environments": environments }).to_string()
}

/// Starts `mcp-env-mux --config CONFIG` on `port`; ready once it answers tools/list, which
/// also proves its discovery of the backends finished.
pub fn start(peer: &Path, config: &Path, log: &Path, port: u16) -> Result<Server> {
    let mut cmd = Command::new(peer);
    cmd.arg("--config")
        .arg(config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()]);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    Server::start(
        cmd,
        "mcp-env-mux",
        log,
        true,
        Duration::from_secs(60),
        || matches!(http(port, "POST", "/mcp", &list), Ok((200, _))),
    )
}

/// The installed version, from the venv's package metadata (the peer is `<venv>/bin/mcp-env-mux`).
pub fn version(peer: &Path) -> Result<String> {
    let python = peer.with_file_name("python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('mcp-env-mux'))",
        ])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
