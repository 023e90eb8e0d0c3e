//! Each call goes to the env it names, and arrives there as that env's backend expects it:
//! no `env` argument, none of the client's credentials, the env's own header.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::json;
use tests::fixtures::{CLIENT_TOKEN, ENV_TOKENS, TOKEN_HEADER};
use tests::{OpsEnvs, http, is_error, result_text};

#[test]
fn each_env_is_reached_by_its_own_calls() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    for (i, (env, token)) in ENV_TOKENS.into_iter().enumerate() {
        let body = http::tools_call(
            i as u64 + 1,
            "search_logs",
            &json!({"env": env, "query": format!("timeout in {env}"), "limit": 1}),
        );
        let resp = ops
            .gw
            .post(body)
            .header("authorization", &format!("Bearer {CLIENT_TOKEN}"))
            .send()?;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let result = resp.result()?;
        assert!(!is_error(&result), "{result:#}");
        assert!(
            result_text(&result).starts_with(&format!("[{env}] search_logs")),
            "{result:#}"
        );

        let records = ops.backend(env).wait_for_records(1)?;
        assert_eq!(records.len(), 1, "{env}: {records:#?}");
        let call = &records[0];
        assert!(
            resp.header("mcp-session-id").is_none()
                || resp.header("mcp-session-id") != call.header("mcp-session-id"),
            "{env}: the client saw the backend's session id"
        );
        assert_eq!(call.env, env);
        assert_eq!(call.tool, "search_logs");
        assert_eq!(
            serde_json::Value::Object(call.arguments.clone()),
            json!({"query": format!("timeout in {env}"), "limit": 1}),
            "{env} received other arguments"
        );
        assert_eq!(call.header("authorization"), None, "{env}: {call:#?}");
        assert_eq!(call.header(TOKEN_HEADER), Some(token), "{env}: {call:#?}");
        // A stateful backend saw the gateway's own session, never the client's.
        assert!(call.header("mcp-session-id").is_some(), "{env}: {call:#?}");
        for h in call.headers.values() {
            assert!(
                !h.contains(CLIENT_TOKEN),
                "{env}: the client token leaked: {call:#?}"
            );
        }
    }
    for b in ops.backends() {
        assert_eq!(b.records()?.len(), 1, "{} got another env's call", b.env());
    }
    Ok(())
}

#[test]
fn a_param_only_dev_has_reaches_dev_and_is_stripped_elsewhere() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    for env in ["Dev", "Staging", "Prod"] {
        let result = ops.gw.call_tool(
            "query_metrics",
            json!({"env": env, "metric": "http_requests_total", "window": "5m", "debug": true}),
        )?;
        assert!(!is_error(&result), "{env}: {result:#}");
    }

    let dev = &ops.dev.wait_for_records(1)?[0];
    assert_eq!(dev.arguments.get("debug"), Some(&json!(true)));
    for b in [&ops.staging, &ops.prod] {
        let call = &b.wait_for_records(1)?[0];
        assert_eq!(call.arguments.get("debug"), None, "{}: {call:#?}", b.env());
        assert_eq!(
            call.arguments.get("metric"),
            Some(&json!("http_requests_total"))
        );
    }
    Ok(())
}

#[test]
fn a_tool_only_prod_has_is_refused_elsewhere_and_runs_in_prod() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let refused = ops.gw.call_tool(
        "rollback_deployment",
        json!({"env": "Staging", "service": "api", "version": "1.4.1"}),
    )?;
    let done = ops.gw.call_tool(
        "rollback_deployment",
        json!({"env": "Prod", "service": "api", "version": "1.4.1"}),
    )?;

    assert!(is_error(&refused), "{refused:#}");
    let text = result_text(&refused);
    assert!(text.contains("Prod") && text.contains("Staging"), "{text}");
    assert!(!is_error(&done), "{done:#}");
    assert!(result_text(&done).starts_with("[Prod] rollback_deployment"));
    assert_eq!(ops.prod.wait_for_records(1)?.len(), 1);
    assert!(ops.staging.records()?.is_empty());
    Ok(())
}

