//! Backend sessions: the bodies and headers of the filter's side calls that open one, reading
//! their answers (JSON or SSE), and the record the filter keeps per env in proxy-wasm shared
//! data. Stateful backends get one session per env, shared by every worker of the gateway.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::manifest::{BackendAccess, EnvEntry};
use crate::upstream;

/// Side-call timeout when the plugin configuration names none for an env.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// The shared-data key of an env's backend session record.
pub fn shared_key(env: &str) -> String {
    format!("meshmux.session.{env}")
}

/// What the gateway knows about an env's backend session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSession {
    /// The backend URL the session belongs to: a new manifest that moves the env to another
    /// backend makes the record stale.
    pub url: String,
    /// `None`: the backend answered `initialize` without `Mcp-Session-Id` (it keeps none).
    pub session_id: Option<String>,
    /// The version the backend answered `initialize` with; calls carry it.
    pub protocol_version: String,
}

impl BackendSession {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The record stored for `entry`, if it is one and still belongs to its URL. Empty bytes
    /// (a forgotten record) or garbage read as none.
    pub fn decode(bytes: &[u8], entry: &EnvEntry) -> Option<Self> {
        let s: Self = serde_json::from_slice(bytes).ok()?;
        let usable = s.url == entry.url
            && s.session_id.as_deref().is_none_or(valid_session_id)
            && !s.protocol_version.is_empty();
        usable.then_some(s)
    }
}

/// Headers that only the gateway sets on a side call; the env's configured headers may not
/// override them.
const RESERVED: [&str; 7] = [
    "host",
    "content-type",
    "content-length",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "transfer-encoding",
];

/// The headers of a side call (`initialize`, `notifications/initialized`, a retried call) to
/// `entry`: pseudo-headers, the MCP ones, then the env's configured headers (its credentials).
pub fn side_call_headers(
    entry: &EnvEntry,
    access: Option<&BackendAccess>,
    session_id: Option<&str>,
    protocol_version: Option<&str>,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = vec![
        (":method".into(), "POST".into()),
        (":path".into(), entry.path.clone()),
        (":authority".into(), entry.authority.clone()),
        ("content-type".into(), "application/json".into()),
        (
            "accept".into(),
            "application/json, text/event-stream".into(),
        ),
    ];
    if let Some(v) = protocol_version {
        headers.push(("mcp-protocol-version".into(), v.to_owned()));
    }
    if let Some(id) = session_id {
        headers.push(("mcp-session-id".into(), id.to_owned()));
    }
    for (name, value) in access.map(|a| &a.headers).into_iter().flatten() {
        let lower = name.to_ascii_lowercase();
        if !lower.starts_with(':') && !RESERVED.contains(&lower.as_str()) {
            headers.push((lower, value.clone()));
        }
    }
    headers
}

/// The side-call timeout for an env, in milliseconds (never 0, which Envoy reads as "none").
pub fn timeout_ms(access: Option<&BackendAccess>) -> u64 {
    access
        .map(|a| a.timeout_ms)
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_TIMEOUT_MS)
}

/// A side call's answer as the filter read it. `status` is `None` when none came.
#[derive(Debug, Clone, Default)]
pub struct Answer<'a> {
    pub status: Option<u16>,
    pub content_type: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub body: &'a [u8],
}

/// The session an `initialize` side call opened, or why it failed (a reason for
/// [`upstream::unavailable`]).
pub fn opened(answer: &Answer<'_>, entry: &EnvEntry) -> Result<BackendSession, String> {
    if !matches!(answer.status, Some(200..=299)) {
        return Err(format!(
            "initialize failed: {}",
            upstream::reason(answer.status, answer.body)
        ));
    }
    let session_id = match answer.session_id.map(str::trim) {
        None => None,
        Some(id) if valid_session_id(id) => Some(id.to_owned()),
        Some(_) => return Err("the backend sent an invalid Mcp-Session-Id".to_owned()),
    };
    let Opened { protocol_version } = parse_initialize(answer.content_type, answer.body)?;
    Ok(BackendSession {
        url: entry.url.clone(),
        session_id,
        protocol_version,
    })
}

