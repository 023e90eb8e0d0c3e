//! The official TypeScript SDK client (`tests/node/client.mjs` on Node 22): connects, lists the
//! tools, makes the given calls, and reports everything as JSON.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::process::Proc;
use crate::{logs, prereq};

/// One run of the TypeScript client, built up then [`TsClient::run`].
#[derive(Debug, Clone)]
pub struct TsClient {
    url: String,
    headers: serde_json::Map<String, Value>,
    calls: Vec<Value>,
}

impl TsClient {
    pub fn new(url: &str) -> Self {
        TsClient {
            url: url.to_owned(),
            headers: serde_json::Map::new(),
            calls: Vec::new(),
        }
    }

    /// Sends `name: value` on every request.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_owned(), json!(value));
        self
    }

    /// Calls `name` with `arguments` after listing the tools.
    pub fn call(mut self, name: &str, arguments: Value) -> Self {
        self.calls
            .push(json!({"name": name, "arguments": arguments, "progress": false}));
        self
    }

    /// Calls `name` asking for progress notifications (collected in `progress`).
    pub fn call_with_progress(mut self, name: &str, arguments: Value) -> Self {
        self.calls
            .push(json!({"name": name, "arguments": arguments, "progress": true}));
        self
    }

    /// Runs the client to completion (at most 60 s) and returns what it printed:
    /// `{protocolVersion, serverVersion, tools, results, progress}`.
    pub fn run(self) -> Result<Value> {
        let script = prereq::node_dir().join("client.mjs");
        let spec = json!({"url": self.url, "headers": self.headers, "calls": self.calls});
        let stdout = logs::unique_path("ts-client.stdout", ".json")?;
        let mut cmd = Command::new(prereq::node()?);
        cmd.current_dir(prereq::node_dir())
            .arg(&script)
            .arg(spec.to_string());
        let mut proc = Proc::spawn_capturing("ts-client", &mut cmd, &stdout)?;
        let status = proc.wait_exit(Duration::from_secs(60))?;
        if !status.success() {
            bail!(
                "the TypeScript client failed ({status}); log {}:\n{}",
                proc.log().display(),
                logs::tail(proc.log(), 30)
            );
        }
        let text = std::fs::read_to_string(&stdout)
            .with_context(|| format!("reading {}", stdout.display()))?;
        serde_json::from_str(text.trim()).with_context(|| {
            format!(
                "the TypeScript client printed no JSON ({}): {text}",
                stdout.display()
            )
        })
    }
}
