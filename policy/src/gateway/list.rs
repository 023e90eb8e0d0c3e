//! `tools/list` and the per-caller view of the catalog: the list narrowed to what a caller may
//! use, and the instructions that describe the envs once.

use serde_json::{Map, Value, json};

use super::{Caller, Gateway};
use crate::manifest::{EnvDescriptions, EnvEntry, ToolEntry, ToolExposure};
use crate::merge::{ENV_PARAM, HEADER_HINT, env_property, params_only_on};
use crate::reply::{self, LocalReply};
use crate::rpc::code;

impl Gateway {
    /// The configured `instructions`, followed (when `gateway.env_descriptions` is
    /// `instructions`) by each env this caller may use somewhere, once, with its description.
    pub(super) fn instructions(&self, caller: &Caller) -> Option<String> {
        let manifest = &self.config.manifest;
        let configured = manifest.server.instructions.clone();
        if manifest.server.env_descriptions != EnvDescriptions::Instructions {
            return configured;
        }
        // The envs callers pass as `env` (a server with one backend takes none).
        let usable: Vec<&EnvEntry> = manifest
            .envs
            .iter()
            .filter(|env| {
                manifest.tools.iter().any(|t| {
                    !t.implicit_env
                        && t.envs.iter().any(|e| e.backend() == env.name)
                        && self.policy.allows(caller, env.label(), t.name())
                })
            })
            .collect();
        if usable.is_empty() {
            return configured;
        }
        let mut text = configured.map_or_else(String::new, |c| c + "\n\n");
        text.push_str("Environments (the `env` argument of every tool):");
        for env in usable {
            match &env.server {
                Some(server) => text.push_str(&format!(
                    "\n- {} (server {server}): {}",
                    env.label(),
                    env.description
                )),
                None => text.push_str(&format!("\n- {}: {}", env.name, env.description)),
            }
        }
        Some(text)
    }

    /// The envs of `tool` this caller may use, in manifest order.
    pub(super) fn allowed_envs<'t>(&self, tool: &'t ToolEntry, caller: &Caller) -> Vec<&'t str> {
        tool.envs
            .iter()
            .map(|e| e.env.as_str())
            .filter(|env| self.policy.allows(caller, env, tool.name()))
            .collect()
    }

    pub(super) fn tools_list(
        &self,
        id: &Value,
        params: Option<&Map<String, Value>>,
        caller: &Caller,
        header_era: bool,
    ) -> LocalReply {
        if params
            .and_then(|p| p.get("cursor"))
            .is_some_and(|c| !c.is_null())
        {
            return reply::error(
                200,
                id,
                code::INVALID_PARAMS,
                "Invalid cursor: this gateway returns every tool in one page",
            );
        }
        if self.config.manifest.server.tool_exposure == ToolExposure::Search {
            let visible = self
                .config
                .manifest
                .tools
                .iter()
                .filter(|t| !self.allowed_envs(t, caller).is_empty())
                .count();
            let tools = super::search::search_tools(visible);
            return reply::result_raw(
                id,
                &list_result(&tools.iter().collect::<Vec<_>>(), header_era),
            );
        }
        if *caller == Caller::Unrestricted {
            let list = if header_era {
                &self.full_list.1
            } else {
                &self.full_list.0
            };
            return reply::result_raw(id, list);
        }
        let narrowed: Vec<Map<String, Value>> = self
            .config
            .manifest
            .tools
            .iter()
            .filter_map(|t| self.narrow(t, caller))
            .collect();
        reply::result_raw(
            id,
            &list_result(&narrowed.iter().collect::<Vec<_>>(), header_era),
        )
    }

    /// `tool` as this caller sees it: `None` when it may not call it anywhere, else with the
    /// `env` enum (and its description) narrowed to the envs it may use.
    pub fn narrow(&self, tool: &ToolEntry, caller: &Caller) -> Option<Map<String, Value>> {
        let allowed = self.allowed_envs(tool, caller);
        if allowed.is_empty() {
            return None;
        }
        if allowed.len() == tool.envs.len() || tool.implicit_env {
            return Some(tool.tool.clone());
        }
        let described: Vec<(&str, &str)> = tool
            .envs
            .iter()
            .filter(|e| allowed.contains(&e.env.as_str()))
            .map(|e| {
                (
                    e.env.as_str(),
                    self.config
                        .manifest
                        .env(e.backend())
                        .map_or("", |entry| entry.description.as_str()),
                )
            })
            .collect();
        let mut narrowed = tool.tool.clone();
        if let Some(props) = narrowed
            .get_mut("inputSchema")
            .and_then(|s| s.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            props.insert(
                ENV_PARAM.into(),
                env_property(
                    &described,
                    &params_only_on(&tool.envs),
                    self.config.manifest.server.env_descriptions,
                ),
            );
        }
        Some(narrowed)
    }
}

/// The serialized `tools/list` result for this era. The manifest's tools carry the
/// `x-mcp-header` hint on `env`; only 2026-07-28-era clients act on it, so older clients get
/// the tools without it (fewer tokens, nothing they would use).
pub(super) fn list_result(tools: &[&Map<String, Value>], header_era: bool) -> Vec<u8> {
    let mut result = if header_era {
        json!({"tools": tools})
    } else {
        let without_hint: Vec<Map<String, Value>> = tools
            .iter()
            .map(|tool| {
                let mut tool = (*tool).clone();
                if let Some(env) = tool
                    .get_mut("inputSchema")
                    .and_then(|s| s.get_mut("properties"))
                    .and_then(|p| p.get_mut(ENV_PARAM))
                    .and_then(Value::as_object_mut)
                {
                    env.remove(HEADER_HINT);
                }
                tool
            })
            .collect();
        json!({"tools": without_hint})
    };
    if header_era && let Some(obj) = result.as_object_mut() {
        obj.insert("resultType".into(), json!("complete"));
        obj.insert("ttlMs".into(), json!(0));
        obj.insert("cacheScope".into(), json!("private"));
    }
    serde_json::to_vec(&result).unwrap_or_default()
}
