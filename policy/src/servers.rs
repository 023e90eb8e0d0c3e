//! Many servers behind one endpoint: each server's envs are merged by seed 000's rules
//! ([`crate::merge`]), then its tools are renamed as the config says and namespaced
//! (`<server>__<tool>`), and the servers' catalogs are joined. A served name two servers
//! would both use is an error naming both, never a silent drop.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::manifest::{Diagnostic, EnvDescriptions};
use crate::merge::{EnvTools, MergeOutput, merge_envs};

/// Between a server's prefix and the tool's name (seed 003's convention).
pub const SEPARATOR: &str = "__";

/// One server of the catalog. A seed-000 `environments` file is one server with no name and
/// no prefix whose tools always take `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The `mcpServers` key; empty for a seed-000 file's envs.
    pub name: String,
    /// Put before every tool name, with [`SEPARATOR`]; `None` serves the names as they are.
    pub prefix: Option<String>,
    /// Whether the tools take the injected `env` argument (the server has `environments`).
    pub env_arg: bool,
    /// Per tool (its name at the backend): a new name and/or description.
    pub tools: BTreeMap<String, ToolOverride>,
    /// The server's envs in config order.
    pub envs: Vec<ServerEnv>,
}

impl ServerSpec {
    /// A tool's name in `tools/list`, from its name in this server (after any rename).
    pub fn served(&self, local: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{prefix}{SEPARATOR}{local}"),
            None => local.to_owned(),
        }
    }

    /// A tool's name in `tools/list`, from its name at the backend.
    pub fn served_from_upstream(&self, upstream: &str) -> String {
        let local = self
            .tools
            .get(upstream)
            .and_then(|o| o.name.as_deref())
            .unwrap_or(upstream);
        self.served(local)
    }
}

/// The server `backend` belongs to, and its env there.
pub fn server_of<'s>(
    servers: &'s [ServerSpec],
    backend: &str,
) -> Option<(&'s ServerSpec, &'s ServerEnv)> {
    servers
        .iter()
        .find_map(|s| s.envs.iter().find(|e| e.backend == backend).map(|e| (s, e)))
}

/// One env of a server: what callers call it, and the backend that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEnv {
    pub label: String,
    /// The backend's name (`Manifest::envs`, Envoy cluster, backend session).
    pub backend: String,
}

/// The config's per-tool overrides (`mcpServers.<server>.tools.<tool>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolOverride {
    /// The tool's name in this server (the prefix still applies).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// One backend's discovered tools, named by its backend name.
#[derive(Debug, Clone)]
pub struct BackendTools<'a> {
    pub backend: &'a str,
    pub description: &'a str,
    pub tools: &'a [Value],
}

