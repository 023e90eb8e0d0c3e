//! MCP backends the gateway fronts: the rmcp demo backend (`meshmux demo-backend`) and the
//! reference `@modelcontextprotocol/server-everything`, on free loopback ports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::process::Proc;
use crate::{READY_TIMEOUT, logs, ports, prereq};

#[derive(Debug, Clone)]
enum Kind {
    /// `meshmux demo-backend`.
    Demo {
        stateless: bool,
        json_response: bool,
        drift: Option<String>,
    },
    /// `server-everything streamableHttp` (stateful, answers with SSE).
    Everything,
}

/// How to start a backend; [`BackendBuilder::start`] starts it.
#[derive(Debug, Clone)]
pub struct BackendBuilder {
    env: String,
    kind: Kind,
    record: bool,
    catalog: bool,
    /// More `meshmux demo-backend` arguments.
    args: Vec<String>,
}

impl BackendBuilder {
    /// A demo backend that answers 401 unless the bearer token is listed in `file`
    /// (`--require-bearer-file`, re-read on every request).
    pub fn require_bearer_file(mut self, file: &std::path::Path) -> Self {
        self.args.push("--require-bearer-file".into());
        self.args.push(file.display().to_string());
        self
    }

    /// A demo backend that answers 401 unless the authorization server's RFC 7662
    /// introspection endpoint `url` calls the bearer token active (asked as `client`,
    /// `ID:SECRET`).
    pub fn introspection(mut self, url: &str, client: &str) -> Self {
        self.args.extend([
            "--introspection-url".into(),
            url.to_owned(),
            "--introspection-client".into(),
            client.to_owned(),
        ]);
        self
    }

    /// A demo backend that keeps no sessions (`--stateless`).
    pub fn stateless(mut self) -> Self {
        if let Kind::Demo { stateless, .. } = &mut self.kind {
            *stateless = true;
        }
        self
    }

    /// A demo backend that answers `application/json` rather than SSE (`--json-response`).
    pub fn json_response(mut self) -> Self {
        if let Kind::Demo { json_response, .. } = &mut self.kind {
            *json_response = true;
        }
        self
    }

    /// A demo backend whose tools drift from the others' (`--drift description|type`).
    pub fn drift(mut self, what: &str) -> Self {
        if let Kind::Demo { drift, .. } = &mut self.kind {
            *drift = Some(what.to_owned());
        }
        self
    }

    /// Record every `tools/call` the demo backend receives (`--record FILE`).
    pub fn record(mut self) -> Self {
        self.record = true;
        self
    }

    /// A demo backend whose tools [`Backend::set_catalog`] changes while it runs
    /// (`--catalog FILE`, which does not exist until then).
    pub fn catalog(mut self) -> Self {
        self.catalog = true;
        self
    }

    pub fn start(self) -> Result<Backend> {
        let record = if self.record {
            let path = logs::unique_path(&format!("{}.calls", self.env), ".jsonl")?;
            std::fs::write(&path, "").with_context(|| format!("creating {}", path.display()))?;
            Some(path)
        } else {
            None
        };
        let catalog = if self.catalog {
            Some(logs::unique_path(
                &format!("{}.catalog", self.env),
                ".json",
            )?)
        } else {
            None
        };
        let mut backend = Backend {
            port: ports::free_port()?,
            env: self.env,
            kind: self.kind,
            record,
            catalog,
            args: self.args,
            proc: None,
        };
        backend.restart()?;
        Ok(backend)
    }
}

/// A running MCP backend for one env; stopped on drop.
#[derive(Debug)]
pub struct Backend {
    env: String,
    kind: Kind,
    port: u16,
    record: Option<PathBuf>,
    catalog: Option<PathBuf>,
    args: Vec<String>,
    proc: Option<Proc>,
}

impl Backend {
    /// The rmcp demo backend speaking as env `env` (its results start with `[<env>]`).
    pub fn demo(env: &str) -> BackendBuilder {
        BackendBuilder {
            env: env.to_owned(),
            kind: Kind::Demo {
                stateless: false,
                json_response: false,
                drift: None,
            },
            record: false,
            catalog: false,
            args: Vec::new(),
        }
    }

