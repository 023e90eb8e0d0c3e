//! The filter's decisions: given the request head, the body and the caller, answer locally or
//! forward a rewritten body to one env. Pure; the proxy-wasm glue maps these to host calls.

use serde_json::{Map, Value, json};

use crate::manifest::{EnvDescriptions, EnvEntry, FilterConfig, ToolEntry};
use crate::merge::{ENV_PARAM, HEADER_HINT, env_property, params_only_on};
use crate::protocol;
use crate::rbac::Policy;
use crate::reply::{self, LocalReply};
use crate::rpc::{self, Message, code};

pub use crate::rbac::Caller;

/// What the filter saw of the request head (header names lower-case, values as sent).
#[derive(Debug, Clone, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_length: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub mcp_method: Option<&'a str>,
    pub mcp_name: Option<&'a str>,
    pub mcp_param_env: Option<&'a str>,
}

/// The verdict on a request head.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// Not the MCP endpoint: let it through untouched.
    Pass,
    Reply(LocalReply),
    /// Buffer the body and call [`Gateway::on_body`].
    ReadBody,
}

/// The verdict on a whole request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Answered by the gateway (initialize, ping, tools/list, errors).
    Reply(LocalReply),
    /// A `tools/call` the caller may not make: answered, never forwarded, counted.
    Denied {
        reply: LocalReply,
        tool: String,
        env: String,
    },
    Forward(Forward),
}

/// A `tools/call` to send on to one env.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub env: String,
    pub cluster: String,
    pub tool: String,
    /// The request id, for errors the filter may have to answer later.
    pub id: Value,
    /// The rewritten body: `env` and the params this env lacks removed.
    pub body: Vec<u8>,
    /// The version calls to this env are sent with (until a backend session says otherwise).
    pub protocol_version: String,
}

/// The gateway, built once per plugin configuration.
#[derive(Debug)]
pub struct Gateway {
    config: FilterConfig,
    policy: Policy,
    /// `tools/list` result for unrestricted callers, serialized once: (legacy era, 2026 era).
    full_list: (Vec<u8>, Vec<u8>),
    /// Per tool (same order as the manifest): every param any env has.
    all_params: Vec<Vec<String>>,
}

impl Gateway {
    pub fn new(config: FilterConfig) -> Result<Self, String> {
        if config.manifest.format != crate::manifest::MANIFEST_FORMAT {
            return Err(format!(
                "manifest format {} is not supported (this filter reads format {})",
                config.manifest.format,
                crate::manifest::MANIFEST_FORMAT
            ));
        }
        for tool in &config.manifest.tools {
            for env in &tool.envs {
                if config.manifest.env(&env.env).is_none() {
                    return Err(format!(
                        "tool `{}` names env `{}`, which the manifest does not list",
                        tool.name(),
                        env.env
                    ));
                }
            }
        }
        let policy = match &config.auth {
            Some(auth) => {
                Policy::compile(&auth.roles).map_err(|(g, e)| format!("role glob {g:?}: {e}"))?
            }
            None => Policy::default(),
        };
        let tools: Vec<&Map<String, Value>> =
            config.manifest.tools.iter().map(|t| &t.tool).collect();
        let full_list = (list_result(&tools, false), list_result(&tools, true));
        let all_params = config
            .manifest
            .tools
            .iter()
            .map(|t| {
                let mut all: Vec<String> = Vec::new();
                for e in &t.envs {
                    for p in &e.params {
                        if !all.contains(p) {
                            all.push(p.clone());
                        }
                    }
                }
                all
            })
            .collect();
        Ok(Gateway {
            config,
            policy,
            full_list,
            all_params,
        })
    }

    pub fn config(&self) -> &FilterConfig {
        &self.config
    }

    pub fn max_body_bytes(&self) -> u64 {
        self.config.max_body_bytes
    }

    /// Whether a partly buffered body is already over the limit.
    pub fn body_too_large(&self, buffered: usize) -> Option<LocalReply> {
        (buffered as u64 > self.config.max_body_bytes).then(|| self.too_large(buffered as u64))
    }

    fn too_large(&self, size: u64) -> LocalReply {
        reply::error(
            413,
            &Value::Null,
            code::INVALID_REQUEST,
            &format!(
                "Request body of {size} bytes exceeds the gateway's limit of {} bytes",
                self.config.max_body_bytes
            ),
        )
    }

