//! From a config and what discovery found to the manifest, the filter's plugin config and the
//! per-env routing targets the Envoy generator needs. Pure: no IO, no clock.

use std::collections::BTreeMap;

use policy::config::Config;
use policy::manifest::{
    BackendAccess, EnvEntry, FilterAuth, FilterConfig, MANIFEST_FORMAT, Manifest, ServerInfo,
    Stale, cluster_name,
};
use policy::metrics::MetricsSettings;
use policy::offerings::{self, BackendOfferings};
use policy::origin::HostPolicy;
use policy::rbac::RoleRules;
use policy::revocation::RevocationSource;
use policy::servers::{BackendTools, assemble};
use serde_json::Value;

/// Where jwt_authn puts the token payload in the config meshmux generates.
pub const CLAIMS_PATH: [&str; 2] = ["envoy.filters.http.jwt_authn", "jwt_payload"];

/// Timeout of the filter's own side calls (opening a backend session).
pub const SIDE_CALL_TIMEOUT_MS: u64 = 10_000;

/// Per-call upstream timeout when the env sets none.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 60;

/// A backend URL split into what Envoy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendUrl {
    pub tls: bool,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    pub ip: bool,
    pub port: u16,
    /// The `Host` header the backend expects (`host[:port]`, default port omitted).
    pub authority: String,
    /// Path plus query, as sent upstream.
    pub path: String,
}

impl BackendUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a valid URL: {e}"))?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("{raw:?}: scheme `{other}` is not http or https")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{raw:?}: credentials in the URL are not supported; put them in `headers`"
            ));
        }
        let (host, ip) = match url.host() {
            Some(url::Host::Domain(d)) => (d.to_owned(), false),
            Some(url::Host::Ipv4(a)) => (a.to_string(), true),
            Some(url::Host::Ipv6(a)) => (a.to_string(), true),
            None => return Err(format!("{raw:?} has no host")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("{raw:?} has no port"))?;
        let host_str = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_owned(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        Ok(BackendUrl {
            tls,
            host,
            ip,
            port,
            authority,
            path,
        })
    }
}

/// One env as the Envoy config routes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvTarget {
    pub name: String,
    pub cluster: String,
    pub url: BackendUrl,
    /// The env's configured headers, `$VAR`s resolved (secrets).
    pub headers: BTreeMap<String, String>,
    pub timeout_seconds: u64,
}

/// Every env of the config as a routing target, in config order.
pub fn targets(config: &Config) -> Result<Vec<EnvTarget>, String> {
    config
        .environments
        .0
        .iter()
        .map(|(name, env)| {
            if env.url.is_empty() && env.bridge.is_some() {
                return Err(format!(
                    "{}: this server runs behind `meshmux bridge`; give it `listen` (where its \
                     bridge serves, e.g. a sidecar on 127.0.0.1:7801) or start it with `meshmux up`, \
                     which runs the bridge itself",
                    config.key_of(name, "listen").trim_end_matches(".listen")
                ));
            }
            let mut url =
                BackendUrl::parse(&env.url).map_err(|e| format!("{}: {e}", config.key_of(name, "url")))?;
            let (host, headers) = split_host(&env.headers);
            if let Some(host) = host {
                url.authority = host;
            }
            Ok(EnvTarget {
                name: name.clone(),
                cluster: cluster_name(name),
                url,
                headers,
                timeout_seconds: env.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS),
            })
        })
        .collect()
}

/// What the Envoy config needs to check authsvc's tokens and reach authsvc, when the config
/// has an `auth` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthTarget {
    /// The tokens' `iss`: `auth.base_url` without a trailing `/` (as authsvc issues them).
    pub issuer: String,
    /// The tokens' `aud`: the MCP URL, `auth.base_url` (without a trailing `/`) plus
    /// `gateway.mcp_path`.
    pub audience: String,
    /// RFC 9728 metadata for the MCP URL, named in every 401's `WWW-Authenticate`.
    pub resource_metadata: String,
    /// Where Envoy reaches authsvc (`auth.authsvc_url`).
    pub authsvc: BackendUrl,
    /// authsvc's JWKS URL, fetched through the `authsvc` cluster.
    pub jwks_uri: String,
    /// `auth.dev`: the password-less sign-in, which only a loopback listener may route to.
    pub dev_sign_in: bool,
}

