//! `meshmux bridge`: one stdio MCP server (a child process) or one legacy HTTP+SSE MCP server
//! behind a Streamable HTTP endpoint on a local port, so the gateway (a proxy-wasm filter,
//! which cannot start processes or speak the old transport) reaches it like any other backend.
//!
//! Session model: one backend per HTTP session. `initialize` starts a child (or opens an SSE
//! stream) and passes the caller's `initialize` on; the session's end (DELETE, rmcp's idle
//! timeout, the bridge exiting) stops it. A stdio server serves exactly one client, so a
//! shared child would mix the callers' ids, capabilities and server requests; the gateway
//! keeps a few long-lived sessions per backend and discovery opens one per cycle, so the cost
//! is one process start per session. At most `--max-sessions` at once.
//!
//! When a backend dies, the requests in flight get a JSON-RPC error naming the server and the
//! session is closed, so the caller's next request gets 404 and its new session starts a
//! fresh child: the bridge itself keeps running (its supervisor restarts it only if it
//! exits). See [`backend`] for the child's environment and [`supervisor`] for `meshmux up`.

pub mod backend;
mod handler;
pub mod proxy;
pub mod routes;
pub mod sse;
pub mod supervisor;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use http::HeaderMap;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use url::Url;

pub use supervisor::{BridgeBackend, BridgeSpec, Supervisor};

/// Starts a supervised `meshmux bridge` for the bridged backends of `config` (all of them, or
/// only those without `listen` when `unassigned_only`) and points those backends at them.
/// `meshmux up` keeps them for the stack's life; `check`, `list` and `pin` for one discovery.
pub async fn start_all(
    config: &mut policy::config::Config,
    log_dir: &Path,
    unassigned_only: bool,
) -> Result<(Vec<Supervisor>, std::collections::BTreeMap<String, String>)> {
    let mut started = Vec::new();
    let mut urls = std::collections::BTreeMap::new();
    let wanted: Vec<(String, policy::config::Bridge)> = config
        .bridged()
        .filter(|(_, b)| !unassigned_only || b.listen.is_none())
        .map(|(n, b)| (n.to_owned(), b.clone()))
        .collect();
    if wanted.is_empty() {
        return Ok((started, urls));
    }
    let exe = std::env::current_exe().context("locating the meshmux binary for its bridges")?;
    std::fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    for (name, bridge) in wanted {
        let spec = BridgeSpec::from_config(&name, &bridge)?;
        let sup = Supervisor::start(&exe, spec, log_dir)
            .await
            .with_context(|| format!("starting the bridge of {name}"))?;
        urls.insert(name, sup.url());
        started.push(sup);
    }
    config.assign_bridge_urls(&urls);
    Ok((started, urls))
}

/// The environment variable holding extra `--sse-url` headers as a JSON object (so that a
/// supervisor passes credentials without putting them on a command line).
pub const HEADERS_ENV: &str = "MESHMUX_BRIDGE_HEADERS";

