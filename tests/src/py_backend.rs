//! A stateful MCP backend on the official Python SDK that answers plain JSON
//! (`tests/python/json_backend.py`, tool `slow_echo`), on a free loopback port: the JSON answer
//! form behind a shared backend session, which server-everything (SSE only) and the rmcp demo
//! backend (JSON only when stateless) do not offer.

use std::process::Command;

use anyhow::Result;

use crate::process::Proc;
use crate::{READY_TIMEOUT, ports, prereq};

/// The running backend; stopped on drop.
#[derive(Debug)]
pub struct PyJsonBackend {
    port: u16,
    _proc: Proc,
}

impl PyJsonBackend {
    pub fn start() -> Result<Self> {
        let port = ports::free_port()?;
        let mut cmd = Command::new(prereq::python()?);
        cmd.arg(prereq::root().join("tests/python/json_backend.py"))
            .arg(port.to_string());
        let mut proc = Proc::spawn("py-json-backend", &mut cmd)?;
        proc.wait_until(
            &format!("the Python JSON backend to listen on 127.0.0.1:{port}"),
            READY_TIMEOUT,
            || Ok(ports::is_listening(port)),
        )?;
        Ok(PyJsonBackend { port, _proc: proc })
    }

    /// The MCP endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}
