//! The rmcp client (the Rust SDK) against the gateway, in both eras: `initialize` (2025) and
//! `server/discover` with `Mcp-Method`/`Mcp-Name` headers (2026-07-28). Blocking methods over
//! a runtime of its own, so tests stay plain `#[test]`s.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, GetPromptRequestParams,
    ProtocolVersion, ReadResourceRequestParams,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt as _};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A connected rmcp client; disconnects on drop.
pub struct RmcpClient {
    service: Option<RunningService<RoleClient, ClientConfig>>,
    rt: tokio::runtime::Runtime,
}

impl RmcpClient {
    /// Connects with the `initialize` handshake (the 2025 eras).
    pub fn connect(url: &str) -> Result<Self> {
        Self::start(url, None, ClientLifecycleMode::Initialize, None)
    }

    /// Connects with the `initialize` handshake, sending `Authorization: Bearer <token>`.
    pub fn connect_with_token(url: &str, token: &str) -> Result<Self> {
        Self::start(url, Some(token), ClientLifecycleMode::Initialize, None)
    }

    /// Connects as a 2026-07-28 client: `server/discover`, no `initialize`, and every request
    /// self-contained with `Mcp-Method`/`Mcp-Name` headers.
    pub fn discover(url: &str) -> Result<Self> {
        Self::start(
            url,
            None,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
            None,
        )
    }

    /// Connects with the `initialize` handshake, declaring `capabilities` (a JSON object such
    /// as `{"sampling": {}}`; rmcp's default handler refuses what the server then asks).
    pub fn connect_declaring(url: &str, capabilities: Value) -> Result<Self> {
        let capabilities =
            serde_json::from_value(capabilities).context("parsing client capabilities")?;
        Self::start(
            url,
            None,
            ClientLifecycleMode::Initialize,
            Some(capabilities),
        )
    }

    fn start(
        url: &str,
        token: Option<&str>,
        mode: ClientLifecycleMode,
        capabilities: Option<ClientCapabilities>,
    ) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting a tokio runtime for the rmcp client")?;
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
        if let Some(t) = token {
            config = config.auth_header(t);
        }
        let shown = format!("{mode:?}");
        let service = rt
            .block_on(async {
                let transport = StreamableHttpClientTransport::from_config(config);
                tokio::time::timeout(
                    TIMEOUT,
                    client_config(capabilities).serve_with_lifecycle(transport, mode),
                )
                .await
            })
            .map_err(|_| {
                anyhow!("the rmcp client ({shown}) did not connect to {url} in {TIMEOUT:?}")
            })?
            .with_context(|| format!("the rmcp client ({shown}) failed to connect to {url}"))?;
        Ok(RmcpClient {
            service: Some(service),
            rt,
        })
    }

    fn service(&self) -> Result<&RunningService<RoleClient, ClientConfig>> {
        self.service.as_ref().context("the rmcp client is closed")
    }

    /// The protocol version the client settled on with the gateway.
    pub fn protocol_version(&self) -> Result<String> {
        let info = self
            .service()?
            .peer_info()
            .context("the rmcp client has no server info")?;
        Ok(info.protocol_version.to_string())
    }

    /// The server's `serverInfo.name`, if it sent one.
    pub fn server_name(&self) -> Result<Option<String>> {
        let info = self.service()?.peer_info();
        Ok(info.and_then(|i| i.server_info.as_ref().map(|s| s.name.clone())))
    }

    /// Every tool, through rmcp's paginating `list_all_tools`, as JSON.
    pub fn list_all_tools(&self) -> Result<Vec<Value>> {
        let service = self.service()?;
        let tools = self
            .rt
            .block_on(async { tokio::time::timeout(TIMEOUT, service.list_all_tools()).await })
            .map_err(|_| anyhow!("tools/list timed out after {TIMEOUT:?}"))?
            .context("tools/list through rmcp")?;
        tools
            .into_iter()
            .map(|t| serde_json::to_value(t).context("serializing a tool"))
            .collect()
    }

    /// Calls `name` with `arguments` (a JSON object); the result as JSON.
    pub fn call_tool(&self, name: &str, arguments: Value) -> Result<Value> {
        let service = self.service()?;
        let Value::Object(arguments) = arguments else {
            return Err(anyhow!("tool arguments must be a JSON object"));
        };
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
        let result = self
            .rt
            .block_on(async { tokio::time::timeout(TIMEOUT, service.call_tool(params)).await })
            .map_err(|_| anyhow!("tools/call {name} timed out after {TIMEOUT:?}"))?
            .with_context(|| format!("tools/call {name} through rmcp"))?;
        serde_json::to_value(result).context("serializing a tool result")
    }

    /// Every resource, through rmcp's paginating `list_all_resources`, as JSON.
    pub fn list_all_resources(&self) -> Result<Vec<Value>> {
        let service = self.service()?;
        let all = self
            .rt
            .block_on(async { tokio::time::timeout(TIMEOUT, service.list_all_resources()).await })
            .map_err(|_| anyhow!("resources/list timed out after {TIMEOUT:?}"))?
            .context("resources/list through rmcp")?;
        all.into_iter()
            .map(|r| serde_json::to_value(r).context("serializing a resource"))
            .collect()
    }

    /// Reads the resource at `uri`; the result as JSON.
    pub fn read_resource(&self, uri: &str) -> Result<Value> {
        let service = self.service()?;
        let params = ReadResourceRequestParams::new(uri.to_owned());
        let result = self
            .rt
            .block_on(async { tokio::time::timeout(TIMEOUT, service.read_resource(params)).await })
            .map_err(|_| anyhow!("resources/read timed out after {TIMEOUT:?}"))?
            .with_context(|| format!("resources/read {uri} through rmcp"))?;
        serde_json::to_value(result).context("serializing a resource")
    }

    /// Every prompt, through rmcp's paginating `list_all_prompts`, as JSON.
    pub fn list_all_prompts(&self) -> Result<Vec<Value>> {
        let service = self.service()?;
        let all = self
            .rt
            .block_on(async { tokio::time::timeout(TIMEOUT, service.list_all_prompts()).await })
            .map_err(|_| anyhow!("prompts/list timed out after {TIMEOUT:?}"))?
            .context("prompts/list through rmcp")?;
        all.into_iter()
            .map(|p| serde_json::to_value(p).context("serializing a prompt"))
            .collect()
    }

    /// Gets prompt `name` with `arguments`; the result as JSON.
    pub fn get_prompt(&self, name: &str, arguments: Value) -> Result<Value> {
        let service = self.service()?;
        let Value::Object(arguments) = arguments else {
            return Err(anyhow!("prompt arguments must be a JSON object"));
        };
        let params = GetPromptRequestParams::new(name.to_owned()).with_arguments(arguments);
        let result = self
            .rt
            .block_on(async { tokio::time::timeout(TIMEOUT, service.get_prompt(params)).await })
            .map_err(|_| anyhow!("prompts/get {name} timed out after {TIMEOUT:?}"))?
            .with_context(|| format!("prompts/get {name} through rmcp"))?;
        serde_json::to_value(result).context("serializing a prompt")
    }
}

fn client_config(capabilities: Option<ClientCapabilities>) -> ClientConfig {
    let mut config = ClientConfig::default();
    if let Some(c) = capabilities {
        config.capabilities = c;
    }
    config
}

impl Drop for RmcpClient {
    fn drop(&mut self) {
        if let Some(service) = self.service.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), service.cancel()).await
            });
        }
    }
}
