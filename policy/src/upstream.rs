//! What the filter does with a backend's answer to a forwarded `tools/call`: successful answers
//! stream through untouched; a lost backend session is re-opened and the call retried once; any
//! other failure becomes a tool result with `isError: true` that names the env and the reason,
//! so the model reads it (an Envoy 503/504 or a backend's 401 would otherwise reach the client
//! as a transport error, or start an OAuth flow against the gateway).

use serde_json::Value;

use crate::gateway::Forward;
use crate::reply::LocalReply;

/// The verdict on a forwarded call's response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: stream it through untouched.
    Pass,
    /// The backend no longer knows the session the call was sent with: open a new one and
    /// retry the call once.
    Reopen,
    /// Replace the answer with [`failure`].
    Rewrite,
    /// Ask the session whether it is still there ([`classify`]).
    Probe,
}

/// `cached` says the call went out with backend-session state read from the shared cache (a
/// session id, or "this backend keeps none"), rather than state opened for this very call.
///
/// A 404 is the spec's "session ended": the call did not run, so one retry is safe. A 400 is
/// what the TypeScript SDK's servers (`server-everything`) answer to an unknown session after
/// a restart, but also what any backend answers to a body it refuses (a bad `_meta`, say):
/// taking it for a lost session would let any caller reset the session every other caller
/// shares, so the session is probed first. A call sent with a session opened just for it is
/// never retried, so this cannot loop.
pub fn classify(status: u16, cached: bool) -> Verdict {
    match status {
        200..=299 => Verdict::Pass,
        404 if cached => Verdict::Reopen,
        400 if cached => Verdict::Probe,
        _ => Verdict::Rewrite,
    }
}

/// Whether a response body is an MCP answer the client can read as is.
pub fn is_mcp_content_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let media = ct.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case("application/json")
            || media.eq_ignore_ascii_case("text/event-stream")
    })
}

/// The answer for a failed call (a tool error; a JSON-RPC error for other requests):
/// `status` is `None` when no response came at all.
pub fn failure(fwd: &Forward, status: Option<u16>, body: &[u8]) -> LocalReply {
    let verb = match status {
        Some(400..=499) => "rejected the call",
        _ => "is unavailable",
    };
    fwd.failure_reply(&format!("{} {verb}: {}", fwd.subject, reason(status, body)))
}

/// The answer when the env could not be reached before forwarding (side-call failures).
pub fn unavailable(fwd: &Forward, reason: &str) -> LocalReply {
    fwd.failure_reply(&format!("{} is unavailable: {reason}", fwd.subject))
}

/// The answer to hand the client for a call retried through a side call: a 2xx MCP answer as
/// the backend gave it, anything else as [`failure`].
pub fn retried(
    fwd: &Forward,
    status: Option<u16>,
    content_type: Option<&str>,
    body: &[u8],
) -> LocalReply {
    match (status, content_type) {
        (Some(s), Some(ct)) if retry_passes(status, content_type) => LocalReply {
            status: s,
            headers: vec![("content-type", ct.to_owned())],
            body: body.to_vec(),
        },
        _ => failure(fwd, status, body),
    }
}

/// Whether [`retried`] hands the backend's own answer through (a 2xx MCP answer) rather than
/// a failure it wrote.
pub fn retry_passes(status: Option<u16>, content_type: Option<&str>) -> bool {
    matches!(status, Some(200..=299)) && is_mcp_content_type(content_type)
}

/// Longest excerpt of a failure body quoted to the model.
const MAX_REASON: usize = 300;

/// Envoy's body when a cluster has no healthy host (response flag `UH`): with the env
/// clusters' active health checks and a panic threshold of 0, that means the env's backend
/// fails its health checks.
pub const NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
/// What the caller reads then.
pub const FAILING_HEALTH_CHECKS: &str = "its backend is failing health checks";

/// A short, single-line reason: `HTTP 503: upstream connect error …`, the JSON-RPC error
/// message when the body is one, or a note that no response came.
pub fn reason(status: Option<u16>, body: &[u8]) -> String {
    let Some(status) = status else {
        return "no response (the connection was reset or refused)".to_owned();
    };
    if status == 503 && body.trim_ascii() == NO_HEALTHY_UPSTREAM.as_bytes() {
        return format!("{FAILING_HEALTH_CHECKS} (Envoy: HTTP 503 {NO_HEALTHY_UPSTREAM})");
    }
    let detail = jsonrpc_message(body).unwrap_or_else(|| String::from_utf8_lossy(body).into());
    let detail = one_line(&detail);
    if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    }
}

fn jsonrpc_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error")?;
    Some(
        error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned),
    )
}

