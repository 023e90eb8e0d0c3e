//! Requests other than `tools/call` (`prompts/get`, `resources/read`): isolated in a shared
//! backend session like calls, answers fitted to the caller, failures JSON-RPC errors.

use serde_json::{Value, json};

use super::*;
use crate::gateway::offer_tests::gateway;

fn send_request(ex: &mut Exchange, host: &mut FakeHost, body: Value) -> Vec<Action> {
    let gw = gateway();
    let body = body.to_string().into_bytes();
    assert_eq!(
        ex.handle_request_head(&gw, host, legacy_head(), false),
        Flow::Pause
    );
    assert!(drain(ex).is_empty());
    ex.handle_request_body(&gw, host, body.len(), true, &body);
    drain(ex)
}

/// The answer `body` (JSON) streamed back in two chunks; what the client got.
fn respond(ex: &mut Exchange, host: &mut FakeHost, body: &str) -> Value {
    let gw = gateway();
    let head = ResponseHead {
        status: 200,
        content_type: Some("application/json"),
        session_id: false,
        end_of_stream: false,
    };
    assert_eq!(ex.handle_response_head(&gw, host, head), Flow::Continue);
    drain(ex);
    let (a, b) = body.as_bytes().split_at(body.len() / 2);
    let mut out = Vec::new();
    for (chunk, end) in [(a, false), (b, true)] {
        let wanted = ex.response_bytes_wanted(chunk.len(), end);
        ex.handle_response_chunk(&gw, host, chunk.len(), end, &chunk[..wanted]);
        for action in drain(ex) {
            if let Action::WriteResponseChunk { bytes, .. } = action {
                out.extend(bytes);
            }
        }
    }
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn a_prompt_request_in_a_shared_session_carries_the_gateways_id() {
    let mut host = FakeHost::with_session("obs.Staging", Some("s1"));
    let mut ex = Exchange::new();
    let actions = send_request(
        &mut ex,
        &mut host,
        json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get",
               "params": {"name": "obs__summarize", "arguments": {"env": "Staging"}}}),
    );
    let sent = forwarded_body(&actions);
    assert_ne!(
        sent["id"],
        json!(1),
        "callers' ids never meet in the backend session"
    );
    assert_eq!(
        sent["params"],
        json!({"name": "summarize", "arguments": {}})
    );
    assert!(actions.contains(&Action::Route("obs.Staging".into())));
    // Not a tool call: nothing is counted as one.
    assert_eq!(ex.counted(), None);
    let backend_id = sent["id"].to_string();
    let got = respond(
        &mut ex,
        &mut host,
        &format!(r#"{{"jsonrpc":"2.0","id":{backend_id},"result":{{"messages":[]}}}}"#),
    );
    assert_eq!(
        got,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"messages": []}})
    );
}

#[test]
fn a_read_answer_names_the_resource_as_the_caller_did() {
    // A backend that keeps no session: ids go as they are, the URIs still change.
    let mut host = FakeHost::with_session("obs.Prod", None);
    let mut ex = Exchange::new();
    let actions = send_request(
        &mut ex,
        &mut host,
        json!({"jsonrpc": "2.0", "id": "r", "method": "resources/read",
               "params": {"uri": "meshmux://obs.Prod/file:///runbook.md"}}),
    );
    assert_eq!(forwarded_body(&actions)["id"], json!("r"));
    let got = respond(
        &mut ex,
        &mut host,
        r#"{"jsonrpc":"2.0","id":"r","result":{"contents":[{"uri":"file:///runbook.md","text":"hi"}]}}"#,
    );
    assert_eq!(
        got["result"]["contents"][0]["uri"],
        json!("meshmux://obs.Prod/file:///runbook.md")
    );
}

#[test]
fn an_unreachable_server_is_a_jsonrpc_error_naming_it() {
    let gw = gateway();
    let mut host = FakeHost::default();
    let mut ex = Exchange::new();
    send_request(
        &mut ex,
        &mut host,
        json!({"jsonrpc": "2.0", "id": 4, "method": "prompts/get",
               "params": {"name": "github__review"}}),
    );
    let answer = session::Answer {
        status: Some(503),
        content_type: Some("text/plain"),
        session_id: None,
        body: b"no healthy upstream",
    };
    ex.handle_side_call_answer(&gw, &mut host, 1, &answer);
    let reply = match drain(&mut ex).as_slice() {
        [Action::Reply(r)] => serde_json::from_slice::<Value>(&r.body).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(reply["id"], json!(4));
    assert_eq!(reply["error"]["code"], json!(-32603));
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Server `github` is unavailable: initialize failed"),
        "{message}"
    );
}

fn head_of(session: &str) -> Request {
    Request::from_headers([
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
        ("mcp-session-id", session),
    ])
}

/// A legacy caller's `logging/setLevel` holds for its later calls only: backend sessions are
/// shared, so the level is the gateway's to apply, per caller.
#[test]
fn a_callers_log_level_filters_its_own_answers_only() {
    let mut host = FakeHost::with_session("Dev", None);
    let set = json!({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel",
                     "params": {"level": "warning"}})
    .to_string();
    let mut ex = Exchange::new();
    send(&mut ex, &mut host, head_of("quiet"), set.as_bytes());
    match drain(&mut ex).as_slice() {
        [Action::Reply(r)] => assert_eq!(r.body_text(), r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
        other => panic!("{other:?}"),
    }
    let bad = json!({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel",
                     "params": {"level": "loud"}})
    .to_string();
    let mut ex = Exchange::new();
    send(&mut ex, &mut host, head_of("quiet"), bad.as_bytes());
    match drain(&mut ex).as_slice() {
        [Action::Reply(r)] => assert!(r.body_text().contains("-32602"), "{}", r.body_text()),
        other => panic!("{other:?}"),
    }
    let events = [
        r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"chatty"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"error","data":"bad"}}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#,
    ];
    let sse: String = events
        .iter()
        .map(|e| format!("event: message\ndata: {e}\n\n"))
        .collect();
    for (session, chatty) in [("quiet", false), ("other", true)] {
        let mut ex = Exchange::new();
        send(
            &mut ex,
            &mut host,
            head_of(session),
            &call_body(json!(7), "Dev", json!({})),
        );
        drain(&mut ex);
        let got = answer(&mut ex, &mut host, "text/event-stream", &sse);
        assert_eq!(got.contains("chatty"), chatty, "{session}: {got}");
        assert!(
            got.contains("bad") && got.contains("\"result\""),
            "{session}: {got}"
        );
    }
}
