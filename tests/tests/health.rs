//! Health on real Envoy: `/healthz` and `/readyz` on the gateway listener (no token needed),
//! and Envoy's active health checks on env clusters, so a dead env fails fast with the reason
//! while the other envs keep working, and comes back when its backend does.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::fixtures::AuthOps;
use tests::watch::Site;
use tests::{Backend, Gateway, Response, http, is_error, result_text};

fn get(url: &str) -> Response {
    http::Request::new(http::client().unwrap(), "GET", url)
        .unwrap()
        .send()
        .unwrap()
}

/// Waits until Envoy's admin shows `cluster`'s host with (`true`) or without the active
/// health check's failure flag.
fn wait_for_health(gw: &Gateway, cluster: &str, failing: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("{}/clusters", gw.admin_url());
    loop {
        let text = get(&url).text();
        let flags: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{cluster}::")) && l.contains("::health_flags::"))
            .collect();
        let failed = flags.iter().any(|l| l.contains("failed_active_hc"));
        if !flags.is_empty() && failed == failing {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{cluster} never became {}: {flags:?}",
            if failing { "unhealthy" } else { "healthy" }
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn healthz_and_readyz_answer_without_a_token() -> anyhow::Result<()> {
    let auth = AuthOps::start()?;
    let base = format!("http://127.0.0.1:{}", auth.gw().port());

    let live = get(&format!("{base}/healthz"));
    assert_eq!(live.status, 200, "{}", live.text());
    assert_eq!(live.json()?, json!({"status": "ok"}));

    let ready = get(&format!("{base}/readyz"));
    assert_eq!(ready.status, 200, "{}", ready.text());
    let body = ready.json()?;
    assert_eq!(body["status"], "ready", "{body:#}");
    assert_eq!(
        body["manifest"],
        auth.gw().manifest()?["hash"],
        "readiness names the manifest the filter loaded"
    );
    assert_eq!(
        body["envs"],
        json!([
            {"name": "Prod", "state": "ok"},
            {"name": "Staging", "state": "ok"},
            {"name": "Dev", "state": "ok"}
        ])
    );
    assert!(body["tools"].as_u64().unwrap() > 0, "{body:#}");
    // The MCP path still wants a token.
    let anonymous = auth
        .gw()
        .call("search_logs", json!({"env": "Prod", "query": "x"}))?;
    assert_eq!(anonymous.status, 401);
    Ok(())
}

#[test]
fn readyz_reports_an_env_discovery_could_not_reach() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let dead = tests::ports::free_port()?;
    let config = Gateway::builder()
        .env("Prod", &prod)
        .env_url("Gone", &format!("http://127.0.0.1:{dead}/mcp"));
    // Discovery reports the unreachable env (exit 2) and still writes a config that serves.
    let site = Site::new(&config)?;
    let run = site.discover_once()?;
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    let gw = site.gateway(false)?;
    let ready = get(&format!("http://127.0.0.1:{}/readyz", gw.port()));
    assert_eq!(ready.status, 200, "{}", ready.text());
    let envs = ready.json()?["envs"].clone();
    assert_eq!(envs[0], json!({"name": "Prod", "state": "ok"}));
    assert_eq!(envs[1]["name"], "Gone");
    assert_eq!(envs[1]["state"], "unreachable");
    assert!(!envs[1]["reason"].as_str().unwrap().is_empty(), "{envs:#}");
    Ok(())
}

#[test]
fn a_dead_env_fails_fast_with_the_health_check_reason_and_recovers() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let mut staging = Backend::demo("Staging").record().start()?;
    let gw = Gateway::builder()
        .env("Prod", &prod)
        .env("Staging", &staging)
        .env_header("Staging", "X-Env-Token", "staging-secret")
        .start()?;
    let search = |env: &str| json!({"env": env, "query": "x"});
    assert!(!is_error(&gw.call_tool("search_logs", search("Staging"))?));
    wait_for_health(&gw, "env_Staging", false);

    staging.stop();
    wait_for_health(&gw, "env_Staging", true);
    for _ in 0..3 {
        let start = Instant::now();
        let result = gw.call_tool("search_logs", search("Staging"))?;
        let took = start.elapsed();
        assert!(is_error(&result), "{result:#}");
        assert_eq!(
            result_text(&result),
            "Environment `Staging` is unavailable: its backend is failing health checks \
             (Envoy: HTTP 503 no healthy upstream)"
        );
        assert!(took < Duration::from_secs(2), "the failure took {took:?}");
    }
    // The other env keeps working.
    let fine: Value = gw.call_tool("search_logs", search("Prod"))?;
    assert!(
        result_text(&fine).starts_with("[Prod] search_logs"),
        "{fine:#}"
    );

    // The backend comes back: the checks see it and calls go through again.
    staging.restart()?;
    wait_for_health(&gw, "env_Staging", false);
    let back = gw.call_tool("search_logs", search("Staging"))?;
    assert!(!is_error(&back), "{back:#}");
    assert!(
        result_text(&back).starts_with("[Staging] search_logs"),
        "{back:#}"
    );
    Ok(())
}

#[test]
fn readyz_and_metrics_answer_only_the_ops_allow_from_ranges() -> anyhow::Result<()> {
    let backend = Backend::demo("Prod").start()?;
    let start = |ranges: Value| {
        Gateway::builder()
            .env("Prod", &backend)
            .gateway_key("ops_allow_from", ranges)
            .start()
    };

    // Only a documentation range (RFC 5737) may look: this test, on loopback, may not.
    let gw = start(json!(["192.0.2.0/24", "2001:db8::/32"]))?;
    let base = format!("http://127.0.0.1:{}", gw.port());
    for path in ["/readyz", "/metrics"] {
        let resp = get(&format!("{base}{path}"));
        assert_eq!(resp.status, 403, "{path}: {}", resp.text());
        assert!(!resp.text().contains("Prod"), "{path} said too much");
    }
    // Liveness tells nothing and stays open; the MCP path is not affected.
    assert_eq!(get(&format!("{base}/healthz")).status, 200);
    let tools = gw.list_tools()?;
    assert!(tools["tools"].as_array().is_some_and(|t| !t.is_empty()));
    drop(gw);

    // Loopback, as a bare address, may.
    let gw = start(json!(["192.0.2.0/24", "127.0.0.1"]))?;
    let base = format!("http://127.0.0.1:{}", gw.port());
    let ready = get(&format!("{base}/readyz"));
    assert_eq!(ready.status, 200, "{}", ready.text());
    let metrics = get(&format!("{base}/metrics"));
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("envoy_"), "{}", metrics.text());
    Ok(())
}
