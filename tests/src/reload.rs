//! Helpers for the live-reload tests: a client that keeps calling (and streaming) through the
//! gateway while its config changes, and small readers of a `tools/list` result.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use crate::{Gateway, is_error, result_text};

/// The tool called `name` in a `tools/list` result.
pub fn tool<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.get("tools")?
        .as_array()?
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
}

/// The `env` enum of a merged tool's input schema (empty when it has none).
pub fn env_enum(tool: &Value) -> Vec<String> {
    tool.pointer("/inputSchema/properties/env/enum")
        .and_then(Value::as_array)
        .map(|envs| {
            envs.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `done` every 100 ms for at most `timeout`.
pub fn eventually(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
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
pub fn call_ok(gw: &Gateway, env: &str) -> Result<(), String> {
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
pub fn stream_ok(gw: &Gateway) -> Result<(), String> {
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

/// While one client calls `envs` back to back and another streams a long call after another
/// (both bounded), runs `change` and waits until `switched` says Envoy serves its result;
/// then fails unless no call failed, calls were in flight during the switch, and a streamed
/// call was open across it. Prints how many calls there were.
pub fn busy_across_a_switch(
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
        let mut log = client
            .join()
            .map_err(|_| anyhow!("the client thread panicked"))?;
        let streams = streamer
            .join()
            .map_err(|_| anyhow!("the streaming thread panicked"))?;
        seen?;
        log.extend(streams);
        Ok((log, changed_at, seen_at))
    })?;
    let failures: Vec<_> = log.iter().filter(|(.., r)| r.is_err()).collect();
    if !failures.is_empty() {
        bail!(
            "{} of {} calls failed: {failures:#?}",
            failures.len(),
            log.len()
        );
    }
    let during = log
        .iter()
        .filter(|(start, end, ..)| *end >= changed_at && *start <= seen_at)
        .count();
    if during == 0 {
        bail!("no call was in flight during the switch");
    }
    let streams_across = log
        .iter()
        .filter(|(start, end, env, _)| {
            *env == "Prod (stream)" && *start <= seen_at && *end >= changed_at
        })
        .count();
    if streams_across == 0 {
        bail!("no streamed call was open during the switch");
    }
    println!(
        "{} calls, {during} during the switch ({:?})",
        log.len(),
        seen_at - changed_at
    );
    Ok(())
}