/// The config's `auth` block as the Envoy config uses it.
pub fn auth_target(config: &Config) -> Result<Option<AuthTarget>, String> {
    let Some(auth) = &config.auth else {
        return Ok(None);
    };
    let base = auth.base_url.trim_end_matches('/');
    let authsvc =
        BackendUrl::parse(&auth.authsvc_url).map_err(|e| format!("auth.authsvc_url: {e}"))?;
    let mcp_path = &config.gateway.mcp_path;
    Ok(Some(AuthTarget {
        issuer: base.to_owned(),
        audience: format!("{base}{mcp_path}"),
        resource_metadata: format!("{base}/.well-known/oauth-protected-resource{mcp_path}"),
        jwks_uri: format!(
            "{}/.well-known/jwks.json",
            auth.authsvc_url.trim_end_matches('/')
        ),
        authsvc,
        dev_sign_in: auth.dev.is_some(),
    }))
}

/// A configured `Host` header names the virtual host behind the URL: it becomes the
/// authority Envoy rewrites to, not an added header (Envoy refuses to add `host`).
fn split_host(headers: &BTreeMap<String, String>) -> (Option<String>, BTreeMap<String, String>) {
    let mut host = None;
    let mut rest = BTreeMap::new();
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("host") {
            host = Some(v.clone());
        } else {
            rest.insert(k.clone(), v.clone());
        }
    }
    (host, rest)
}

/// What discovery found on one env's backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    pub protocol_version: String,
    pub server_info: Option<Value>,
    /// The tool definitions as the backend sent them.
    pub tools: Vec<Value>,
    /// Tool name → the client capabilities the backend listed it only for (see
    /// `backend::BRIDGED`); tools that need none are absent.
    pub requires: BTreeMap<String, Vec<String>>,
    /// Its prompts, resources and resource templates.
    pub offered: Offered,
}

/// What a backend offers besides tools, as it listed them (empty when it declares none).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offered {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<Value>,
}

impl Offered {
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty() && self.resources.is_empty() && self.templates.is_empty()
    }
}

/// One env's discovery: its tools, or why they could not be listed.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvResult {
    pub name: String,
    pub outcome: Result<Discovered, String>,
}

impl EnvResult {
    pub fn tool_count(&self) -> Option<usize> {
        self.outcome.as_ref().ok().map(|d| d.tools.len())
    }
}

/// Merges what the envs returned into a sealed manifest. `results` are matched to the
/// config's envs by name; an env without a result counts as unreachable.
pub fn build_manifest(config: &Config, results: &[EnvResult]) -> Result<Manifest, String> {
    let targets = targets(config)?;
    let find = |name: &str| results.iter().find(|r| r.name == name);
    let mut inputs = Vec::new();
    let mut envs = Vec::new();
    for ((name, env), target) in config.environments.0.iter().zip(&targets) {
        let outcome = find(name).map(|r| &r.outcome);
        let (protocol_version, server_info, unreachable) = match outcome {
            Some(Ok(d)) => {
                inputs.push(BackendTools {
                    backend: name,
                    description: &env.description,
                    tools: &d.tools,
                });
                (d.protocol_version.clone(), d.server_info.clone(), None)
            }
            Some(Err(e)) => (unknown_version(), None, Some(e.clone())),
            None => (unknown_version(), None, Some("not discovered".to_owned())),
        };
        let (server, label) = server_of(config, name);
        envs.push(EnvEntry {
            server,
            label,
            name: name.clone(),
            description: env.description.clone(),
            cluster: target.cluster.clone(),
            url: env.url.clone(),
            authority: target.url.authority.clone(),
            path: target.url.path.clone(),
            protocol_version,
            server_info,
            unreachable,
            stale: None,
        });
    }
    let gateway = &config.gateway;
    let mut merged = assemble(&config.servers, &inputs, gateway.env_descriptions);
    let offered: Vec<BackendOfferings<'_>> = results
        .iter()
        .filter_map(|r| {
            let d = r.outcome.as_ref().ok()?;
            Some(BackendOfferings {
                backend: &r.name,
                prompts: &d.offered.prompts,
                resources: &d.offered.resources,
                templates: &d.offered.templates,
            })
        })
        .collect();
    // With one backend its URIs are served as they are; with several they name their backend.
    let offerings = offerings::assemble(&config.servers, &offered, envs.len() > 1);
    merged.errors.extend(offerings.errors);
    merged.warnings.extend(offerings.warnings);
    for tool in &mut merged.tools {
        let name = tool.upstream_name().to_owned();
        for te in &mut tool.envs {
            let listed = find(te.backend()).and_then(|r| r.outcome.as_ref().ok());
            if let Some(caps) = listed.and_then(|d| d.requires.get(&name)) {
                te.requires = caps.clone();
            }
        }
    }
    Ok(Manifest {
        format: MANIFEST_FORMAT,
        hash: String::new(),
        server: ServerInfo {
            name: gateway.server_name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            instructions: gateway.instructions.clone(),
            env_descriptions: gateway.env_descriptions,
            tool_exposure: gateway.tool_exposure,
        },
        envs,
        tools: merged.tools,
        warnings: merged.warnings,
        errors: merged.errors,
        pinning: None,
        prompts: offerings.prompts,
        resources: offerings.resources,
        resource_templates: offerings.templates,
    }
    .seal())
}

