//! A proxy process under measurement (Envoy or mcp-env-mux): started and waited for, its CPU
//! time and peak RSS read from /proc, killed on drop so no run leaves a process behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

pub struct Server {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Server {
    /// Spawns `cmd` with stderr (and stdout when `log_stdout`) in `log`, then polls `ready`
    /// until it holds.
    pub fn start(
        mut cmd: Command,
        name: &str,
        log: &Path,
        log_stdout: bool,
        within: Duration,
        ready: impl Fn() -> bool,
    ) -> Result<Server> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let stdout = if log_stdout {
            Stdio::from(
                out.try_clone()
                    .with_context(|| format!("opening {} twice", log.display()))?,
            )
        } else {
            Stdio::null()
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        let mut server = Server {
            child,
            name: name.to_owned(),
            log: log.to_owned(),
        };
        let deadline = Instant::now() + within;
        loop {
            if ready() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!(
                    "{name} exited with {status} during start; see {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                server.stop();
                bail!(
                    "{name} was not ready within {} s; see {}",
                    within.as_secs(),
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has died (a crash mid-run must not pass as a slow result).
    pub fn alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "{} exited with {status} during the run; see {}",
                self.name,
                self.log.display()
            );
        }
        Ok(())
    }

    /// User + system CPU seconds this process has used.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
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
        // USER_HZ is 100 on every Linux this runs on.
        Ok((ticks(11) + ticks(12)) / 100.0)
    }

    /// Peak resident set size in MiB (VmHWM).
    pub fn peak_rss_mib(&self) -> Result<f64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("no VmHWM in {path}"))?;
        Ok(kib / 1024.0)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
