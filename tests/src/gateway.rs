//! The gateway under test: `meshmux discover` writes the Envoy config for a [`Config`], then a
//! real Envoy runs it with the built filter, on free loopback ports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::config::Config;
use crate::http::{self, Request, Response};
use crate::process::Proc;
use crate::{READY_TIMEOUT, logs, ports, prereq};

/// Envoy plus the meshmux filter in front of a config's envs; Envoy stops on drop.
pub struct Gateway {
    envoy: Proc,
    base_id: u32,
    out: PathBuf,
    port: u16,
    admin_port: u16,
    client: reqwest::blocking::Client,
    next_id: AtomicU64,
}

/// What `meshmux discover` wrote.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub out: PathBuf,
    pub port: u16,
    pub admin_port: u16,
    /// What Envoy's environment needs for the filter (the native filter's search path).
    pub envoy_env: Vec<(&'static str, PathBuf)>,
}

/// Runs `meshmux discover` for `config` into a fresh directory of this test's logs.
pub fn discover(config: &Config) -> Result<Discovered> {
    let dir = logs::unique_path("gateway", "")?;
    let config_path = config.write(&dir)?;
    let out = dir.join("out");
    let port = match config.fixed_port() {
        Some(p) => p,
        None => ports::free_port()?,
    };
    let admin_port = ports::free_port()?;
    let filter = config.filter_setup()?;
    let mut cmd = Command::new(prereq::meshmux()?);
    cmd.arg("discover")
        .arg("--config")
        .arg(&config_path)
        .arg("--out")
        .arg(&out)
        .args(&filter.args)
        .args(["--port", &port.to_string()])
        .args(["--admin-port", &admin_port.to_string()]);
    let mut proc = Proc::spawn("meshmux-discover", &mut cmd)?;
    let status = proc.wait_exit(Duration::from_secs(60))?;
    if !status.success() {
        bail!(
            "meshmux discover failed ({status}); log {}:\n{}",
            proc.log().display(),
            logs::tail(proc.log(), 30)
        );
    }
    for file in [
        "manifest.json",
        "envoy.yaml",
        "rds.yaml",
        "lds.yaml",
        "cds.yaml",
        "ecds.yaml",
    ] {
        if !out.join(file).is_file() {
            bail!(
                "meshmux discover succeeded but wrote no {} (log {})",
                out.join(file).display(),
                proc.log().display()
            );
        }
    }
    Ok(Discovered {
        out,
        port,
        admin_port,
        envoy_env: filter.envoy_env,
    })
}

/// A `--base-id` no other Envoy on this machine uses: the process id, then a counter.
fn next_base_id() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 64;
    // Envoy multiplies the base id by 10, so keep it well under u32::MAX / 10.
    (std::process::id() % 4_000_000) * 64 + n
}

impl Gateway {
    /// Starts describing the gateway's envs; `.start()` runs it.
    pub fn builder() -> Config {
        Config::new()
    }

    /// Runs discovery for `config`, starts Envoy, and waits until it is ready and its MCP
    /// listener answers a `ping`.
    pub fn start(config: Config) -> Result<Gateway> {
        let found = discover(&config)?;
        Self::start_on(found, config.has_auth())
    }

    /// Starts Envoy on files discovery already wrote (with `auth`: an anonymous ping's 401
    /// is the sign of life).
    /// With auth it also waits for `/readyz`: the filter is not ready until it has fetched
    /// the revocation list.
    pub fn start_on(found: Discovered, auth: bool) -> Result<Gateway> {
        let mut gw = Self::start_unready(found, auth)?;
        if auth {
            let probe = http::client_with_timeout(Duration::from_secs(2))?;
            let url = format!("http://127.0.0.1:{}/readyz", gw.port);
            gw.envoy
                .wait_until(&format!("{url} to answer 200"), READY_TIMEOUT, || {
                    Ok(probe.get(&url).send()?.status().is_success())
                })?;
        }
        Ok(gw)
    }

