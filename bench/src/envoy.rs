//! Envoy processes for the benchmark: the plain passthrough config, starting and stopping, and
//! reading CPU time and peak RSS from /proc.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

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

/// A running Envoy, killed on drop.
pub struct Envoy {
    child: Child,
}

impl Envoy {
    pub fn start(envoy: &Path, config: &Path, log: &Path, admin_port: u16) -> Result<Envoy> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(envoy)
            .arg("-c")
            .arg(config)
            .args([
                "--concurrency",
                "1",
                "--log-level",
                "warn",
                "--disable-hot-restart",
            ])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", envoy.display()))?;
        let mut envoy = Envoy { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http(admin_port, "GET", "/ready", "") {
                return Ok(envoy);
            }
            if let Ok(Some(status)) = envoy.child.try_wait() {
                bail!(
                    "Envoy exited with {status} during start; see {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                envoy.stop();
                bail!("Envoy was not ready within 30 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds this process has used.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or_default()
        };
        Ok((ticks(11) + ticks(12)) / 100.0)
    }

    /// Peak resident set size in MiB (VmHWM).
    pub fn peak_rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .context("no VmHWM in /proc status")?;
        Ok(kib / 1024.0)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
