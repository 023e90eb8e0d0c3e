//! `meshmux up --no-auth --config FILE` on free loopback ports, its work dir under `dir`.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::process::Proc;
use crate::{ports, prereq};

/// Starts `up` for `config` (with `extra` flags, e.g. `--watch 1s`); stdout goes to
/// `dir/up.stdout`. Returns the process (SIGTERM first on drop: `up` then stops what it
/// started) and the MCP port. The caller waits for readiness.
pub fn start(config: &Path, dir: &Path, extra: &[&str]) -> Result<(Proc, u16)> {
    let port = ports::free_port()?;
    let mut cmd = Command::new(prereq::meshmux()?);
    cmd.args(["up", "--no-auth"])
        .args(extra)
        .arg("--config")
        .arg(config)
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--envoy")
        .arg(prereq::envoy()?)
        .args(prereq::filter_args()?)
        .args(["--port", &port.to_string()])
        .args(["--admin-port", &ports::free_port()?.to_string()]);
    let up = Proc::spawn_capturing("meshmux-up", &mut cmd, &dir.join("up.stdout"))?.graceful();
    Ok((up, port))
}
