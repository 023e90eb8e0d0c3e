//! The filter's decisions: given the request head, the body and the caller, answer locally or
//! forward a rewritten body to one env. Pure; the proxy-wasm glue maps these to host calls.

use serde_json::{Map, Value, json};

use crate::manifest::FilterConfig;
use crate::protocol;
use crate::rbac::Policy;
use crate::reply::{self, LocalReply};
use crate::rpc::{self, Message, code};

pub use crate::rbac::Caller;

mod call;
mod list;
mod offer;
mod search;

use list::list_result;

pub use call::{forward_version, subject};

/// What the filter saw of the request head (header names lower-case, values as sent).
#[derive(Debug, Clone, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// `:authority` (the `Host`).
    pub authority: Option<&'a str>,
    pub origin: Option<&'a str>,
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
    Forward(Box<Forward>),
    /// An `initialize` answered: the exchange gives the client a session id of its own.
    Initialized(LocalReply),
    /// The caller cancels its request `request_id` (`notifications/cancelled`).
    Cancel {
        request_id: Value,
    },
    /// A legacy caller's `logging/setLevel`: the exchange notes the level for its later
    /// requests (backend sessions are shared, so it is not sent on) and answers `reply`.
    LogLevel {
        level: String,
        reply: LocalReply,
    },
}

/// A message to send on to one env's backend: a `tools/call`, or a client's answer to a
/// request that backend sent it ([`ForwardKind`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub kind: ForwardKind,
    pub env: String,
    pub cluster: String,
    /// The tool called (empty for a relayed answer).
    pub tool: String,
    /// The caller's request id, restored on the answer and used in errors the gateway writes.
    pub id: Value,
    /// The rewritten message: `env` and the params this env lacks removed, the 2026-07-28
    /// per-request `_meta` dropped. The exchange gives it the id it carries in the backend
    /// session before sending it.
    pub message: Map<String, Value>,
    /// The version calls to this env are sent with (until a backend session says otherwise).
    pub protocol_version: String,
    /// The caller speaks 2026-07-28 (its answers need `resultType`; it takes no server
    /// requests on the call's stream).
    pub modern: bool,
    /// A relayed answer: the caller the request was sent to (see `exchange::ids`).
    pub bind: Option<String>,
    /// A 2026-07-28 caller's `_meta` `clientCapabilities` and `logLevel` (they are not sent
    /// to the initialize-era backend; the answer is fitted to them instead).
    pub client_capabilities: Option<Map<String, Value>>,
    pub log_level: Option<String>,
    /// Who the message goes to, as failures name it (``Environment `Prod` ``,
    /// ``Server `github` ``).
    pub subject: String,
    /// What the answer's result needs besides the id (a `resources/read`'s URIs).
    pub result: ResultEdit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardKind {
    /// A `tools/call`: counted, answered with a tool error when the env fails.
    Call,
    /// Any other request for a backend (`prompts/get`, `resources/read`, completions):
    /// isolated like a call, its failures JSON-RPC errors.
    Request,
    /// A client's JSON-RPC response to a server request (`message.id` is already the
    /// backend's own id): the backend answers 202.
    Relay,
}

/// Changes to a forwarded request's result on its way back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultEdit {
    /// The backend whose URIs in `contents[].uri` are wrapped (`offerings::wrap_uri`), as
    /// the caller named the resource.
    pub wrap_uris: Option<String>,
    /// A 2026-07-28 caller's result gets the caching hints (`ttlMs`, `cacheScope`).
    pub caching: bool,
}

impl ResultEdit {
    pub fn is_empty(&self) -> bool {
        self.wrap_uris.is_none() && !self.caching
    }
}

