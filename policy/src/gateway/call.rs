//! `tools/call`: validate the call against the manifest and the caller's roles, then deny it
//! or forward it to one env with `env` (and what that env lacks) stripped.

use serde_json::{Map, Value};

use super::search;
use super::{Caller, Forward, ForwardKind, Gateway, Outcome, RequestHead, mismatch};
use crate::manifest::{EnvEntry, ToolExposure};
use crate::merge::ENV_PARAM;
use crate::pin::Change;
use crate::protocol;
use crate::reply;
use crate::rpc::code;

impl Gateway {
    pub(super) fn tools_call(
        &self,
        head: &RequestHead<'_>,
        header_era: bool,
        id: Value,
        mut object: Map<String, Value>,
        caller: &Caller,
    ) -> Outcome {
        let invalid = |message: String| {
            Outcome::Reply(reply::error(200, &id, code::INVALID_PARAMS, &message))
        };
        let Some(params) = object.get("params").and_then(Value::as_object) else {
            return invalid("tools/call needs `params` with the tool `name`".into());
        };
        let Some(name) = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return invalid("`params.name` must be a string naming the tool".into());
        };
        if header_era {
            let header = head.mcp_name.and_then(protocol::decode_header_value);
            if header.as_deref() != Some(name.as_str()) {
                return Outcome::Reply(mismatch(&id, "Mcp-Name", &name));
            }
        }
        if self.config.manifest.server.tool_exposure == ToolExposure::Search {
            match name.as_str() {
                search::FIND_TOOLS => {
                    let empty = Map::new();
                    let arguments = params
                        .get("arguments")
                        .and_then(Value::as_object)
                        .unwrap_or(&empty);
                    return self.find_tools(&id, arguments, caller);
                }
                search::CALL_TOOL => {
                    return self.call_found_tool(head, header_era, id, object, caller);
                }
                _ => {}
            }
        }
        let Some((index, tool)) = self
            .config
            .manifest
            .tools
            .iter()
            .enumerate()
            .find(|(_, t)| t.name() == name)
        else {
            // A tool new since the pins (under `block`) is not served at all.
            let env = params
                .get("arguments")
                .and_then(|a| a.get(ENV_PARAM))
                .and_then(Value::as_str);
            return self
                .pin_refusal(&id, &name, env, caller)
                .unwrap_or_else(|| invalid(format!("Unknown tool: {name}")));
        };
        let allowed = self.allowed_envs(tool, caller);
        if allowed.is_empty() {
            // Hidden from this caller's tools/list, so it looks unknown here too.
            return invalid(format!("Unknown tool: {name}"));
        }
        let mut arguments = match params.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(a)) => a.clone(),
            Some(_) => return invalid("`params.arguments` must be an object".into()),
        };
        let choices = allowed.join(", ");
        let env = match arguments.get(ENV_PARAM) {
            // A server with one backend: its tools take no `env` (an `env` argument is the
            // tool's own and goes through).
            _ if tool.implicit_env => match tool.envs.first() {
                Some(only) => only.env.clone(),
                None => return invalid(format!("Unknown tool: {name}")),
            },
            None => {
                return Outcome::Reply(reply::tool_error(
                    &id,
                    &format!(
                        "Missing required argument `env` for tool `{name}`. Valid envs: {choices}."
                    ),
                ));
            }
            Some(Value::String(e)) => e.clone(),
            Some(other) => {
                return Outcome::Reply(reply::tool_error(
                    &id,
                    &format!(
                        "Argument `env` must be a string, got {other}. Valid envs for tool `{name}`: {choices}."
                    ),
                ));
            }
        };
        // The served schema declares `x-mcp-header: Env` on `env`, so a 2026-07-28 client
        // must send `Mcp-Param-Env`, equal to the body's value.
        if header_era
            && !tool.implicit_env
            && head
                .mcp_param_env
                .and_then(protocol::decode_header_value)
                .as_deref()
                != Some(env.as_str())
        {
            return Outcome::Reply(mismatch(&id, "Mcp-Param-Env", &env));
        }
        let Some(tool_env) = tool.envs.iter().find(|e| e.env == env) else {
            if let Some(refusal) = self.pin_refusal(&id, &name, Some(&env), caller) {
                return refusal;
            }
            return Outcome::Reply(reply::tool_error(
                &id,
                &format!("Unknown env `{env}` for tool `{name}`. Valid envs: {choices}."),
            ));
        };
        if !allowed.contains(&env.as_str()) {
            return Outcome::Denied {
                reply: reply::tool_error(
                    &id,
                    &format!(
                        "Access denied: you may not call tool `{name}` in env `{env}`. Valid envs for you: {choices}."
                    ),
                ),
                tool: name,
                env,
            };
        }
        if let Some(refusal) = self.pin_refusal(&id, &name, Some(&env), caller) {
            return refusal;
        }
        // A tool that asks the client something during the call (elicitation, sampling,
        // roots) needs a server-to-client request on the call's stream, which 2026-07-28
        // replaced with multi round-trip results that an initialize-era backend cannot send.
        if header_era && !tool_env.requires.is_empty() {
            return Outcome::Reply(reply::tool_error(
                &id,
                &format!(
                    "Tool `{name}` in env `{env}` asks the client for {} during the call, which an MCP 2026-07-28 client cannot be asked through this gateway (its backend sends server-to-client requests, which that revision replaced). Use an initialize-era client (protocol 2025-11-25) for this tool.",
                    tool_env.requires.join(", ")
                ),
            ));
        }
        let Some(entry) = self.config.manifest.env(tool_env.backend()) else {
            return Outcome::Reply(reply::error(
                200,
                &id,
                code::INTERNAL_ERROR,
                "manifest lists no such env",
            ));
        };
        // Strip `env` and every parameter some other env has but this one lacks.
        if !tool.implicit_env {
            arguments.remove(ENV_PARAM);
        }
        if let Some(all) = self.all_params.get(index) {
            for p in all {
                if !tool_env.params.contains(p) {
                    arguments.remove(p);
                }
            }
        }
        let meta = |key: &str| {
            object
                .get("params")
                .and_then(|p| p.get("_meta"))
                .and_then(|m| m.get(key))
                .cloned()
        };
        let client_capabilities = header_era
            .then(|| meta("io.modelcontextprotocol/clientCapabilities"))
            .flatten()
            .and_then(|c| c.as_object().cloned());
        let log_level =
            meta("io.modelcontextprotocol/logLevel").and_then(|l| l.as_str().map(str::to_owned));
        if let Some(params) = object.get_mut("params").and_then(Value::as_object_mut) {
            if tool.upstream.is_some() {
                params.insert(
                    "name".into(),
                    Value::String(tool.upstream_name().to_owned()),
                );
            }
            params.insert("arguments".into(), Value::Object(arguments));
            strip_era_meta(params);
        }
        Outcome::Forward(Box::new(Forward {
            kind: ForwardKind::Call,
            env: entry.name.clone(),
            cluster: entry.cluster.clone(),
            tool: name,
            id: id.clone(),
            message: object,
            protocol_version: forward_version(entry),
            modern: header_era,
            bind: None,
            client_capabilities,
            log_level,
        }))
    }
}

