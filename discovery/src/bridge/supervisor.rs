//! Running `meshmux bridge` processes for `meshmux up`: [`Supervisor::start`] starts one (this
//! executable, `bridge` subcommand) for a [`BridgeSpec`], waits until it serves (its port
//! file), and keeps it running: when it exits it is started again on the same port after a
//! back-off (0.5 s doubling to 30 s, back to 0.5 s once it ran a minute). Its stdout and
//! stderr (with its stdio server's stderr) are appended to `<log dir>/bridge-<name>.log`.
//! [`Supervisor::shutdown`] (or dropping it) stops it: SIGTERM, which makes the bridge stop
//! its children, then SIGKILL if it has not exited.
//!
//! Configured values never appear on the bridge's command line: the child's variables are
//! set in the bridge's environment and named with `--env K`, the SSE headers go in
//! `$MESHMUX_BRIDGE_HEADERS`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::HEADERS_ENV;

/// How long a bridge gets to write its port file.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A bridge that ran this long restarts after [`BACKOFF_MIN`] again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What a bridge serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeBackend {
    /// A stdio MCP server: the command, its arguments and its whole configured environment.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    /// A legacy HTTP+SSE MCP server (the `GET` URL) and the headers it needs.
    Sse {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// One bridge to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// The server's name (in logs, errors and the log file's name).
    pub name: String,
    pub backend: BridgeBackend,
    /// Where it listens; port 0 picks a free port once, kept across restarts.
    pub listen: SocketAddr,
    /// The MCP path, `/mcp` by default.
    pub path: String,
}

impl BridgeSpec {
    pub fn new(name: impl Into<String>, backend: BridgeBackend, listen: SocketAddr) -> Self {
        Self {
            name: name.into(),
            backend,
            listen,
            path: "/mcp".to_owned(),
        }
    }
}

