//! The user's config file: seed 000's (mcp-env-mux) JSON format unchanged, plus meshmux's own
//! keys, in JSON or YAML. Parsing is pure: the caller reads the file and passes the variables.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::envvars::{self, ExpandError};
use crate::manifest::{EnvDescriptions, ToolExposure};
use crate::origin::{HostPolicy, invalid_host_pattern, invalid_origin_pattern};
use crate::pin::PinMode;

/// Everything that can be wrong with a config file, each naming the key or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: not valid JSON: {message}")]
    Json {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: not valid YAML: {message}")]
    Yaml {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: key `{key}`: {source}")]
    Var {
        source_name: String,
        key: String,
        source: ExpandError,
    },
    #[error("{source_name}: {message}")]
    Shape {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: {key}: {message}")]
    Invalid {
        source_name: String,
        key: String,
        message: String,
    },
}

#[path = "config_servers.rs"]
mod servers;

pub use servers::{Bridge, BridgeKind, McpServers, ServerEntry, Transport, valid_server_name};

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Every backend, in file order (the order tools list their envs in): seed 000's
    /// environments as written, then one per `mcpServers` entry (`<server>`) or per env of
    /// an entry with `environments` (`<server>.<env>`), added when the file is loaded.
    #[serde(default)]
    pub environments: Environments,
    /// Many servers, in the Claude Desktop / mcp-proxy shape (meshmux; see `servers`).
    #[serde(default, rename = "mcpServers")]
    pub mcp_servers: McpServers,
    /// How the backends group into servers (filled in when the file is loaded).
    #[serde(skip)]
    pub servers: Vec<crate::servers::ServerSpec>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// meshmux's own gateway settings (not in seed 000).
    #[serde(default)]
    pub gateway: GatewayConfig,
}

/// Environments keep the order they have in the file.
#[derive(Debug, Clone, Default)]
pub struct Environments(pub Vec<(String, Environment)>);

impl<'de> Deserialize<'de> for Environments {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde_json's `preserve_order` keeps the file order in a Map.
        let map = serde_json::Map::<String, Value>::deserialize(d)?;
        let mut out = Vec::with_capacity(map.len());
        for (name, value) in map {
            let env = Environment::deserialize(value)
                .map_err(|e| serde::de::Error::custom(format!("{name}: {e}")))?;
            out.push((name, env));
        }
        Ok(Environments(out))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub description: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per-call upstream timeout in seconds (meshmux; default 60).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// A stdio or legacy SSE server, served at `url` by `meshmux bridge` (`mcpServers` only).
    #[serde(skip)]
    pub bridge: Option<Bridge>,
    /// The backend's credential, held by the gateway (`crate::credentials`).
    #[serde(default, deserialize_with = "crate::credentials::deserialize")]
    pub credentials: Option<crate::credentials::Credentials>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_metrics_path")]
    pub path: String,
    #[serde(default)]
    pub user_level_metrics: bool,
}

fn yes() -> bool {
    true
}
fn default_metrics_path() -> String {
    "/metrics".to_owned()
}

/// meshmux's own gateway keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Largest request body the filter accepts (413 above it).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// The MCP endpoint path on the gateway.
    #[serde(default = "default_mcp_path")]
    pub mcp_path: String,
    /// `serverInfo.name` the gateway reports.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// Optional `instructions` returned from `initialize`.
    #[serde(default)]
    pub instructions: Option<String>,
    /// `per_tool` (default): every tool's `env` parameter describes every env, as seed 000
    /// does. `instructions`: each env is described once, after `instructions`, and the `env`
    /// parameters keep only their enum, parameter notes and a short pointer (fewer tokens).
    #[serde(default)]
    pub env_descriptions: EnvDescriptions,
    /// `all` (default) or `search`: callers get `find_tools` and `call_tool` instead of the
    /// whole catalog (for catalogs of hundreds of tools).
    #[serde(default)]
    pub tool_exposure: ToolExposure,
    /// `Host` values the MCP endpoint accepts (`policy::origin` patterns: exact, `*` for any
    /// run of characters). Absent: any Host for `discover`, the loopback names with the
    /// listener port for `up`.
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// `Origin` values the MCP endpoint accepts from browsers (requests without `Origin` are
    /// not restricted). Absent: loopback pages (`http://localhost:*` …).
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    /// Source address ranges (`10.0.0.0/8`, `::1/128`, a bare address) allowed to read
    /// `/readyz` and the metrics path on the gateway listener, which name envs, tools and
    /// callers. Absent: anyone who reaches the listener, as before.
    #[serde(default)]
    pub ops_allow_from: Option<Vec<String>>,
    /// `off` (default), `warn` or `block`: what to do with a tool whose definition is not the
    /// one in the pin file (`meshmux pin`; see `crate::pin`).
    #[serde(default)]
    pub pinning: PinMode,
    /// The pin file. Absent: `<config file stem>.pins.json` next to the config file; a
    /// relative path is relative to the config file's directory.
    #[serde(default)]
    pub pin_file: Option<String>,
}