    /// `server-everything` in streamable HTTP mode; its `get-env` tool reports
    /// `MESHMUX_TEST_ENV=<env>`, which tells the instances apart.
    pub fn everything(env: &str) -> BackendBuilder {
        BackendBuilder {
            env: env.to_owned(),
            kind: Kind::Everything,
            record: false,
            catalog: false,
            args: Vec::new(),
        }
    }

    pub fn env(&self) -> &str {
        &self.env
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The MCP endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn log(&self) -> Option<PathBuf> {
        self.proc.as_ref().map(|p| p.log().to_path_buf())
    }

    /// Stops the backend (its port stays reserved for a restart).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while ports::is_listening(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the backend (again) on the same port: a restarted stateful backend has lost
    /// every session it had.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let name = format!("backend-{}", self.env);
        let mut proc = match &self.kind {
            Kind::Demo {
                stateless,
                json_response,
                drift,
            } => {
                let mut cmd = Command::new(prereq::meshmux()?);
                cmd.arg("demo-backend")
                    .args(["--env", &self.env])
                    .args(["--port", &self.port.to_string()]);
                if *stateless {
                    cmd.arg("--stateless");
                }
                if *json_response {
                    cmd.arg("--json-response");
                }
                if let Some(d) = drift {
                    cmd.args(["--drift", d]);
                }
                if let Some(r) = &self.record {
                    cmd.arg("--record").arg(r);
                }
                if let Some(c) = &self.catalog {
                    cmd.arg("--catalog").arg(c);
                }
                cmd.args(&self.args);
                Proc::spawn(&name, &mut cmd)?
            }
            Kind::Everything => {
                let node = prereq::node()?;
                let index = prereq::node_module_file(
                    "@modelcontextprotocol/server-everything/dist/index.js",
                )?;
                let loopback = prereq::node_dir().join("loopback.mjs");
                let mut cmd = Command::new(&node);
                // A clean environment: `get-env` prints all of it.
                cmd.env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                    .env("PORT", self.port.to_string())
                    .env("MESHMUX_TEST_ENV", &self.env)
                    .arg("--import")
                    .arg(&loopback)
                    .arg(index)
                    .arg("streamableHttp");
                Proc::spawn(&name, &mut cmd)?
            }
        };
        let port = self.port;
        proc.wait_until(
            &format!("backend {} to listen on 127.0.0.1:{port}", self.env),
            READY_TIMEOUT,
            || Ok(ports::is_listening(port)),
        )?;
        self.proc = Some(proc);
        Ok(())
    }

    /// Changes this (`.catalog()`) demo backend's tools from its next request on:
    /// `{"add": [tool definitions], "remove": [names], "descriptions": {name: text}}`, or any
    /// text (invalid JSON makes its `tools/list` fail). Written atomically.
    pub fn set_catalog(&self, catalog: &str) -> Result<()> {
        let Some(path) = &self.catalog else {
            bail!(
                "backend {} was started without .catalog(); its tools are fixed",
                self.env
            );
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, catalog).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))
    }

    /// Every `tools/call` this (recording) backend has received, oldest first.
    pub fn records(&self) -> Result<Vec<Record>> {
        let Some(path) = &self.record else {
            bail!(
                "backend {} was started without .record(); it keeps no record",
                self.env
            );
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .with_context(|| format!("a line of {} is not a record: {l}", path.display()))
            })
            .collect()
    }

    /// Waits (bounded) until this backend has recorded `count` calls, and returns them all.
    pub fn wait_for_records(&self, count: usize) -> Result<Vec<Record>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let records = self.records()?;
            if records.len() >= count {
                return Ok(records);
            }
            if Instant::now() > deadline {
                bail!(
                    "backend {} recorded {} calls, expected {count}: {records:#?}",
                    self.env,
                    records.len()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One `tools/call` as the demo backend received it.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    /// The backend's own env name (`--env`).
    pub env: String,
    pub tool: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
    /// Request headers, names lower-cased.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request's path with its query.
    #[serde(default)]
    pub path: Option<String>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}
