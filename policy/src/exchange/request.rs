//! The request head as the exchange needs it, read once from the host's header map.

use crate::gateway::RequestHead;

/// The request head as the filter read it (header names lower-case).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authority: Option<String>,
    pub origin: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_length: Option<String>,
    pub protocol_version: Option<String>,
    pub mcp_method: Option<String>,
    pub mcp_name: Option<String>,
    pub mcp_param_env: Option<String>,
    /// The caller's `Accept`.
    pub accept: Option<String>,
    /// Headers the client sent that are the gateway's alone and are removed when the call is
    /// forwarded (its credentials, its session, every `mcp-*` routing header). Only those
    /// present are listed: each removal is a host call.
    pub strip: Vec<String>,
    /// The client session id the gateway gave this client at `initialize`.
    pub client_session: Option<String>,
}

/// Client headers never forwarded (besides every `mcp-param-*`).
const STRIPPED: [&str; 4] = ["authorization", "mcp-session-id", "mcp-method", "mcp-name"];

impl Request {
    pub fn from_headers<'h>(headers: impl IntoIterator<Item = (&'h str, &'h str)>) -> Self {
        let mut r = Request::default();
        for (name, value) in headers {
            let value = || Some(value.to_owned());
            match name {
                ":method" => r.method = value().unwrap_or_default(),
                ":path" => r.path = value().unwrap_or_default(),
                ":authority" => r.authority = value(),
                "origin" => r.origin = value(),
                "content-type" => r.content_type = value(),
                "content-encoding" => r.content_encoding = value(),
                "content-length" => r.content_length = value(),
                "mcp-protocol-version" => r.protocol_version = value(),
                "accept" => r.accept = value(),
                "mcp-method" => r.mcp_method = value(),
                "mcp-name" => r.mcp_name = value(),
                "mcp-session-id" => r.client_session = value(),
                "mcp-param-env" => r.mcp_param_env = value(),
                _ => {}
            }
            if STRIPPED.contains(&name) || name.starts_with("mcp-param-") {
                r.strip.push(name.to_owned());
            }
        }
        r
    }

    pub fn view(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            path: &self.path,
            authority: self.authority.as_deref(),
            origin: self.origin.as_deref(),
            content_type: self.content_type.as_deref(),
            content_encoding: self.content_encoding.as_deref(),
            content_length: self.content_length.as_deref(),
            protocol_version: self.protocol_version.as_deref(),
            mcp_method: self.mcp_method.as_deref(),
            mcp_name: self.mcp_name.as_deref(),
            mcp_param_env: self.mcp_param_env.as_deref(),
        }
    }
}
