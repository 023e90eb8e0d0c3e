//! Real processes as guards: stdout and stderr go to the test's log file, and the process is
//! stopped when the guard drops, so a failing test leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::logs;

/// A running process, stopped on drop.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    /// SIGTERM first (and wait a little) rather than SIGKILL, for processes that clean up
    /// shared state on exit (Envoy's shared memory).
    graceful: bool,
}

impl Proc {
    /// Starts `cmd` with its output in a new log file named after `name`.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Proc> {
        Self::spawn_inner(name, cmd, None)
    }

    /// Starts `cmd` with stdout in `stdout` (the program's answer) and stderr in the log.
    pub fn spawn_capturing(name: &str, cmd: &mut Command, stdout: &Path) -> Result<Proc> {
        Self::spawn_inner(name, cmd, Some(stdout))
    }

    fn spawn_inner(name: &str, cmd: &mut Command, stdout: Option<&Path>) -> Result<Proc> {
        let (log, file) = logs::log_file(name)?;
        let out = match stdout {
            Some(path) => std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?,
            None => file.try_clone().context("duplicating a log file handle")?,
        };
        let shown = format!("{cmd:?}");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}: {shown}"))?;
        // The command line heads nothing in the log, so keep it beside it for whoever debugs.
        let _ = std::fs::write(log.with_extension("cmd"), format!("{shown}\n"));
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            log,
            graceful: false,
        })
    }

    /// Stop with SIGTERM (then SIGKILL after a grace period) instead of SIGKILL.
    pub fn graceful(mut self) -> Self {
        self.graceful = true;
        self
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Polls `ready` (every 50 ms) until it says yes; fails early if the process exits and after
    /// `timeout`, both times pointing at the log.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let start = Instant::now();
        let mut last_error = None;
        loop {
            match ready() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last_error = Some(format!("{e:#}")),
            }
            if let Some(status) = self.exited() {
                bail!(
                    "{} exited ({status}) while waiting for {what}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    logs::tail(&self.log, 30)
                );
            }
            if start.elapsed() > timeout {
                bail!(
                    "timed out after {timeout:?} waiting for {what} ({}){}; log {}:\n{}",
                    self.name,
                    last_error.map_or_else(String::new, |e| format!(", last error: {e}")),
                    self.log.display(),
                    logs::tail(&self.log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit on its own, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                bail!(
                    "timed out after {timeout:?} waiting for {} to finish; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    logs::tail(&self.log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process now and reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.graceful && child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
