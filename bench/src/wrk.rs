//! Runs wrk with a POST body and reads its summary (a Lua `done` hook prints JSON).

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Load {
    pub requests: u64,
    pub seconds: f64,
    pub non_2xx: u64,
    pub socket_errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Load {
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }
}

const SCRIPT: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
local f = io.open(os.getenv("MESHMUX_BENCH_BODY"), "r")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'MESHMUX_RESULT {"requests":%d,"duration_us":%d,"status":%d,"socket":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#;

/// One bounded wrk run against `url` posting `body`.
pub fn run(work: &Path, url: &str, body: &str, connections: u32, seconds: u32) -> Result<Load> {
    let script = work.join("post.lua");
    std::fs::write(&script, SCRIPT).with_context(|| format!("writing {}", script.display()))?;
    let body_file = work.join("body.json");
    std::fs::write(&body_file, body).with_context(|| format!("writing {}", body_file.display()))?;
    let out = Command::new("wrk")
        .args([
            "-t",
            "1",
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "5s",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .env("MESHMUX_BENCH_BODY", &body_file)
        .output()
        .context("running wrk (install it with `apt-get install wrk`; `cargo xtask bench` does)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("MESHMUX_RESULT "))
        .with_context(|| format!("wrk printed no summary:\n{stdout}"))?;
    let v: Value = serde_json::from_str(line).context("parsing wrk summary")?;
    let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or_default();
    Ok(Load {
        requests: num("requests") as u64,
        seconds: num("duration_us") / 1e6,
        non_2xx: num("status") as u64,
        socket_errors: num("socket") as u64,
        p50_ms: num("p50_us") / 1000.0,
        p99_ms: num("p99_us") / 1000.0,
    })
}