/// The `mcpServers` entry backend `name` belongs to, and its env label when that differs
/// from `name` (none for seed-000 envs).
fn server_of(config: &Config, name: &str) -> (Option<String>, Option<String>) {
    match policy::servers::server_of(&config.servers, name) {
        Some((s, env)) if !s.name.is_empty() => (
            Some(s.name.clone()),
            (env.label != env.backend).then(|| env.label.clone()),
        ),
        _ => (None, None),
    }
}

/// Marks the envs in `stale` (env name → why and since when) as served from their last good
/// tool list, and reseals. Their results must already be that list (see `state`).
pub fn mark_stale(mut manifest: Manifest, stale: &BTreeMap<String, Stale>) -> Manifest {
    for env in &mut manifest.envs {
        env.stale = stale.get(&env.name).cloned();
    }
    manifest.seal()
}

/// An unreachable env is later reached with the newest `initialize`-era version.
fn unknown_version() -> String {
    policy::protocol::LATEST_WITH_INITIALIZE.to_owned()
}

/// The filter's plugin configuration: the manifest plus each env's side-call credentials and
/// the roles, when the config has an `auth` block.
pub fn filter_config(config: &Config, manifest: Manifest) -> FilterConfig {
    let backends = config
        .environments
        .0
        .iter()
        .map(|(name, env)| {
            (
                name.clone(),
                BackendAccess {
                    // The authority (a configured `Host` included) is in the manifest.
                    headers: split_host(&env.headers).1,
                    timeout_ms: SIDE_CALL_TIMEOUT_MS,
                },
            )
        })
        .collect();
    let resource_metadata = auth_target(config)
        .ok()
        .flatten()
        .map(|t| t.resource_metadata);
    let auth = config.auth.as_ref().map(|auth| FilterAuth {
        claims_path: CLAIMS_PATH.iter().map(|s| (*s).to_owned()).collect(),
        resource_metadata,
        revocations: RevocationSource {
            max_age_ms: auth
                .revocation_max_age_seconds
                .map(|s| s.saturating_mul(1_000)),
            ..RevocationSource::default()
        },
        // `auth.roles`, and one role per user of the users file (`user:<email>`).
        roles: auth
            .roles
            .iter()
            .map(|(role, cfg)| {
                (
                    role.clone(),
                    RoleRules {
                        allowed_envs: cfg.allowed_envs.clone(),
                    },
                )
            })
            .chain(auth.users.iter().flat_map(policy::users::Users::roles))
            .collect(),
    });
    // No `metrics` block means seed 000's defaults: enabled at /metrics, no per-user series.
    let metrics = config
        .metrics
        .as_ref()
        .map_or_else(MetricsSettings::default, |m| MetricsSettings {
            enabled: m.enabled,
            path: m.path.clone(),
            user_level_metrics: m.user_level_metrics,
        });
    FilterConfig {
        manifest,
        mcp_path: config.gateway.mcp_path.clone(),
        max_body_bytes: config.gateway.max_body_bytes,
        backends,
        auth,
        metrics,
        host_policy: config.gateway.host_policy(HostPolicy::default()),
    }
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
