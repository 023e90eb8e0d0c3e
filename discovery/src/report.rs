//! What `check`, `discover` and `list` print, and the exit codes they end with. Pure: every
//! function turns a manifest (and the raw discovery results) into text or JSON.

use std::fmt::Write as _;

use policy::manifest::{Diagnostic, EnvEntry, Manifest, ToolEntry};
use policy::pin::{PinFile, PinMode};
use serde_json::{Value, json};

use crate::catalog::EnvResult;

/// Exit codes of `check`, `discover` and `list` (seed 000's `--test-schema`, plus 2).
pub mod exit {
    /// Every backend answered and every tool merged.
    pub const CLEAN: u8 = 0;
    /// Some tools could not be merged (description or parameter type mismatch).
    pub const MERGE_ERRORS: u8 = 1;
    /// A backend was unreachable or answered invalidly, even one still served from its
    /// last good tools (it wins over merge errors).
    pub const BACKEND_FAILED: u8 = 2;
    /// The config could not be loaded or the output not written.
    pub const USAGE: u8 = 3;
    /// `gateway.pinning: block` and a tool's definition is not its pinned one (changed or
    /// new): review with `meshmux check`, then `meshmux pin`. Under `warn` drift is reported
    /// but exits 0. Backend failures and merge errors win over it.
    pub const PINS_DRIFTED: u8 = 4;
}

