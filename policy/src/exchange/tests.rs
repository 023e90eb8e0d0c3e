//! Every path of an exchange, driven the way the filter drives it, against a fake host.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;
use crate::gateway::tests::gateway;
use crate::session::shared_key;

/// Shared data, side calls and ids, as a worker would see them.
#[derive(Default)]
struct FakeHost {
    shared: HashMap<String, (Vec<u8>, u32)>,
    calls: Vec<SideCall>,
    next_token: u32,
    next_id: u64,
    caller: Option<Caller>,
}

impl Host for FakeHost {
    fn caller(&self) -> Caller {
        self.caller.clone().unwrap_or(Caller::Unrestricted)
    }
    fn principal(&self) -> String {
        crate::metrics::ANONYMOUS.into()
    }
    fn revoked(&self) -> Option<LocalReply> {
        None
    }
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.shared.get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let current = self.shared.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return false;
        }
        let next = current.unwrap_or(0) + 1;
        self.shared.insert(key.into(), (value.to_vec(), next));
        true
    }
    fn dispatch(&mut self, call: &SideCall) -> Result<u32, String> {
        self.calls.push(call.clone());
        self.next_token += 1;
        Ok(self.next_token)
    }
    fn next_call_id(&mut self) -> String {
        self.next_id += 1;
        ids::call(1, self.next_id)
    }
}

impl FakeHost {
    fn with_session(env: &str, session_id: Option<&str>) -> Self {
        let mut host = FakeHost::default();
        host.store(env, session_id);
        host
    }

    fn store(&mut self, env: &str, session_id: Option<&str>) {
        let s = BackendSession {
            url: format!("http://{env}.internal/mcp"),
            session_id: session_id.map(str::to_owned),
            protocol_version: "2025-06-18".into(),
        };
        self.shared_set(&shared_key(env), &s.encode(), None);
    }

    fn session(&self, env: &str) -> Option<String> {
        let (bytes, _) = self.shared_get(&shared_key(env));
        let s: BackendSession = serde_json::from_slice(&bytes?).ok()?;
        s.session_id
    }

    fn last_call(&self) -> (String, Value) {
        let c = self.calls.last().expect("a side call");
        let method = header(&c.headers, ":method").unwrap_or_default();
        let body = serde_json::from_slice(&c.body).unwrap_or(Value::Null);
        (method, body)
    }
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// A side call answered 202 with no body.
fn accepted() -> session::Answer<'static> {
    session::Answer {
        status: Some(202),
        ..Default::default()
    }
}

fn drain(ex: &mut Exchange) -> Vec<Action> {
    std::iter::from_fn(|| ex.poll_action()).collect()
}

fn legacy_head() -> Request {
    Request::from_headers([
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
        ("mcp-session-id", "client-session"),
    ])
}

fn modern_head(name: &str, env: &str) -> Request {
    Request::from_headers([
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", name),
        ("mcp-param-env", env),
    ])
}

fn call_body(id: Value, env: &str, meta: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "search_logs", "arguments": {"query": "q", "env": env}, "_meta": meta}})
    .to_string()
    .into_bytes()
}

/// Runs a request through head and body; returns the flow of the body callback.
fn send(ex: &mut Exchange, host: &mut FakeHost, head: Request, body: &[u8]) -> Flow {
    let gw = gateway(false);
    assert_eq!(ex.handle_request_head(&gw, host, head, false), Flow::Pause);
    assert!(drain(ex).is_empty());
    assert!(ex.wants_request_body(true));
    ex.handle_request_body(&gw, host, body.len(), true, body)
}

/// An initialize-era `tools/call` of `search_logs` in `env`; returns the actions it queued.
fn legacy_call(ex: &mut Exchange, host: &mut FakeHost, id: Value, env: &str) -> Vec<Action> {
    send(ex, host, legacy_head(), &call_body(id, env, json!({})));
    drain(ex)
}

/// The body the request went out with.
fn forwarded_body(actions: &[Action]) -> Value {
    actions
        .iter()
        .find_map(|a| match a {
            Action::ReplaceRequestBody { body, .. } => serde_json::from_slice(body).ok(),
            _ => None,
        })
        .expect("a forwarded body")
}

