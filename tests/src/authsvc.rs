//! The real authsvc (`meshmux-authsvc serve`) on a free loopback port, with the same config
//! file as the gateway; stopped on drop. Bot tokens come from its `mint` command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::process::Proc;
use crate::{READY_TIMEOUT, logs, ports, prereq};

pub struct Authsvc {
    proc: Proc,
    port: u16,
    config: PathBuf,
}

impl Authsvc {
    /// A free port for authsvc, to put into the config (`auth.authsvc_url`) before it starts.
    pub fn reserve_port() -> Result<u16> {
        ports::free_port()
    }

    /// Serves `config` on 127.0.0.1:`port` and waits until `/healthz` answers.
    pub fn start(config: &Path, port: u16) -> Result<Self> {
        let mut cmd = Command::new(prereq::authsvc()?);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("MCP_ENV_MUX_SIGNING_KEY_PEM");
        let mut proc = Proc::spawn("authsvc", &mut cmd)?.graceful();
        let probe = crate::http::client_with_timeout(Duration::from_secs(2))?;
        let url = format!("http://127.0.0.1:{port}/healthz");
        proc.wait_until("authsvc's /healthz", READY_TIMEOUT, || {
            Ok(probe.get(&url).send()?.status().is_success())
        })?;
        Ok(Authsvc {
            proc,
            port,
            config: config.to_path_buf(),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> &Path {
        self.proc.log()
    }

    /// Stops authsvc (to restart it on the same port with [`Authsvc::start`]).
    pub fn stop(mut self) {
        self.proc.stop();
    }

    /// Runs `meshmux-authsvc <args…> --config <config>` to its end: (success, stdout, log tail).
    pub fn cli(config: &Path, name: &str, args: &[&str]) -> Result<(bool, String, String)> {
        let out_path = logs::unique_path(name, ".out")?;
        let mut cmd = Command::new(prereq::authsvc()?);
        cmd.args(args)
            .arg("--config")
            .arg(config)
            .env_remove("MCP_ENV_MUX_SIGNING_KEY_PEM");
        let mut proc = Proc::spawn_capturing(name, &mut cmd, &out_path)?;
        let status = proc.wait_exit(Duration::from_secs(30))?;
        let out = std::fs::read_to_string(&out_path)
            .with_context(|| format!("reading {}", out_path.display()))?;
        Ok((status.success(), out, logs::tail(proc.log(), 30)))
    }

    pub fn config(&self) -> &Path {
        &self.config
    }

    /// `meshmux-authsvc mint`: a bot token with `roles`, recorded by the running authsvc.
    pub fn mint(&self, name: &str, roles: &[&str], days: u32) -> Result<String> {
        let out_path = logs::unique_path(&format!("mint-{name}"), ".out")?;
        let mut cmd = Command::new(prereq::authsvc()?);
        cmd.arg("mint")
            .arg("--config")
            .arg(&self.config)
            .args(["--name", name, "--roles", &roles.join(",")])
            .args(["--days", &days.to_string()])
            .env_remove("MCP_ENV_MUX_SIGNING_KEY_PEM");
        let mut proc = Proc::spawn_capturing(&format!("mint-{name}"), &mut cmd, &out_path)?;
        let status = proc.wait_exit(Duration::from_secs(30))?;
        let out = std::fs::read_to_string(&out_path)
            .with_context(|| format!("reading {}", out_path.display()))?;
        if !status.success() {
            bail!(
                "meshmux-authsvc mint failed ({status}); log {}:\n{}",
                proc.log().display(),
                logs::tail(proc.log(), 30)
            );
        }
        let token = out
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if token.split('.').count() != 3 {
            bail!("meshmux-authsvc mint printed no JWT: {out:?}");
        }
        Ok(token)
    }
}
