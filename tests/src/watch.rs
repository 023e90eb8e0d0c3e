//! Discovery as an operator runs it for live reload: `meshmux discover` into one directory,
//! once or again and again, or `--watch` in the background, with the gateway started on the
//! files it wrote and the config file rewritten while it runs.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::check::CheckRun;
use crate::config::Config;
use crate::gateway::{Discovered, Gateway};
use crate::process::Proc;
use crate::{logs, ports, prereq};

/// The generated files a gateway needs.
pub const FILES: [&str; 6] = [
    "manifest.json",
    "envoy.yaml",
    "rds.yaml",
    "lds.yaml",
    "cds.yaml",
    "ecds.yaml",
];

/// One config file, one output directory and the ports the gateway will use.
#[derive(Debug, Clone)]
pub struct Site {
    pub config_path: PathBuf,
    pub found: Discovered,
    /// `--timeout`: seconds each backend gets per discovery (default 5).
    pub timeout_secs: u64,
}

impl Site {
    /// Writes `config` into a fresh directory of this test's logs; nothing runs yet.
    pub fn new(config: &Config) -> Result<Site> {
        let dir = logs::unique_path("site", "")?;
        let config_path = config.write(&dir)?;
        Ok(Site {
            config_path,
            found: Discovered {
                out: dir.join("out"),
                port: ports::free_port()?,
                admin_port: ports::free_port()?,
                envoy_env: config.filter_setup()?.envoy_env,
            },
            timeout_secs: 5,
        })
    }

    /// Replaces the config file atomically (a watch never reads half a file).
    pub fn rewrite_config(&self, config: &Config) -> Result<()> {
        self.write_config_text(&serde_json::to_string_pretty(&config.to_json())?)
    }

