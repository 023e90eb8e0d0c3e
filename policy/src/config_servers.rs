//! The `mcpServers` shape (Claude Desktop, mcp-proxy, seed 002): many servers, each a stdio
//! command, a remote URL (Streamable HTTP or legacy SSE), or a set of `environments` merged
//! behind `env` as seed 000 does. Loading turns every server/env pair into one backend of
//! `Config::environments` and describes the grouping in `Config::servers`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{ConfigError, Environment, Environments};
use crate::servers::{ServerEnv, ServerSpec, ToolOverride};

/// `mcpServers`, in file order.
#[derive(Debug, Clone, Default)]
pub struct McpServers(pub Vec<(String, ServerEntry)>);

impl<'de> Deserialize<'de> for McpServers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, Value>::deserialize(d)?;
        let mut out = Vec::with_capacity(map.len());
        for (name, value) in map {
            let entry = ServerEntry::deserialize(value)
                .map_err(|e| serde::de::Error::custom(format!("{name}: {e}")))?;
            out.push((name, entry));
        }
        Ok(McpServers(out))
    }
}

/// One `mcpServers` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// A stdio server: the program, its arguments and its whole environment.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A remote server.
    #[serde(default)]
    pub url: Option<String>,
    /// `http` (Streamable HTTP, the default for `url`), `sse` (the 2024-11-05 HTTP+SSE
    /// transport) or `stdio` (the default for `command`). `type` is read too, as Claude Code
    /// writes it.
    #[serde(default, alias = "type")]
    pub transport: Option<Transport>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The same server in several environments, merged behind `env`.
    #[serde(default)]
    pub environments: Option<Environments>,
    /// Where this server's `meshmux bridge` listens (stdio and SSE servers), `host:port`.
    /// Absent: `meshmux up` picks a free loopback port; `meshmux discover` needs it.
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `always` (default: `<server>__<tool>`), `never`, or the prefix to use instead.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Per tool (its name at the server): `name` and/or `description` to serve instead.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolOverride>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// The server's backend credential (`crate::credentials`); with `environments`, the
    /// default of those that set none.
    #[serde(default, deserialize_with = "crate::credentials::deserialize")]
    pub credentials: Option<crate::credentials::Credentials>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    #[serde(
        alias = "streamable-http",
        alias = "streamable_http",
        alias = "streamableHttp"
    )]
    Http,
    Sse,
    Stdio,
}