/// One address range of `gateway.ops_allow_from`: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub address: std::net::IpAddr,
    pub prefix_len: u8,
}

impl std::str::FromStr for AddressRange {
    type Err = String;

    /// `a.b.c.d/n`, `x::y/n`, or a bare address (the whole address).
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let address: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(AddressRange {
            address,
            prefix_len,
        })
    }
}

impl GatewayConfig {
    /// `ops_allow_from` parsed (checked when the config loads).
    pub fn ops_allow_from(&self) -> Option<Vec<AddressRange>> {
        self.ops_allow_from
            .as_ref()
            .map(|list| list.iter().filter_map(|r| r.parse().ok()).collect())
    }

    /// The Host/Origin policy these keys give, with `default` for what they leave out.
    pub fn host_policy(&self, default: HostPolicy) -> HostPolicy {
        HostPolicy {
            allowed_hosts: self.allowed_hosts.clone().unwrap_or(default.allowed_hosts),
            allowed_origins: self
                .allowed_origins
                .clone()
                .unwrap_or(default.allowed_origins),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body(),
            mcp_path: default_mcp_path(),
            server_name: default_server_name(),
            instructions: None,
            env_descriptions: EnvDescriptions::PerTool,
            tool_exposure: ToolExposure::All,
            allowed_hosts: None,
            allowed_origins: None,
            ops_allow_from: None,
            pinning: PinMode::Off,
            pin_file: None,
        }
    }
}

fn default_max_body() -> u64 {
    1024 * 1024
}
fn default_mcp_path() -> String {
    "/mcp".to_owned()
}
fn default_server_name() -> String {
    "meshmux".to_owned()
}

/// Seed 000's `auth` block, parsed and validated (its behaviour belongs to authsvc).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub azure: Option<AzureConfig>,
    /// Any OIDC provider (meshmux).
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// The loopback-only development IdP (meshmux).
    #[serde(default)]
    pub dev: Option<DevIdpConfig>,
    pub base_url: String,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    pub signing_key_file: String,
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// Required unless `users_file` is set (its users' `allowed_tools` are roles too).
    #[serde(default)]
    pub roles: BTreeMap<String, RoleConfig>,
    /// Seed 002's `users.json` (meshmux: `crate::users`): who may sign in, their roles and
    /// tools. A relative path is relative to the config file's directory.
    #[serde(default)]
    pub users_file: Option<String>,
    /// The users file, read and validated by [`Config::attach_users`] (`None` until then).
    #[serde(skip)]
    pub users: Option<crate::users::Users>,
    #[serde(default)]
    pub token_minting_roles: Vec<String>,
    #[serde(default = "default_expiry_days")]
    pub token_max_expiry_days: u32,
    /// How long one sign-in's refresh tokens keep working, counted from the sign-in and
    /// not extended by refreshing (meshmux; default 30).
    #[serde(default = "default_refresh_days")]
    pub refresh_token_max_lifetime_days: u32,
    /// Dynamic client registrations one source address may make per hour (meshmux;
    /// default 30).
    #[serde(default = "default_registrations_per_hour")]
    pub registrations_per_hour: u32,
    /// Where Envoy and the filter reach authsvc (meshmux; default `http://127.0.0.1:8090`).
    #[serde(default = "default_authsvc_url")]
    pub authsvc_url: String,
    /// Fail closed (meshmux): the gateway answers 503 while the revocation list it last
    /// fetched from authsvc is older than this. Absent: it keeps using the last list.
    #[serde(default)]
    pub revocation_max_age_seconds: Option<u64>,
}