    /// Replaces the config file with any text (an invalid config, say).
    pub fn write_config_text(&self, text: &str) -> Result<()> {
        let tmp = self.config_path.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.config_path)
            .with_context(|| format!("renaming onto {}", self.config_path.display()))
    }

    fn discover_cmd(&self) -> Result<Command> {
        let mut cmd = Command::new(prereq::meshmux()?);
        cmd.arg("discover")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--out")
            .arg(&self.found.out)
            .args(prereq::filter_args()?)
            .args(["--port", &self.found.port.to_string()])
            .args(["--admin-port", &self.found.admin_port.to_string()])
            .args(["--timeout", &self.timeout_secs.to_string()]);
        Ok(cmd)
    }

    /// One `meshmux discover` pass (no watch), however it ends.
    pub fn discover_once(&self) -> Result<CheckRun> {
        let stdout = logs::unique_path("discover", ".stdout")?;
        let mut cmd = self.discover_cmd()?;
        let mut proc = Proc::spawn_capturing("meshmux-discover", &mut cmd, &stdout)?;
        let status = proc.wait_exit(Duration::from_secs(60))?;
        Ok(CheckRun {
            code: status.code(),
            stdout: std::fs::read_to_string(&stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(proc.log()).unwrap_or_default(),
        })
    }

    /// `meshmux <command> --config <this config> <args>`, however it ends.
    pub fn meshmux(&self, command: &str, args: &[&str]) -> Result<CheckRun> {
        let stdout = logs::unique_path(&format!("meshmux-{command}"), ".stdout")?;
        let mut cmd = Command::new(prereq::meshmux()?);
        cmd.arg(command)
            .arg("--config")
            .arg(&self.config_path)
            .args(["--timeout", &self.timeout_secs.to_string()])
            .args(args);
        let mut proc = Proc::spawn_capturing(&format!("meshmux-{command}"), &mut cmd, &stdout)?;
        let status = proc.wait_exit(Duration::from_secs(60))?;
        Ok(CheckRun {
            code: status.code(),
            stdout: std::fs::read_to_string(&stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(proc.log()).unwrap_or_default(),
        })
    }

    /// `meshmux pin` on this config: pins what every env lists now.
    pub fn pin(&self) -> Result<CheckRun> {
        self.meshmux("pin", &[])
    }

    /// The pin file `meshmux pin` writes for this config (the default, next to it).
    pub fn pin_file(&self) -> PathBuf {
        self.config_path.with_file_name("config.pins.json")
    }

    /// Starts `meshmux discover --watch INTERVAL` (cycles logged at info) and waits until its
    /// first pass has written every file.
    pub fn watch(&self, interval: &str) -> Result<Watch> {
        let stdout = logs::unique_path("watch", ".stdout")?;
        let mut cmd = self.discover_cmd()?;
        cmd.args(["--watch", interval])
            .env("RUST_LOG", "warn,rmcp=off,discovery=info");
        let mut proc = Proc::spawn_capturing("meshmux-watch", &mut cmd, &stdout)?;
        let out = self.found.out.clone();
        proc.wait_until(
            "the watch's first pass to write the files",
            Duration::from_secs(30),
            || Ok(FILES.iter().all(|f| out.join(f).is_file())),
        )?;
        Ok(Watch { proc, stdout })
    }

    /// Envoy on the files discovery wrote.
    pub fn gateway(&self, auth: bool) -> Result<Gateway> {
        Gateway::start_on(self.found.clone(), auth)
    }

    pub fn manifest(&self) -> Result<Value> {
        let path = self.found.out.join("manifest.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The manifest's entry for env `name`.
    pub fn manifest_env(&self, name: &str) -> Result<Value> {
        let manifest = self.manifest()?;
        manifest
            .get("envs")
            .and_then(Value::as_array)
            .and_then(|envs| {
                envs.iter()
                    .find(|e| e.get("name") == Some(&Value::from(name)))
            })
            .cloned()
            .with_context(|| format!("no env {name} in the manifest: {manifest:#}"))
    }

    /// `meshmux check --format json --state <out>/discovery-state.json` on `config`.
    pub fn check_with_state(&self, config: &Config) -> Result<CheckRun> {
        let state = self.found.out.join("discovery-state.json");
        let state = state.display().to_string();
        crate::check::run(config, &["--format", "json", "--state", &state])
    }

    /// (inode, mtime in ns) of every file in the output directory: a file rewritten, even
    /// with the same bytes, changes both.
    pub fn file_ids(&self) -> Result<BTreeMap<String, (u64, i64)>> {
        let mut ids = BTreeMap::new();
        for entry in std::fs::read_dir(&self.found.out)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
            ids.insert(
                entry.file_name().to_string_lossy().into_owned(),
                (meta.ino(), ns),
            );
        }
        Ok(ids)
    }
}

/// A running `meshmux discover --watch`; killed on drop unless stopped.
pub struct Watch {
    proc: Proc,
    stdout: PathBuf,
}

impl Watch {
    /// What it printed so far (the changes).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Its stderr (the info log of every cycle).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.proc.log()).unwrap_or_default()
    }

    /// Cycles that found nothing to write so far.
    pub fn unchanged_cycles(&self) -> usize {
        self.log().matches("discovery cycle unchanged").count()
    }

    /// How long each cycle so far took (its `took_ms`), in order.
    pub fn cycle_times(&self) -> Vec<Duration> {
        self.log()
            .lines()
            .filter(|l| l.contains("discovery cycle"))
            .filter_map(|l| {
                l.split("took_ms=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .map(Duration::from_millis)
            .collect()
    }

    /// Waits (at most `timeout`) until stdout satisfies `done`; returns stdout.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let path = self.stdout.clone();
        let read = move || std::fs::read_to_string(&path).unwrap_or_default();
        let check = read.clone();
        self.proc
            .wait_until(what, timeout, || Ok(done(&check())))
            .with_context(|| format!("the watch printed:\n{}", read()))?;
        Ok(self.stdout())
    }

    /// Waits until `n` more cycles found nothing to write.
    pub fn wait_unchanged_cycles(&mut self, n: usize, timeout: Duration) -> Result<()> {
        let target = self.unchanged_cycles() + n;
        let log = self.proc.log().to_path_buf();
        self.proc
            .wait_until(&format!("{n} unchanged cycles"), timeout, || {
                Ok(std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .matches("discovery cycle unchanged")
                    .count()
                    >= target)
            })
    }

    /// SIGTERM, then its exit status (it must end on its own within 10 s).
    pub fn terminate(mut self) -> Result<ExitStatus> {
        let Some(pid) = self.proc.id() else {
            bail!("the watch is not running");
        };
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        if !sent.success() {
            bail!("kill -TERM {pid} failed: {sent}");
        }
        self.proc.wait_exit(Duration::from_secs(10))
    }
}