/// MCP's tool-name alphabet (letters, digits, `_`, `-`, `.`; 1 to 128 characters).
pub fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Merges every server's envs and joins the servers' catalogs. `found` holds the backends
/// discovery listed (others are left out, as unreachable envs are).
pub fn assemble(
    servers: &[ServerSpec],
    found: &[BackendTools<'_>],
    descriptions: EnvDescriptions,
) -> MergeOutput {
    let mut out = MergeOutput::default();
    for server in servers {
        let renamed: Vec<(&ServerEnv, &str, Vec<Value>)> = server
            .envs
            .iter()
            .filter_map(|env| {
                let listed = found.iter().find(|b| b.backend == env.backend)?;
                let tools = listed
                    .tools
                    .iter()
                    .map(|t| apply_override(t, &server.tools))
                    .collect();
                Some((env, listed.description, tools))
            })
            .collect();
        let inputs: Vec<EnvTools<'_>> = renamed
            .iter()
            .map(|(env, description, tools)| EnvTools {
                env: &env.label,
                description,
                tools,
            })
            .collect();
        let merged = merge_envs(&inputs, descriptions, server.env_arg);
        let served = |name: &str| server.served(name);
        for mut entry in merged.tools {
            let local = entry.name().to_owned();
            let upstream = upstream_name(&local, &server.tools).to_owned();
            let name = served(&local);
            if !valid_tool_name(&name) {
                out.errors.push(Diagnostic {
                    tool: name.clone(),
                    message: format!(
                        "server `{}`: not a valid MCP tool name (letters, digits, `_`, `-`, `.`; at most 128 characters)",
                        server.name
                    ),
                });
                continue;
            }
            entry
                .tool
                .insert("name".into(), Value::String(name.clone()));
            entry.upstream = (upstream != name).then_some(upstream);
            for tool_env in &mut entry.envs {
                tool_env.backend = server
                    .envs
                    .iter()
                    .find(|e| e.label == tool_env.env && e.backend != e.label)
                    .map(|e| e.backend.clone());
            }
            out.tools.push(entry);
        }
        let rename = |d: Diagnostic| Diagnostic {
            tool: served(&d.tool),
            message: if server.name.is_empty() {
                d.message
            } else {
                format!("server `{}`: {}", server.name, d.message)
            },
        };
        out.errors.extend(merged.errors.into_iter().map(rename));
        out.warnings.extend(merged.warnings.into_iter().map(rename));
    }
    drop_collisions(servers, &mut out);
    out
}

/// A tool as the config renames and redescribes it, before the envs are merged (so a
/// description override also settles envs whose descriptions differ).
fn apply_override(tool: &Value, overrides: &BTreeMap<String, ToolOverride>) -> Value {
    let Some(name) = tool.get("name").and_then(Value::as_str) else {
        return tool.clone();
    };
    let Some(o) = overrides.get(name) else {
        return tool.clone();
    };
    let mut tool = tool.clone();
    if let Some(obj) = tool.as_object_mut() {
        if let Some(new) = &o.name {
            obj.insert("name".into(), Value::String(new.clone()));
        }
        if let Some(description) = &o.description {
            obj.insert("description".into(), Value::String(description.clone()));
        }
    }
    tool
}

/// The backend's name for a tool the config may have renamed to `local`.
fn upstream_name<'a>(local: &'a str, overrides: &'a BTreeMap<String, ToolOverride>) -> &'a str {
    overrides
        .iter()
        .find(|(_, o)| o.name.as_deref() == Some(local))
        .map_or(local, |(upstream, _)| upstream.as_str())
}

/// Leaves out every tool whose served name more than one server uses, with an error
/// naming the servers.
fn drop_collisions(servers: &[ServerSpec], out: &mut MergeOutput) {
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in &out.tools {
        let server = entry
            .envs
            .first()
            .and_then(|te| {
                servers
                    .iter()
                    .find(|s| s.envs.iter().any(|e| e.backend == te.backend()))
            })
            .map_or_else(String::new, |s| s.name.clone());
        owners
            .entry(entry.name().to_owned())
            .or_default()
            .push(server);
    }
    let colliding: BTreeMap<String, Vec<String>> =
        owners.into_iter().filter(|(_, s)| s.len() > 1).collect();
    if colliding.is_empty() {
        return;
    }
    out.tools.retain(|t| !colliding.contains_key(t.name()));
    for (name, servers) in colliding {
        out.errors.push(Diagnostic {
            tool: name,
            message: format!(
                "served by more than one server ({}); give one a `prefix` or rename the tool in its `tools`",
                named(&servers)
            ),
        });
    }
}

/// Servers as collision errors name them (a seed-000 file's envs are `environments`).
pub(crate) fn named(servers: &[String]) -> String {
    let named: Vec<String> = servers
        .iter()
        .map(|s| {
            if s.is_empty() {
                "`environments`".to_owned()
            } else {
                format!("`{s}`")
            }
        })
        .collect();
    named.join(" and ")
}

#[cfg(test)]
#[path = "servers_tests.rs"]
mod tests;
