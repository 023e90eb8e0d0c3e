//! The manifest: the only contract between discovery and the filter, and the filter's plugin
//! configuration that carries it. Versioned JSON; no secrets in the manifest itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::metrics::MetricsSettings;
use crate::origin::HostPolicy;
use crate::pin::PinReport;
use crate::rbac::Roles;
use crate::revocation::RevocationSource;

/// Bumped whenever a field changes meaning; the filter refuses formats it does not know.
pub const MANIFEST_FORMAT: u32 = 1;

/// The merged catalog and everything the filter knows about backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// `sha256:` of the manifest serialized with an empty `hash`.
    #[serde(default)]
    pub hash: String,
    pub server: ServerInfo,
    /// Environments in config order, including those whose discovery failed.
    pub envs: Vec<EnvEntry>,
    pub tools: Vec<ToolEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Diagnostic>,
    /// Merge errors; the tools they name are left out of `tools`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Diagnostic>,
    /// `gateway.pinning` and the tools whose definition is not the pinned one (`crate::pin`).
    /// Left out when pinning is off, so manifests (and their hashes) from before are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinning: Option<PinReport>,
    /// The backends' prompts (`crate::offerings`); left out when none, as are the two below,
    /// so manifests of tool-only backends (and their hashes) are unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<PromptEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_templates: Vec<ResourceEntry>,
}

/// One prompt as served: the same prompt of several envs of a server is one prompt with an
/// `env` argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptEntry {
    /// The definition served in `prompts/list` (namespaced name, `env` argument when the
    /// prompt has several envs).
    pub prompt: Map<String, Value>,
    /// The envs that have it, in config order.
    pub envs: Vec<OfferEnv>,
    /// The prompt's name at its backends when the served name differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// An env a prompt is offered in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferEnv {
    /// As callers name it (the `env` argument) and roles match it.
    pub env: String,
    /// The backend when it differs from `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

impl OfferEnv {
    pub fn backend(&self) -> &str {
        self.backend.as_deref().unwrap_or(&self.env)
    }
}

impl PromptEntry {
    pub fn name(&self) -> &str {
        self.prompt
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn upstream_name(&self) -> &str {
        self.upstream.as_deref().unwrap_or_else(|| self.name())
    }

    /// Whether callers choose the env with an `env` argument.
    pub fn takes_env(&self) -> bool {
        self.envs.len() > 1
    }
}

/// One backend's resource or resource template as served: its URI (or URI template) made
/// unique across backends (`crate::offerings::wrap_uri`) when the gateway has several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    /// The definition served in `resources/list` (or `resources/templates/list`).
    pub resource: Map<String, Value>,
    /// The backend (`Manifest::envs` name) that serves it.
    pub backend: String,
    /// The URI (or template) at the backend when the served one differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

impl ResourceEntry {
    /// The served URI (`uri`, or `uriTemplate` for a template).
    pub fn uri(&self) -> &str {
        ["uri", "uriTemplate"]
            .iter()
            .find_map(|k| self.resource.get(*k).and_then(Value::as_str))
            .unwrap_or_default()
    }

    /// The URI (or template) as the backend names it: what roles match.
    pub fn upstream_uri(&self) -> &str {
        self.upstream.as_deref().unwrap_or_else(|| self.uri())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Where the envs' descriptions are stated. Left out when `per_tool`, so manifests (and
    /// their hashes) from before this field existed are unchanged.
    #[serde(default, skip_serializing_if = "EnvDescriptions::is_per_tool")]
    pub env_descriptions: EnvDescriptions,
    /// How callers see the catalog (`gateway.tool_exposure`); left out when `all`.
    #[serde(default, skip_serializing_if = "ToolExposure::is_all")]
    pub tool_exposure: ToolExposure,
}

/// `all`: `tools/list` is the catalog. `search`: it is `find_tools` and `call_tool`, for
/// catalogs too big to put in a model's context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolExposure {
    #[default]
    All,
    Search,
}

impl ToolExposure {
    pub fn is_all(&self) -> bool {
        *self == ToolExposure::All
    }
}

/// Where the gateway states what each env is (config key `gateway.env_descriptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvDescriptions {
    /// In every tool's `env` parameter (seed 000's behaviour): self-contained tools, but the
    /// descriptions repeat once per tool.
    #[default]
    PerTool,
    /// Once, in the `initialize` (and `server/discover`) `instructions`; each tool's `env`
    /// parameter keeps its enum, its parameter notes and a short pointer there.
    Instructions,
}

impl EnvDescriptions {
    pub fn is_per_tool(&self) -> bool {
        *self == EnvDescriptions::PerTool
    }
}

/// One environment's backend as the gateway reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvEntry {
    pub name: String,
    pub description: String,
    /// Envoy cluster for this env (`env_<name>`).
    pub cluster: String,
    /// The backend URL from the config (secret-free).
    pub url: String,
    /// `Host` header value and path the backend expects.
    pub authority: String,
    pub path: String,
    /// The protocol version the backend negotiated at discovery (what calls are sent with
    /// until the filter's own session says otherwise).
    pub protocol_version: String,
    /// `serverInfo` the backend reported, for people reading the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<Value>,
    /// Why discovery could not list this env's tools; it then serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
    /// The latest discovery failed, but an earlier one listed this env's tools: they are
    /// still served from that last good list and calls still go to the backend (which fail
    /// fast while it is really down). `unreachable` stays for envs with no known tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<Stale>,
    /// The `mcpServers` entry this backend belongs to (absent for a seed-000 env).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The env name callers pass for this backend when it differs from `name` (a server's
    /// env `Prod` is backend `<server>.Prod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl EnvEntry {
    /// What callers, roles and reports call this backend: its env label, else its name.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