fn default_authsvc_url() -> String {
    "http://127.0.0.1:8090".to_owned()
}

fn default_expiry_days() -> u32 {
    180
}

fn default_refresh_days() -> u32 {
    30
}

fn default_registrations_per_hour() -> u32 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The ID-token claim that holds roles or groups.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Optional group → role map applied to that claim's values.
    #[serde(default)]
    pub group_roles: BTreeMap<String, Vec<String>>,
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevIdpConfig {
    /// User name → roles offered on the dev login page.
    #[serde(default)]
    pub users: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_redis_host")]
    pub host: String,
    #[serde(default = "default_redis_port")]
    pub port: u16,
    #[serde(default)]
    pub encryption_key: Option<String>,
    /// Redis `AUTH`: the password (`requirepass`, or an ACL user's), and the ACL user name
    /// (absent: the `default` user).
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

fn default_redis_host() -> String {
    "localhost".to_owned()
}
fn default_redis_port() -> u16 {
    6379
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Environment glob → tool globs.
    pub allowed_envs: BTreeMap<String, Vec<String>>,
}

/// Which syntax a config source is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// JSON unless the name ends in `.yaml` or `.yml`.
    pub fn from_name(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Format::Yaml
        } else {
            Format::Json
        }
    }
}

impl Config {
    /// Parses and validates a config. `source_name` (usually the file path) prefixes every
    /// error; `lookup` resolves `$VAR` references.
    pub fn parse(
        text: &str,
        format: Format,
        source_name: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: Value = match format {
            Format::Json => serde_json::from_str(text).map_err(|e| ConfigError::Json {
                source_name: source_name.to_owned(),
                message: e.to_string(),
            })?,
            Format::Yaml => serde_norway::from_str(text).map_err(|e| ConfigError::Yaml {
                source_name: source_name.to_owned(),
                message: e.to_string(),
            })?,
        };
        let mut raw = raw;
        expand_strings(&mut raw, &mut Vec::new(), lookup).map_err(|(key, source)| {
            ConfigError::Var {
                source_name: source_name.to_owned(),
                key,
                source,
            }
        })?;
        let mut config: Config = serde_path_to_error::deserialize(raw).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            ConfigError::Shape {
                source_name: source_name.to_owned(),
                message: if path == "." {
                    inner
                } else {
                    format!("{path}: {inner}")
                },
            }
        })?;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            source_name: source_name.to_owned(),
            key: key.to_owned(),
            message,
        };
        config.servers =
            servers::normalize(&mut config.environments, &config.mcp_servers, &invalid)?;
        config.validate(source_name)?;
        Ok(config)
    }

    /// Gives the bridged backends the URLs their bridges serve at (`meshmux up` starts them
    /// on ports it picks); backends not named keep theirs.
    pub fn assign_bridge_urls(&mut self, urls: &BTreeMap<String, String>) {
        for (name, env) in &mut self.environments.0 {
            if env.bridge.is_some()
                && let Some(url) = urls.get(name)
            {
                env.url.clone_from(url);
            }
        }
    }

    /// The backends a `meshmux bridge` serves (stdio and legacy SSE servers).
    pub fn bridged(&self) -> impl Iterator<Item = (&str, &Bridge)> {
        self.environments
            .0
            .iter()
            .filter_map(|(name, env)| env.bridge.as_ref().map(|b| (name.as_str(), b)))
    }

    /// `auth.users_file` as a path: relative to the directory of `config_file` (the file
    /// this config was read from). `None` without one.
    pub fn users_path(&self, config_file: &std::path::Path) -> Option<std::path::PathBuf> {
        let file = std::path::Path::new(self.auth.as_ref()?.users_file.as_deref()?);
        Some(match config_file.parent() {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_path_buf(),
        })
    }

    /// Validates the text of the users file (`file` names it in errors) against this
    /// config's servers and keeps it in `auth.users`.
    pub fn attach_users(&mut self, text: &str, file: &str) -> Result<(), crate::users::UsersError> {
        let users = crate::users::Users::parse(text, file, &self.servers)?;
        if let Some(auth) = &mut self.auth {
            auth.users = Some(users);
        }
        Ok(())
    }

    /// Where backend `name`'s `field` is written in the file.
    pub fn key_of(&self, backend: &str, field: &str) -> String {
        for server in &self.servers {
            if server.name.is_empty() {
                continue;
            }
            if let Some(env) = server.envs.iter().find(|e| e.backend == backend) {
                return if server.env_arg {
                    format!(
                        "mcpServers.{}.environments.{}.{field}",
                        server.name, env.label
                    )
                } else {
                    format!("mcpServers.{}.{field}", server.name)
                };
            }
        }
        format!("environments.{backend}.{field}")
    }

    fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            source_name: source_name.to_owned(),
            key: key.to_owned(),
            message,
        };
        if self.environments.0.is_empty() {
            return Err(invalid(
                "environments",
                "must name at least one environment (or give `mcpServers`)".into(),
            ));
        }
        for (name, env) in &self.environments.0 {
            if !crate::manifest::valid_env_name(name) {
                return Err(invalid(
                    &format!("environments.{name}"),
                    "an environment name may hold letters, digits, `_`, `-` and `.` (1-64 characters)".into(),
                ));
            }
            let url_ok = env.url.starts_with("http://") || env.url.starts_with("https://");
            // A bridge without `listen` gets its URL when `meshmux up` starts it.
            let unassigned = env.bridge.as_ref().is_some_and(|b| b.listen.is_none());
            let sse_ok = match env.bridge.as_ref().map(|b| &b.kind) {
                Some(BridgeKind::Sse { url, .. }) => {
                    url.starts_with("http://") || url.starts_with("https://")
                }
                _ => true,
            };
            if !sse_ok {
                return Err(invalid(
                    &self.key_of(name, "url"),
                    "is not an http:// or https:// URL".into(),
                ));
            }
            if !url_ok && !unassigned {
                return Err(invalid(
                    &self.key_of(name, "url"),
                    format!("{:?} is not an http:// or https:// URL", env.url),
                ));
            }
            for header in env.headers.keys() {
                let ok = !header.is_empty()
                    && header
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
                if !ok {
                    return Err(invalid(
                        &self.key_of(name, "headers"),
                        format!("{header:?} is not a valid HTTP header name"),
                    ));
                }
            }
            if let Some(credentials) = &env.credentials {
                credentials
                    .validate(&env.headers)
                    .map_err(|why| invalid(&self.key_of(name, "credentials"), why))?;
            }
        }
        let g = &self.gateway;
        if !g.mcp_path.starts_with('/') {
            return Err(invalid(
                "gateway.mcp_path",
                format!("{:?} must start with `/`", g.mcp_path),
            ));
        }
        if g.max_body_bytes == 0 {
            return Err(invalid(
                "gateway.max_body_bytes",
                "must be greater than 0".into(),
            ));
        }
        if let Some(hosts) = &g.allowed_hosts {
            if hosts.is_empty() {
                return Err(invalid(
                    "gateway.allowed_hosts",
                    "an empty list would refuse every request; use [\"*\"] to accept any Host"
                        .into(),
                ));
            }
            for host in hosts {
                if let Some(why) = invalid_host_pattern(host) {
                    return Err(invalid("gateway.allowed_hosts", format!("{host:?} {why}")));
                }
            }
        }
        for origin in g.allowed_origins.iter().flatten() {
            if let Some(why) = invalid_origin_pattern(origin) {
                return Err(invalid(
                    "gateway.allowed_origins",
                    format!("{origin:?} {why}"),
                ));
            }
        }
        if let Some(ranges) = &g.ops_allow_from {
            if ranges.is_empty() {
                return Err(invalid(
                    "gateway.ops_allow_from",
                    "an empty list would refuse every probe and scrape; leave the key out to \
                     allow any source, or name the ranges (e.g. [\"127.0.0.1/32\", \"10.0.0.0/8\"])"
                        .into(),
                ));
            }
            for range in ranges {
                range
                    .parse::<AddressRange>()
                    .map_err(|why| invalid("gateway.ops_allow_from", why))?;
            }
        }
        if let Some(m) = &self.metrics
            && !m.path.starts_with('/')
        {
            return Err(invalid(
                "metrics.path",
                format!("{:?} must start with `/`", m.path),
            ));
        }
        if let Some(auth) = &self.auth {
            auth.validate(&invalid)?;
        }
        Ok(())
    }
}

