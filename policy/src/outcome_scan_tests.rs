use super::*;

/// Scans `body` whole, then split at every position into two chunks, then one byte at a time,
/// and checks that every way of cutting it gives `expected`, with the framing given and
/// sniffed.
fn check(sse: bool, body: &str, expected: Option<Verdict>) {
    check_with(body, expected, &|| {
        if sse {
            OutcomeScan::sse()
        } else {
            OutcomeScan::json()
        }
    });
    check_with(body, expected, &OutcomeScan::sniffing);
}

fn check_with(body: &str, expected: Option<Verdict>, new: &dyn Fn() -> OutcomeScan) {
    let bytes = body.as_bytes();
    let mut whole = new();
    whole.feed(bytes);
    assert_eq!(whole.verdict(), expected, "whole: {body}");
    for cut in 0..=bytes.len() {
        let mut s = new();
        s.feed(&bytes[..cut]);
        s.feed(&bytes[cut..]);
        assert_eq!(s.verdict(), expected, "cut at {cut}: {body}");
    }
    let mut s = new();
    for b in bytes {
        s.feed(std::slice::from_ref(b));
    }
    assert_eq!(s.verdict(), expected, "bytewise: {body}");
}

fn json(body: &str, expected: Option<Verdict>) {
    check(false, body, expected);
}

fn sse(body: &str, expected: Option<Verdict>) {
    check(true, body, expected);
}

use Verdict::{JsonRpcError, Success, ToolError};

#[test]
fn json_answers() {
    json(
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#,
        Some(Success),
    );
    json(
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#,
        Some(ToolError),
    );
    json(
        r#"{"result" : { "isError" : false , "content": [] }, "id": "a", "jsonrpc": "2.0"}"#,
        Some(Success),
    );
    json(
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"unknown tool"}}"#,
        Some(JsonRpcError),
    );
    // Pretty-printed, isError first.
    json(
        "{\n  \"id\": 1,\n  \"result\": {\n    \"isError\": true,\n    \"content\": []\n  }\n}\n",
        Some(ToolError),
    );
    // A result that is not an object still answered the call.
    json(r#"{"id":1,"result":null}"#, Some(Success));
}

#[test]
fn only_the_result_objects_own_is_error_counts() {
    // In a tool's text output, as a string.
    json(
        r#"{"id":1,"result":{"content":[{"type":"text","text":"{\"isError\": true, \"error\": {}}"}]}}"#,
        Some(Success),
    );
    // Nested in structured content.
    json(
        r#"{"id":1,"result":{"structuredContent":{"isError":true,"error":{"x":1}},"content":[]}}"#,
        Some(Success),
    );
    // Inside an array of the result.
    json(
        r#"{"id":1,"result":{"content":[{"isError":true}],"items":["isError",true]}}"#,
        Some(Success),
    );
    // A string value that mentions the key.
    json(r#"{"id":1,"result":{"note":"isError"}}"#, Some(Success));
    // `"error": null` is no JSON-RPC error; a string error neither.
    json(r#"{"id":1,"error":null,"result":{}}"#, Some(Success));
    // An escaped key is not recognized.
    json(r#"{"id":1,"result":{"is\u0045rror":true}}"#, Some(Success));
    // Keys that merely start like ours.
    json(
        r#"{"id":1,"resultat":{"isError":true},"errors":{"a":1},"result":{"isErrorX":true}}"#,
        Some(Success),
    );
}

#[test]
fn incomplete_or_foreign_bodies_give_no_verdict() {
    json("", None);
    json(r#"{"id":1,"result":{"content":["#, None);
    json("<html>oops</html>", None);
    json("  \n\r\n  ", None);
    json(
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"result":{}}}"#,
        None,
    );
    json(r#"[1,2,{"a":"b"}]"#, None);
}

#[test]
fn sse_answers() {
    sse(
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n",
        Some(Success),
    );
    sse(
        "event: message\r\ndata:{\"id\":1,\"result\":{\"isError\":true}}\r\n\r\n",
        Some(ToolError),
    );
    sse(
        "id: 7\nevent: message\ndata: {\"id\":1,\"error\":{\"code\":-32000,\"message\":\"x\"}}\n\n",
        Some(JsonRpcError),
    );
    // Progress notifications (with their own `result`-looking params) come first.
    sse(
        concat!(
            ": keep-alive\n\n",
            "event: message\ndata: {\"method\":\"notifications/progress\",\"params\":{\"progress\":1,\"result\":{\"isError\":true}}}\n\n",
            "event: message\ndata: {\"method\":\"notifications/message\",\"params\":{\"data\":\"error\"}}\n\n",
            "event: message\ndata: {\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"done\"}],\"isError\":true}}\n\n",
        ),
        Some(ToolError),
    );
    // A JSON document split over several data lines, and a bare CR line ending.
    sse(
        "data: {\"id\":1,\ndata: \"result\":\rdata: {\"isError\":\ndata:  true}}\n\n",
        Some(ToolError),
    );
    // An event cut short leaves the next one a fresh document.
    sse(
        "data: {\"id\":1,\"result\":{\"content\":[\n\ndata: {\"id\":1,\"result\":{\"isError\":true}}\n\n",
        Some(ToolError),
    );
    // Other fields named like data are ignored.
    sse(
        "datum: {\"id\":1,\"error\":{}}\ndata2: {\"id\":1,\"error\":{}}\n\n",
        None,
    );
    sse("", None);
    sse("event: message\ndata: {\"id\":1,\"result\":{", None);
}

#[test]
fn sniffing_skips_leading_whitespace() {
    let mut s = OutcomeScan::sniffing();
    s.feed(b"\r\n  ");
    s.feed(b"\n{\"id\":1,\"result\":{\"isError\":true}}");
    assert_eq!(s.verdict(), Some(ToolError));
    let mut s = OutcomeScan::sniffing();
    s.feed(b"\n\nevent: message\ndata: {\"id\":1,\"error\":{}}\n\n");
    assert_eq!(s.verdict(), Some(JsonRpcError));
}

#[test]
fn content_types_choose_the_framing() {
    let kind = |ct| OutcomeScan::for_content_type(ct).map(|s| s.sse.is_some());
    assert_eq!(kind(Some("application/json")), Some(false));
    assert_eq!(kind(Some("Application/JSON; charset=utf-8")), Some(false));
    assert_eq!(kind(Some("text/event-stream")), Some(true));
    assert_eq!(kind(Some("text/html")), None);
    assert_eq!(kind(None), None);
}

#[test]
fn deep_nesting_and_large_strings_are_fine() {
    let deep = format!(
        "{{\"id\":1,\"result\":{{\"structuredContent\":{}1{},\"isError\":true}}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    json(&deep, Some(ToolError));
    let big = format!(
        "{{\"id\":1,\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{}\"}}]}}}}",
        "x\\\"".repeat(2000)
    );
    let mut s = OutcomeScan::json();
    for chunk in big.as_bytes().chunks(1000) {
        s.feed(chunk);
    }
    assert_eq!(s.verdict(), Some(Success));
}
