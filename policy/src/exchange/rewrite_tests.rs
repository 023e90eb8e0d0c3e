use serde_json::{Value, json};

use super::*;

fn edits(modern: bool) -> Edits {
    Edits {
        env: "Prod".into(),
        bind: "c0".into(),
        original_id: json!(1),
        forwarded_id: Some("mmx-1-9".into()),
        progress: Some(("mmx-1-9.p".into(), json!("tok"))),
        result_type: modern,
        relay_server_requests: !modern,
        capabilities: modern.then(|| json!({"sampling": {}}).as_object().cloned().unwrap()),
        log_level: None,
        result: Default::default(),
    }
}

/// Feeds `body` cut at every position (and byte by byte) and checks the output is the same.
fn through(edits: Edits, sse: bool, body: &str) -> (String, Vec<Refused>) {
    let whole = {
        let mut r = Rewrite::new(edits.clone(), sse);
        let (out, refused) = r.feed(body.as_bytes(), true);
        (String::from_utf8(out).unwrap(), refused)
    };
    for cut in 0..=body.len() {
        let mut r = Rewrite::new(edits.clone(), sse);
        let (a, ra) = r.feed(&body.as_bytes()[..cut], false);
        let (b, rb) = r.feed(&body.as_bytes()[cut..], true);
        let joined = String::from_utf8([a, b].concat()).unwrap();
        assert_eq!(joined, whole.0, "cut at {cut}");
        assert_eq!(ra.len() + rb.len(), whole.1.len());
    }
    let mut r = Rewrite::new(edits, sse);
    let mut bytes = Vec::new();
    for (i, b) in body.as_bytes().iter().enumerate() {
        bytes.extend(r.feed(&[*b], i + 1 == body.len()).0);
    }
    assert_eq!(String::from_utf8(bytes).unwrap(), whole.0, "byte by byte");
    whole
}

#[test]
fn json_answers_get_the_callers_id_back() {
    let check = |modern: bool, body: &str, expected: Value| {
        let (out, refused) = through(edits(modern), false, body);
        assert!(refused.is_empty());
        let got: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
        assert_eq!(got, expected, "{body}");
    };
    check(
        false,
        r#"{"jsonrpc":"2.0","id":"mmx-1-9","result":{"content":[]}}"#,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}}),
    );
    check(
        false,
        r#" { "result" : { "id" : "inner" } , "id" : "mmx-1-9" , "jsonrpc":"2.0" } "#,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"id": "inner"}}),
    );
    check(
        false,
        r#"{"jsonrpc":"2.0","id":12345,"error":{"code":-32602,"message":"bad \"id\": x"}}"#,
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad \"id\": x"}}),
    );
    check(
        false,
        r#"{"id":"a\"b\\","result":{}}"#,
        json!({"id": 1, "result": {}}),
    );
    check(
        true,
        r#"{"jsonrpc":"2.0","id":"mmx-1-9","result":{"content":[{"type":"text","text":"{\"result\":{}}"}]}}"#,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"resultType": "complete",
            "content": [{"type": "text", "text": "{\"result\":{}}"}]}}),
    );
    check(
        true,
        r#"{"jsonrpc":"2.0","id":"mmx-1-9","result":{ }}"#,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"resultType": "complete"}}),
    );
    check(
        true,
        r#"{"jsonrpc":"2.0","id":"mmx-1-9","error":{"code":1,"message":"m","data":{"result":{}}}}"#,
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "m", "data": {"result": {}}}}),
    );
}

fn events(out: &str) -> Vec<Value> {
    crate::session::sse_messages(out)
}

#[test]
fn sse_answers_are_rewritten_event_by_event() {
    let body = concat!(
        ": keep-alive\n\n",
        "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"mmx-1-9.p\",\"progress\":1}}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"someone-else\",\"progress\":1}}\r\n\r\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"elicitation/create\",\"params\":{}}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":0}}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\n",
        "data: \"id\":\"mmx-1-9\",\"result\":{\"content\":[]}}\n\n",
    );
    let (out, refused) = through(edits(false), true, body);
    assert!(refused.is_empty());
    assert!(
        out.starts_with(": keep-alive\n\nevent: message\nid: 7\ndata: "),
        "{out}"
    );
    let got = events(&out);
    assert_eq!(got[0]["params"]["progressToken"], json!("tok"));
    assert_eq!(got[1]["params"]["progressToken"], json!("someone-else"));
    assert_eq!(got[2]["id"], json!("mmx-s:Prod:c0:0"));
    assert_eq!(got[3]["params"]["requestId"], json!("mmx-s:Prod:c0:0"));
    assert_eq!(
        got[4],
        json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    );

    // A 2026-07-28 caller takes no server requests: they are answered for it instead.
    let (out, refused) = through(edits(true), true, body);
    assert_eq!(
        refused,
        vec![Refused {
            id: json!(0),
            method: "elicitation/create".into(),
            missing: Some("elicitation".into()),
        }]
    );
    let got = events(&out);
    assert_eq!(got.len(), 4, "{out}");
    assert_eq!(got[3]["result"]["resultType"], json!("complete"));
}