impl AuthConfig {
    fn validate(&self, invalid: &dyn Fn(&str, String) -> ConfigError) -> Result<(), ConfigError> {
        let idps = [
            self.azure.is_some(),
            self.oidc.is_some(),
            self.dev.is_some(),
        ];
        match idps.iter().filter(|set| **set).count() {
            0 => {
                return Err(invalid(
                    "auth",
                    "needs an identity provider: `azure`, `oidc` or `dev`".into(),
                ));
            }
            1 => {}
            _ => {
                return Err(invalid(
                    "auth",
                    "`azure`, `oidc` and `dev` are exclusive; configure one".into(),
                ));
            }
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(invalid(
                "auth.base_url",
                format!("{:?} is not an http(s) URL", self.base_url),
            ));
        }
        if self.azure.is_some() && self.required_scopes.is_empty() {
            return Err(invalid(
                "auth.required_scopes",
                "is required with `azure`".into(),
            ));
        }
        if !(self.authsvc_url.starts_with("http://") || self.authsvc_url.starts_with("https://")) {
            return Err(invalid(
                "auth.authsvc_url",
                format!("{:?} is not an http(s) URL", self.authsvc_url),
            ));
        }
        if self.signing_key_file.trim().is_empty() {
            return Err(invalid("auth.signing_key_file", "must not be empty".into()));
        }
        if self.roles.is_empty() && self.users_file.is_none() {
            return Err(invalid(
                "auth.roles",
                "must define at least one role (or give `users_file`)".into(),
            ));
        }
        if let Some(file) = &self.users_file {
            if file.trim().is_empty() {
                return Err(invalid("auth.users_file", "must not be empty".into()));
            }
            if let Some(role) = self
                .roles
                .keys()
                .find(|r| r.starts_with(crate::users::ROLE_PREFIX))
            {
                return Err(invalid(
                    &format!("auth.roles.{role}"),
                    format!(
                        "role names starting with `{}` are the users file's (one per user); rename it",
                        crate::users::ROLE_PREFIX
                    ),
                ));
            }
        }
        for (role, cfg) in &self.roles {
            for (env_glob, tools) in &cfg.allowed_envs {
                crate::glob::Glob::new(env_glob).map_err(|e| {
                    invalid(
                        &format!("auth.roles.{role}.allowed_envs"),
                        format!("{env_glob:?}: {e}"),
                    )
                })?;
                for tool in tools {
                    crate::glob::Glob::new(tool).map_err(|e| {
                        invalid(
                            &format!("auth.roles.{role}.allowed_envs.{env_glob}"),
                            format!("{tool:?}: {e}"),
                        )
                    })?;
                }
            }
        }
        for role in &self.token_minting_roles {
            if !self.roles.contains_key(role) {
                return Err(invalid(
                    "auth.token_minting_roles",
                    format!("{role:?} is not a role defined in auth.roles"),
                ));
            }
        }
        if self.token_max_expiry_days == 0 {
            return Err(invalid(
                "auth.token_max_expiry_days",
                "must be at least 1".into(),
            ));
        }
        if self.refresh_token_max_lifetime_days == 0 {
            return Err(invalid(
                "auth.refresh_token_max_lifetime_days",
                "must be at least 1".into(),
            ));
        }
        if self.registrations_per_hour == 0 {
            return Err(invalid(
                "auth.registrations_per_hour",
                "must be at least 1".into(),
            ));
        }
        if let Some(redis) = &self.redis {
            match (&redis.encryption_key, redis.enabled) {
                (None, true) => {
                    return Err(invalid(
                        "auth.redis.encryption_key",
                        "is required when auth.redis.enabled is true".into(),
                    ));
                }
                (Some(key), _) if !valid_fernet_key(key) => {
                    return Err(invalid(
                        "auth.redis.encryption_key",
                        "must be a valid Fernet key (URL-safe base64 of 32 bytes)".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn valid_fernet_key(key: &str) -> bool {
    base64::engine::general_purpose::URL_SAFE
        .decode(key.trim())
        .is_ok_and(|bytes| bytes.len() == 32)
}

/// Expands `$VAR` in every string value, reporting the dotted key of the first failure.
fn expand_strings(
    value: &mut Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, ExpandError)> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = envvars::expand(s, lookup).map_err(|e| (path.join("."), e))?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                expand_strings(item, path, lookup)?;
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                path.push(k.clone());
                expand_strings(v, path, lookup)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "config_servers_tests.rs"]
mod servers_tests;
