//! Every body that is not one well-formed JSON-RPC object gets its JSON-RPC error and HTTP
//! status from the gateway, and nothing of it reaches a backend.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write as _;

use serde_json::json;
use tests::{OpsEnvs, Response, is_error, result_text};

/// The answer is a JSON-RPC error with `code` and HTTP `status`, and no backend saw a call.
fn assert_refused(ops: &OpsEnvs, resp: &Response, status: u16, code: i64) {
    assert_eq!(resp.status, status, "{}", resp.text());
    let (got, message) = resp.error().unwrap();
    assert_eq!(got, code, "{message}");
    assert!(!message.is_empty());
    assert_eq!(
        ops.calls_received().unwrap(),
        0,
        "a refused request reached a backend"
    );
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_logs","arguments":{"env":"Prod","query":"x"}}}"#;

#[test]
fn get_and_delete_are_method_not_allowed() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    for method in ["GET", "DELETE"] {
        let resp = ops.gw.request(method)?.send()?;

        assert_eq!(resp.status, 405, "{method}: {}", resp.text());
        assert_eq!(resp.header("allow"), Some("POST"), "{method}");
    }
    assert_eq!(ops.calls_received()?, 0);
    Ok(())
}

#[test]
fn a_batch_array_is_an_invalid_request() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let resp = ops.gw.post_json(&format!("[{CALL},{CALL}]"))?;

    assert_refused(&ops, &resp, 400, -32600);
    Ok(())
}

#[test]
fn invalid_json_is_a_parse_error() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    for body in [&CALL[..CALL.len() - 1], "not json", ""] {
        let resp = ops.gw.post_json(body)?;

        assert_refused(&ops, &resp, 400, -32700);
    }
    Ok(())
}

#[test]
fn duplicate_keys_are_refused_at_every_depth() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"search_logs","arguments":{"env":"Prod","query":"x"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_logs","arguments":{"env":"Dev","env":"Prod","query":"x"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query_metrics","name":"search_logs","arguments":{"env":"Prod","query":"x"}}}"#,
        // The same key, once escaped: still a duplicate once decoded.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_logs","arguments":{"env":"Dev","\u0065nv":"Prod","query":"x"}}}"#,
    ] {
        let resp = ops.gw.post_json(body)?;

        assert_refused(&ops, &resp, 400, -32600);
    }
    Ok(())
}

#[test]
fn a_unicode_escaped_method_is_the_method_it_spells() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    // Without `env` it is refused as the tools/call it is, not waved through as an unknown
    // method the filter ignores.
    let no_env = ops.gw.post_json(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"name":"search_logs","arguments":{"query":"x"}}}"#,
    )?;
    let no_env = no_env.result()?;
    assert!(is_error(&no_env), "{no_env:#}");
    assert_eq!(ops.calls_received()?, 0);

    let routed = ops.gw.post_json(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools\u002fcall","params":{"n\u0061me":"search_logs","arguments":{"\u0065nv":"Dev","query":"x"}}}"#,
    )?;
    let routed = routed.result()?;
    assert!(
        result_text(&routed).starts_with("[Dev] search_logs"),
        "{routed:#}"
    );
    let records = ops.dev.wait_for_records(1)?;
    assert_eq!(records[0].arguments.get("env"), None, "{records:#?}");
    assert_eq!(ops.calls_received()?, 1);

    let listed = ops
        .gw
        .post_json(r#"{"jsonrpc":"2.0","id":3,"method":"tools\u002flist"}"#)?
        .result()?;
    assert!(
        listed["tools"].as_array().is_some_and(|t| t.len() == 6),
        "{listed:#}"
    );
    Ok(())
}

#[test]
fn a_body_that_is_not_json_by_content_type_is_unsupported() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let req = ops.gw.post(CALL);
        let req = match content_type {
            Some(ct) => req.header("content-type", ct),
            None => req.without("content-type"),
        };
        let resp = req.send()?;

        assert_refused(&ops, &resp, 415, -32600);
    }
    Ok(())
}

#[test]
fn a_gzip_body_is_unsupported() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(CALL.as_bytes())?;

    let resp = ops
        .gw
        .post(gz.finish()?)
        .header("content-encoding", "gzip")
        .send()?;

    assert_refused(&ops, &resp, 415, -32600);
    Ok(())
}

/// A valid `tools/call` a little over 1 MiB.
fn oversize_call() -> String {
    let big = "x".repeat(1024 * 1024);
    tests::http::tools_call(1, "search_logs", &json!({"env": "Prod", "query": big}))
}

#[test]
fn an_oversize_body_with_a_length_is_too_large() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let resp = ops.gw.post(oversize_call()).send()?;

    assert_refused(&ops, &resp, 413, -32600);
    Ok(())
}

#[test]
fn an_oversize_chunked_body_is_too_large() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let resp = ops.gw.post(oversize_call()).chunked().send()?;

    assert_refused(&ops, &resp, 413, -32600);
    Ok(())
}

#[test]
fn an_unsupported_protocol_version_is_refused() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let resp = ops
        .gw
        .post(CALL)
        .header("mcp-protocol-version", "1999-01-01")
        .send()?;

    assert_refused(&ops, &resp, 400, -32022);
    Ok(())
}

#[test]
fn notifications_are_accepted_and_answered_by_the_gateway() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let resp = ops
        .gw
        .post_json(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)?;

    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(ops.calls_received()?, 0);
    Ok(())
}