/// Whether the backend accepted `notifications/initialized`.
pub fn acknowledged(answer: &Answer<'_>) -> Result<(), String> {
    match answer.status {
        Some(200..=299) => Ok(()),
        status => Err(format!(
            "notifications/initialized failed: {}",
            upstream::reason(status, answer.body)
        )),
    }
}

/// The id of the side-call `initialize`.
pub const INIT_ID: &str = "meshmux-session-init";

/// The client capabilities the gateway declares in its backend sessions, the same discovery
/// declares: what it can carry between a backend and its callers during a call (requests for
/// them travel on the call's stream to initialize-era callers, and their answers back).
/// Servers register some tools only for clients that declared these.
pub fn bridged_capabilities() -> Value {
    json!({"elicitation": {"form": {}}, "sampling": {}})
}

pub fn initialize_body(protocol_version: &str) -> Vec<u8> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": INIT_ID,
        "method": "initialize",
        "params": {
            "protocolVersion": protocol_version,
            "capabilities": bridged_capabilities(),
            "clientInfo": {"name": "meshmux-gateway", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

pub fn initialized_body() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec()
}

/// What an `initialize` answer tells the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub protocol_version: String,
}

/// Reads an `initialize` response body, either `application/json` or an SSE stream whose
/// events carry the response.
pub fn parse_initialize(content_type: Option<&str>, body: &[u8]) -> Result<Opened, String> {
    let is_sse = content_type.is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
    });
    let message: Value = if is_sse {
        let text = String::from_utf8_lossy(body);
        sse_messages(&text)
            .into_iter()
            .find(|m| m.get("id").and_then(Value::as_str) == Some(INIT_ID))
            .ok_or_else(|| "the SSE answer to initialize held no response".to_owned())?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| format!("the answer to initialize is not JSON: {e}"))?
    };
    if let Some(err) = message.get("error") {
        return Err(format!("initialize failed: {err}"));
    }
    let version = message
        .pointer("/result/protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| "the answer to initialize has no result.protocolVersion".to_owned())?;
    Ok(Opened {
        protocol_version: version.to_owned(),
    })
}

/// The JSON payloads of every SSE event in `text` (multi-line `data:` joined by `\n`).
pub fn sse_messages(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if !data.is_empty() {
                if let Ok(v) = serde_json::from_str(&data) {
                    out.push(v);
                }
                data.clear();
            }
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    out
}

