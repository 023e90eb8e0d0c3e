//! Discovery over MCP: an rmcp Streamable HTTP client per env, `initialize` (declaring the
//! client capabilities the gateway bridges) then a paginated `tools/list`, every env at once,
//! each bounded by a timeout so one slow backend cannot hold up the others.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use http::{HeaderName, HeaderValue};
use policy::config::Config;
use rmcp::ServiceExt as _;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{ClientInitializeError, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};

use crate::catalog::{Discovered, EnvResult, Offered};

/// How long one env's whole discovery (connect, initialize, every tools/list page) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Discovers every env of `config` concurrently; results come back in config order.
pub async fn discover_all(config: &Config, timeout: Duration) -> Vec<EnvResult> {
    discover_all_flagged(config, timeout)
        .await
        .into_iter()
        .map(|(result, _)| result)
        .collect()
}

/// Like [`discover_all`], each result with whether the backend refused discovery's
/// credentials (401/403 to `initialize`).
pub async fn discover_all_flagged(config: &Config, timeout: Duration) -> Vec<(EnvResult, bool)> {
    let handles: Vec<_> = config
        .environments
        .0
        .iter()
        .map(|(name, env)| {
            let (name, url, headers) = (name.clone(), env.url.clone(), env.headers.clone());
            tokio::spawn(async move { discover_env(name, &url, &headers, timeout).await })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for ((name, _), handle) in config.environments.0.iter().zip(handles) {
        results.push(handle.await.unwrap_or_else(|e| {
            let outcome = Err(format!("discovery task failed: {e}"));
            (
                EnvResult {
                    name: name.clone(),
                    outcome,
                },
                false,
            )
        }));
    }
    results
}

/// Discovers one env within `timeout`; the flag tells whether it refused the credentials.
pub async fn discover_env(
    name: String,
    url: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
) -> (EnvResult, bool) {
    let (outcome, refused) = match tokio::time::timeout(timeout, discover_one(url, headers)).await {
        Ok(Ok(d)) => (Ok(d), false),
        Ok(Err(e)) => {
            let refused = e.downcast_ref::<Refused>().is_some();
            (Err(format!("{e:#}")), refused)
        }
        Err(_) => (
            Err(format!(
                "no answer from {url} within {} s",
                timeout.as_secs_f32()
            )),
            false,
        ),
    };
    (EnvResult { name, outcome }, refused)
}

/// The backend answered `initialize` with 401 or 403: it refused the credentials sent.
#[derive(Debug)]
pub struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "initialize failed: the backend refused the credentials ({})",
            self.0
        )
    }
}

impl std::error::Error for Refused {}

/// The env's headers as rmcp custom headers (sent on every request, `Authorization`
/// included, as configured: rmcp's `auth_header` would add its own `Bearer `).
pub fn header_map(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<HashMap<HeaderName, HeaderValue>> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("header name {k:?}"))?;
            let value =
                HeaderValue::from_str(v).with_context(|| format!("value of header {k:?}"))?;
            Ok((name, value))
        })
        .collect()
}

/// The client capabilities discovery declares: those the gateway bridges to its callers
/// (elicitation in form mode, sampling, roots without change notifications). Servers that
/// register tools only for capable clients (`server-everything`'s `trigger-elicitation-request`,
/// `trigger-sampling-request`, `get-roots-list`) list them only then.
///
/// Not `roots`: servers ask for roots on their standalone GET stream (server-everything does),
/// outside any call, and a proxy-wasm filter cannot hold that stream open for a caller; a tool
/// that waits for the answer would hang.
pub const BRIDGED: [&str; 2] = ["elicitation", "sampling"];

/// `BRIDGED` as declared, less the capabilities in `without`.
pub fn capabilities(without: &[&str]) -> ClientCapabilities {
    let mut caps = serde_json::json!({
        "elicitation": { "form": {} },
        "sampling": {}
    });
    if let Some(map) = caps.as_object_mut() {
        for name in without {
            map.remove(*name);
        }
    }
    serde_json::from_value(caps).unwrap_or_default()
}

/// What one session with a backend listed.
struct Listing {
    protocol_version: String,
    server_info: Option<serde_json::Value>,
    tools: Vec<serde_json::Value>,
    /// Prompts, resources and templates (listed by the fully capable session only).
    offered: Offered,
}

impl Listing {
    fn names(&self) -> BTreeSet<&str> {
        self.tools
            .iter()
            .filter_map(|t| t.get("name").and_then(serde_json::Value::as_str))
            .collect()
    }
}

