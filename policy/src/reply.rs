//! Local replies: JSON-RPC results and errors the gateway answers itself.

use serde_json::{Value, json};

/// An HTTP response the filter sends instead of forwarding.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl LocalReply {
    /// The body as text, for tests and logs.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn json_reply(status: u16, body: Vec<u8>) -> LocalReply {
    LocalReply {
        status,
        headers: vec![("content-type", "application/json".to_owned())],
        body,
    }
}

/// `{"jsonrpc":"2.0","id":…,"result":…}` where `result` is already-serialized JSON.
pub fn result_raw(id: &Value, result: &[u8]) -> LocalReply {
    let id = serde_json::to_vec(id).unwrap_or_else(|_| b"null".to_vec());
    let mut body = Vec::with_capacity(result.len() + id.len() + 40);
    body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    body.extend_from_slice(&id);
    body.extend_from_slice(br#","result":"#);
    body.extend_from_slice(result);
    body.push(b'}');
    json_reply(200, body)
}

pub fn result(id: &Value, result: &Value) -> LocalReply {
    result_raw(
        id,
        &serde_json::to_vec(result).unwrap_or_else(|_| b"{}".to_vec()),
    )
}

/// A JSON body with the given HTTP status.
pub fn json(status: u16, body: &Value) -> LocalReply {
    json_reply(status, serde_json::to_vec(body).unwrap_or_default())
}

/// The same reply with `resultType: "complete"` in its result, as every 2026-07-28 result
/// needs (errors, non-JSON bodies and results that have one are left as they are).
pub fn with_result_type(mut reply: LocalReply) -> LocalReply {
    if reply.body.is_empty() || reply.body.windows(12).any(|w| w == br#""resultType""#) {
        return reply;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&reply.body) else {
        return reply;
    };
    if let Some(result) = v.get_mut("result").and_then(Value::as_object_mut) {
        result.insert("resultType".into(), Value::String("complete".into()));
        reply.body = serde_json::to_vec(&v).unwrap_or(reply.body);
    }
    reply
}

/// A JSON-RPC error with the given HTTP status.
pub fn error(status: u16, id: &Value, code: i64, message: &str) -> LocalReply {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    json_reply(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// A tool result with `isError: true`, which the model reads and can correct itself from.
pub fn tool_error(id: &Value, text: &str) -> LocalReply {
    result(
        id,
        &json!({"content": [{"type": "text", "text": text}], "isError": true}),
    )
}

/// 202 for notifications and client responses.
pub fn accepted() -> LocalReply {
    LocalReply {
        status: 202,
        headers: vec![],
        body: vec![],
    }
}

/// 405 for anything but POST on the MCP path: this gateway offers no GET stream and keeps no
/// client sessions to DELETE.
pub fn method_not_allowed(method: &str) -> LocalReply {
    let mut reply = error(
        405,
        &Value::Null,
        crate::rpc::code::INVALID_REQUEST,
        &format!("Method Not Allowed: {method} is not supported on the MCP endpoint; use POST"),
    );
    reply.headers.push(("allow", "POST".to_owned()));
    reply
}