#[derive(Debug, Clone, Args)]
pub struct BridgeArgs {
    /// Address to serve MCP Streamable HTTP on (`127.0.0.1:0`: any free port, see
    /// --port-file).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The HTTP path of the MCP endpoint.
    #[arg(long, default_value = "/mcp")]
    pub path: String,
    /// Write the bound port (and a newline) to FILE once serving (atomically: a reader sees
    /// the whole port or no file).
    #[arg(long, value_name = "FILE")]
    pub port_file: Option<PathBuf>,
    /// The server's name in errors and logs (default: the command's file name or the SSE
    /// URL's host).
    #[arg(long)]
    pub name: Option<String>,
    /// A variable for the stdio server: `K=V`, or `K` to pass the bridge's own value of K.
    /// The child gets only these plus HOME, LOGNAME, PATH, SHELL, TERM and USER.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// The backend is a legacy HTTP+SSE MCP server (2024-11-05) at this URL instead of a
    /// command.
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    pub sse_url: Option<Url>,
    /// A header sent to the SSE server (`Name: value`); more in $MESHMUX_BRIDGE_HEADERS (a
    /// JSON object).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// How many sessions (stdio children, SSE streams) may be open at once.
    #[arg(long, default_value_t = 16)]
    pub max_sessions: usize,
    /// The stdio server to run, after `--`: `-- npx -y @modelcontextprotocol/server-time`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// What every session's backend is.
#[derive(Debug, Clone)]
pub enum Backend {
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
    Sse {
        url: Url,
        headers: HeaderMap,
    },
}

/// State shared by the sessions of one bridge.
pub struct Shared {
    pub name: String,
    pub backend: Backend,
    pub sessions: Arc<Semaphore>,
    pub max_sessions: usize,
    pub shutdown: CancellationToken,
    pub manager: Arc<LocalSessionManager>,
}

/// Reads `--env` entries: `K=V`, or `K` for the bridge's own value.
fn parse_env(entries: &[String]) -> Result<Vec<(String, String)>> {
    entries
        .iter()
        .map(|e| match e.split_once('=') {
            Some(("", _)) => bail!("--env {e:?} has no variable name"),
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => std::env::var(e)
                .map(|v| (e.clone(), v))
                .map_err(|_| anyhow!("--env {e}: the bridge has no variable {e} to pass")),
        })
        .collect()
}

impl BridgeArgs {
    /// The backend and its name, or why the flags do not describe one.
    pub fn backend(&self) -> Result<(String, Backend)> {
        if !self.path.starts_with('/') {
            bail!("--path {:?} must start with /", self.path);
        }
        if self.max_sessions == 0 {
            bail!("--max-sessions must be at least 1");
        }
        if let Some(url) = &self.sse_url {
            if !matches!(url.scheme(), "http" | "https") {
                bail!("--sse-url {url} is not an http(s) URL");
            }
            let mut headers = HeaderMap::new();
            for h in &self.headers {
                let (n, v) = sse::parse_header(h)?;
                headers.append(n, v);
            }
            if let Ok(json) = std::env::var(HEADERS_ENV) {
                let extra: std::collections::BTreeMap<String, String> = serde_json::from_str(&json)
                    .with_context(|| format!("${HEADERS_ENV} is not a JSON object of strings"))?;
                for (k, v) in extra {
                    let (n, v) = sse::parse_header(&format!("{k}: {v}"))?;
                    headers.append(n, v);
                }
            }
            let name = self
                .name
                .clone()
                .unwrap_or_else(|| url.host_str().unwrap_or("sse").to_owned());
            return Ok((
                name,
                Backend::Sse {
                    url: url.clone(),
                    headers,
                },
            ));
        }
        if !self.headers.is_empty() {
            bail!("--header is for --sse-url; a stdio server takes --env");
        }
        let Some((command, args)) = self.command.split_first() else {
            bail!("give the stdio server's command after `--`, or --sse-url");
        };
        let name = self.name.clone().unwrap_or_else(|| {
            Path::new(command)
                .file_name()
                .map_or_else(|| command.clone(), |n| n.to_string_lossy().into_owned())
        });
        Ok((
            name,
            Backend::Stdio {
                command: command.clone(),
                args: args.to_vec(),
                env: parse_env(&self.env)?,
            },
        ))
    }
}

/// Writes `port` to `path` atomically (a temporary file renamed over it).
pub fn write_port_file(path: &Path, port: u16) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{port}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))
}

/// Runs the bridge until SIGTERM or Ctrl-C; every child is stopped before it returns.
pub async fn run(args: BridgeArgs) -> Result<u8> {
    let (name, backend) = args.backend()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let manager = Arc::new(LocalSessionManager::default());
    let shared = Arc::new(Shared {
        name,
        backend,
        sessions: Arc::new(Semaphore::new(args.max_sessions)),
        max_sessions: args.max_sessions,
        shutdown: shutdown.clone(),
        manager: manager.clone(),
    });
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_cancellation_token(shutdown.child_token());
    let factory = shared.clone();
    let service = StreamableHttpService::new(
        move || Ok(proxy::ProxyServer::new(factory.clone())),
        manager,
        config,
    );
    let router = axum::Router::new().nest_service(&args.path, service);
    if let Some(file) = &args.port_file {
        write_port_file(file, addr.port())?;
    }
    eprintln!(
        "meshmux bridge: serving `{}` on http://{addr}{}",
        shared.name, args.path
    );
    let served = tokio::select! {
        served = axum::serve(listener, router).into_future() => served.context("serving"),
        () = crate::up::shutdown_signal() => Ok(()),
    };
    shutdown.cancel();
    // Every session's permit comes back once its child is gone.
    let all = u32::try_from(args.max_sessions).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        backend::STOP_GRACE + Duration::from_secs(2),
        shared.sessions.acquire_many(all),
    )
    .await;
    served?;
    Ok(crate::report::exit::CLEAN)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
