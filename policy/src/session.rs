//! Backend sessions: the bodies of the filter's side calls that open one, and reading their
//! answers (JSON or SSE). Stateful backends get one session per env, shared by the gateway.

use serde_json::{Value, json};

/// The id of the side-call `initialize`.
pub const INIT_ID: &str = "meshmux-session-init";

pub fn initialize_body(protocol_version: &str) -> Vec<u8> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": INIT_ID,
        "method": "initialize",
        "params": {
            "protocolVersion": protocol_version,
            "capabilities": {},
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
    use super::*;

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
