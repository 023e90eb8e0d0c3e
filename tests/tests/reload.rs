//! Live reload and survivable discovery, on real processes: `meshmux discover --watch` rewrites
//! the files a running Envoy watches while a client keeps calling; a backend that is down
//! keeps its last good tools (also across a restart of discovery); a role change in the
//! config file narrows a caller's `tools/list` without restarting anything.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use tests::auth::{FakeAuthsvc, Issuer};
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

fn tool<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
}

fn env_enum(tool: &Value) -> Vec<String> {
    tool["inputSchema"]["properties"]["env"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no env enum: {tool:#}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Polls `done` every 100 ms for at most `timeout`.
fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match done() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = format!(" (last error: {e:#})"),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}{last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One `list_deployments` call in `env`: Ok when the env's backend answered it.
fn call_ok(gw: &Gateway, env: &str) -> Result<(), String> {
    let resp = gw
        .call("list_deployments", json!({"env": env, "service": "api"}))
        .map_err(|e| format!("{e:#}"))?;
    let result = resp
        .result()
        .map_err(|e| format!("HTTP {}: {e:#}", resp.status))?;
    if is_error(&result) || !result_text(&result).starts_with(&format!("[{env}] list_deployments"))
    {
        return Err(format!("{result:#}"));
    }
    Ok(())
}

/// A `stream_progress` call of 100 steps (about 2 s of progress events) in Prod.
fn stream_ok(gw: &Gateway) -> Result<(), String> {
    let resp = gw
        .call("stream_progress", json!({"env": "Prod", "steps": 100}))
        .map_err(|e| format!("{e:#}"))?;
    let result = resp
        .result()
        .map_err(|e| format!("HTTP {}: {e:#}", resp.status))?;
    if is_error(&result) || !result_text(&result).contains("completed 100 steps") {
        return Err(format!("{result:#}"));
    }
    Ok(())
}

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

/// While one client calls `envs` back to back and another streams a long call after another
/// (both bounded), runs `change` and waits until `switched` says Envoy serves its result;
/// then checks that no call failed, that calls were in flight during the switch, and that a
/// streamed call was open across it.
fn busy_across_a_switch(
    gw: &Gateway,
    envs: &[&'static str],
    change: impl FnOnce() -> Result<()>,
    switched: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let stop = AtomicBool::new(false);
    let (log, changed_at, seen_at) = std::thread::scope(|s| -> Result<_> {
        let client = s.spawn(|| {
            let mut log = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(90);
            for env in envs.iter().cycle() {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let started = Instant::now();
                let outcome = call_ok(gw, env);
                log.push((started, Instant::now(), *env, outcome));
            }
            log
        });
        let streamer = s.spawn(|| {
            let mut log = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(90);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let started = Instant::now();
                let outcome = stream_ok(gw);
                log.push((started, Instant::now(), "Prod (stream)", outcome));
            }
            log
        });
        std::thread::sleep(Duration::from_millis(500));
        let changed_at = Instant::now();
        let changed = change();
        let seen = changed.and_then(|()| {
            eventually(
                "Envoy to serve the change",
                Duration::from_secs(30),
                switched,
            )
        });
        let seen_at = Instant::now();
        // Keep calling a little after the switch.
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let mut log = client.join().expect("the client thread panicked");
        let streams = streamer.join().expect("the streaming thread panicked");
        seen?;
        log.extend(streams);
        Ok((log, changed_at, seen_at))
    })?;
    let failures: Vec<_> = log.iter().filter(|(.., r)| r.is_err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} calls failed: {failures:#?}",
        failures.len(),
        log.len()
    );
    let during = log
        .iter()
        .filter(|(start, end, ..)| *end >= changed_at && *start <= seen_at)
        .count();
    assert!(during > 0, "no call was in flight during the switch");
    let streams_across = log
        .iter()
        .filter(|(start, end, env, _)| {
            *env == "Prod (stream)" && *start <= seen_at && *end >= changed_at
        })
        .count();
    assert!(
        streams_across > 0,
        "no streamed call was open during the switch"
    );
    println!(
        "{} calls, {during} during the switch ({:?})",
        log.len(),
        seen_at - changed_at
    );
    Ok(())
}

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
        o.contains("Prod: + tool restart_service")
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
    let first = watch.stdout();
    assert!(
        first.contains(&format!(
            "unreachable: Hole (serving none of its tools): no answer from {hole_url} within 2 s"
        )),
        "{first}"
    );

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
fn an_env_added_to_the_config_is_served_without_a_failed_call() -> Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let staging = Backend::demo("Staging").start()?;
    let dev = Backend::demo("Dev").start()?;
    let two = Gateway::builder()
        .env("Prod", &prod)
        .env("Staging", &staging);
    let site = Site::new(&two)?;
    let mut watch = site.watch("1s")?;
    let gw = site.gateway(false)?;
    let lds = std::fs::read(site.found.out.join("lds.yaml"))?;

    // A new cluster, a new route (a listener update) and a new manifest, under load.
    busy_across_a_switch(
        &gw,
        &["Prod", "Staging"],
        || site.rewrite_config(&two.clone().env("Dev", &dev)),
        || Ok(call_ok(&gw, "Dev").is_ok()),
    )?;
    assert_ne!(std::fs::read(site.found.out.join("lds.yaml"))?, lds);
    let list = gw.list_tools()?;
    assert_eq!(
        env_enum(tool(&list, "search_logs").unwrap()),
        ["Prod", "Staging", "Dev"]
    );
    let out = watch.wait_for("the new env", Duration::from_secs(5), |o| {
        o.contains("+ env Dev: ok, 5 tools")
    })?;
    assert!(out.contains("updated"), "{out}");
    assert!(watch.terminate()?.success());
    Ok(())
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
    use std::process::Command;
    use tests::http::{Request, client};
    use tests::{logs, ports, prereq, process::Proc};

    let prod = Backend::demo("Prod").catalog().start()?;
    let dir = logs::unique_path("up", "")?;
    let config_path = Gateway::builder().env("Prod", &prod).write(&dir)?;
    let port = ports::free_port()?;
    let mut cmd = Command::new(prereq::meshmux()?);
    cmd.args(["up", "--no-auth", "--watch", "1s"])
        .arg("--config")
        .arg(&config_path)
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--envoy")
        .arg(prereq::envoy()?)
        .arg("--filter")
        .arg(prereq::filter()?)
        .args(["--port", &port.to_string()])
        .args(["--admin-port", &ports::free_port()?.to_string()]);
    let stdout = dir.join("up.stdout");
    // SIGTERM first: `up` then stops the Envoy it started.
    let mut up = Proc::spawn_capturing("meshmux-up", &mut cmd, &stdout)?.graceful();
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