pub fn exit_code(manifest: &Manifest) -> u8 {
    if manifest
        .envs
        .iter()
        .any(|e| e.unreachable.is_some() || e.stale.is_some())
    {
        exit::BACKEND_FAILED
    } else if !manifest.errors.is_empty() {
        exit::MERGE_ERRORS
    } else if manifest
        .pinning
        .as_ref()
        .is_some_and(|p| p.mode == PinMode::Block && !p.drift.is_empty())
    {
        exit::PINS_DRIFTED
    } else {
        exit::CLEAN
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The one-line verdict that ends every report.
pub fn verdict(manifest: &Manifest) -> String {
    let down = manifest
        .envs
        .iter()
        .filter(|e| e.unreachable.is_some())
        .count();
    let stale = manifest.envs.iter().filter(|e| e.stale.is_some()).count();
    let mut parts = Vec::new();
    if down > 0 {
        parts.push(plural(
            down,
            "environment unreachable",
            "environments unreachable",
        ));
    }
    if stale > 0 {
        parts.push(format!(
            "{} (serving last good tools)",
            plural(stale, "environment down", "environments down")
        ));
    }
    if !manifest.errors.is_empty() {
        parts.push(plural(manifest.errors.len(), "merge error", "merge errors"));
    }
    if !manifest.warnings.is_empty() {
        parts.push(plural(manifest.warnings.len(), "warning", "warnings"));
    }
    if let Some(p) = manifest.pinning.as_ref().filter(|p| !p.drift.is_empty()) {
        parts.push(format!(
            "{} drifted from the pins ({})",
            plural(p.drift.len(), "tool", "tools"),
            if p.mode == PinMode::Block {
                "blocked"
            } else {
                "served, pinning is warn"
            }
        ));
    }
    let summary = if parts.is_empty() {
        "all tools merged cleanly".to_owned()
    } else {
        parts.join(", ")
    };
    format!(
        "{}: {summary} (exit {})",
        if exit_code(manifest) == exit::CLEAN {
            "OK"
        } else {
            "FAILED"
        },
        exit_code(manifest)
    )
}

fn diagnostics(out: &mut String, title: &str, items: &[Diagnostic]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title} ({}):", items.len());
    for d in items {
        let _ = writeln!(out, "  {}: {}", d.tool, d.message);
    }
}

/// The environments block: one line each, with the reason when unreachable.
fn environments(out: &mut String, manifest: &Manifest, results: &[EnvResult]) {
    let width = manifest
        .envs
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "Environments:");
    for env in &manifest.envs {
        match &env.unreachable {
            Some(reason) => {
                let _ = writeln!(
                    out,
                    "  FAIL {:width$}  {}\n       {:width$}  unreachable: {reason}",
                    env.name, env.url, ""
                );
            }
            None => {
                let count = results
                    .iter()
                    .find(|r| r.name == env.name)
                    .and_then(EnvResult::tool_count)
                    .unwrap_or(0);
                if let Some(stale) = &env.stale {
                    let _ = writeln!(
                        out,
                        "  DOWN {:width$}  {}  {} served as listed at {}\n       {:width$}  down since {}: {}",
                        env.name,
                        env.url,
                        plural(count, "tool", "tools"),
                        stale.listed_at,
                        "",
                        stale.since,
                        stale.reason
                    );
                    continue;
                }
                let server = env
                    .server_info
                    .as_ref()
                    .and_then(|s| {
                        let name = s.get("name")?.as_str()?;
                        let version = s.get("version").and_then(Value::as_str).unwrap_or("?");
                        Some(format!("{name} {version}, "))
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  ok   {:width$}  {}  {} ({server}MCP {})",
                    env.name,
                    env.url,
                    plural(count, "tool", "tools"),
                    env.protocol_version
                );
            }
        }
    }
}

/// The pinning block of `check`: the mode, then every drifted tool with its diff.
fn pinning(out: &mut String, manifest: &Manifest, results: &[EnvResult], pins: Option<&PinFile>) {
    let (Some(report), Some(pins)) = (&manifest.pinning, pins) else {
        return;
    };
    if report.drift.is_empty() {
        let _ = writeln!(
            out,
            "\nPinning ({}): every tool matches its pin",
            report.mode.as_str()
        );
        return;
    }
    let _ = writeln!(
        out,
        "\nPinning ({}): {} drifted from the pin file; review, then run `meshmux pin`:",
        report.mode.as_str(),
        plural(report.drift.len(), "tool", "tools")
    );
    out.push_str(&crate::pin::drift_text(report, pins, results));
}

/// `meshmux check` as text.
pub fn check_text(
    source: &str,
    manifest: &Manifest,
    results: &[EnvResult],
    pins: Option<&PinFile>,
) -> String {
    let mut out = format!("meshmux check: {source}\n\n");
    environments(&mut out, manifest, results);
    let _ = writeln!(
        out,
        "\nMerged: {}",
        plural(manifest.tools.len(), "tool", "tools")
    );
    diagnostics(&mut out, "Errors", &manifest.errors);
    diagnostics(&mut out, "Warnings", &manifest.warnings);
    pinning(&mut out, manifest, results, pins);
    let _ = writeln!(out, "\n{}", verdict(manifest));
    out
}

/// `meshmux check --format json`: one document for CI.
pub fn check_json(
    source: &str,
    manifest: &Manifest,
    results: &[EnvResult],
    pins: Option<&PinFile>,
) -> Value {
    let envs: Vec<Value> = manifest
        .envs
        .iter()
        .map(|env| {
            let tools = results
                .iter()
                .find(|r| r.name == env.name)
                .and_then(EnvResult::tool_count);
            match (&env.unreachable, &env.stale) {
                (Some(reason), _) => json!({
                    "name": env.name, "url": env.url, "status": "unreachable",
                    "tools": Value::Null, "error": reason,
                }),
                (None, Some(stale)) => json!({
                    "name": env.name, "url": env.url, "status": "stale",
                    "tools": tools, "error": stale.reason, "down_since": stale.since,
                    "listed_at": stale.listed_at,
                    "protocol_version": env.protocol_version, "server_info": env.server_info,
                }),
                (None, None) => json!({
                    "name": env.name, "url": env.url, "status": "ok", "tools": tools,
                    "protocol_version": env.protocol_version, "server_info": env.server_info,
                }),
            }
        })
        .collect();
    let mut doc = json!({
        "config": source,
        "exit_code": exit_code(manifest),
        "envs": envs,
        "tools": manifest.tools.len(),
        "errors": manifest.errors,
        "warnings": manifest.warnings,
    });
    if let (Some(report), Some(obj)) = (&manifest.pinning, doc.as_object_mut()) {
        let drift: Vec<Value> = report
            .drift
            .iter()
            .map(|d| {
                let empty = PinFile::default();
                let (what, diff) =
                    crate::pin::drift_lines(report.mode, d, pins.unwrap_or(&empty), results);
                json!({"env": d.env, "tool": d.tool, "change": d.change, "effect": what, "diff": diff})
            })
            .collect();
        obj.insert(
            "pinning".into(),
            json!({"mode": report.mode, "drift": drift}),
        );
    }
    doc
}

/// `meshmux list`: the merged catalog as a person reads it.
pub fn list_text(manifest: &Manifest) -> String {
    let names: Vec<&str> = manifest.envs.iter().map(|e| e.name.as_str()).collect();
    let mut out = format!(
        "{} from {} ({})\n",
        plural(manifest.tools.len(), "tool", "tools"),
        plural(names.len(), "environment", "environments"),
        names.join(", ")
    );
    servers(&mut out, manifest);
    for tool in &manifest.tools {
        list_tool(&mut out, tool);
    }
    offerings(&mut out, manifest);
    for env in &manifest.envs {
        if let Some(reason) = &env.unreachable {
            let _ = writeln!(
                out,
                "\nUnreachable: {} (its tools are absent): {reason}",
                env.name
            );
        }
        if let Some(stale) = &env.stale {
            let _ = writeln!(
                out,
                "\nDown: {} since {} (its tools as listed at {} are still served): {}",
                env.name, stale.since, stale.listed_at, stale.reason
            );
        }
    }
    diagnostics(&mut out, "Errors (tools left out)", &manifest.errors);
    diagnostics(&mut out, "Warnings", &manifest.warnings);
    let _ = writeln!(out, "\n{}", verdict(manifest));
    out
}

/// The servers block of `list` (files with `mcpServers`): each server, its envs and how
/// many tools it serves.
fn servers(out: &mut String, manifest: &Manifest) {
    let mut names: Vec<&str> = Vec::new();
    for env in &manifest.envs {
        let name = env.server.as_deref().unwrap_or("");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.iter().all(|n| n.is_empty()) {
        return;
    }
    let _ = writeln!(out, "\nServers:");
    for name in names {
        let envs: Vec<&EnvEntry> = manifest
            .envs
            .iter()
            .filter(|e| e.server.as_deref().unwrap_or("") == name)
            .collect();
        let tools = manifest
            .tools
            .iter()
            .filter(|t| {
                t.envs
                    .iter()
                    .any(|te| envs.iter().any(|e| e.name == te.backend()))
            })
            .count();
        let title = if name.is_empty() {
            "(environments)"
        } else {
            name
        };
        let _ = writeln!(out, "  {title}: {}", plural(tools, "tool", "tools"));
        for env in envs {
            let state = if env.unreachable.is_some() {
                "  (unreachable)"
            } else if env.stale.is_some() {
                "  (down)"
            } else {
                ""
            };
            if env.label.is_some() || name.is_empty() {
                let _ = writeln!(out, "    env {}: {}{state}", env.label(), env.url);
            } else {
                let _ = writeln!(out, "    {}{state}", env.url);
            }
        }
    }
}

/// Prompts (with their envs), then resources and templates by served URI.
fn offerings(out: &mut String, manifest: &Manifest) {
    if !manifest.prompts.is_empty() {
        let _ = writeln!(out, "\nPrompts:");
        for p in &manifest.prompts {
            let envs: Vec<&str> = p.envs.iter().map(|e| e.env.as_str()).collect();
            let desc = p
                .prompt
                .get("description")
                .and_then(Value::as_str)
                .and_then(|d| d.lines().next())
                .unwrap_or_default();
            let _ = writeln!(out, "  {}  [env: {}]  {desc}", p.name(), envs.join(" | "));
        }
    }
    for (title, entries) in [
        ("Resources", &manifest.resources),
        ("Resource templates", &manifest.resource_templates),
    ] {
        if entries.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}:");
        for r in entries {
            let _ = writeln!(out, "  {}", r.uri());
        }
    }
}

fn list_tool(out: &mut String, tool: &ToolEntry) {
    let envs: Vec<&str> = tool.envs.iter().map(|e| e.env.as_str()).collect();
    if tool.implicit_env {
        let _ = writeln!(out, "\n{}  [server: {}]", tool.name(), envs.join(""));
    } else {
        let _ = writeln!(out, "\n{}  [env: {}]", tool.name(), envs.join(" | "));
    }
    if let Some(upstream) = &tool.upstream {
        let _ = writeln!(out, "  (calls `{upstream}` on the server)");
    }
    let field = |key: &str| tool.tool.get(key).and_then(Value::as_str);
    if let Some(title) = field("title") {
        let _ = writeln!(out, "  title: {title}");
    }
    if let Some(desc) = field("description") {
        for line in desc.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    let schema = tool.tool.get("inputSchema");
    let props = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    let required: Vec<&str> = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, prop) in props.into_iter().flatten() {
        if name == policy::merge::ENV_PARAM && !tool.implicit_env {
            continue;
        }
        let kind = prop.get("type").map_or("any".to_owned(), |t| match t {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let owners: Vec<&str> = tool
            .envs
            .iter()
            .filter(|e| e.params.iter().any(|p| p == name))
            .map(|e| e.env.as_str())
            .collect();
        let mut notes = vec![kind];
        if required.contains(&name.as_str()) {
            notes.push("required".into());
        }
        if owners.len() < tool.envs.len() {
            notes.push(format!("only on {}", owners.join(", ")));
        }
        let _ = writeln!(out, "  - {name} ({})", notes.join(", "));
    }
    for env in tool.envs.iter().filter(|e| !e.requires.is_empty()) {
        let _ = writeln!(
            out,
            "  on {}: listed only for clients with {}",
            env.env,
            env.requires.join(", ")
        );
    }
    if let Some(ann) = tool.tool.get("annotations").and_then(Value::as_object) {
        let hints: Vec<&str> = ann
            .iter()
            .filter(|(_, v)| v.as_bool() == Some(true))
            .map(|(k, _)| k.as_str())
            .collect();
        if !hints.is_empty() {
            let _ = writeln!(out, "  hints: {}", hints.join(", "));
        }
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