async fn discover_one(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<Discovered> {
    // The catalog is what a fully capable caller sees; a second session without any
    // capability tells whether some tools depend on them (both at once: no added latency).
    let (full, bare) = tokio::join!(
        list(url, headers, capabilities(&[]), true),
        list(url, headers, capabilities(&BRIDGED), false),
    );
    let full = full?;
    let requires = match bare {
        Ok(bare) => requirements(url, headers, &full, &bare).await,
        // The catalog stands; only the requirements stay unknown.
        Err(_) => BTreeMap::new(),
    };
    Ok(Discovered {
        protocol_version: full.protocol_version,
        server_info: full.server_info,
        tools: full.tools,
        requires,
        offered: full.offered,
    })
}

/// Which capabilities each tool listed only with capabilities needs: one listing per
/// capability, with all the others declared; a tool missing from it needs that one. Only when
/// the capable and the bare listings differ (most servers pay one extra session, not four). A
/// tool listed for any one of several capabilities appears in every such listing and gets no
/// requirement: that is not knowable this way.
async fn requirements(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    full: &Listing,
    bare: &Listing,
) -> BTreeMap<String, Vec<String>> {
    let bare_names = bare.names();
    let gated: Vec<&str> = full
        .names()
        .into_iter()
        .filter(|n| !bare_names.contains(n))
        .collect();
    if gated.is_empty() {
        return BTreeMap::new();
    }
    let [a, b] = BRIDGED;
    let (a, b) = tokio::join!(
        list(url, headers, capabilities(&[a]), false),
        list(url, headers, capabilities(&[b]), false),
    );
    let mut requires: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (cap, listing) in BRIDGED.iter().zip([a, b]) {
        let Ok(listing) = listing else { continue };
        let names = listing.names();
        for tool in &gated {
            if !names.contains(tool) {
                requires
                    .entry((*tool).to_owned())
                    .or_default()
                    .push((*cap).to_owned());
            }
        }
    }
    requires
}

/// One session: `initialize` declaring `caps`, every `tools/list` page (and, with
/// `everything`, every page of prompts, resources and templates the server declares), then a
/// polite close.
async fn list(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    caps: ClientCapabilities,
    everything: bool,
) -> Result<Listing> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .custom_headers(header_map(headers)?);
    let transport = StreamableHttpClientTransport::from_config(config);
    let client_info = ClientConfig::new(
        caps,
        Implementation::new("meshmux-discovery", env!("CARGO_PKG_VERSION")),
    );
    let client = client_info.serve(transport).await.map_err(|e| {
        if refused(&e) {
            anyhow::Error::new(Refused(init_cause(&e)))
        } else {
            anyhow!("initialize failed: {}", init_cause(&e))
        }
    })?;
    let listed = client.list_all_tools().await;
    let info = client.peer_info();
    let offered = match (&info, everything) {
        (Some(info), true) => list_offered(&client, &info.capabilities).await,
        _ => Ok(Offered::default()),
    };
    // Close the session politely (DELETE) whatever the listing gave.
    let _ = client.cancel().await;
    let tools = listed.map_err(|e| anyhow!("tools/list failed: {}", service_cause(&e)))?;
    let offered = offered?;
    let tools = tools
        .into_iter()
        .map(|t| serde_json::to_value(&t).context("serializing a tool definition"))
        .collect::<Result<Vec<_>>>()?;
    let (protocol_version, server_info) = match info {
        Some(info) => (
            info.protocol_version.to_string(),
            info.server_info
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
        ),
        None => (policy::protocol::LATEST_WITH_INITIALIZE.to_owned(), None),
    };
    Ok(Listing {
        protocol_version,
        server_info,
        tools,
        offered,
    })
}

/// Every prompt, resource and resource template a server declares it has.
async fn list_offered(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>,
    caps: &rmcp::model::ServerCapabilities,
) -> Result<Offered> {
    let mut offered = Offered::default();
    if caps.prompts.is_some() {
        let prompts = client
            .list_all_prompts()
            .await
            .map_err(|e| anyhow!("prompts/list failed: {}", service_cause(&e)))?;
        offered.prompts = values(&prompts)?;
    }
    if caps.resources.is_some() {
        let resources = client
            .list_all_resources()
            .await
            .map_err(|e| anyhow!("resources/list failed: {}", service_cause(&e)))?;
        offered.resources = values(&resources)?;
        let templates = client
            .list_all_resource_templates()
            .await
            .map_err(|e| anyhow!("resources/templates/list failed: {}", service_cause(&e)))?;
        offered.templates = values(&templates)?;
    }
    Ok(offered)
}

fn values<T: serde::Serialize>(items: &[T]) -> Result<Vec<serde_json::Value>> {
    items
        .iter()
        .map(|i| serde_json::to_value(i).context("serializing a listed definition"))
        .collect()
}

/// Why `initialize` failed, without rmcp's transport type names.
fn init_cause(e: &ClientInitializeError) -> String {
    match e {
        ClientInitializeError::TransportError { error, .. } => chain(&*error.error),
        other => other.to_string(),
    }
}

/// Whether `initialize` failed on a 401 or 403 from the backend.
fn refused(e: &ClientInitializeError) -> bool {
    let ClientInitializeError::TransportError { error, .. } = e else {
        return false;
    };
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&*error.error);
    while let Some(err) = current {
        if let Some(http) = err.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            match http {
                StreamableHttpError::AuthRequired(_)
                | StreamableHttpError::InsufficientScope(_) => {
                    return true;
                }
                StreamableHttpError::HttpStatus(s) if matches!(s.status, 401 | 403) => {
                    return true;
                }
                StreamableHttpError::UnexpectedServerResponse(text)
                    if text.contains("401") || text.contains("403") =>
                {
                    return true;
                }
                StreamableHttpError::Client(inner)
                    if inner
                        .status()
                        .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
                {
                    return true;
                }
                _ => {}
            }
        }
        current = err.source();
    }
    false
}

fn service_cause(e: &ServiceError) -> String {
    match e {
        ServiceError::TransportSend(error) => chain(&*error.error),
        other => other.to_string(),
    }
}

/// An error and its most specific source (connection refused, an HTTP status, a TLS
/// failure); the layers in between only repeat them.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    // rmcp keeps reqwest's error as a value, not as a source: look inside.
    if let Some(StreamableHttpError::<reqwest::Error>::Client(inner)) =
        e.downcast_ref::<StreamableHttpError<reqwest::Error>>()
    {
        return chain(inner);
    }
    let first = e.to_string().trim_end_matches([':', ' ']).to_owned();
    let mut last = None;
    let mut current = e.source();
    while let Some(err) = current {
        last = Some(err.to_string());
        current = err.source();
    }
    match last {
        Some(root) if !first.contains(&root) => format!("{first}: {root}"),
        _ => first,
    }
}