/// A session id is visible ASCII (0x21–0x7E) per the spec; anything else is not sent on.
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 1024 && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn entry() -> EnvEntry {
        EnvEntry {
            name: "Dev".into(),
            description: "Dev env".into(),
            cluster: "env_Dev".into(),
            url: "http://127.0.0.1:3001/mcp".into(),
            authority: "127.0.0.1:3001".into(),
            path: "/mcp".into(),
            protocol_version: "2025-06-18".into(),
            server_info: None,
            unreachable: None,
            stale: None,
            server: None,
            label: None,
        }
    }

    fn init_json(version: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":"{INIT_ID}","result":{{"protocolVersion":"{version}"}}}}"#
        )
    }

    #[test]
    fn records_round_trip_and_go_stale() {
        let s = BackendSession {
            url: entry().url,
            session_id: Some("abc".into()),
            protocol_version: "2025-06-18".into(),
        };
        assert_eq!(
            BackendSession::decode(&s.encode(), &entry()),
            Some(s.clone())
        );
        let stateless = BackendSession {
            session_id: None,
            ..s.clone()
        };
        assert_eq!(
            BackendSession::decode(&stateless.encode(), &entry()),
            Some(stateless)
        );
        let mut moved = entry();
        moved.url = "http://elsewhere/mcp".into();
        assert_eq!(BackendSession::decode(&s.encode(), &moved), None);
        assert_eq!(BackendSession::decode(b"", &entry()), None);
        assert_eq!(BackendSession::decode(b"{]", &entry()), None);
        let bad_id = BackendSession {
            session_id: Some("has space".into()),
            ..s
        };
        assert_eq!(BackendSession::decode(&bad_id.encode(), &entry()), None);
        assert_eq!(shared_key("Dev"), "meshmux.session.Dev");
    }

    #[test]
    fn side_call_header_set() {
        let access = BackendAccess {
            headers: BTreeMap::from([
                ("Authorization".to_owned(), "Bearer dev-token".to_owned()),
                ("Host".to_owned(), "evil".to_owned()),
                (":path".to_owned(), "/evil".to_owned()),
                ("Mcp-Session-Id".to_owned(), "evil".to_owned()),
                ("X-Tenant".to_owned(), "t1".to_owned()),
            ]),
            timeout_ms: 0,
        };
        let h = side_call_headers(&entry(), Some(&access), Some("sid"), Some("2025-06-18"));
        let pairs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                (":method", "POST"),
                (":path", "/mcp"),
                (":authority", "127.0.0.1:3001"),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", "2025-06-18"),
                ("mcp-session-id", "sid"),
                ("authorization", "Bearer dev-token"),
                ("x-tenant", "t1"),
            ]
        );
        assert_eq!(side_call_headers(&entry(), None, None, None).len(), 5);
        assert_eq!(timeout_ms(Some(&access)), DEFAULT_TIMEOUT_MS);
        assert_eq!(timeout_ms(None), DEFAULT_TIMEOUT_MS);
        let quick = BackendAccess {
            timeout_ms: 250,
            ..access
        };
        assert_eq!(timeout_ms(Some(&quick)), 250);
    }

    #[test]
    fn opening() {
        let body = init_json("2025-03-26");
        let answer = Answer {
            status: Some(200),
            content_type: Some("application/json"),
            session_id: Some("s-1"),
            body: body.as_bytes(),
        };
        assert_eq!(
            opened(&answer, &entry()),
            Ok(BackendSession {
                url: entry().url,
                session_id: Some("s-1".into()),
                protocol_version: "2025-03-26".into()
            })
        );
        let stateless = Answer {
            session_id: None,
            ..answer.clone()
        };
        assert_eq!(opened(&stateless, &entry()).map(|s| s.session_id), Ok(None));
        let bad = Answer {
            session_id: Some("a b"),
            ..answer.clone()
        };
        assert!(opened(&bad, &entry()).is_err_and(|e| e.contains("invalid Mcp-Session-Id")));
        let refused = Answer {
            status: Some(503),
            body: b"upstream connect error",
            ..answer.clone()
        };
        assert_eq!(
            opened(&refused, &entry()),
            Err("initialize failed: HTTP 503: upstream connect error".into())
        );
        let none = Answer::default();
        assert!(opened(&none, &entry()).is_err_and(|e| e.contains("no response")));
        assert_eq!(
            acknowledged(&Answer {
                status: Some(202),
                ..Answer::default()
            }),
            Ok(())
        );
        assert!(
            acknowledged(&Answer {
                status: Some(400),
                ..Answer::default()
            })
            .is_err()
        );
    }

    #[test]
    fn json_answer() {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"{INIT_ID}","result":{{"protocolVersion":"2025-06-18"}}}}"#
        );
        assert_eq!(
            parse_initialize(Some("application/json"), body.as_bytes()),
            Ok(Opened {
                protocol_version: "2025-06-18".into()
            })
        );
    }

    #[test]
    fn sse_answer() {
        let body = format!(
            "event: message\r\nid: 1\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}}\r\n\r\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"id\":\"{INIT_ID}\",\ndata: \"result\":{{\"protocolVersion\":\"2025-11-25\"}}}}\n\n"
        );
        assert_eq!(
            parse_initialize(Some("text/event-stream"), body.as_bytes()),
            Ok(Opened {
                protocol_version: "2025-11-25".into()
            })
        );
    }

    #[test]
    fn failures_are_explained() {
        assert!(parse_initialize(None, b"<html>").is_err_and(|e| e.contains("not JSON")));
        let err =
            format!(r#"{{"jsonrpc":"2.0","id":"{INIT_ID}","error":{{"code":-1,"message":"no"}}}}"#);
        assert!(
            parse_initialize(None, err.as_bytes()).is_err_and(|e| e.contains("initialize failed"))
        );
        assert!(parse_initialize(Some("text/event-stream"), b"data: {}\n\n").is_err());
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id("abc-123_XYZ"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("has space"));
        assert!(!valid_session_id("ü"));
    }
}