fn request_header_ops(actions: &[Action]) -> Vec<HeaderOp> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::EditRequestHeaders(ops) => Some(ops.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Streams `body` back as the answer (cut in two) and returns what the client got.
fn answer(ex: &mut Exchange, host: &mut FakeHost, content_type: &str, body: &str) -> String {
    let gw = gateway(false);
    let head = ResponseHead {
        status: 200,
        content_type: Some(content_type),
        session_id: true,
        end_of_stream: false,
    };
    assert!(ex.wants_response_head());
    assert_eq!(ex.handle_response_head(&gw, host, head), Flow::Continue);
    let mut out = Vec::new();
    let mut rewritten = false;
    for a in drain(ex) {
        if let Action::EditResponseHeaders(ops) = a {
            assert!(ops.contains(&HeaderOp::Remove("mcp-session-id".into())));
            rewritten = ops.contains(&HeaderOp::Remove("content-length".into()));
        }
    }
    let (a, b) = body.as_bytes().split_at(body.len() / 2);
    for (chunk, end) in [(a, false), (b, true)] {
        let wanted = ex.response_bytes_wanted(chunk.len(), end);
        let read = &chunk[..wanted];
        assert_eq!(
            ex.handle_response_chunk(&gw, host, chunk.len(), end, read),
            Flow::Continue
        );
        let writes: Vec<_> = drain(ex)
            .into_iter()
            .filter_map(|a| match a {
                Action::WriteResponseChunk { bytes, size } => {
                    assert_eq!(size, chunk.len());
                    Some(bytes)
                }
                _ => None,
            })
            .collect();
        if rewritten {
            assert_eq!(writes.len(), 1);
            out.extend(writes.concat());
        } else {
            assert!(writes.is_empty());
            out.extend(chunk);
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn every_vm_claims_its_own_number() {
    let mut host = FakeHost::default();
    let claimed: Vec<_> = (0..3).map(|_| ids::claim_vm(&mut host)).collect();
    assert_eq!(claimed, vec![Some(1), Some(2), Some(3)]);
}

#[test]
fn a_stateless_backend_pays_nothing() {
    let mut host = FakeHost::with_session("Prod", None);
    let mut ex = Exchange::new();
    let flow = send(
        &mut ex,
        &mut host,
        legacy_head(),
        &call_body(json!(1), "Prod", json!({})),
    );
    assert_eq!(flow, Flow::Continue);
    let actions = drain(&mut ex);
    assert_eq!(forwarded_body(&actions)["id"], json!(1));
    assert!(actions.contains(&Action::Route("Prod".into())));
    let ops = request_header_ops(&actions);
    assert!(ops.contains(&HeaderOp::Remove("mcp-session-id".into())));
    // Only headers the client sent are removed: each removal is a host call.
    assert!(!ops.contains(&HeaderOp::Remove("authorization".into())));
    assert!(!ops.contains(&HeaderOp::Remove("mcp-method".into())));
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
    assert_eq!(answer(&mut ex, &mut host, "application/json", body), body);
    assert_eq!(ex.counted(), Some(("search_logs", "Prod")));
    assert!(host.calls.is_empty());
}

#[test]
fn the_gateways_own_headers_never_reach_the_backend() {
    let mut host = FakeHost::with_session("Prod", None);
    let mut ex = Exchange::new();
    let head = Request::from_headers([
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("authorization", "Bearer secret"),
        ("mcp-session-id", "client-session"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "search_logs"),
        ("mcp-param-env", "Prod"),
        ("mcp-param-region", "eu"),
    ]);
    send(
        &mut ex,
        &mut host,
        head,
        &call_body(json!(1), "Prod", json!({})),
    );
    let ops = request_header_ops(&drain(&mut ex));
    for name in [
        "authorization",
        "mcp-session-id",
        "mcp-method",
        "mcp-name",
        "mcp-param-env",
        "mcp-param-region",
    ] {
        assert!(
            ops.contains(&HeaderOp::Remove(name.into())),
            "{name}: {ops:?}"
        );
    }
    // The client's narrower Accept is widened: backends may answer either way.
    assert!(ops.contains(&HeaderOp::Set(
        "accept".into(),
        "application/json, text/event-stream".into()
    )));
}

#[test]
fn only_allowlisted_client_headers_and_no_query_are_forwarded() {
    let mut host = FakeHost::with_session("Prod", None);
    let mut ex = Exchange::new();
    let head = Request::from_headers([
        (":method", "POST"),
        (":path", "/mcp?tenant=other"),
        ("content-type", "application/json"),
        ("content-length", "99"),
        ("user-agent", "ua"),
        ("traceparent", "00-1-2-01"),
        ("cookie", "sid=1"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-envoy-retry-on", "5xx"),
        ("x-tenant", "other"),
        ("cookie", "sid=2"),
    ]);
    send(
        &mut ex,
        &mut host,
        head,
        &call_body(json!(1), "Prod", json!({})),
    );
    let ops = request_header_ops(&drain(&mut ex));
    for h in ["cookie", "x-forwarded-for", "x-envoy-retry-on", "x-tenant"] {
        assert!(ops.contains(&HeaderOp::Remove(h.into())), "{h}: {ops:?}");
    }
    let removed: Vec<_> = ops
        .iter()
        .filter_map(|op| match op {
            HeaderOp::Remove(n) => Some(n.as_str()),
            HeaderOp::Set(..) => None,
        })
        .collect();
    for h in [
        "content-type",
        "content-length",
        "user-agent",
        "traceparent",
    ] {
        assert!(!removed.contains(&h), "{h} removed: {ops:?}");
    }
    assert_eq!(removed.iter().filter(|n| **n == "cookie").count(), 1);
    assert!(ops.contains(&HeaderOp::Set(":path".into(), "/mcp".into())));
}

#[test]
fn callers_reusing_ids_never_meet_in_a_shared_session() {
    let mut host = FakeHost::with_session("Prod", Some("s1"));
    let mut a = Exchange::new();
    let mut b = Exchange::new();
    send(
        &mut a,
        &mut host,
        legacy_head(),
        &call_body(json!(1), "Prod", json!({"progressToken": 5})),
    );
    send(
        &mut b,
        &mut host,
        legacy_head(),
        &call_body(json!(1), "Prod", json!({"progressToken": 5})),
    );
    let (fa, fb) = (
        forwarded_body(&drain(&mut a)),
        forwarded_body(&drain(&mut b)),
    );
    assert_ne!(fa["id"], fb["id"]);
    assert_ne!(
        fa["params"]["_meta"]["progressToken"],
        fb["params"]["_meta"]["progressToken"]
    );
    // B's answer arrives first; each stream is rewritten back to its own caller.
    let sse = |id: &Value, token: &Value, text: &str| {
        format!(
            "data: {}\n\ndata: {}\n\n",
            json!({"jsonrpc": "2.0", "method": "notifications/progress",
                   "params": {"progressToken": token, "progress": 1}}),
            json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}})
        )
    };
    let got_b = answer(
        &mut b,
        &mut host,
        "text/event-stream",
        &sse(&fb["id"], &fb["params"]["_meta"]["progressToken"], "for B"),
    );
    let got_a = answer(
        &mut a,
        &mut host,
        "text/event-stream",
        &sse(&fa["id"], &fa["params"]["_meta"]["progressToken"], "for A"),
    );
    for (got, text) in [(got_a, "for A"), (got_b, "for B")] {
        let events = crate::session::sse_messages(&got);
        assert_eq!(events[0]["params"]["progressToken"], json!(5));
        assert_eq!(events[1]["id"], json!(1));
        assert_eq!(events[1]["result"]["content"][0]["text"], json!(text));
    }
}

#[test]
fn a_session_is_opened_once_and_the_call_resumed() {
    let gw = gateway(false);
    let mut host = FakeHost::default();
    let mut ex = Exchange::new();
    let flow = send(
        &mut ex,
        &mut host,
        legacy_head(),
        &call_body(json!(7), "Staging", json!({})),
    );
    assert_eq!(flow, Flow::Pause);
    let actions = drain(&mut ex);
    assert!(actions.contains(&Action::Route("Staging".into())));
    // Until the session is known the id is made unique anyway.
    assert_eq!(forwarded_body(&actions)["id"], json!("mmx-1-1"));
    assert_eq!(host.last_call().1["method"], json!("initialize"));
    let init = session::Answer {
        status: Some(200),
        content_type: Some("application/json"),
        session_id: Some("abc"),
        body: br#"{"jsonrpc":"2.0","id":"meshmux-session-init","result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"b","version":"1"}}}"#,
    };
    ex.handle_side_call_answer(&gw, &mut host, 1, &init);
    assert!(drain(&mut ex).is_empty());
    assert_eq!(
        host.last_call().1["method"],
        json!("notifications/initialized")
    );
    let accepted = accepted();
    // A stray answer (another token) changes nothing.
    ex.handle_side_call_answer(&gw, &mut host, 99, &accepted);
    assert!(drain(&mut ex).is_empty());
    ex.handle_side_call_answer(&gw, &mut host, 2, &accepted);
    let actions = drain(&mut ex);
    assert_eq!(
        actions,
        vec![
            Action::EditRequestHeaders(vec![
                HeaderOp::Set("mcp-protocol-version".into(), "2025-06-18".into()),
                HeaderOp::Set("mcp-session-id".into(), "abc".into()),
            ]),
            Action::ResumeRequest
        ]
    );
    assert_eq!(host.session("Staging").as_deref(), Some("abc"));
    let body = r#"{"jsonrpc":"2.0","id":"mmx-1-1","result":{}}"#;
    assert_eq!(
        answer(&mut ex, &mut host, "application/json", body),
        r#"{"jsonrpc":"2.0","id":7,"result":{}}"#
    );
}

#[test]
fn a_session_opened_twice_keeps_the_first_and_deletes_the_other() {
    let gw = gateway(false);
    let mut host = FakeHost::default();
    let mut ex = Exchange::new();
    legacy_call(&mut ex, &mut host, json!(7), "Prod");
    let init = session::Answer {
        status: Some(200),
        content_type: Some("text/event-stream"),
        session_id: Some("mine"),
        body: b"data: {\"jsonrpc\":\"2.0\",\"id\":\"meshmux-session-init\",\"result\":{\"protocolVersion\":\"2025-06-18\"}}\n\n",
    };
    ex.handle_side_call_answer(&gw, &mut host, 1, &init);
    host.store("Prod", Some("theirs"));
    let accepted = accepted();
    ex.handle_side_call_answer(&gw, &mut host, 2, &accepted);
    let ops = request_header_ops(&drain(&mut ex));
    assert!(ops.contains(&HeaderOp::Set("mcp-session-id".into(), "theirs".into())));
    let delete = host.calls.last().unwrap();
    assert_eq!(
        header(&delete.headers, ":method").as_deref(),
        Some("DELETE")
    );
    assert_eq!(
        header(&delete.headers, "mcp-session-id").as_deref(),
        Some("mine")
    );
}

#[test]
fn an_unreachable_env_is_named_with_its_cause() {
    let gw = gateway(false);
    let cases: [(Option<u16>, &[u8], &str); 4] = [
        (
            Some(503),
            b"no healthy upstream",
            "initialize failed: its backend is failing health checks",
        ),
        (
            Some(504),
            b"upstream request timeout",
            "initialize failed: HTTP 504: upstream request timeout",
        ),
        (
            None,
            b"",
            "no response (the connection was reset or refused)",
        ),
        (Some(200), b"<html>", "the answer to initialize is not JSON"),
    ];
    for (status, body, cause) in cases {
        let mut host = FakeHost::default();
        let mut ex = Exchange::new();
        legacy_call(&mut ex, &mut host, json!(7), "Dev");
        let answer = session::Answer {
            status,
            content_type: Some("text/plain"),
            session_id: None,
            body,
        };
        ex.handle_side_call_answer(&gw, &mut host, 1, &answer);
        let reply = match drain(&mut ex).as_slice() {
            [Action::Reply(r)] => r.body_text(),
            other => panic!("{other:?}"),
        };
        assert!(
            reply.contains("Environment `Dev` is unavailable: "),
            "{reply}"
        );
        assert!(reply.contains(cause), "{reply} should say {cause}");
        assert!(reply.contains(r#""id":7"#));
        assert_eq!(ex.outcome().0, CallOutcome::Error(ErrorType::Upstream));
        assert_eq!(host.session("Dev"), None);
    }
}

#[test]
fn a_lost_session_is_reopened_and_the_call_retried_once() {
    let gw = gateway(false);
    let mut host = FakeHost::with_session("Prod", Some("old"));
    let mut ex = Exchange::new();
    send(
        &mut ex,
        &mut host,
        legacy_head(),
        &call_body(json!("c"), "Prod", json!({})),
    );
    let sent = forwarded_body(&drain(&mut ex));
    let head = ResponseHead {
        status: 404,
        content_type: Some("application/json"),
        session_id: false,
        end_of_stream: false,
    };
    assert_eq!(ex.handle_response_head(&gw, &mut host, head), Flow::Pause);
    assert_eq!(host.session("Prod"), None, "the stale record is dropped");
    assert_eq!(host.last_call().1["method"], json!("initialize"));
    assert_eq!(ex.response_bytes_wanted(10, true), 0);
    assert_eq!(
        ex.handle_response_chunk(&gw, &mut host, 10, true, b""),
        Flow::Pause
    );
    let init = session::Answer {
        status: Some(200),
        content_type: Some("application/json"),
        session_id: Some("new"),
        body: br#"{"jsonrpc":"2.0","id":"meshmux-session-init","result":{"protocolVersion":"2025-06-18"}}"#,
    };
    ex.handle_side_call_answer(&gw, &mut host, 1, &init);
    ex.handle_side_call_answer(
        &gw,
        &mut host,
        2,
        &session::Answer {
            status: Some(202),
            ..Default::default()
        },
    );
    let (_, retried) = host.last_call();
    assert_eq!(retried, sent, "the same body goes out again");
    let done = format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"content":[]}}}}"#,
        sent["id"]
    );
    ex.handle_side_call_answer(
        &gw,
        &mut host,
        3,
        &session::Answer {
            status: Some(200),
            content_type: Some("application/json"),
            session_id: None,
            body: done.as_bytes(),
        },
    );
    match drain(&mut ex).as_slice() {
        [
            Action::ReplaceResponse { size: 10, reply },
            Action::ResumeResponse,
        ] => {
            let v: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(v["id"], json!("c"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ex.outcome().0, CallOutcome::Success);
}

/// Sends a call in session `s` of Prod and answers it with `status` and `body` (cut in two);
/// `probe` is the status the session's `ping` gets, if one is sent. Returns the reply text.
fn refused(status: u16, body: &str, probe: Option<u16>) -> (String, FakeHost) {
    let gw = gateway(false);
    let mut host = FakeHost::with_session("Prod", Some("s"));
    let mut ex = Exchange::new();
    legacy_call(&mut ex, &mut host, json!(3), "Prod");
    let head = ResponseHead {
        status,
        content_type: Some("application/json"),
        session_id: false,
        end_of_stream: false,
    };
    assert_eq!(ex.handle_response_head(&gw, &mut host, head), Flow::Pause);
    if let Some(p) = probe {
        let (_, ping) = host.last_call();
        assert_eq!(ping["method"], json!("ping"));
        let token = host.next_token;
        // The probe answers before the refused body is complete.
        ex.handle_side_call_answer(
            &gw,
            &mut host,
            token,
            &session::Answer {
                status: Some(p),
                ..Default::default()
            },
        );
    }
    assert_eq!(ex.response_bytes_wanted(body.len(), false), 0);
    assert_eq!(
        ex.handle_response_chunk(&gw, &mut host, 1, false, b""),
        Flow::Pause
    );
    let n = ex.response_bytes_wanted(body.len(), true);
    ex.handle_response_chunk(&gw, &mut host, body.len(), true, &body.as_bytes()[..n]);
    let text = match drain(&mut ex).as_slice() {
        [Action::ReplaceResponse { reply, .. }] => {
            let v: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(v["id"], json!(3));
            assert_eq!(v["result"]["isError"], json!(true));
            v["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        }
        [] => String::new(),
        other => panic!("{other:?}"),
    };
    (text, host)
}

#[test]
fn failures_become_tool_errors_and_never_reset_the_session() {
    for (status, body, probe, expected) in [
        (
            400,
            r#"{"jsonrpc":"2.0","id":"x","error":{"code":-32602,"message":"bad progressToken"}}"#,
            Some(200),
            "Environment `Prod` rejected the call: HTTP 400: bad progressToken",
        ),
        (
            503,
            "upstream connect error",
            None,
            "Environment `Prod` is unavailable: HTTP 503: upstream connect error",
        ),
        (
            401,
            "",
            None,
            "Environment `Prod` rejected the call: HTTP 401",
        ),
    ] {
        let (text, host) = refused(status, body, probe);
        assert_eq!(text, expected);
        assert_eq!(
            host.calls.len(),
            usize::from(probe.is_some()),
            "{status}: nothing but the probe"
        );
        assert_eq!(host.session("Prod").as_deref(), Some("s"));
    }
}

#[test]
fn a_400_from_a_session_that_is_gone_reopens_it() {
    let (text, host) = refused(
        400,
        r#"{"error":{"message":"No valid session ID"}}"#,
        Some(400),
    );
    assert_eq!(text, "", "still waiting for the new session");
    assert_eq!(host.session("Prod"), None);
    assert_eq!(host.last_call().1["method"], json!("initialize"));
}

/// A 2026-07-28 call of `search_logs` in Prod (session `s`) by a client declaring
/// `capabilities` (and `log_level`), answered with the SSE `events` (the backend's request id
/// `0`, its answer to the call `ANSWER`), cut in two. Returns the actions of the answer.
fn modern_call(
    capabilities: Value,
    log_level: Option<&str>,
    events: &[Value],
) -> (Vec<Action>, FakeHost) {
    let gw = gateway(false);
    let mut host = FakeHost::with_session("Prod", Some("s"));
    let mut ex = Exchange::new();
    let mut meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": capabilities});
    if let Some(level) = log_level {
        meta["io.modelcontextprotocol/logLevel"] = json!(level);
    }
    send(
        &mut ex,
        &mut host,
        modern_head("search_logs", "Prod"),
        &call_body(json!(1), "Prod", meta),
    );
    let actions = drain(&mut ex);
    let sent = forwarded_body(&actions);
    assert!(sent["params"].get("_meta").is_none());
    let ops = request_header_ops(&actions);
    for h in ["mcp-method", "mcp-name", "mcp-param-env"] {
        assert!(ops.contains(&HeaderOp::Remove(h.into())), "{h}");
    }
    let stream: String = events
        .iter()
        .map(|e| {
            format!(
                "data: {}\n\n",
                e.to_string().replace("\"ANSWER\"", &sent["id"].to_string())
            )
        })
        .collect();
    let head = ResponseHead {
        status: 200,
        content_type: Some("text/event-stream"),
        session_id: false,
        end_of_stream: false,
    };
    // Held until the first event is known.
    assert_eq!(ex.handle_response_head(&gw, &mut host, head), Flow::Pause);
    drain(&mut ex);
    let cut = stream.find("\n\n").unwrap();
    assert_eq!(
        ex.handle_response_chunk(&gw, &mut host, cut, false, &stream.as_bytes()[..cut]),
        Flow::Pause
    );
    let mut actions = Vec::new();
    if ex.handle_response_chunk(&gw, &mut host, stream.len(), false, stream.as_bytes())
        == Flow::Continue
    {
        actions.extend(drain(&mut ex));
        ex.handle_response_chunk(&gw, &mut host, 0, true, b"");
    }
    actions.extend(drain(&mut ex));
    (actions, host)
}

fn written(actions: &[Action]) -> Vec<Value> {
    let bytes: Vec<u8> = actions
        .iter()
        .filter_map(|a| match a {
            Action::WriteResponseChunk { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    crate::session::sse_messages(&String::from_utf8(bytes).unwrap())
}

#[test]
fn a_2026_caller_gets_2026_answers() {
    let sampling =
        json!({"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage", "params": {}});
    let log = |level: &str| json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": level, "data": level}});
    let result = json!({"jsonrpc": "2.0", "id": "ANSWER", "result": {"content": []}});

    // A client that declared sampling: the backend's request cannot reach it (2026-07-28 has
    // no server requests on a call's stream), so it is answered for it at once; the result
    // gains `resultType`; log lines it did not ask for are dropped.
    let (actions, host) = modern_call(
        json!({"sampling": {}}),
        None,
        &[sampling.clone(), log("error"), result.clone()],
    );
    assert_eq!(
        written(&actions),
        vec![
            json!({"jsonrpc": "2.0", "id": 1, "result": {"resultType": "complete", "content": []}})
        ]
    );
    let refusal = host.calls.last().unwrap();
    assert_eq!(
        header(&refusal.headers, "mcp-session-id").as_deref(),
        Some("s")
    );
    let (_, body) = host.last_call();
    assert_eq!(body["id"], json!(0));
    assert_eq!(body["error"]["code"], json!(-32601));

    // Log lines at or above the level the request asked for are kept.
    let (actions, _) = modern_call(
        json!({}),
        Some("warning"),
        &[log("info"), log("error"), result.clone()],
    );
    let events = written(&actions);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["params"]["level"], json!("error"));

    // A client that did not declare it gets -32021 and HTTP 400, before anything was sent.
    let (actions, host) = modern_call(json!({}), None, &[sampling, result]);
    match actions.as_slice() {
        [Action::Reply(r)] => {
            assert_eq!(r.status, 400);
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["id"], json!(1));
            assert_eq!(v["error"]["code"], json!(-32021));
            assert_eq!(
                v["error"]["data"]["requiredCapabilities"],
                json!({"sampling": {}})
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(host.last_call().1["error"]["code"], json!(-32601));
}

#[test]
fn server_requests_reach_legacy_callers_and_their_answers_the_backend() {
    let gw = gateway(false);
    let mut host = FakeHost::with_session("Prod", Some("s"));
    let mut ex = Exchange::new();
    send(
        &mut ex,
        &mut host,
        legacy_head(),
        &call_body(json!(1), "Prod", json!({})),
    );
    let sent = forwarded_body(&drain(&mut ex));
    let stream = format!(
        "data: {}\n\n",
        json!({"jsonrpc": "2.0", "id": 4, "method": "elicitation/create", "params": {"message": "?"}}),
    );
    let got = answer(&mut ex, &mut host, "text/event-stream", &stream);
    let asked = &crate::session::sse_messages(&got)[0];
    let me = ids::caller(crate::metrics::ANONYMOUS, Some("client-session"));
    assert_eq!(
        asked["id"],
        json!(ids::server_request("Prod", &me, &json!(4)))
    );
    let _ = sent;
    // Another client cannot answer it.
    let mut other = Exchange::new();
    let body =
        json!({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept"}}).to_string();
    let mut head = legacy_head();
    head.client_session = Some("someone-else".into());
    send(&mut other, &mut host, head, body.as_bytes());
    assert!(matches!(drain(&mut other).as_slice(), [Action::Reply(r)] if r.status == 202));
    // The caller's answer, on a new request, goes to that env's session with the backend's id.
    let mut reply = Exchange::new();
    let body =
        json!({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "decline"}}).to_string();
    assert_eq!(
        send(&mut reply, &mut host, legacy_head(), body.as_bytes()),
        Flow::Continue
    );
    let actions = drain(&mut reply);
    assert_eq!(
        forwarded_body(&actions),
        json!({"jsonrpc": "2.0", "id": 4, "result": {"action": "decline"}})
    );
    assert!(actions.contains(&Action::Route("Prod".into())));
    assert!(
        request_header_ops(&actions).contains(&HeaderOp::Set("mcp-session-id".into(), "s".into()))
    );
    assert_eq!(reply.counted(), None, "answers are not tool calls");
    let head = ResponseHead {
        status: 202,
        content_type: None,
        session_id: false,
        end_of_stream: true,
    };
    assert_eq!(
        reply.handle_response_head(&gw, &mut host, head),
        Flow::Continue
    );
    assert!(drain(&mut reply).is_empty());
}

#[test]
fn local_answers_and_denials_are_replies() {
    let mut host = FakeHost {
        caller: Some(Caller::Roles(vec!["staging-reader".into()])),
        ..FakeHost::default()
    };
    let gw = crate::gateway::tests::gateway(true);
    let mut ex = Exchange::new();
    assert_eq!(
        ex.handle_request_head(&gw, &mut host, legacy_head(), false),
        Flow::Pause
    );
    let body = call_body(json!(2), "Prod", json!({}));
    assert_eq!(
        ex.handle_request_body(&gw, &mut host, body.len(), true, &body),
        Flow::Pause
    );
    match drain(&mut ex).as_slice() {
        [Action::Reply(r)] => assert!(
            r.body_text().contains("Unknown tool") || r.body_text().contains("Access denied"),
            "{}",
            r.body_text()
        ),
        other => panic!("{other:?}"),
    }
    // Not the MCP path: untouched.
    let mut other = Exchange::new();
    let head = Request::from_headers([(":method", "GET"), (":path", "/elsewhere")]);
    assert_eq!(
        other.handle_request_head(&gw, &mut host, head, true),
        Flow::Continue
    );
    assert!(drain(&mut other).is_empty());
    // A body over the limit is refused while it is still arriving.
    let mut big = Exchange::new();
    big.handle_request_head(&gw, &mut host, legacy_head(), false);
    assert_eq!(
        big.handle_request_body(&gw, &mut host, 5000, false, b""),
        Flow::Pause
    );
    assert!(matches!(drain(&mut big).as_slice(), [Action::Reply(r)] if r.status == 413));
}

#[test]
fn a_cancellation_reaches_the_session_that_runs_the_call() {
    let gw = gateway(false);
    let mut host = FakeHost::with_session("Prod", Some("s"));
    let mut call = Exchange::new();
    send(
        &mut call,
        &mut host,
        legacy_head(),
        &call_body(json!(9), "Prod", json!({})),
    );
    let sent = forwarded_body(&drain(&mut call));
    let cancel = |host: &mut FakeHost, session: &str| {
        let mut ex = Exchange::new();
        let mut head = legacy_head();
        head.client_session = Some(session.into());
        let body = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                          "params": {"requestId": 9, "reason": "user"}})
        .to_string();
        send(&mut ex, host, head, body.as_bytes());
        drain(&mut ex)
    };
    // Another client's cancellation of "its" id 9 touches nothing.
    assert!(matches!(cancel(&mut host, "other").as_slice(), [Action::Reply(r)] if r.status == 202));
    let actions = cancel(&mut host, "client-session");
    let body = forwarded_body(&actions);
    assert_eq!(body["method"], json!("notifications/cancelled"));
    assert_eq!(body["params"]["requestId"], sent["id"]);
    assert!(actions.contains(&Action::Route("Prod".into())));
    // Once the call is over, there is nothing left to cancel.
    call.handle_end(&mut host);
    assert!(
        matches!(cancel(&mut host, "client-session").as_slice(), [Action::Reply(r)] if r.status == 202)
    );
    let _ = gw;
}

#[test]
fn initialize_gives_the_client_a_session_id_of_its_own() {
    let mut host = FakeHost::default();
    let mut ex = Exchange::new();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
    send(&mut ex, &mut host, legacy_head(), body);
    match drain(&mut ex).as_slice() {
        [Action::Reply(r)] => assert!(
            r.headers
                .iter()
                .any(|(k, v)| *k == "mcp-session-id" && v == "mmx-1-1")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_foreign_origin_is_refused_before_anything_else() {
    let gw = gateway(false);
    let mut host = FakeHost::default();
    let mut ex = Exchange::new();
    let head = Request::from_headers([
        (":method", "POST"),
        (":path", "/mcp"),
        (":authority", "evil.example.com"),
        ("origin", "http://evil.example.com"),
        ("content-type", "application/json"),
    ]);
    assert_eq!(
        ex.handle_request_head(&gw, &mut host, head, false),
        Flow::Pause
    );
    assert!(matches!(drain(&mut ex).as_slice(), [Action::Reply(r)] if r.status == 403));
}

#[test]
fn a_replacement_head_clears_what_belonged_to_the_answer_it_replaces() {
    let reply = crate::reply::error(502, &Value::Null, -32603, "down");
    let ops = replacement_head(&reply);
    assert_eq!(ops[0], HeaderOp::Set(":status".into(), "502".into()));
    assert_eq!(
        ops[1],
        HeaderOp::Set("content-length".into(), reply.body.len().to_string())
    );
    for gone in ["content-encoding", "etag", "mcp-session-id"] {
        assert!(ops.contains(&HeaderOp::Remove(gone.into())), "{gone}");
    }
    assert!(ops.contains(&HeaderOp::Set(
        "content-type".into(),
        "application/json".into()
    )));
}

#[test]
fn a_plugin_config_that_is_empty_or_not_json_is_refused_with_the_reason() {
    let err = |b: &[u8]| Gateway::from_plugin_json(b).err().unwrap_or_default();
    assert!(err(b"").contains("empty"));
    assert!(err(b"{").contains("not a valid FilterConfig"));
}

#[path = "request_tests.rs"]
mod request;
