//! `meshmux check` for CI: exit 0 when everything merges, 1 on merge errors naming the tool
//! and the envs, 2 when a backend is down (the others still checked and reported).

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use tests::{Backend, Config, ports};

fn mentions(errors: &Value, tool: &str, envs: &[&str]) -> bool {
    errors.as_array().is_some_and(|errs| {
        errs.iter().any(|e| {
            let message = e["message"].as_str().unwrap_or_default();
            e["tool"] == tool && envs.iter().all(|env| message.contains(env))
        })
    })
}

#[test]
fn check_passes_when_every_env_merges() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let dev = Backend::demo("Dev").start()?;

    let run = Config::new().env("Prod", &prod).env("Dev", &dev).check()?;

    assert_eq!(run.code, Some(0), "{}", run.output());
    let report = run.json()?;
    assert_eq!(report["exit_code"], 0);
    assert!(
        report["warnings"].to_string().contains("debug"),
        "{report:#}"
    );
    Ok(())
}

#[test]
fn check_fails_on_a_description_drift_naming_tool_and_envs() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let staging = Backend::demo("Staging").drift("description").start()?;
    let config = Config::new().env("Prod", &prod).env("Staging", &staging);

    let run = config.check()?;
    let text = config.check_text()?;

    assert_eq!(run.code, Some(1), "{}", run.output());
    let report = run.json()?;
    assert!(
        mentions(&report["errors"], "search_logs", &["Prod", "Staging"]),
        "{report:#}"
    );
    assert_eq!(text.code, Some(1));
    let out = text.output();
    assert!(
        out.contains("search_logs") && out.contains("description"),
        "{out}"
    );
    Ok(())
}

#[test]
fn check_fails_on_a_type_drift_naming_tool_and_envs() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let dev = Backend::demo("Dev").drift("type").start()?;

    let run = Config::new().env("Prod", &prod).env("Dev", &dev).check()?;

    assert_eq!(run.code, Some(1), "{}", run.output());
    let report = run.json()?;
    assert!(
        mentions(&report["errors"], "search_logs", &["Prod", "Dev"]),
        "{report:#}"
    );
    assert!(report["errors"].to_string().contains("limit"), "{report:#}");
    Ok(())
}

#[test]
fn check_reports_a_backend_down_and_still_checks_the_other() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let nowhere = format!("http://127.0.0.1:{}/mcp", ports::free_port()?);

    let run = Config::new()
        .env("Prod", &prod)
        .env_url("Staging", &nowhere)
        .check()?;

    assert_eq!(run.code, Some(2), "{}", run.output());
    let report = run.json()?;
    let envs = report["envs"].as_array().unwrap();
    let staging = envs.iter().find(|e| e["name"] == "Staging").unwrap();
    assert_eq!(staging["status"], "unreachable", "{report:#}");
    assert!(staging["error"].as_str().is_some_and(|e| !e.is_empty()));
    let prod = envs.iter().find(|e| e["name"] == "Prod").unwrap();
    assert_eq!(prod["status"], "ok", "{report:#}");
    assert_eq!(prod["tools"], 6, "{report:#}");
    Ok(())
}