impl BridgeSpec {
    /// The spec for backend `name`'s `bridge` in the config: its `listen` (`host:port`, a
    /// literal IP), or `127.0.0.1:0` (a free port, chosen once) when the config has none.
    pub fn from_config(name: &str, bridge: &policy::config::Bridge) -> Result<Self> {
        let listen = match &bridge.listen {
            Some(l) => l.parse::<SocketAddr>().with_context(|| {
                format!("backend {name}: listen {l:?} is not an IP address and port")
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let backend = match &bridge.kind {
            policy::config::BridgeKind::Stdio { command, args, env } => BridgeBackend::Stdio {
                command: command.clone(),
                args: args.clone(),
                env: env.clone(),
            },
            policy::config::BridgeKind::Sse { url, headers } => BridgeBackend::Sse {
                url: url.clone(),
                headers: headers.clone(),
            },
        };
        Ok(Self::new(name, backend, listen))
    }
}

/// A running, supervised bridge.
pub struct Supervisor {
    name: String,
    addr: SocketAddr,
    path: String,
    log: PathBuf,
    restarts: Arc<AtomicU32>,
    pid: Arc<AtomicU32>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts `exe bridge …` for `spec` (logs in `log_dir`) and returns once it serves.
    pub async fn start(exe: &Path, spec: BridgeSpec, log_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let stem = file_stem(&spec.name);
        let log = log_dir.join(format!("bridge-{stem}.log"));
        let port_file = log_dir.join(format!("bridge-{stem}.port"));
        let mut child = spawn(exe, &spec, spec.listen, &port_file, &log)?;
        let port = wait_serving(&mut child, &port_file, &log).await?;
        let addr = SocketAddr::new(spec.listen.ip(), port);
        let stop = CancellationToken::new();
        let restarts = Arc::new(AtomicU32::new(0));
        let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
        let task = tokio::spawn(supervise(Run {
            exe: exe.to_owned(),
            spec: spec.clone(),
            addr,
            port_file,
            log: log.clone(),
            stop: stop.clone(),
            restarts: restarts.clone(),
            pid: pid.clone(),
            child: Some(child),
        }));
        Ok(Self {
            name: spec.name,
            addr,
            path: spec.path,
            log,
            restarts,
            pid,
            stop,
            task: Some(task),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the bridge listens (the real port when the spec said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bridge's MCP URL, `http://<addr><path>`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    /// The bridge's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// How many times the bridge was restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The process id of the bridge running now (0 while it is being restarted).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Stops the bridge (SIGTERM, SIGKILL after a grace period) and waits until it is gone.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Supervisor {
    /// Stops the bridge in the background (its process is killed at the latest when the
    /// runtime drops the supervising task).
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn spawn(
    exe: &Path,
    spec: &BridgeSpec,
    listen: SocketAddr,
    port_file: &Path,
    log: &Path,
) -> Result<Child> {
    let _ = std::fs::remove_file(port_file);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("bridge")
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--path")
        .arg(&spec.path)
        .arg("--port-file")
        .arg(port_file)
        .arg("--name")
        .arg(&spec.name)
        .env_remove(HEADERS_ENV);
    match &spec.backend {
        BridgeBackend::Stdio { command, args, env } => {
            for (k, v) in env {
                cmd.env(k, v).arg("--env").arg(k);
            }
            cmd.arg("--").arg(command).args(args);
        }
        BridgeBackend::Sse { url, headers } => {
            cmd.arg("--sse-url").arg(url);
            if !headers.is_empty() {
                cmd.env(HEADERS_ENV, serde_json::to_string(headers)?);
            }
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} bridge", exe.display()))
}

/// Waits for the port file; fails with the log's end if the bridge exits first.
async fn wait_serving(child: &mut Child, port_file: &Path, log: &Path) -> Result<u16> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(port_file)
            && let Ok(port) = text.trim().parse::<u16>()
        {
            return Ok(port);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the bridge exited during start-up ({status}); the end of {}:\n{}",
                log.display(),
                tail(log, 20)
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            bail!(
                "the bridge did not serve within {START_TIMEOUT:?}; the end of {}:\n{}",
                log.display(),
                tail(log, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Run {
    exe: PathBuf,
    spec: BridgeSpec,
    addr: SocketAddr,
    port_file: PathBuf,
    log: PathBuf,
    stop: CancellationToken,
    restarts: Arc<AtomicU32>,
    pid: Arc<AtomicU32>,
    child: Option<Child>,
}

async fn supervise(mut run: Run) {
    let mut backoff = BACKOFF_MIN;
    let mut started = Instant::now();
    loop {
        let why = match run.child.as_mut() {
            Some(child) => tokio::select! {
                status = child.wait() => status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                () = run.stop.cancelled() => {
                    terminate(child).await;
                    return;
                }
            },
            None => "not started".to_owned(),
        };
        run.pid.store(0, Ordering::Relaxed);
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = BACKOFF_MIN;
        }
        note(
            &run.log,
            &format!("bridge exited ({why}); restarting in {backoff:?}"),
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = run.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
        started = Instant::now();
        run.child = match spawn(&run.exe, &run.spec, run.addr, &run.port_file, &run.log) {
            Ok(child) => {
                run.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
                run.restarts.fetch_add(1, Ordering::Relaxed);
                Some(child)
            }
            Err(e) => {
                note(&run.log, &format!("restarting the bridge failed: {e:#}"));
                None
            }
        };
    }
}

/// SIGTERM, then SIGKILL if the bridge has not exited after its own grace period.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    let grace = super::backend::STOP_GRACE + Duration::from_secs(3);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Appends one supervisor line to the bridge's log.
fn note(log: &Path, line: &str) {
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
        let _ = writeln!(f, "meshmux up: {line}");
    }
}

/// The last `lines` lines of `path`.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all.iter()
        .skip(all.len().saturating_sub(lines))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::config::{Bridge, BridgeKind};

    #[test]
    fn a_config_bridge_becomes_a_spec() {
        let stdio = Bridge {
            kind: BridgeKind::Stdio {
                command: "npx".into(),
                args: vec!["-y".into(), "server-time".into()],
                env: [("TZ".to_owned(), "UTC".to_owned())].into(),
            },
            listen: Some("127.0.0.1:7801".into()),
        };
        let spec = BridgeSpec::from_config("time", &stdio).unwrap();
        assert_eq!(spec.listen, "127.0.0.1:7801".parse().unwrap());
        assert_eq!(spec.path, "/mcp");
        assert!(
            matches!(spec.backend, BridgeBackend::Stdio { ref command, .. } if command == "npx")
        );
        let sse = Bridge {
            kind: BridgeKind::Sse {
                url: "http://127.0.0.1:3001/sse".into(),
                headers: Default::default(),
            },
            listen: None,
        };
        let spec = BridgeSpec::from_config("legacy", &sse).unwrap();
        assert_eq!(spec.listen.port(), 0);
        let bad = Bridge {
            listen: Some("localhost:7801".into()),
            ..sse
        };
        let e = BridgeSpec::from_config("legacy", &bad).unwrap_err();
        assert!(e.to_string().contains("legacy"), "{e}");
    }
}
