//! JSON-RPC 2.0 inspection of one request body: strict (duplicate keys are refused, one object
//! per POST) so that what the filter decides on is exactly what the backend would see.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// JSON-RPC error codes used by the gateway.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP: `resources/read` of a URI the server does not know.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// 2026-07-28: a `Mcp-*` header disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// 2026-07-28: the request needs a client capability it did not declare.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// 2026-07-28: the protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// One inspected message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        object: Map<String, Value>,
    },
    Notification {
        method: String,
        object: Map<String, Value>,
    },
    /// A client's answer to a request a backend sent it through the gateway.
    Response { object: Map<String, Value> },
}

impl Message {
    /// The id to answer with (null for notifications).
    pub fn id(&self) -> &Value {
        match self {
            Message::Request { id, .. } => id,
            Message::Response { object } => object.get("id").unwrap_or(&Value::Null),
            Message::Notification { .. } => &Value::Null,
        }
    }
}

/// A request the gateway refuses before looking at its method.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub code: i64,
    pub message: String,
    /// The request id when it could be read, so the client can correlate the error.
    pub id: Value,
}

impl Rejection {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        Rejection {
            status,
            code,
            message: message.into(),
            id: Value::Null,
        }
    }
}

/// A JSON value built with duplicate-key detection at every depth.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            // One lookup per key: hashing is a visible share of a forwarded call's cost.
            match out.entry(key) {
                serde_json::map::Entry::Occupied(e) => {
                    return Err(de::Error::custom(format_args!("{DUPLICATE}`{}`", e.key())));
                }
                serde_json::map::Entry::Vacant(e) => {
                    e.insert(value);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

const DUPLICATE: &str = "duplicate key ";

/// Parses `body` as exactly one JSON-RPC 2.0 message.
pub fn parse(body: &[u8]) -> Result<Message, Rejection> {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    match first {
        None => {
            return Err(Rejection::new(
                400,
                code::PARSE_ERROR,
                "Parse error: the request body is empty",
            ));
        }
        Some(b'[') => {
            return Err(Rejection::new(
                400,
                code::INVALID_REQUEST,
                "Invalid Request: JSON-RPC batches are not supported; send one message per POST",
            ));
        }
        Some(b'{') => {}
        Some(_) => {
            // Still parse, so invalid JSON is reported as such rather than as a shape error.
        }
    }
    let value = match serde_json::from_slice::<Strict>(body) {
        Ok(Strict(v)) => v,
        Err(e) => {
            let text = e.to_string();
            return Err(if e.is_data() && text.starts_with(DUPLICATE) {
                Rejection::new(
                    400,
                    code::INVALID_REQUEST,
                    format!("Invalid Request: {text}"),
                )
            } else {
                Rejection::new(400, code::PARSE_ERROR, format!("Parse error: {text}"))
            });
        }
    };
    let Value::Object(object) = value else {
        return Err(Rejection::new(
            400,
            code::INVALID_REQUEST,
            "Invalid Request: the body must be a JSON object",
        ));
    };
    let id = object.get("id").cloned();
    let reject = |message: &str| Rejection {
        status: 400,
        code: code::INVALID_REQUEST,
        message: format!("Invalid Request: {message}"),
        id: id.clone().filter(valid_id).unwrap_or(Value::Null),
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(reject("`jsonrpc` must be \"2.0\""));
    }
    let method = match object.get("method") {
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return Err(reject("`method` must be a string")),
        None => None,
    };
    let Some(method) = method else {
        if object.contains_key("result") || object.contains_key("error") {
            return Ok(Message::Response { object });
        }
        return Err(reject("`method` is missing"));
    };
    if let Some(params) = object.get("params")
        && !params.is_object()
    {
        return Err(reject("`params` must be an object"));
    }
    match id {
        None => Ok(Message::Notification { method, object }),
        Some(id) if valid_id(&id) => Ok(Message::Request { id, method, object }),
        Some(_) => Err(reject("`id` must be a string or an integer")),
    }
}

fn valid_id(id: &Value) -> bool {
    match id {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: Result<&str, (u16, i64)>) {
        let got = parse(body.as_bytes());
        match (got, expected) {
            (Ok(Message::Request { method, .. }), Ok(m)) => assert_eq!(method, m, "{body}"),
            (Ok(Message::Notification { method, .. }), Ok(m)) => {
                assert_eq!(format!("notification {method}"), m, "{body}")
            }
            (Ok(Message::Response { .. }), Ok(m)) => assert_eq!("response", m, "{body}"),
            (Err(r), Err((status, code))) => {
                assert_eq!((r.status, r.code), (status, code), "{body}: {}", r.message)
            }
            (got, expected) => unreachable!("{body}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn messages() {
        check(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            Ok("tools/list"),
        );
        check(
            r#"{"jsonrpc":"2.0","id":"a","method":"tools\u002fcall","params":{}}"#,
            Ok("tools/call"),
        );
        check(
            r#"  {"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            Ok("notification notifications/initialized"),
        );
        check(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, Ok("response"));
    }

    #[test]
    fn rejections() {
        check("", Err((400, code::PARSE_ERROR)));
        check("{", Err((400, code::PARSE_ERROR)));
        check("not json", Err((400, code::PARSE_ERROR)));
        check(
            r#"{"jsonrpc":"2.0","id":1,"method":"x"} trailing"#,
            Err((400, code::PARSE_ERROR)),
        );
        check(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(r#""just a string""#, Err((400, code::INVALID_REQUEST)));
        check(
            r#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"env":"Dev","env":"Prod"}}}"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            r#"{"id":1,"method":"ping"}"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            r#"{"jsonrpc":"2.0","id":1}"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#,
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
            Err((400, code::INVALID_REQUEST)),
        );
        check(
            &format!(r#"{{"a":{}1{}}}"#, "[".repeat(5000), "]".repeat(5000)),
            Err((400, code::PARSE_ERROR)),
        );
    }

    #[test]
    fn id_is_kept_on_shape_errors() {
        let r = parse(br#"{"jsonrpc":"1.0","id":"x","method":"ping"}"#).err();
        assert_eq!(r.map(|r| r.id), Some(Value::String("x".into())));
    }
}
