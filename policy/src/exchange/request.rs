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
    /// Headers the client sent that a forwarded call must not carry: every one not on
    /// [`FORWARDED_CLIENT_HEADERS`] (its credentials, its session, every `mcp-*` routing
    /// header, cookies, `x-forwarded-*`, `x-envoy-*`, anything custom). Only those present are
    /// listed: each removal is a host call.
    pub strip: Vec<String>,
    /// The client session id the gateway gave this client at `initialize`.
    pub client_session: Option<String>,
}

/// The client's headers a forwarded call keeps (besides the ones the gateway sets itself:
/// `content-length`, `accept`, `mcp-protocol-version`, `mcp-session-id`). Every other header
/// the client sent is removed before the call reaches a backend: cookies, `x-forwarded-*`,
/// `x-envoy-*`, `forwarded`, `via`, `baggage`, `accept-encoding` (the gateway rewrites answers,
/// so they must not be compressed), anything custom. The README lists them.
pub const FORWARDED_CLIENT_HEADERS: [&str; 5] = [
    "content-type",
    "user-agent",
    "traceparent",
    "tracestate",
    // Envoy makes its own for a caller from outside; kept so logs can be matched.
    "x-request-id",
];

/// Headers the forward sets itself (`accept` only when the client's differs), that framing
/// needs, or that Envoy sets: with `use_remote_address` it overwrites a client's
/// `x-forwarded-proto` with the connection's scheme, and its router finds no route for a
/// request without one.
const SET_BY_GATEWAY: [&str; 4] = [
    "content-length",
    "accept",
    "transfer-encoding",
    "x-forwarded-proto",
];

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
            if !name.starts_with(':')
                && !FORWARDED_CLIENT_HEADERS.contains(&name)
                && !SET_BY_GATEWAY.contains(&name)
                && !r.strip.iter().any(|n| n == name)
            {
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