impl Gateway {
    /// Under `gateway.pinning: block`, a call to a tool whose definition drifted from its pin
    /// in the env the call names (and that the caller may call there): refused, never
    /// forwarded, counted as a denial. An `isError` result like the other denials, so the
    /// model reads why; the text tells the operator what to do.
    fn pin_refusal(
        &self,
        id: &Value,
        name: &str,
        env: Option<&str>,
        caller: &Caller,
    ) -> Option<Outcome> {
        let pinning = self.config.manifest.pinning.as_ref()?;
        let drift = pinning.blocked(env, name)?;
        let env = drift.env_label();
        if !self.policy.allows(caller, env, name) {
            return None;
        }
        let why = match drift.change {
            Change::Changed => {
                "its definition changed since it was pinned (this gateway still lists the pinned definition)"
            }
            Change::New => "it is new since the tools were pinned and is not served until pinned",
        };
        Some(Outcome::Denied {
            reply: reply::tool_error(
                id,
                &format!(
                    "Tool `{name}` in env `{env}` is blocked by tool pinning: {why}. An operator must review the change (`meshmux check`) and re-pin (`meshmux pin`) before it can be called."
                ),
            ),
            tool: name.to_owned(),
            env: env.to_owned(),
        })
    }

    /// A client's answer to a request the gateway relayed from `env`'s backend (its id is
    /// one [`crate::exchange::ids::server_request`] made): sent to that env with the
    /// backend's own id. Anything else is accepted and dropped, as before.
    pub(super) fn relay(&self, object: Map<String, Value>, modern: bool) -> Outcome {
        let id = object.get("id").cloned().unwrap_or(Value::Null);
        let Some((env, bind, original)) = crate::exchange::ids::parse_server_request(&id) else {
            return Outcome::Reply(reply::accepted());
        };
        let Some(entry) = self.config.manifest.env(&env) else {
            return Outcome::Reply(reply::accepted());
        };
        let mut message = object;
        message.insert("id".into(), original);
        Outcome::Forward(Box::new(Forward {
            kind: ForwardKind::Relay,
            env,
            cluster: entry.cluster.clone(),
            tool: String::new(),
            id,
            message,
            protocol_version: forward_version(entry),
            modern,
            bind: Some(bind),
            client_capabilities: None,
            log_level: None,
        }))
    }
}

/// Calls go to a backend with the version it negotiated; a 2026-era backend still gets the
/// newest `initialize`-era version because the gateway opens its sessions with `initialize`.
pub fn forward_version(entry: &EnvEntry) -> String {
    if protocol::is_supported(&entry.protocol_version)
        && !protocol::header_era(&entry.protocol_version)
    {
        entry.protocol_version.clone()
    } else {
        protocol::LATEST_WITH_INITIALIZE.to_owned()
    }
}

/// The backend is called in the `initialize` era over the gateway's own session, so the
/// 2026-07-28 per-request `_meta` (protocol version, client info and capabilities) would
/// contradict the `MCP-Protocol-Version` it gets; other `_meta` keys (`progressToken`, vendor
/// keys) are the caller's and go through.
fn strip_era_meta(params: &mut Map<String, Value>) {
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return;
    };
    meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
    if meta.is_empty() {
        params.remove("_meta");
    }
}
