//! `meshmux check`: its exit code and what it printed.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::config::Config;
use crate::process::Proc;
use crate::{logs, prereq};

/// One finished `meshmux` run.
#[derive(Debug)]
pub struct CheckRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CheckRun {
    /// stdout parsed as JSON (for `--format json`).
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("meshmux check printed no JSON on stdout:\n{}", self.stdout))
    }

    /// Everything it printed, stdout then stderr.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub(crate) fn run(config: &Config, extra: &[&str]) -> Result<CheckRun> {
    let dir = logs::unique_path("check", "")?;
    let path = config.write(&dir)?;
    let stdout_path = dir.join("stdout");
    let mut cmd = Command::new(prereq::meshmux()?);
    cmd.arg("check").arg("--config").arg(&path).args(extra);
    let mut proc = Proc::spawn_capturing("meshmux-check", &mut cmd, &stdout_path)?;
    let status = proc.wait_exit(Duration::from_secs(60))?;
    let log = proc.log().to_path_buf();
    Ok(CheckRun {
        code: status.code(),
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&log).unwrap_or_default(),
    })
}
