//! Live reload, on real processes: `meshmux discover --watch` (and `meshmux up --watch`)
//! rewrites the files a running Envoy watches while clients keep calling and streaming; a
//! role change in the config file narrows a caller's `tools/list` without restarting
//! anything; a backend that never answers holds a cycle up for the timeout at most.
//! Backends that are down: `survivable.rs`.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tests::auth::{FakeAuthsvc, Issuer};
use tests::reload::{busy_across_a_switch, call_ok, env_enum, eventually, tool};
use tests::watch::Site;
use tests::{Backend, Gateway, is_error, result_text};

/// A tool Prod gains and a description it changes while the gateway runs.
const CATALOG: &str = r#"{
    "add": [{"name": "restart_service", "description": "Restart every replica of a service.",
             "inputSchema": {"type": "object",
                             "properties": {"service": {"type": "string"}},
                             "required": ["service"]}}],
    "descriptions": {"rollback_deployment": "Roll a service back to the version before."}
}"#;

#[test]
fn a_new_tool_and_a_changed_description_reach_a_busy_client_without_a_failed_call() -> Result<()> {
    let prod = Backend::demo("Prod").catalog().start()?;
    let staging = Backend::demo("Staging").start()?;
    let site = Site::new(
        &Gateway::builder()
            .env("Prod", &prod)
            .env("Staging", &staging),
    )?;
    let mut watch = site.watch("1s")?;
    let gw = site.gateway(false)?;
    assert!(tool(&gw.list_tools()?, "restart_service").is_none());

    busy_across_a_switch(
        &gw,
        &["Prod", "Staging"],
        || prod.set_catalog(CATALOG),
        || {
            let list = gw.list_tools()?;
            let rollback = tool(&list, "rollback_deployment").map(|t| t["description"].clone());
            Ok(tool(&list, "restart_service").is_some()
                && rollback == Some(json!("Roll a service back to the version before.")))
        },
    )?;

    // The new tool routes to Prod.
    let result = gw.call_tool("restart_service", json!({"env": "Prod", "service": "api"}))?;
    assert!(
        result_text(&result).contains("restart_service done in Prod"),
        "{result:#}"
    );
    // The watch said what changed, per env.
    let out = watch.wait_for("the diff", Duration::from_secs(5), |o| {
        o.contains("Prod: + tool restart_service") && o.contains("Prod: ~ tool rollback_deployment")
    })?;
    assert!(
        out.contains(
            "Prod: ~ tool rollback_deployment: description \"Roll a service back to an earlier \
             version.\" -> \"Roll a service back to the version before.\""
        ),
        "{out}"
    );
    assert!(!out.contains("Staging: "), "Staging did not change:\n{out}");

    // Unchanged cycles touch no file and print nothing.
    let files = site.file_ids()?;
    watch.wait_unchanged_cycles(2, Duration::from_secs(20))?;
    assert_eq!(site.file_ids()?, files, "an unchanged cycle rewrote a file");
    assert_eq!(
        watch.stdout().matches("+ tool restart_service").count(),
        1,
        "{}",
        watch.stdout()
    );

    let status = watch.terminate()?;
    assert!(
        status.success(),
        "SIGTERM should end the watch with 0: {status}"
    );
    Ok(())
}

#[test]
fn a_backend_that_never_answers_holds_a_cycle_up_for_the_timeout_at_most() -> Result<()> {
    // Connections land in the backlog and no byte ever comes back.
    let hole = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hole_url = format!("http://{}/mcp", hole.local_addr()?);
    let prod = Backend::demo("Prod").catalog().start()?;
    let mut site = Site::new(
        &Gateway::builder()
            .env("Prod", &prod)
            .env_url("Hole", &hole_url),
    )?;
    site.timeout_secs = 2;
    let mut watch = site.watch("1s")?;
    // The summary is printed after the files are written: wait for it.
    let unreachable = format!(
        "unreachable: Hole (serving none of its tools): no answer from {hole_url} within 2 s"
    );
    watch.wait_for("the first pass's summary", Duration::from_secs(10), |o| {
        o.contains(&unreachable)
    })?;

    prod.set_catalog(CATALOG)?;
    watch.wait_for("Prod's new tool", Duration::from_secs(20), |o| {
        o.contains("Prod: + tool restart_service")
    })?;
    let times = watch.cycle_times();
    assert!(times.len() >= 2, "{times:?}");
    for took in &times {
        assert!(
            *took >= Duration::from_secs(2) && *took < Duration::from_secs(4),
            "a cycle took {took:?}; each should wait out the 2 s timeout and no more: {times:?}"
        );
    }
    assert!(watch.terminate()?.success());
    drop(hole);
    Ok(())
}

