//! Backends come and go: a stateless backend just works, a backend that is down fails fast
//! for its env only, and a restarted backend (its sessions gone) is re-initialized.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{Backend, Gateway, is_error, result_text};

#[test]
fn stateless_and_json_answering_backends_just_work() -> anyhow::Result<()> {
    let edge = Backend::demo("Edge").stateless().record().start()?;
    let plain = Backend::demo("Plain")
        .stateless()
        .json_response()
        .record()
        .start()?;
    let gw = Gateway::builder()
        .env("Edge", &edge)
        .env("Plain", &plain)
        .start()?;

    for env in ["Edge", "Plain", "Edge"] {
        let resp = gw.call("list_deployments", json!({"env": env, "service": "api"}))?;

        let result = resp.result()?;
        assert!(!is_error(&result), "{env}: {result:#}");
        assert!(result_text(&result).starts_with(&format!("[{env}] list_deployments")));
        if env == "Plain" {
            assert!(!resp.is_sse(), "--json-response answered SSE");
        }
    }
    assert_eq!(edge.wait_for_records(2)?.len(), 2);
    assert_eq!(plain.wait_for_records(1)?.len(), 1);
    Ok(())
}

/// Calls `env` on a gateway whose backend for it is down: a tool error naming the env, fast.
fn assert_fails_fast(gw: &Gateway, env: &str) {
    let start = Instant::now();
    let resp = gw
        .call("search_logs", json!({"env": env, "query": "x"}))
        .unwrap();
    let took = start.elapsed();

    assert!(
        took < Duration::from_secs(5),
        "{env}: the failure took {took:?}"
    );
    let result = resp
        .result()
        .unwrap_or_else(|e| panic!("{env}: HTTP {}: {e:#}", resp.status));
    assert!(is_error(&result), "{env}: {result:#}");
    assert!(
        result_text(&result).contains(env),
        "the error must name the env: {result:#}"
    );
}

#[test]
fn a_backend_that_is_down_fails_its_env_fast_and_the_other_envs_still_work() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let mut staging = Backend::demo("Staging").start()?;
    let mut dev = Backend::demo("Dev").start()?;
    let gw = Gateway::builder()
        .env("Prod", &prod)
        .env("Staging", &staging)
        .env("Dev", &dev)
        .start()?;
    // Staging has a backend session when it goes away; Dev never had one.
    let staging_call = json!({"env": "Staging", "query": "x"});
    assert!(!is_error(&gw.call_tool("search_logs", staging_call)?));

    staging.stop();
    dev.stop();

    for _ in 0..2 {
        assert_fails_fast(&gw, "Staging");
        assert_fails_fast(&gw, "Dev");
    }
    let fine = gw.call_tool("search_logs", json!({"env": "Prod", "query": "x"}))?;
    assert!(
        result_text(&fine).starts_with("[Prod] search_logs"),
        "{fine:#}"
    );
    Ok(())
}

#[test]
fn a_restarted_backend_is_reinitialized_and_the_next_call_succeeds() -> anyhow::Result<()> {
    let mut prod = Backend::demo("Prod").record().start()?;
    let gw = Gateway::builder().env("Prod", &prod).start()?;
    let call = || gw.call_tool("list_deployments", json!({"env": "Prod", "service": "api"}));
    assert!(!is_error(&call()?));

    prod.restart()?;
    let after = call()?;

    assert!(!is_error(&after), "{after:#}");
    assert!(
        result_text(&after).starts_with("[Prod] list_deployments"),
        "{after:#}"
    );
    let records = prod.wait_for_records(2)?;
    let sessions: Vec<_> = records.iter().map(|r| r.header("mcp-session-id")).collect();
    assert!(sessions[0].is_some(), "no backend session: {records:#?}");
    assert!(sessions[1].is_some(), "no backend session: {records:#?}");
    assert_ne!(
        sessions[0], sessions[1],
        "the call after the restart reused a dead session"
    );
    Ok(())
}

#[test]
fn a_backend_that_comes_back_is_used_again() -> anyhow::Result<()> {
    let mut dev = Backend::demo("Dev").start()?;
    let gw = Gateway::builder().env("Dev", &dev).start()?;
    let call = || gw.call_tool("search_logs", json!({"env": "Dev", "query": "x"}));
    assert!(!is_error(&call()?));

    dev.stop();
    assert!(is_error(&call()?));
    dev.restart()?;

    let back = call()?;
    assert!(!is_error(&back), "{back:#}");
    Ok(())
}

#[test]
fn concurrent_first_calls_share_the_envs_backend_session() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").record().start()?;
    let staging = Backend::demo("Staging").record().start()?;
    let gw = Gateway::builder()
        .env("Prod", &prod)
        .env("Staging", &staging)
        .start()?;

    // 24 calls at once, before any backend session exists, over Envoy's two workers.
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..24)
            .map(|i| {
                let env = if i % 2 == 0 { "Prod" } else { "Staging" };
                let gw = &gw;
                s.spawn(move || {
                    let args = json!({"env": env, "query": format!("q{i}")});
                    (env, gw.call_tool("search_logs", args))
                })
            })
            .collect();
        for call in calls {
            let (env, result) = call.join().unwrap();
            let result = result.unwrap();
            assert!(
                result_text(&result).starts_with(&format!("[{env}] search_logs")),
                "{result:#}"
            );
        }
    });

    for backend in [&prod, &staging] {
        let records = backend.wait_for_records(12)?;
        let mut sessions: Vec<_> = records
            .iter()
            .map(|r| r.header("mcp-session-id").unwrap_or("none").to_owned())
            .collect();
        sessions.sort();
        sessions.dedup();
        // One session per env; a race between the two workers may open a second one.
        assert!(sessions.len() <= 2, "{}: {sessions:?}", backend.env());
        assert!(!sessions.contains(&"none".to_owned()), "{}", backend.env());
    }
    Ok(())
}