#[test]
fn oversized_events_end_in_an_error_for_the_caller() {
    let mut r = Rewrite::new(edits(false), true);
    let big = vec![b'x'; MAX_EVENT_BYTES + 1];
    let (out, _) = r.feed(b"data: ", false);
    assert!(out.is_empty());
    let (out, _) = r.feed(&big, false);
    let got = events(&String::from_utf8(out).unwrap());
    assert_eq!(got[0]["id"], json!(1));
    assert!(
        got[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );
    assert!(r.feed(b"\n\n", true).0.is_empty());
}

/// Found by the `scanners` fuzz target: a hostile or odd backend must still give the caller
/// valid JSON with its own id.
#[test]
fn json_answers_with_odd_ids_and_escaped_keys() {
    let check = |body: &str, expected: Value| {
        let (out, _) = through(edits(false), false, body);
        let got: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
        assert_eq!(got, expected, "{body}");
    };
    // An id that is an object or an array is replaced whole (it was cut at its first `}`).
    check(
        r#"{"id":{"a":[1,{"b":"}]"}]},"result":{}}"#,
        json!({"id": 1, "result": {}}),
    );
    check(
        r#"{"id": [ ] ,"result":{}}"#,
        json!({"id": 1, "result": {}}),
    );
    // A key written with escapes is the same key to every JSON parser.
    check(
        r#"{"i\u0064":"mmx-1-9","result":{}}"#,
        json!({"id": 1, "result": {}}),
    );
    let (out, _) = through(edits(true), false, r#"{"id":"mmx-1-9","r\u0065sult":{}}"#);
    let got: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    assert_eq!(got, json!({"id": 1, "result": {"resultType": "complete"}}));
}

/// Found by the `scanners` fuzz target: SSE ends a line at CR, LF or CRLF, and a client skips a
/// leading byte-order mark; an event the rewrite did not see as one reached the caller with
/// the gateway's id.
#[test]
fn sse_line_ends_and_bom_as_clients_read_them() {
    for body in [
        "data: {\"jsonrpc\":\"2.0\",\"id\":\"mmx-1-9\",\"result\":{}}\r\r",
        "data: \rdata: {\"jsonrpc\":\"2.0\",\"id\":\"mmx-1-9\",\"result\":{}}\r\n\r\n",
        "\u{feff}data: {\"jsonrpc\":\"2.0\",\"id\":\"mmx-1-9\",\"result\":{}}\n\n",
    ] {
        let (out, _) = through(edits(false), true, body);
        assert!(!out.contains("mmx-1-9"), "{body:?} gave {out:?}");
        assert!(out.contains(r#""id":1"#), "{body:?} gave {out:?}");
    }
}

/// A `resources/read` answer through a gateway with several backends: its URIs are the ones
/// the caller read (naming the backend), the id is the caller's, and a 2026-07-28 caller gets
/// the caching hints; the JSON answer is held whole and cut anywhere gives the same.
#[test]
fn read_results_get_their_uris_wrapped_and_caching_hints() {
    let mut e = edits(true);
    e.result = crate::gateway::ResultEdit {
        wrap_uris: Some("obs.Prod".into()),
        caching: true,
    };
    let body = r#"{"jsonrpc":"2.0","id":"mmx-1-9","result":{"contents":[{"uri":"file:///a.md","text":"x"},{"uri":"file:///b.png","blob":"AA=="}]}}"#;
    let (out, _) = through(e.clone(), false, body);
    let got: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        got,
        json!({"jsonrpc": "2.0", "id": 1, "result": {
            "contents": [
                {"uri": "meshmux://obs.Prod/file:///a.md", "text": "x"},
                {"uri": "meshmux://obs.Prod/file:///b.png", "blob": "AA=="}
            ],
            "resultType": "complete", "ttlMs": 0, "cacheScope": "private"}})
    );
    // The same over SSE.
    let sse = format!("event: message\ndata: {body}\n\n");
    let (out, _) = through(e.clone(), true, &sse);
    assert!(out.contains("meshmux://obs.Prod/file:///a.md") && out.contains(r#""ttlMs":0"#));
    // An error answer: only the id.
    let (out, _) = through(
        e.clone(),
        false,
        r#"{"jsonrpc":"2.0","id":"mmx-1-9","error":{"code":-32002,"message":"nope"}}"#,
    );
    let got: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["id"], json!(1));
    assert_eq!(got["error"]["code"], json!(-32002));
}

/// An answer too big to hold streams on with the id restored (its URIs stay the backend's).
#[test]
fn a_read_result_too_big_to_hold_streams_on() {
    let mut e = edits(false);
    e.result.wrap_uris = Some("obs.Prod".into());
    let mut r = Rewrite::new(e, false);
    let head =
        br#"{"jsonrpc":"2.0","id":"mmx-1-9","result":{"contents":[{"uri":"file:///a","text":""#;
    let mut out = r.feed(head, false).0;
    assert!(out.is_empty(), "held until it ends or grows too big");
    let filler = vec![b'x'; MAX_EVENT_BYTES];
    out.extend(r.feed(&filler, false).0);
    out.extend(r.feed(br#""}]}}"#, true).0);
    assert_eq!(
        out.len(),
        head.len() + filler.len() + 5 - "\"mmx-1-9\"".len() + 1
    );
    let got: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(got["id"], json!(1));
    assert_eq!(got["result"]["contents"][0]["uri"], json!("file:///a"));
}