#[test]
fn envs_added_to_and_removed_from_the_config_switch_without_a_failed_call() -> Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let staging = Backend::demo("Staging").start()?;
    let dev = Backend::demo("Dev").start()?;
    let two = Gateway::builder()
        .env("Prod", &prod)
        .env("Staging", &staging);
    let site = Site::new(&two)?;
    let mut watch = site.watch("1s")?;
    let gw = site.gateway(false)?;
    let read = |name: &str| std::fs::read(site.found.out.join(name));
    let (lds, rds) = (read("lds.yaml")?, read("rds.yaml")?);

    // A new cluster, a new route and a new manifest, under load. The listener stays: a new
    // one would leave kept-alive connections on the old routes, without the new env.
    busy_across_a_switch(
        &gw,
        &["Prod", "Staging"],
        || site.rewrite_config(&two.clone().env("Dev", &dev)),
        || Ok(call_ok(&gw, "Dev").is_ok()),
    )?;
    assert_ne!(read("rds.yaml")?, rds);
    assert_eq!(
        read("lds.yaml")?,
        lds,
        "adding an env must not replace the listener"
    );
    let list = gw.list_tools()?;
    assert_eq!(
        env_enum(tool(&list, "search_logs").unwrap()),
        ["Prod", "Staging", "Dev"]
    );
    let out = watch.wait_for("the new env", Duration::from_secs(5), |o| {
        o.contains("+ env Dev: ok, 5 tools")
    })?;
    assert!(out.contains("updated"), "{out}");

    // And one taken away (cluster, route and tools go) while the others are called.
    let without_staging = Gateway::builder().env("Prod", &prod).env("Dev", &dev);
    busy_across_a_switch(
        &gw,
        &["Prod", "Dev"],
        || site.rewrite_config(&without_staging),
        || {
            let list = gw.list_tools()?;
            let envs = tool(&list, "search_logs").map(env_enum);
            Ok(envs == Some(vec!["Prod".into(), "Dev".into()]))
        },
    )?;
    watch.wait_for("the removed env", Duration::from_secs(5), |o| {
        o.contains("- env Staging")
    })?;
    assert!(watch.terminate()?.success());
    Ok(())
}

#[test]
fn a_rotated_env_credential_reaches_the_backend_and_is_never_printed() -> Result<()> {
    let prod = Backend::demo("Prod").record().start()?;
    let config = |token: &str| {
        Gateway::builder()
            .env("Prod", &prod)
            .env_header("Prod", "X-Env-Token", token)
    };
    let site = Site::new(&config("old-secret"))?;
    let mut watch = site.watch("1s")?;
    let gw = site.gateway(false)?;
    call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
    assert_eq!(
        prod.wait_for_records(1)?[0].header("x-env-token"),
        Some("old-secret")
    );

    site.rewrite_config(&config("new-secret"))?;
    let out = watch.wait_for("the header change", Duration::from_secs(20), |o| {
        o.contains("Prod: headers changed (now: X-Env-Token)")
    })?;
    assert!(!out.contains("secret"), "a credential was printed:\n{out}");
    eventually(
        "the new credential at the backend",
        Duration::from_secs(20),
        || {
            call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
            let records = prod.records()?;
            Ok(records.last().and_then(|r| r.header("x-env-token")) == Some("new-secret"))
        },
    )?;
    // From then on every call carries it.
    let before = prod.records()?.len();
    for _ in 0..10 {
        call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
    }
    let records = prod.wait_for_records(before + 10)?;
    for r in &records[before..] {
        assert_eq!(r.header("x-env-token"), Some("new-secret"), "{r:#?}");
    }
    assert!(watch.terminate()?.success());
    Ok(())
}