impl Forward {
    /// The message as it is sent when its id is kept (stateless backends).
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.message).unwrap_or_default()
    }

    /// The answer to the caller when the message could not be delivered or the backend
    /// failed: a tool error for a `tools/call` (the model reads it), a JSON-RPC error else.
    pub fn failure_reply(&self, text: &str) -> LocalReply {
        match self.kind {
            ForwardKind::Call | ForwardKind::Relay => reply::tool_error(&self.id, text),
            ForwardKind::Request => reply::error(200, &self.id, code::INTERNAL_ERROR, text),
        }
    }
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
    /// A gateway from a filter's plugin configuration (the JSON `meshmux discover` writes),
    /// as both filters receive it; the error says why it is refused.
    pub fn from_plugin_json(bytes: &[u8]) -> Result<Self, String> {
        if bytes.is_empty() {
            return Err(
                "it is empty; the filter needs the JSON that `meshmux discover` writes".into(),
            );
        }
        let config: FilterConfig = serde_json::from_slice(bytes)
            .map_err(|e| format!("it is not a valid FilterConfig: {e}"))?;
        Gateway::new(config)
    }

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
                if config.manifest.env(env.backend()).is_none() {
                    return Err(format!(
                        "tool `{}` names env `{}`, which the manifest does not list",
                        tool.name(),
                        env.backend()
                    ));
                }
            }
            if tool.implicit_env && tool.envs.len() != 1 {
                return Err(format!(
                    "tool `{}` takes no `env` but lists {} envs",
                    tool.name(),
                    tool.envs.len()
                ));
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
        // DNS-rebinding protection: Envoy rewrites `Host` on the way to a backend, so the
        // backend's own check never sees the caller's.
        if let Some(r) = crate::origin::check(&self.config.host_policy, head.authority, head.origin)
        {
            return Head::Reply(r);
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
        if let Some(v) = version
            && !protocol::is_supported(v)
        {
            return Outcome::Reply(unsupported_version(message.id(), v));
        }
        let modern = version.is_some_and(protocol::header_era);
        let outcome = self.on_message(head, message, caller, modern);
        if modern {
            // Every result a 2026-07-28 client gets says what kind of result it is.
            outcome.with_result_type()
        } else {
            outcome
        }
    }

    fn on_message(
        &self,
        head: &RequestHead<'_>,
        message: Message,
        caller: &Caller,
        modern: bool,
    ) -> Outcome {
        let (id, method, object) = match message {
            Message::Response { object } => return self.relay(object, modern),
            Message::Notification { method, object } => {
                if let Err(r) = check_method_header(head, modern, &method, &Value::Null) {
                    return Outcome::Reply(r);
                }
                let request_id = object
                    .get("params")
                    .and_then(|p| p.get("requestId"))
                    .filter(|id| id.is_string() || id.is_i64() || id.is_u64());
                return match request_id {
                    // 2026-07-28 cancels by closing the stream.
                    Some(id) if method == "notifications/cancelled" && !modern => Outcome::Cancel {
                        request_id: id.clone(),
                    },
                    _ => Outcome::Reply(reply::accepted()),
                };
            }
            Message::Request { id, method, object } => (id, method, object),
        };
        if let Err(r) = check_method_header(head, modern, &method, &id) {
            return Outcome::Reply(r);
        }
        if modern && let Err(r) = check_request_meta(&id, &object, head.protocol_version) {
            return Outcome::Reply(r);
        }
        let params = object.get("params").and_then(Value::as_object);
        match method.as_str() {
            "initialize" if !modern => Outcome::Initialized(self.initialize(&id, params, caller)),
            "ping" if !modern => Outcome::Reply(reply::result(&id, &json!({}))),
            "server/discover" => Outcome::Reply(self.discover(&id, caller)),
            "tools/list" => Outcome::Reply(self.tools_list(&id, params, caller, modern)),
            "tools/call" => self.tools_call(head, modern, id, object, caller),
            "prompts/list" if self.offers_prompts() => {
                Outcome::Reply(self.prompts_list(&id, params, caller, modern))
            }
            "resources/list" if self.offers_resources() => {
                Outcome::Reply(self.resources_list(&id, params, caller, modern, false))
            }
            "resources/templates/list" if self.offers_resources() => {
                Outcome::Reply(self.resources_list(&id, params, caller, modern, true))
            }
            "prompts/get" if self.offers_prompts() => self.prompts_get(modern, id, object, caller),
            "resources/read" if self.offers_resources() => {
                self.resource_request(modern, id, object, caller)
            }
            // 2026-07-28 replaced these with `subscriptions/listen`.
            "resources/subscribe" | "resources/unsubscribe"
                if self.offers_resources() && !modern =>
            {
                self.resource_request(modern, id, object, caller)
            }
            "completion/complete" if self.offers_completions() => {
                self.complete(modern, id, object, caller)
            }
            // Backend sessions are shared, so a caller's level is not sent to them; 2026-07-28
            // callers name theirs per request (`_meta` logLevel) and it is applied then.
            "logging/setLevel" if !modern => {
                let level = params.and_then(|p| p.get("level")).and_then(Value::as_str);
                match level.filter(|l| crate::exchange::rewrite::LOG_LEVELS.contains(l)) {
                    Some(level) => Outcome::LogLevel {
                        level: level.to_owned(),
                        reply: reply::result(&id, &json!({})),
                    },
                    None => Outcome::Reply(reply::error(
                        200,
                        &id,
                        code::INVALID_PARAMS,
                        &format!(
                            "`params.level` must be one of {}",
                            crate::exchange::rewrite::LOG_LEVELS.join(", ")
                        ),
                    )),
                }
            }
            // 2026-07-28 removed `initialize` and `ping`, and answers an unknown method with
            // HTTP 404 (the JSON-RPC body tells it from a legacy server's 404).
            other if modern => Outcome::Reply(reply::error(
                404,
                &id,
                code::METHOD_NOT_FOUND,
                &format!("Method not found: {other}"),
            )),
            other => Outcome::Reply(reply::error(
                200,
                &id,
                code::METHOD_NOT_FOUND,
                &format!("Method not found: {other}"),
            )),
        }
    }

    fn server_info(&self) -> Value {
        json!({"name": self.config.manifest.server.name, "version": self.config.manifest.server.version})
    }

    fn capabilities(&self, modern: bool) -> Value {
        let mut caps = Map::new();
        caps.insert("tools".into(), json!({"listChanged": false}));
        if self.offers_prompts() {
            caps.insert("prompts".into(), json!({"listChanged": false}));
        }
        if self.offers_resources() {
            // Updates of a subscribed resource come on the backend session's own stream,
            // which no caller holds: subscriptions are passed on but not advertised.
            caps.insert(
                "resources".into(),
                json!({"listChanged": false, "subscribe": false}),
            );
        }
        if self.offers_completions() {
            caps.insert("completions".into(), json!({}));
        }
        if !modern {
            caps.insert("logging".into(), json!({}));
        }
        Value::Object(caps)
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
            "capabilities": self.capabilities(false),
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
            "capabilities": self.capabilities(true),
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": {"io.modelcontextprotocol/serverInfo": self.server_info()},
        });
        if let (Some(obj), Some(i)) = (result.as_object_mut(), self.instructions(caller)) {
            obj.insert("instructions".into(), Value::String(i));
        }
        reply::result(id, &result)
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

