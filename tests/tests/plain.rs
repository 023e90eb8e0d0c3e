//! A plain backend (Python's `http.server`: HTTP/1.0, the connection closed after every
//! answer, 501 to `HEAD`) is a live backend: `meshmux check` accepts it, Envoy's health check
//! counts it up, and calls go through the gateway.

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
use tests::plain::PlainBackend;
use tests::{Config, Gateway, http, is_error, result_text};

/// The cluster's health flags in Envoy's admin once the first checks have run: `healthy` or
/// the flags that mark it down.
fn health_after_checks(gw: &Gateway, cluster: &str) -> String {
    let url = format!("{}/clusters", gw.admin_url());
    // Three check intervals (3 s each): a backend the checks refuse is marked down by then.
    let until = Instant::now() + Duration::from_secs(7);
    let client = http::client().unwrap();
    loop {
        let text = http::Request::new(client.clone(), "GET", &url)
            .unwrap()
            .send()
            .unwrap()
            .text();
        let flags = text
            .lines()
            .find(|l| l.starts_with(&format!("{cluster}::")) && l.contains("::health_flags::"))
            .map(|l| l.rsplit("::").next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        if flags.contains("failed_active_hc") || Instant::now() > until {
            return flags;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn meshmux_check_accepts_a_plain_http_server_backend() -> anyhow::Result<()> {
    let prod = PlainBackend::start("Prod")?;

    let run = Config::new().env_url("Prod", &prod.url()).check()?;

    assert_eq!(run.code, Some(0), "{}", run.output());
    let report = run.json()?;
    assert_eq!(report["envs"][0]["status"], "ok", "{report:#}");
    assert_eq!(report["tools"], 2, "{report:#}");
    Ok(())
}

#[test]
fn a_plain_http_server_backend_is_healthy_and_its_tools_work_through_the_gateway()
-> anyhow::Result<()> {
    let prod = PlainBackend::start("Prod")?;
    let gw = Gateway::builder().env_url("Prod", &prod.url()).start()?;

    let flags = health_after_checks(&gw, "env_Prod");
    assert_eq!(flags, "healthy", "log {}", prod.log().display());
    // Several calls, each on a connection the backend closes after its answer.
    for (a, b) in [(2, 40), (1, 1), (-5, 5)] {
        let result = gw.call_tool("add", json!({"env": "Prod", "a": a, "b": b}))?;
        assert!(!is_error(&result), "{result:#}");
        assert_eq!(
            result_text(&result),
            format!("[Prod] {}", a + b),
            "{result:#}"
        );
    }
    let shout = gw.call_tool("shout", json!({"env": "Prod", "message": "hello"}))?;
    assert_eq!(result_text(&shout), "[Prod] HELLO", "{shout:#}");
    Ok(())
}