#[test]
fn a_role_change_in_the_config_narrows_a_callers_tools_and_a_broken_config_changes_nothing()
-> Result<()> {
    let issuer = Issuer::new(tests::auth::BASE_URL)?;
    let authsvc = FakeAuthsvc::start(&issuer)?;
    let prod = Backend::demo("Prod").start()?;
    let staging = Backend::demo("Staging").start()?;
    let config = |roles: Value| {
        Gateway::builder()
            .env("Prod", &prod)
            .env("Staging", &staging)
            .auth(&authsvc.url(), roles)
    };
    let site = Site::new(&config(
        json!({"reader": {"Prod": ["*"], "Staging": ["*"]}}),
    ))?;
    let mut watch = site.watch("1s")?;
    let gw = site.gateway(true)?;
    let token = issuer.token("carol", &["reader"])?;
    let list = gw.list_tools_with(&token)?.result()?;
    assert!(tool(&list, "rollback_deployment").is_some(), "{list:#}");

    // A config that does not parse is reported and changes nothing.
    let ecds = std::fs::read(site.found.out.join("ecds.yaml"))?;
    site.write_config_text("{\"environments\": ")?;
    watch.wait_for("the config error", Duration::from_secs(20), |o| {
        o.contains("config error (keeping the last good config and files)")
    })?;
    assert_eq!(std::fs::read(site.found.out.join("ecds.yaml"))?, ecds);
    assert!(
        tool(
            &gw.list_tools_with(&token)?.result()?,
            "rollback_deployment"
        )
        .is_some()
    );

    site.rewrite_config(&config(json!({"reader": {"Staging": ["*"]}})))?;
    let out = watch.wait_for("the role change", Duration::from_secs(20), |o| {
        o.contains("roles: ~ reader")
    })?;
    assert!(
        out.contains("roles: ~ reader {Prod: [*]; Staging: [*]} -> {Staging: [*]}"),
        "{out}"
    );
    assert!(out.contains("loads again"), "{out}");
    eventually(
        "reader's tools/list to narrow",
        Duration::from_secs(20),
        || {
            let list = gw.list_tools_with(&token)?.result()?;
            Ok(tool(&list, "rollback_deployment").is_none()
                && env_enum(tool(&list, "search_logs").unwrap()) == ["Staging"])
        },
    )?;
    let denied = gw.call_with(&token, "search_logs", json!({"env": "Prod", "query": "x"}))?;
    assert!(
        denied.result().map_or(true, |r| is_error(&r)),
        "Prod is no longer the reader's: {}",
        denied.text()
    );
    assert!(watch.terminate()?.success());
    Ok(())
}

#[test]
fn meshmux_up_with_watch_serves_a_backends_new_tool_live() -> Result<()> {
    use tests::http::{Request, client};
    use tests::logs;

    let prod = Backend::demo("Prod").catalog().start()?;
    let dir = logs::unique_path("up", "")?;
    let config_path = Gateway::builder().env("Prod", &prod).write(&dir)?;
    // SIGTERM first: `up` then stops the Envoy it started.
    let (mut up, port) = tests::up::start(&config_path, &dir, &["--watch", "1s"])?;
    let stdout = dir.join("up.stdout");
    let http = client()?;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let has_new_tool = || -> Result<bool> {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let list = Request::post(http.clone(), &url, body).send()?.result()?;
        Ok(tool(&list, "restart_service").is_some())
    };
    up.wait_until(
        "up's gateway to list tools",
        Duration::from_secs(60),
        || has_new_tool().map(|_| true),
    )?;
    assert!(!has_new_tool()?);

    prod.set_catalog(CATALOG)?;
    up.wait_until(
        "the new tool through up's Envoy",
        Duration::from_secs(30),
        has_new_tool,
    )?;
    let printed = std::fs::read_to_string(&stdout)?;
    assert!(
        printed.contains("Prod: + tool restart_service"),
        "{printed}"
    );
    up.stop();
    Ok(())
}