/// Why an env's tools come from an earlier discovery, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stale {
    /// The latest discovery's error.
    pub reason: String,
    /// When discovery first failed in this outage (RFC 3339, UTC).
    pub since: String,
    /// When the served tool list was first seen (RFC 3339, UTC).
    pub listed_at: String,
}

/// One merged tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolEntry {
    /// The definition served in `tools/list`: every field the backends gave, with the
    /// injected `env` property in `inputSchema`.
    pub tool: Map<String, Value>,
    /// The envs that have this tool, in config order, with the parameters each supports.
    pub envs: Vec<ToolEnv>,
    /// The tool's name at its backends when the served name differs (a server prefix, a
    /// rename in the config). Calls are sent with this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The tool has no injected `env` argument: it belongs to a server with one backend, and
    /// every call goes to its only env.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implicit_env: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolEnv {
    /// The env as callers name it (the `env` argument) and roles match it.
    pub env: String,
    /// The backend (`Manifest::envs` name) when it differs from `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    pub params: Vec<String>,
    /// Client capabilities (`elicitation`, `sampling`, `roots`) this env's backend listed the
    /// tool only for: discovery saw it with them and not without. Left out when empty, so
    /// manifests (and their hashes) from before this field are unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
}

/// A merge error or warning, naming the tool it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagnostic {
    pub tool: String,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.tool, self.message)
    }
}

impl ToolEntry {
    pub fn name(&self) -> &str {
        self.tool
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The name calls carry to the backend.
    pub fn upstream_name(&self) -> &str {
        self.upstream.as_deref().unwrap_or_else(|| self.name())
    }
}

impl ToolEnv {
    /// The `Manifest::envs` entry calls in this env go to.
    pub fn backend(&self) -> &str {
        self.backend.as_deref().unwrap_or(&self.env)
    }
}

impl Manifest {
    /// Fills in `hash` from the content.
    pub fn seal(mut self) -> Self {
        self.hash = String::new();
        let bytes = serde_json::to_vec(&self).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        self.hash = format!("sha256:{}", hex(&digest));
        self
    }

    pub fn env(&self, name: &str) -> Option<&EnvEntry> {
        self.envs.iter().find(|e| e.name == name)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Envoy cluster names are derived from env names, so env names stay in a safe alphabet.
pub fn valid_env_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The cluster an env's calls go to.
pub fn cluster_name(env: &str) -> String {
    format!("env_{env}")
}

/// The filter's plugin configuration (the JSON string in the Wasm filter's `configuration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub manifest: Manifest,
    /// The MCP endpoint path the filter answers on; other paths pass through untouched.
    #[serde(default = "default_mcp_path")]
    pub mcp_path: String,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Per env: headers for the filter's own side calls (backend session set-up). These are
    /// the env's configured credentials, so this config is as secret as the config file.
    #[serde(default)]
    pub backends: BTreeMap<String, BackendAccess>,
    /// Absent: no authorization, every caller may call everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<FilterAuth>,
    /// What the filter counts (`policy::metrics`); the defaults when absent.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Which `Host` and `Origin` values the MCP endpoint accepts (`policy::origin::check`);
    /// absent: any Host, loopback browser origins only.
    #[serde(default)]
    pub host_policy: HostPolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendAccess {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Timeout for side calls, in milliseconds.
    #[serde(default = "default_side_call_timeout")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterAuth {
    /// Path under `metadata.filter_metadata` where jwt_authn put the token payload, e.g.
    /// `["envoy.filters.http.jwt_authn", "jwt_payload"]`.
    pub claims_path: Vec<String>,
    pub roles: Roles,
    /// The protected-resource metadata URL the filter's own 401s point clients at
    /// (`<base_url>/.well-known/oauth-protected-resource/mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_metadata: Option<String>,
    /// Where the filter fetches authsvc's list of revoked token ids.
    #[serde(default)]
    pub revocations: RevocationSource,
}

fn default_mcp_path() -> String {
    "/mcp".to_owned()
}
fn default_max_body() -> u64 {
    1024 * 1024
}
fn default_side_call_timeout() -> u64 {
    crate::session::DEFAULT_TIMEOUT_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        for ok in ["Prod", "staging-eu", "dev_2", "a.b"] {
            assert!(valid_env_name(ok), "{ok}");
        }
        for bad in ["", "has space", "ümlaut", "a/b", &"x".repeat(65)] {
            assert!(!valid_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn seal_is_stable_and_content_addressed() {
        let m = Manifest {
            format: MANIFEST_FORMAT,
            hash: String::new(),
            server: ServerInfo {
                name: "meshmux".into(),
                version: "0".into(),
                instructions: None,
                env_descriptions: EnvDescriptions::PerTool,
                tool_exposure: Default::default(),
            },
            envs: vec![],
            tools: vec![],
            warnings: vec![],
            errors: vec![],
            pinning: None,
            prompts: vec![],
            resources: vec![],
            resource_templates: vec![],
        };
        let a = m.clone().seal();
        let b = a.clone().seal();
        assert_eq!(a.hash, b.hash);
        assert!(a.hash.starts_with("sha256:"));
        let mut other = m.clone();
        other.server.version = "1".into();
        assert_ne!(other.seal().hash, a.hash);
        // `per_tool` is left out, so manifests from before the field keep their hash;
        // `instructions` is content and changes it.
        let text = serde_json::to_string(&a).unwrap();
        assert!(!text.contains("env_descriptions"), "{text}");
        let mut once = m;
        once.server.env_descriptions = EnvDescriptions::Instructions;
        let once = once.seal();
        assert!(
            serde_json::to_string(&once)
                .unwrap()
                .contains(r#""env_descriptions":"instructions""#)
        );
        assert_ne!(once.hash, a.hash);
    }
}
