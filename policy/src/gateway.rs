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

use list::list_result;

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

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