/// A backend that Envoy cannot reach directly: a `meshmux bridge` serves it over Streamable
/// HTTP at the backend's `url` (empty until `meshmux up` picks the port, when `listen` is
/// not set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub kind: BridgeKind,
    /// `host:port` from the config.
    pub listen: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeKind {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    Sse {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// Server names become tool prefixes and backend names (`<server>.<env>`): letters, digits,
/// `_` and `-`.
pub fn valid_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The servers of a config (seed-000 `environments` first, as a server without prefix), and
/// the backends of the `mcpServers` entries appended to `environments`.
pub(super) fn normalize(
    environments: &mut Environments,
    mcp_servers: &McpServers,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<ServerSpec>, ConfigError> {
    let mut servers = Vec::new();
    if !environments.0.is_empty() {
        servers.push(ServerSpec {
            name: String::new(),
            prefix: None,
            env_arg: true,
            tools: BTreeMap::new(),
            envs: environments
                .0
                .iter()
                .map(|(name, _)| ServerEnv {
                    label: name.clone(),
                    backend: name.clone(),
                })
                .collect(),
        });
    }
    for (name, entry) in &mcp_servers.0 {
        let key = format!("mcpServers.{name}");
        if !valid_server_name(name) {
            return Err(invalid(
                &key,
                "a server name may hold letters, digits, `_` and `-` (1-64 characters)".into(),
            ));
        }
        let prefix = match entry.prefix.as_deref() {
            None | Some("always") => Some(name.clone()),
            Some("never") => None,
            Some(custom) => {
                if !valid_server_name(custom) {
                    return Err(invalid(
                        &format!("{key}.prefix"),
                        format!(
                            "{custom:?}: `always`, `never`, or a prefix of letters, digits, `_` and `-`"
                        ),
                    ));
                }
                Some(custom.to_owned())
            }
        };
        for (tool, o) in &entry.tools {
            if let Some(new) = &o.name
                && !crate::servers::valid_tool_name(new)
            {
                return Err(invalid(
                    &format!("{key}.tools.{tool}.name"),
                    format!("{new:?} is not a valid MCP tool name"),
                ));
            }
        }
        let mut envs = Vec::new();
        let env_arg = entry.environments.is_some();
        if let Some(server_envs) = &entry.environments {
            let stray = [
                ("command", entry.command.is_some()),
                ("url", entry.url.is_some()),
                ("transport", entry.transport.is_some()),
                ("headers", !entry.headers.is_empty()),
                ("listen", entry.listen.is_some()),
                ("args", !entry.args.is_empty()),
                ("env", !entry.env.is_empty()),
            ];
            if let Some((k, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    &key,
                    format!(
                        "`{k}` belongs in each of its `environments` (a server with environments is reached through them)"
                    ),
                ));
            }
            if server_envs.0.is_empty() {
                return Err(invalid(
                    &format!("{key}.environments"),
                    "must name at least one environment".into(),
                ));
            }
            for (label, env) in &server_envs.0 {
                if !crate::manifest::valid_env_name(label) {
                    return Err(invalid(
                        &format!("{key}.environments.{label}"),
                        "an environment name may hold letters, digits, `_`, `-` and `.` (1-64 characters)".into(),
                    ));
                }
                let backend = format!("{name}.{label}");
                let mut env = env.clone();
                if env.timeout_seconds.is_none() {
                    env.timeout_seconds = entry.timeout_seconds;
                }
                if env.credentials.is_none() {
                    env.credentials = entry.credentials.clone();
                }
                envs.push((label.clone(), backend, env));
            }
        } else {
            let env = single_backend(name, entry, &key, invalid)?;
            envs.push((name.clone(), name.clone(), env));
        }
        let mut spec_envs = Vec::new();
        for (label, backend, env) in envs {
            if environments.0.iter().any(|(n, _)| *n == backend) {
                return Err(invalid(
                    &key,
                    format!(
                        "backend name `{backend}` is already used (an `environments` entry or another server); rename one"
                    ),
                ));
            }
            environments.0.push((backend.clone(), env));
            spec_envs.push(ServerEnv { label, backend });
        }
        servers.push(ServerSpec {
            name: name.clone(),
            prefix,
            env_arg,
            tools: entry.tools.clone(),
            envs: spec_envs,
        });
    }
    Ok(servers)
}

/// The one backend of a server without `environments`.
fn single_backend(
    name: &str,
    entry: &ServerEntry,
    key: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Environment, ConfigError> {
    let transport = match (&entry.command, &entry.url, entry.transport) {
        (Some(_), Some(_), _) => {
            return Err(invalid(
                key,
                "has both `command` and `url`; a server is one or the other".into(),
            ));
        }
        (Some(_), None, None | Some(Transport::Stdio)) => Transport::Stdio,
        (None, Some(_), None) => Transport::Http,
        (None, Some(_), Some(t @ (Transport::Http | Transport::Sse))) => t,
        (None, None, _) => {
            return Err(invalid(
                key,
                "needs `command` (a stdio server), `url` (a remote server) or `environments`"
                    .into(),
            ));
        }
        (_, _, Some(t)) => {
            return Err(invalid(
                &format!("{key}.transport"),
                format!(
                    "{t:?} does not fit a server with {}",
                    if entry.command.is_some() {
                        "`command`"
                    } else {
                        "`url`"
                    }
                ),
            ));
        }
    };
    if transport != Transport::Stdio && (!entry.args.is_empty() || !entry.env.is_empty()) {
        return Err(invalid(
            key,
            "`args` and `env` are for stdio servers (`command`)".into(),
        ));
    }
    if transport == Transport::Http && entry.listen.is_some() {
        return Err(invalid(
            &format!("{key}.listen"),
            "is for stdio and SSE servers, which run behind `meshmux bridge`".into(),
        ));
    }
    if let Some(listen) = &entry.listen
        && listen.parse::<std::net::SocketAddr>().is_err()
    {
        return Err(invalid(
            &format!("{key}.listen"),
            format!("{listen:?} is not an address:port"),
        ));
    }
    let bridged_url = entry
        .listen
        .as_ref()
        .map_or_else(String::new, |l| format!("http://{l}/mcp"));
    let description = entry.description.clone().unwrap_or_else(|| name.to_owned());
    let (url, headers, bridge) = match transport {
        Transport::Http => (
            entry.url.clone().unwrap_or_default(),
            entry.headers.clone(),
            None,
        ),
        Transport::Sse => (
            bridged_url,
            BTreeMap::new(),
            Some(BridgeKind::Sse {
                url: entry.url.clone().unwrap_or_default(),
                headers: entry.headers.clone(),
            }),
        ),
        Transport::Stdio => {
            if !entry.headers.is_empty() {
                return Err(invalid(
                    &format!("{key}.headers"),
                    "a stdio server takes no headers; give it `env`".into(),
                ));
            }
            (
                bridged_url,
                BTreeMap::new(),
                Some(BridgeKind::Stdio {
                    command: entry.command.clone().unwrap_or_default(),
                    args: entry.args.clone(),
                    env: entry.env.clone(),
                }),
            )
        }
    };
    if transport != Transport::Http && entry.credentials.is_some() {
        return Err(invalid(
            &format!("{key}.credentials"),
            "are for remote (`url`, Streamable HTTP) servers; a bridged server gets none".into(),
        ));
    }
    Ok(Environment {
        description,
        url,
        headers,
        timeout_seconds: entry.timeout_seconds,
        credentials: entry.credentials.clone(),
        bridge: bridge.map(|kind| Bridge {
            kind,
            listen: entry.listen.clone(),
        }),
    })
}
