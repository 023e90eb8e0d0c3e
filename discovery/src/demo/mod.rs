//! `meshmux demo-backend`: a small rmcp Streamable HTTP server with ops tools that differ per
//! env, for the demo stack and the end-to-end tests. With `--record FILE` it appends one JSON
//! line per `tools/call` (env, tool, arguments, every request header), so a test can prove
//! at the backend which env answered and which headers arrived.

// Log notifications are deprecated by SEP-2577 (2026-07-28), but clients of the earlier
// versions the demo also serves still receive them, and the tests stream them through Envoy.
#![allow(deprecated)]

pub mod gate;
pub mod tools;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, SetLevelRequestParams, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use tools::Answer;
pub use tools::Drift;

/// The path the demo serves MCP on.
pub const MCP_PATH: &str = "/mcp";

/// How one demo backend behaves.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    pub env: String,
    /// No `Mcp-Session-Id` sessions (rmcp's `legacy_session_mode(false)`).
    pub stateless: bool,
    /// Plain JSON answers where possible (stateless mode only, as in rmcp).
    pub json_response: bool,
    pub record: Option<PathBuf>,
    pub drift: Option<Drift>,
    /// A [`tools::Overlay`] file read on every request (`--catalog`).
    pub catalog: Option<PathBuf>,
    /// Refuse requests without an accepted bearer token (`--require-bearer-file`,
    /// `--introspection-url`).
    pub gate: Option<gate::Gate>,
}

/// Appends one JSON line per tool call.
struct Recorder {
    file: Mutex<std::fs::File>,
}

impl Recorder {
    fn open(path: &PathBuf) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening record file {}", path.display()))?;
        Ok(Recorder {
            file: Mutex::new(file),
        })
    }

    fn record(&self, line: &Value) {
        use std::io::Write as _;
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        // One write call per line keeps lines whole under O_APPEND.
        if let Err(e) = file.write_all(&bytes) {
            tracing::warn!("could not record a tool call: {e}");
        }
    }
}

/// Request headers with lower-case names; repeated headers are joined with `, `.
pub fn header_record(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

struct Inner {
    opts: DemoOptions,
    recorder: Option<Recorder>,
}

/// The MCP server for one env.
#[derive(Clone)]
pub struct DemoServer {
    inner: Arc<Inner>,
}

impl DemoServer {
    pub fn new(opts: DemoOptions) -> Result<Self> {
        let server = DemoServer {
            inner: Arc::new(Inner {
                recorder: opts.record.as_ref().map(Recorder::open).transpose()?,
                opts,
            }),
        };
        // A definition rmcp cannot take is a bug here (or a broken --catalog): say so now.
        server
            .tools()
            .map_err(|e| anyhow::anyhow!("building the demo tool definitions: {}", e.message))?;
        Ok(server)
    }

    fn env(&self) -> &str {
        &self.inner.opts.env
    }

    /// The built-in definitions with the `--catalog` overlay as the file says now (none
    /// while it does not exist).
    fn definitions(&self) -> Result<Vec<Value>, ErrorData> {
        let opts = &self.inner.opts;
        let defs = tools::definitions(&opts.env, opts.drift);
        let Some(path) = &opts.catalog else {
            return Ok(defs);
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(defs),
            Err(e) => {
                return Err(ErrorData::internal_error(
                    format!("[{}] reading catalog {}: {e}", opts.env, path.display()),
                    None,
                ));
            }
        };
        let overlay: tools::Overlay = serde_json::from_str(&text).map_err(|e| {
            ErrorData::internal_error(
                format!("[{}] catalog {} is invalid: {e}", opts.env, path.display()),
                None,
            )
        })?;
        Ok(overlay.apply(defs))
    }

    fn tools(&self) -> Result<Vec<Tool>, ErrorData> {
        self.definitions()?
            .into_iter()
            .map(|t| {
                serde_json::from_value(t).map_err(|e| {
                    ErrorData::internal_error(
                        format!("[{}] a tool definition is invalid: {e}", self.env()),
                        None,
                    )
                })
            })
            .collect()
    }
}

fn text_result(text: String, is_error: bool) -> CallToolResult {
    let content = vec![ContentBlock::text(text)];
    if is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    }
}

impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        );
        info.server_info = Implementation::new(
            format!("meshmux-demo-{}", self.env().to_ascii_lowercase()),
            env!("CARGO_PKG_VERSION"),
        );
        info.instructions = Some(format!(
            "Demo ops tools for the {} environment.",
            self.env()
        ));
        info
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()?))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let env = self.env();
        let arguments: Map<String, Value> = request.arguments.clone().unwrap_or_default();
        if let Some(recorder) = &self.inner.recorder {
            let parts = context.extensions.get::<http::request::Parts>();
            let headers = parts
                .map(|parts| header_record(&parts.headers))
                .unwrap_or_default();
            // The path with its query, as the request line had it.
            let path = parts.map(|parts| parts.uri.to_string());
            recorder.record(&json!({
                "env": env,
                "tool": request.name,
                "arguments": arguments,
                "headers": headers,
                "path": path,
            }));
        }
        let defs = self.definitions()?;
        let answer = tools::call_in(&defs, env, &request.name, &arguments).ok_or_else(|| {
            ErrorData::invalid_params(format!("[{env}] unknown tool `{}`", request.name), None)
        })?;
        let result = match answer {
            Answer::Ok { text, structured } => {
                let mut result = text_result(text, false);
                result.structured_content = structured;
                result
            }
            Answer::Error(text) => text_result(text, true),
            Answer::Steps { steps, text } => {
                let token = context
                    .meta
                    .get_progress_token()
                    .or_else(|| request.meta.as_ref().and_then(|m| m.get_progress_token()));
                for i in 1..=steps {
                    let message = format!("[{env}] step {i} of {steps}");
                    if let Some(token) = &token {
                        let progress = ProgressNotificationParam::new(token.clone(), f64::from(i))
                            .with_total(f64::from(steps))
                            .with_message(message.clone());
                        if let Err(e) = context.peer.notify_progress(progress).await {
                            tracing::warn!("[{env}] could not send a progress notification: {e}");
                        }
                    }
                    let log =
                        LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(message))
                            .with_logger("meshmux-demo");
                    if let Err(e) = context.peer.notify_logging_message(log).await {
                        tracing::warn!("[{env}] could not send a log notification: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                text_result(text, false)
            }
        };
        Ok(result.into())
    }
}

/// The demo's HTTP app: MCP at [`MCP_PATH`], any `Host` accepted (Envoy rewrites it anyway,
/// and the gateway's backends are not reached by browsers).
pub fn router(opts: DemoOptions, shutdown: CancellationToken) -> Result<axum::Router> {
    let server = DemoServer::new(opts.clone())?;
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!opts.stateless)
        .with_json_response(opts.json_response)
        .with_cancellation_token(shutdown)
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service(MCP_PATH, service);
    Ok(match opts.gate {
        Some(gate) => {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .context("building the introspection client")?;
            let state = Arc::new((gate, http));
            router.layer(axum::middleware::from_fn(move |req, next| {
                gate::check(state.clone(), req, next)
            }))
        }
        None => router,
    })
}

/// A demo backend serving in this process.
pub struct DemoBackend {
    pub env: String,
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl DemoBackend {
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    /// Ends open sessions and streams, then waits (briefly) for the server to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

/// Serves `opts` on `listener` until [`DemoBackend::stop`].
pub fn start(opts: DemoOptions, listener: tokio::net::TcpListener) -> Result<DemoBackend> {
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let shutdown = CancellationToken::new();
    let app = router(opts.clone(), shutdown.clone())?;
    let stop = shutdown.clone();
    let env = opts.env.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!("demo backend {env}: {e}");
        }
    });
    Ok(DemoBackend {
        env: opts.env,
        addr,
        shutdown,
        task,
    })
}

/// `meshmux demo-backend`: serves until Ctrl-C or SIGTERM.
pub async fn run(opts: DemoOptions, bind: &str, port: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((bind, port))
        .await
        .with_context(|| format!("binding {bind}:{port}"))?;
    let backend = start(opts, listener)?;
    println!(
        "meshmux demo backend for {} serving MCP at {}",
        backend.env,
        backend.url()
    );
    crate::up::shutdown_signal().await;
    backend.stop().await;
    Ok(())
}