#[test]
fn an_unknown_env_is_a_tool_error_listing_the_valid_envs() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let resp = ops
        .gw
        .call("search_logs", json!({"env": "Qa", "query": "x"}))?;

    assert_eq!(resp.status, 200);
    let result = resp.result()?;
    assert!(is_error(&result), "{result:#}");
    let text = result_text(&result);
    for env in ["Qa", "Prod", "Staging", "Dev"] {
        assert!(text.contains(env), "{env} missing from {text:?}");
    }
    assert_eq!(ops.calls_received()?, 0);
    Ok(())
}

#[test]
fn a_missing_env_is_a_tool_error_listing_the_valid_envs() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let resp = ops.gw.call("search_logs", json!({"query": "x"}))?;

    assert_eq!(resp.status, 200);
    let result = resp.result()?;
    assert!(is_error(&result), "{result:#}");
    let text = result_text(&result);
    assert!(text.contains("env"), "{text}");
    for env in ["Prod", "Staging", "Dev"] {
        assert!(text.contains(env), "{env} missing from {text:?}");
    }
    assert_eq!(ops.calls_received()?, 0);
    Ok(())
}

#[test]
fn an_unknown_tool_is_invalid_params() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let resp = ops.gw.call("drop_database", json!({"env": "Prod"}))?;

    let (code, message) = resp.error()?;
    assert_eq!(code, -32602, "{message}");
    assert!(message.contains("drop_database"), "{message}");
    assert_eq!(ops.calls_received()?, 0);
    Ok(())
}

/// Issue 9, finding 6: what a client adds to its request (a query, cookies, forwarding
/// headers, Envoy's control headers, anything custom) never reaches a backend; only the
/// README's allowlist does.
#[test]
fn only_allowlisted_client_headers_and_no_query_reach_a_backend() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;
    let sent = [
        ("cookie", "session=stolen"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-host", "internal.example"),
        ("x-forwarded-proto", "https"),
        ("x-real-ip", "10.0.0.2"),
        ("forwarded", "for=10.0.0.3"),
        ("x-envoy-retry-on", "5xx"),
        ("x-envoy-upstream-rq-timeout-ms", "1"),
        ("x-envoy-internal", "true"),
        ("x-envoy-original-path", "/admin"),
        ("x-tenant", "other"),
        ("accept-encoding", "gzip"),
        ("user-agent", "meshmux-test/1"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    ];
    let mut req = ops
        .gw
        .post(http::tools_call(
            1,
            "search_logs",
            &json!({"env": "Prod", "query": "q", "limit": 1}),
        ))
        .query("tenant=other&debug=1")
        .header("authorization", &format!("Bearer {CLIENT_TOKEN}"));
    for (k, v) in sent {
        req = req.header(k, v);
    }
    let resp = req.send()?;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(!is_error(&resp.result()?));

    let call = &ops.prod.wait_for_records(1)?[0];
    let path = call.path.as_deref().unwrap_or_default();
    assert!(!path.contains('?'), "the query reached the backend: {path}");
    assert!(
        !path.contains("tenant"),
        "the query reached the backend: {path}"
    );
    let allowed = [
        // what the gateway and Envoy set for the backend
        "host",
        "x-forwarded-proto",
        "content-length",
        "accept",
        "mcp-protocol-version",
        "mcp-session-id",
        TOKEN_HEADER,
        // the README's allowlist of the client's own
        "content-type",
        "user-agent",
        "traceparent",
        "tracestate",
        "x-request-id",
    ];
    for name in call.headers.keys() {
        assert!(
            allowed.iter().any(|a| a.eq_ignore_ascii_case(name)),
            "`{name}` reached the backend: {call:#?}"
        );
    }
    assert_eq!(call.header("user-agent"), Some("meshmux-test/1"));
    // Envoy's own, from the connection, never the client's.
    assert_eq!(call.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        call.header("traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    Ok(())
}