/// Whitespace and control characters collapsed, cut at [`MAX_REASON`] characters.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > MAX_REASON {
            let cut: String = out.chars().take(MAX_REASON).collect();
            return format!("{cut}…");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn verdicts() {
        let check = |status, cached, expected| {
            assert_eq!(classify(status, cached), expected, "{status} {cached}");
        };
        check(200, true, Verdict::Pass);
        check(202, false, Verdict::Pass);
        check(404, true, Verdict::Reopen);
        check(400, true, Verdict::Probe);
        check(404, false, Verdict::Rewrite);
        check(400, false, Verdict::Rewrite);
        check(401, true, Verdict::Rewrite);
        check(503, true, Verdict::Rewrite);
        check(504, false, Verdict::Rewrite);
        check(302, false, Verdict::Rewrite);
    }

    fn to(env: &str, id: Value) -> Forward {
        Forward {
            kind: crate::gateway::ForwardKind::Call,
            env: env.to_owned(),
            cluster: format!("env_{env}"),
            tool: "t".into(),
            id,
            message: serde_json::Map::new(),
            protocol_version: "2025-11-25".into(),
            modern: false,
            bind: None,
            client_capabilities: None,
            log_level: None,
            subject: format!("Environment `{env}`"),
            result: Default::default(),
        }
    }

    fn text(r: &LocalReply) -> String {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["result"]["isError"], json!(true));
        assert_eq!(r.status, 200);
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn failures_name_env_and_reason() {
        let envoy = b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused";
        let r = failure(&to("Prod", json!(7)), Some(503), envoy);
        assert_eq!(
            text(&r),
            format!(
                "Environment `Prod` is unavailable: HTTP 503: {}",
                String::from_utf8_lossy(envoy)
            )
        );
        assert!(r.body_text().contains(r#""id":7"#));
        assert_eq!(
            text(&failure(
                &to("Dev", json!("a")),
                Some(504),
                b"upstream request timeout"
            )),
            "Environment `Dev` is unavailable: HTTP 504: upstream request timeout"
        );
        let rpc = br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":1}"#;
        assert_eq!(
            text(&failure(&to("Dev", json!(1)), Some(400), rpc)),
            "Environment `Dev` rejected the call: HTTP 400: Bad Request: No valid session ID provided"
        );
        assert_eq!(
            text(&failure(&to("Dev", json!(1)), None, b"")),
            "Environment `Dev` is unavailable: no response (the connection was reset or refused)"
        );
        assert_eq!(
            text(&failure(
                &to("Prod", json!(1)),
                Some(503),
                b"no healthy upstream"
            )),
            "Environment `Prod` is unavailable: its backend is failing health checks (Envoy: HTTP 503 no healthy upstream)"
        );
        assert_eq!(
            text(&unavailable(
                &to("Prod", json!(1)),
                &reason(Some(503), b"no healthy upstream\n")
            )),
            "Environment `Prod` is unavailable: its backend is failing health checks (Envoy: HTTP 503 no healthy upstream)"
        );
        assert_eq!(
            text(&unavailable(&to("Dev", json!(1)), "boom")),
            "Environment `Dev` is unavailable: boom"
        );
    }

    #[test]
    fn other_requests_fail_with_a_jsonrpc_error_naming_the_server() {
        let mut fwd = to("github", json!(3));
        fwd.kind = crate::gateway::ForwardKind::Request;
        fwd.subject = "Server `github`".into();
        let r = unavailable(&fwd, "boom");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["id"], json!(3));
        assert_eq!(v["error"]["code"], json!(crate::rpc::code::INTERNAL_ERROR));
        assert_eq!(
            v["error"]["message"],
            json!("Server `github` is unavailable: boom")
        );
        assert!(v.get("result").is_none());
    }

    #[test]
    fn reasons_are_short_single_lines() {
        assert_eq!(reason(Some(502), b""), "HTTP 502");
        assert_eq!(
            reason(Some(500), b"<html>\n  <body>oops</body>\r\n</html>\0"),
            "HTTP 500: <html> <body>oops</body> </html>"
        );
        let long = reason(Some(500), "é".repeat(1000).as_bytes());
        assert!(long.ends_with('…') && long.chars().count() < MAX_REASON + 20);
        assert_eq!(reason(Some(500), &[0xff, b'a']), "HTTP 500: \u{fffd}a");
        assert_eq!(
            reason(Some(500), br#"{"error":{"code":1}}"#),
            r#"HTTP 500: {"code":1}"#
        );
    }

    #[test]
    fn retried_answers() {
        let ok = retried(
            &to("Dev", json!(1)),
            Some(200),
            Some("text/event-stream"),
            b"event: message\ndata: {}\n\n",
        );
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.headers,
            vec![("content-type", "text/event-stream".to_owned())]
        );
        assert_eq!(ok.body, b"event: message\ndata: {}\n\n");
        let bad = retried(
            &to("Dev", json!(1)),
            Some(200),
            Some("text/html"),
            b"<html>",
        );
        assert!(text(&bad).starts_with("Environment `Dev` is unavailable: HTTP 200"));
        let gone = retried(
            &to("Dev", json!(1)),
            Some(404),
            Some("application/json"),
            b"",
        );
        assert_eq!(text(&gone), "Environment `Dev` rejected the call: HTTP 404");
    }

    #[test]
    fn content_types() {
        assert!(is_mcp_content_type(Some("application/json; charset=utf-8")));
        assert!(is_mcp_content_type(Some("Text/Event-Stream")));
        assert!(!is_mcp_content_type(Some("text/plain")));
        assert!(!is_mcp_content_type(None));
    }
}