    /// Like [`Gateway::start_on`], without waiting for `/readyz`.
    pub fn start_unready(found: Discovered, auth: bool) -> Result<Gateway> {
        let base_id = next_base_id();
        let mut cmd = Command::new(prereq::envoy()?);
        cmd.envs(found.envoy_env.iter().map(|(k, v)| (*k, v)));
        cmd.arg("-c")
            .arg(found.out.join("envoy.yaml"))
            .args(["--concurrency", "2"])
            .args(["--base-id", &base_id.to_string()])
            .args(["--log-level", "info"]);
        let mut envoy = Proc::spawn("envoy", &mut cmd)?.graceful();
        let probe = http::client_with_timeout(Duration::from_secs(2))?;
        let admin = format!("http://127.0.0.1:{}/ready", found.admin_port);
        envoy.wait_until("Envoy's admin /ready", READY_TIMEOUT, || {
            Ok(probe.get(&admin).send()?.status().is_success())
        })?;
        let url = format!("http://127.0.0.1:{}/mcp", found.port);
        let ping = r#"{"jsonrpc":"2.0","id":"harness-ready","method":"ping"}"#;
        // With auth, an anonymous ping is refused by jwt_authn: that 401 is the sign of life.
        envoy.wait_until(
            &format!("the gateway to answer a ping on {url}"),
            READY_TIMEOUT,
            || {
                let resp = Request::post(probe.clone(), &url, ping).send()?;
                Ok(if auth {
                    resp.status == 401
                } else {
                    resp.status == 200 && resp.rpc().is_ok_and(|r| r.get("result").is_some())
                })
            },
        )?;
        Ok(Gateway {
            envoy,
            base_id,
            out: found.out,
            port: found.port,
            admin_port: found.admin_port,
            client: http::client()?,
            next_id: AtomicU64::new(1),
        })
    }

    /// The MCP endpoint, `http://127.0.0.1:<port>/mcp`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// Where discovery wrote the manifest and the Envoy config.
    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    /// Envoy's log.
    pub fn log(&self) -> &Path {
        self.envoy.log()
    }

    pub fn manifest(&self) -> Result<Value> {
        let path = self.out.join("manifest.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// A POST of `body` to the MCP endpoint, to adjust before sending.
    pub fn post(&self, body: impl Into<Vec<u8>>) -> Request {
        Request::post(self.client.clone(), &self.url(), body)
    }

    /// POSTs `body` as an MCP client would.
    pub fn post_json(&self, body: &str) -> Result<Response> {
        self.post(body).send()
    }

    /// Any other method on the MCP endpoint.
    pub fn request(&self, method: &str) -> Result<Request> {
        Request::new(self.client.clone(), method, &self.url())
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The gateway's `tools/list` result.
    pub fn list_tools(&self) -> Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": self.id(), "method": "tools/list"});
        self.post_json(&body.to_string())?.result()
    }

    /// A `tools/list` sent with `Authorization: Bearer <token>`, answered however it is.
    pub fn list_tools_with(&self, token: &str) -> Result<Response> {
        let body = json!({"jsonrpc": "2.0", "id": self.id(), "method": "tools/list"});
        self.post(body.to_string())
            .header("authorization", &format!("Bearer {token}"))
            .send()
    }

    /// A `tools/call` sent with `Authorization: Bearer <token>`, answered however it is.
    pub fn call_with(&self, token: &str, name: &str, arguments: Value) -> Result<Response> {
        self.post(http::tools_call(self.id(), name, &arguments))
            .header("authorization", &format!("Bearer {token}"))
            .send()
    }

    /// A `tools/call` to the gateway, answered however the gateway answers.
    pub fn call(&self, name: &str, arguments: Value) -> Result<Response> {
        self.post_json(&http::tools_call(self.id(), name, &arguments))
    }

    /// A `tools/call`'s result (fails on a JSON-RPC error).
    pub fn call_tool(&self, name: &str, arguments: Value) -> Result<Value> {
        let resp = self.call(name, arguments)?;
        resp.result()
            .with_context(|| format!("calling {name} (HTTP {})", resp.status))
    }

    /// Envoy's admin `/stats` text, for counters.
    pub fn stats(&self) -> Result<String> {
        Ok(self
            .client
            .get(format!("{}/stats", self.admin_url()))
            .send()?
            .text()?)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.envoy.stop();
        // Envoy leaves its hot-restart shared memory behind (named after base id × 10); this
        // base id was ours alone, so its file is ours to remove.
        let shm = format!(
            "/dev/shm/envoy_shared_memory_{}",
            u64::from(self.base_id) * 10
        );
        let _ = std::fs::remove_file(shm);
    }
}