    pub fn on_headers(&self, head: &RequestHead<'_>) -> Head {
        let path = head.path.split('?').next().unwrap_or_default();
        if path != self.config.mcp_path {
            return Head::Pass;
        }
        if !head.method.eq_ignore_ascii_case("POST") {
            return Head::Reply(reply::method_not_allowed(head.method));
        }
        if let Some(enc) = head
            .content_encoding
            .map(str::trim)
            .filter(|e| !e.eq_ignore_ascii_case("identity"))
        {
            return Head::Reply(reply::error(
                415,
                &Value::Null,
                code::INVALID_REQUEST,
                &format!(
                    "Content-Encoding `{enc}` is not supported; send the JSON-RPC body uncompressed"
                ),
            ));
        }
        let json = head.content_type.is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Head::Reply(reply::error(
                415,
                &Value::Null,
                code::INVALID_REQUEST,
                &format!(
                    "Content-Type must be application/json, got {}",
                    head.content_type
                        .map_or("none".to_owned(), |c| format!("`{c}`"))
                ),
            ));
        }
        if let Some(len) = head
            .content_length
            .and_then(|l| l.trim().parse::<u64>().ok())
            && len > self.config.max_body_bytes
        {
            return Head::Reply(self.too_large(len));
        }
        if let Some(v) = head.protocol_version
            && !protocol::is_supported(v.trim())
        {
            return Head::Reply(reply::error(
                400,
                &Value::Null,
                code::UNSUPPORTED_PROTOCOL_VERSION,
                &format!(
                    "Unsupported MCP-Protocol-Version `{v}`; supported: {}",
                    protocol::SUPPORTED.join(", ")
                ),
            ));
        }
        Head::ReadBody
    }

    pub fn on_body(&self, head: &RequestHead<'_>, body: &[u8], caller: &Caller) -> Outcome {
        if let Some(r) = self.body_too_large(body.len()) {
            return Outcome::Reply(r);
        }
        let message = match rpc::parse(body) {
            Ok(m) => m,
            Err(r) => return Outcome::Reply(reply::error(r.status, &r.id, r.code, &r.message)),
        };
        let version = head.protocol_version.map(str::trim);
        let header_era = version.is_some_and(protocol::header_era);
        let (id, method, object) = match message {
            Message::Response => return Outcome::Reply(reply::accepted()),
            Message::Notification { method } => {
                if let Err(r) = check_method_header(head, header_era, &method, &Value::Null) {
                    return Outcome::Reply(r);
                }
                return Outcome::Reply(reply::accepted());
            }
            Message::Request { id, method, object } => (id, method, object),
        };
        if let Err(r) = check_method_header(head, header_era, &method, &id) {
            return Outcome::Reply(r);
        }
        if header_era {
            let meta_version = object
                .get("params")
                .and_then(|p| p.pointer("/_meta/io.modelcontextprotocol~1protocolVersion"));
            if let Some(mv) = meta_version.and_then(Value::as_str)
                && Some(mv) != version
            {
                return Outcome::Reply(mismatch(&id, "MCP-Protocol-Version", mv));
            }
        }
        let params = object.get("params").and_then(Value::as_object);
        match method.as_str() {
            "initialize" => Outcome::Reply(self.initialize(&id, params, caller)),
            "server/discover" => Outcome::Reply(self.discover(&id, caller)),
            "ping" => Outcome::Reply(reply::result(&id, &json!({}))),
            "tools/list" => Outcome::Reply(self.tools_list(&id, params, caller, header_era)),
            "tools/call" => self.tools_call(head, header_era, id, object, caller),
            other => Outcome::Reply(reply::error(
                200,
                &id,
                code::METHOD_NOT_FOUND,
                &format!("Method not found: {other} (this gateway serves tools only)"),
            )),
        }
    }

    fn server_info(&self) -> Value {
        json!({"name": self.config.manifest.server.name, "version": self.config.manifest.server.version})
    }

    fn capabilities() -> Value {
        json!({"tools": {"listChanged": false}})
    }

    fn initialize(
        &self,
        id: &Value,
        params: Option<&Map<String, Value>>,
        caller: &Caller,
    ) -> LocalReply {
        let requested = params
            .and_then(|p| p.get("protocolVersion"))
            .and_then(Value::as_str);
        let mut result = json!({
            "protocolVersion": protocol::negotiate(requested),
            "capabilities": Self::capabilities(),
            "serverInfo": self.server_info(),
        });
        if let (Some(obj), Some(i)) = (result.as_object_mut(), self.instructions(caller)) {
            obj.insert("instructions".into(), Value::String(i));
        }
        reply::result(id, &result)
    }

    fn discover(&self, id: &Value, caller: &Caller) -> LocalReply {
        let mut result = json!({
            "resultType": "complete",
            "supportedVersions": protocol::SUPPORTED,
            "capabilities": Self::capabilities(),
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": {"io.modelcontextprotocol/serverInfo": self.server_info()},
        });
        if let (Some(obj), Some(i)) = (result.as_object_mut(), self.instructions(caller)) {
            obj.insert("instructions".into(), Value::String(i));
        }
        reply::result(id, &result)
    }

    /// The configured `instructions`, followed (when `gateway.env_descriptions` is
    /// `instructions`) by each env this caller may use somewhere, once, with its description.
    fn instructions(&self, caller: &Caller) -> Option<String> {
        let manifest = &self.config.manifest;
        let configured = manifest.server.instructions.clone();
        if manifest.server.env_descriptions != EnvDescriptions::Instructions {
            return configured;
        }
        let usable: Vec<&EnvEntry> = manifest
            .envs
            .iter()
            .filter(|env| {
                manifest.tools.iter().any(|t| {
                    t.envs.iter().any(|e| e.env == env.name)
                        && self.policy.allows(caller, &env.name, t.name())
                })
            })
            .collect();
        if usable.is_empty() {
            return configured;
        }
        let mut text = configured.map_or_else(String::new, |c| c + "\n\n");
        text.push_str("Environments (the `env` argument of every tool):");
        for env in usable {
            text.push_str(&format!("\n- {}: {}", env.name, env.description));
        }
        Some(text)
    }

    /// The envs of `tool` this caller may use, in manifest order.
    fn allowed_envs<'t>(&self, tool: &'t ToolEntry, caller: &Caller) -> Vec<&'t str> {
        tool.envs
            .iter()
            .map(|e| e.env.as_str())
            .filter(|env| self.policy.allows(caller, env, tool.name()))
            .collect()
    }

    fn tools_list(
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
        if allowed.len() == tool.envs.len() {
            return Some(tool.tool.clone());
        }
        let described: Vec<(&str, &str)> = allowed
            .iter()
            .map(|e| {
                (
                    *e,
                    self.config
                        .manifest
                        .env(e)
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

    fn tools_call(
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
        let Some((index, tool)) = self
            .config
            .manifest
            .tools
            .iter()
            .enumerate()
            .find(|(_, t)| t.name() == name)
        else {
            return invalid(format!("Unknown tool: {name}"));
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
        if header_era
            && let Some(h) = head.mcp_param_env
            && protocol::decode_header_value(h).as_deref() != Some(env.as_str())
        {
            return Outcome::Reply(mismatch(&id, "Mcp-Param-Env", &env));
        }
        let Some(tool_env) = tool.envs.iter().find(|e| e.env == env) else {
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
        let Some(entry) = self.config.manifest.env(&env) else {
            return Outcome::Reply(reply::error(
                200,
                &id,
                code::INTERNAL_ERROR,
                "manifest lists no such env",
            ));
        };
        // Strip `env` and every parameter some other env has but this one lacks.
        arguments.remove(ENV_PARAM);
        if let Some(all) = self.all_params.get(index) {
            for p in all {
                if !tool_env.params.contains(p) {
                    arguments.remove(p);
                }
            }
        }
        if let Some(params) = object.get_mut("params").and_then(Value::as_object_mut) {
            params.insert("arguments".into(), Value::Object(arguments));
            strip_era_meta(params);
        }
        Outcome::Forward(Forward {
            env: env.clone(),
            cluster: entry.cluster.clone(),
            tool: name,
            id: id.clone(),
            body: serde_json::to_vec(&object).unwrap_or_default(),
            protocol_version: forward_version(entry),
        })
    }
}

/// Calls go to a backend with the version it negotiated; a 2026-era backend still gets the
/// newest `initialize`-era version because the gateway opens its sessions with `initialize`.
fn forward_version(entry: &EnvEntry) -> String {
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

fn check_method_header(
    head: &RequestHead<'_>,
    header_era: bool,
    method: &str,
    id: &Value,
) -> Result<(), LocalReply> {
    if header_era
        && head
            .mcp_method
            .and_then(protocol::decode_header_value)
            .as_deref()
            != Some(method)
    {
        return Err(mismatch(id, "Mcp-Method", method));
    }
    Ok(())
}

fn mismatch(id: &Value, header: &str, body_value: &str) -> LocalReply {
    reply::error(
        400,
        id,
        code::HEADER_MISMATCH,
        &format!(
            "Header mismatch: `{header}` must be present and equal `{body_value}` from the request body"
        ),
    )
}

/// The serialized `tools/list` result for this era. The manifest's tools carry the
/// `x-mcp-header` hint on `env`; only 2026-07-28-era clients act on it, so older clients get
/// the tools without it (fewer tokens, nothing they would use).
fn list_result(tools: &[&Map<String, Value>], header_era: bool) -> Vec<u8> {
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

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
