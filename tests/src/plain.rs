//! A plain MCP backend on Python's standard library (`tests/python/plain_backend.py`):
//! stateless, JSON answers, `http.server` defaults (HTTP/1.0, the connection closed after
//! every answer, 501 to HEAD, GET and DELETE), as many small servers are written.

use std::process::Command;

use anyhow::Result;

use crate::process::Proc;
use crate::{READY_TIMEOUT, ports, prereq};

/// A running plain backend for one env; stopped on drop.
#[derive(Debug)]
pub struct PlainBackend {
    env: String,
    port: u16,
    proc: Proc,
}

impl PlainBackend {
    /// Starts the backend speaking as env `env` (its results start with `[<env>]`).
    pub fn start(env: &str) -> Result<PlainBackend> {
        let port = ports::free_port()?;
        let script = prereq::root().join("tests/python/plain_backend.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .args(["--env", env])
            .args(["--port", &port.to_string()]);
        let mut proc = Proc::spawn(&format!("plain-backend-{env}"), &mut cmd)?;
        proc.wait_until(
            &format!("plain backend {env} to listen on 127.0.0.1:{port}"),
            READY_TIMEOUT,
            || Ok(ports::is_listening(port)),
        )?;
        Ok(PlainBackend {
            env: env.to_owned(),
            port,
            proc,
        })
    }

    pub fn env(&self) -> &str {
        &self.env
    }

    /// The MCP endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn log(&self) -> &std::path::Path {
        self.proc.log()
    }
}
