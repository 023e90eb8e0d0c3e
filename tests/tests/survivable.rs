//! Survivable discovery, on real processes: an env whose backend is down keeps its last good
//! tools (stale) — across a restart of discovery too, through `discovery-state.json` — while
//! the other envs keep working through Envoy; without a state it is unreachable, as before.
//! `meshmux check` and the manifest report both.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use tests::reload::{call_ok, env_enum, eventually, tool};
use tests::watch::Site;
use tests::{Backend, Gateway, is_error, result_text};

/// Calls `env` on a gateway whose backend for it is down: a tool error naming the env, fast.
fn assert_fails_fast(gw: &Gateway, env: &str) {
    let start = Instant::now();
    let resp = gw
        .call("search_logs", json!({"env": env, "query": "x"}))
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{env}: slow failure"
    );
    let result = resp.result().unwrap();
    assert!(is_error(&result), "{env}: {result:#}");
    assert!(result_text(&result).contains(env), "{result:#}");
}

#[test]
fn an_env_down_at_startup_serves_its_last_good_tools_or_none_without_a_state() -> Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let mut staging = Backend::demo("Staging").start()?;
    let config = Gateway::builder()
        .env("Prod", &prod)
        .env("Staging", &staging);
    let site = Site::new(&config)?;
    let first = site.discover_once()?;
    assert_eq!(first.code, Some(0), "{}", first.output());

    // Discovery restarts while Staging is down: Staging is stale, with the state's tools.
    staging.stop();
    let again = site.discover_once()?;
    assert_eq!(again.code, Some(2), "{}", again.output());
    assert!(
        again.stdout.contains("stale: Staging (down since "),
        "{}",
        again.output()
    );
    let entry = site.manifest_env("Staging")?;
    assert!(entry["stale"]["reason"].is_string(), "{entry:#}");
    assert!(entry.get("unreachable").is_none(), "{entry:#}");

    let gw = site.gateway(false)?;
    let list = gw.list_tools()?;
    assert_eq!(
        env_enum(tool(&list, "search_logs").unwrap()),
        ["Prod", "Staging"]
    );
    call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
    assert_fails_fast(&gw, "Staging");

    // `check` with the state reports it stale, with its tools; without, unreachable.
    let check = site.check_with_state(&config)?;
    assert_eq!(check.code, Some(2), "{}", check.output());
    let json = check.json()?;
    let staging_report = &json["envs"][1];
    assert_eq!(staging_report["status"], "stale", "{json:#}");
    assert_eq!(staging_report["tools"], 5, "{json:#}");
    assert!(staging_report["down_since"].is_string(), "{json:#}");
    let plain = config.check()?.json()?;
    assert_eq!(plain["envs"][1]["status"], "unreachable", "{plain:#}");

    // A first start with Staging down and no state: unreachable, none of its tools.
    let fresh = Site::new(&config)?;
    let run = fresh.discover_once()?;
    assert_eq!(run.code, Some(2), "{}", run.output());
    assert!(
        run.stdout.contains("unreachable: Staging"),
        "{}",
        run.output()
    );
    let entry = fresh.manifest_env("Staging")?;
    assert!(entry["unreachable"].is_string(), "{entry:#}");
    assert!(entry.get("stale").is_none(), "{entry:#}");
    let manifest = fresh.manifest()?;
    for t in manifest["tools"].as_array().unwrap() {
        assert!(
            t["envs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["env"] != "Staging"),
            "{t:#}"
        );
    }
    Ok(())
}

#[test]
fn an_env_that_goes_down_during_the_watch_keeps_its_tools_and_recovers() -> Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let mut staging = Backend::demo("Staging").start()?;
    let config = Gateway::builder()
        .env("Prod", &prod)
        .env("Staging", &staging);
    let site = Site::new(&config)?;
    let mut watch = site.watch("1s")?;
    let gw = site.gateway(false)?;
    call_ok(&gw, "Staging").map_err(anyhow::Error::msg)?;

    staging.stop();
    watch.wait_for("Staging reported down", Duration::from_secs(30), |o| {
        o.contains("Staging: down, serving its last good tools")
    })?;
    let entry = site.manifest_env("Staging")?;
    assert!(entry["stale"]["since"].is_string(), "{entry:#}");
    let list = gw.list_tools()?;
    assert_eq!(
        env_enum(tool(&list, "search_logs").unwrap()),
        ["Prod", "Staging"]
    );
    call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
    assert_fails_fast(&gw, "Staging");
    let check = site.check_with_state(&config)?;
    assert_eq!(
        check.json()?["envs"][1]["status"],
        "stale",
        "{}",
        check.output()
    );

    staging.restart()?;
    watch.wait_for("Staging recovered", Duration::from_secs(30), |o| {
        o.contains("Staging: recovered")
    })?;
    eventually(
        "a Staging call to succeed again",
        Duration::from_secs(20),
        || Ok(call_ok(&gw, "Staging").is_ok()),
    )?;
    assert!(site.manifest_env("Staging")?.get("stale").is_none());
    assert!(watch.terminate()?.success());
    Ok(())
}