/// 2026-07-28: every request carries its protocol version (equal to the header) and the
/// client's capabilities in `_meta`; a request without them is malformed (-32602, HTTP 400).
fn check_request_meta(
    id: &Value,
    object: &Map<String, Value>,
    header: Option<&str>,
) -> Result<(), LocalReply> {
    let meta = object
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    let field = |key: &str| meta.and_then(|m| m.get(key));
    let version = field("io.modelcontextprotocol/protocolVersion");
    let Some(version) = version.and_then(Value::as_str) else {
        return Err(reply::error(
            400,
            id,
            code::INVALID_PARAMS,
            "Invalid params: `params._meta[\"io.modelcontextprotocol/protocolVersion\"]` is required at protocol version 2026-07-28",
        ));
    };
    if Some(version) != header.map(str::trim) {
        return Err(mismatch(id, "MCP-Protocol-Version", version));
    }
    if !field("io.modelcontextprotocol/clientCapabilities").is_some_and(Value::is_object) {
        return Err(reply::error(
            400,
            id,
            code::INVALID_PARAMS,
            "Invalid params: `params._meta[\"io.modelcontextprotocol/clientCapabilities\"]` (an object) is required at protocol version 2026-07-28",
        ));
    }
    Ok(())
}

/// HTTP 400 with `UnsupportedProtocolVersionError`: the versions we speak and the one asked.
fn unsupported_version(id: &Value, requested: &str) -> LocalReply {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": code::UNSUPPORTED_PROTOCOL_VERSION,
            "message": format!(
                "Unsupported protocol version `{requested}`; supported: {}",
                protocol::SUPPORTED.join(", ")
            ),
            "data": {"supported": protocol::SUPPORTED, "requested": requested},
        },
    });
    reply::json(400, &body)
}

impl Outcome {
    /// Adds `resultType: "complete"` to the result of a reply the gateway wrote.
    fn with_result_type(self) -> Outcome {
        match self {
            Outcome::Reply(r) => Outcome::Reply(reply::with_result_type(r)),
            Outcome::Denied {
                reply: r,
                tool,
                env,
            } => Outcome::Denied {
                reply: reply::with_result_type(r),
                tool,
                env,
            },
            forward => forward,
        }
    }
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

#[cfg(test)]
#[path = "gateway_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "gateway_pin_tests.rs"]
mod pin_tests;

#[cfg(test)]
#[path = "gateway_servers_tests.rs"]
pub(crate) mod servers_tests;

#[cfg(test)]
#[path = "gateway_offer_tests.rs"]
pub(crate) mod offer_tests;

#[cfg(test)]
#[path = "gateway_search_tests.rs"]
mod search_tests;
