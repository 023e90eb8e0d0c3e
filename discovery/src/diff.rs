//! What changed between two discoveries, as lines a person reads in the watch's log: envs
//! added or removed, envs that went down or recovered, per env the tools added, removed or
//! changed (and what changed), merge errors that appeared or went away, role and other
//! config changes. Pure: no IO. Header values are never printed (they are credentials).

use std::collections::BTreeMap;

use policy::config::Config;
use policy::manifest::{Diagnostic, EnvEntry, Manifest};
use serde_json::{Map, Value};

use crate::catalog::EnvResult;
use crate::discover::Discovery;

/// Longest description quoted in a change line.
const QUOTE_MAX: usize = 80;

/// The changes from `old` to `new`, one line each; empty when nothing a person would care
/// about changed.
pub fn diff(old: &Discovery, new: &Discovery) -> Vec<String> {
    let mut out = Vec::new();
    config_lines(&mut out, &old.config, &new.config);
    for env in &new.manifest.envs {
        match old.manifest.env(&env.name) {
            None => out.push(format!(
                "+ env {}: {}",
                env.name,
                status_text(env, &new.results)
            )),
            Some(before) => {
                env_lines(&mut out, before, env);
                tool_lines(
                    &mut out,
                    &env.name,
                    tools_of(&old.results, &env.name),
                    tools_of(&new.results, &env.name),
                );
                requires_lines(&mut out, &env.name, &old.results, &new.results);
            }
        }
    }
    for env in &old.manifest.envs {
        if new.manifest.env(&env.name).is_none() {
            out.push(format!("- env {}", env.name));
        }
    }
    diagnostic_lines(
        &mut out,
        "merge error",
        &old.manifest.errors,
        &new.manifest.errors,
    );
    diagnostic_lines(
        &mut out,
        "warning",
        &old.manifest.warnings,
        &new.manifest.warnings,
    );
    pin_lines(&mut out, &old.manifest, &new.manifest);
    out
}

/// Tools that started or stopped drifting from their pins (`gateway.pinning`).
fn pin_lines(out: &mut Vec<String>, old: &Manifest, new: &Manifest) {
    let drift = |m: &Manifest| {
        m.pinning
            .as_ref()
            .map(|p| p.drift.clone())
            .unwrap_or_default()
    };
    let (before, after) = (drift(old), drift(new));
    if let Some(p) = &new.pinning {
        for d in after.iter().filter(|d| !before.contains(d)) {
            out.push(format!("{}: {}", d.env, crate::pin::drift_line(p.mode, d)));
        }
    }
    for d in before.iter().filter(|d| !after.contains(d)) {
        out.push(format!(
            "{}: pinning: tool {} matches its pin again",
            d.env, d.tool
        ));
    }
}

/// `ok (N tools)`, `stale …` or `unreachable …`.
fn status_text(env: &EnvEntry, results: &[EnvResult]) -> String {
    let count = tools_of(results, &env.name).len();
    if let Some(reason) = &env.unreachable {
        format!("unreachable, serving no tools: {reason}")
    } else if let Some(stale) = &env.stale {
        format!(
            "down, serving its {count} last good tools (listed {}): {}",
            stale.listed_at, stale.reason
        )
    } else {
        format!("ok, {count} tools")
    }
}

fn env_lines(out: &mut Vec<String>, before: &EnvEntry, after: &EnvEntry) {
    let name = &after.name;
    // 0 ok, 1 stale (down, last good tools), 2 unreachable (no tools).
    let status = |e: &EnvEntry| {
        if e.unreachable.is_some() {
            2
        } else {
            u8::from(e.stale.is_some())
        }
    };
    if status(before) != status(after) {
        match (&after.unreachable, &after.stale) {
            (Some(reason), _) => {
                out.push(format!("{name}: unreachable, serving no tools: {reason}"));
            }
            (None, Some(stale)) => out.push(format!(
                "{name}: down, serving its last good tools (listed {}): {}",
                stale.listed_at, stale.reason
            )),
            (None, None) => out.push(format!("{name}: recovered")),
        }
    }
    if before.url != after.url {
        out.push(format!("{name}: url {} -> {}", before.url, after.url));
    }
    if before.description != after.description {
        out.push(format!(
            "{name}: description {} -> {}",
            quote(&before.description),
            quote(&after.description)
        ));
    }
    if before.protocol_version != after.protocol_version {
        out.push(format!(
            "{name}: protocol version {} -> {}",
            before.protocol_version, after.protocol_version
        ));
    }
}

fn tools_of<'a>(results: &'a [EnvResult], env: &str) -> BTreeMap<&'a str, &'a Value> {
    results
        .iter()
        .find(|r| r.name == env)
        .and_then(|r| r.outcome.as_ref().ok())
        .map(|d| {
            d.tools
                .iter()
                .filter_map(|t| Some((t.get("name")?.as_str()?, t)))
                .collect()
        })
        .unwrap_or_default()
}

fn tool_lines(
    out: &mut Vec<String>,
    env: &str,
    old: BTreeMap<&str, &Value>,
    new: BTreeMap<&str, &Value>,
) {
    for (name, tool) in &new {
        match old.get(name) {
            None => out.push(format!("{env}: + tool {name}")),
            Some(before) if before != tool => {
                out.push(format!("{env}: ~ tool {name}: {}", changes(before, tool)));
            }
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        out.push(format!("{env}: - tool {name}"));
    }
}

/// Tools listed both times whose needed client capabilities changed.
fn requires_lines(out: &mut Vec<String>, env: &str, old: &[EnvResult], new: &[EnvResult]) {
    let listed = |results: &[EnvResult]| {
        results
            .iter()
            .find(|r| r.name == env)
            .and_then(|r| r.outcome.as_ref().ok())
            .map(|d| d.requires.clone())
    };
    let (Some(before), Some(after)) = (listed(old), listed(new)) else {
        return;
    };
    let old_tools = tools_of(old, env);
    let none = Vec::new();
    for name in tools_of(new, env)
        .into_keys()
        .filter(|n| old_tools.contains_key(n))
    {
        let (b, a) = (
            before.get(name).unwrap_or(&none),
            after.get(name).unwrap_or(&none),
        );
        if b != a {
            let now = if a.is_empty() {
                "listed for every client".to_owned()
            } else {
                format!("listed only for clients with {}", a.join(", "))
            };
            out.push(format!("{env}: ~ tool {name}: now {now}"));
        }
    }
}

/// Which fields of a tool definition changed; the description with its old and new text.
pub fn changes(old: &Value, new: &Value) -> String {
    let empty = Map::new();
    let a = old.as_object().unwrap_or(&empty);
    let b = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut parts = Vec::new();
    for key in keys {
        let (x, y) = (a.get(key), b.get(key));
        if x == y {
            continue;
        }
        if key == "description" {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map_or("(none)".into(), quote);
            parts.push(format!("description {} -> {}", text(x), text(y)));
        } else if key == "inputSchema" {
            parts.push(format!("inputSchema ({})", schema_changes(x, y)));
        } else {
            let what = match (x, y) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            parts.push(format!("{key} {what}"));
        }
    }
    parts.join("; ")
}

/// Parameters added, removed or changed between two input schemas.
fn schema_changes(old: Option<&Value>, new: Option<&Value>) -> String {
    let props = |s: Option<&Value>| {
        s.and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (a, b) = (props(old), props(new));
    let mut parts = Vec::new();
    for (name, schema) in &b {
        match a.get(name) {
            None => parts.push(format!("+{name}")),
            Some(before) if before != schema => parts.push(format!("~{name}")),
            Some(_) => {}
        }
    }
    for name in a.keys().filter(|n| !b.contains_key(*n)) {
        parts.push(format!("-{name}"));
    }
    if parts.is_empty() {
        "required or other keywords".to_owned()
    } else {
        parts.join(" ")
    }
}

fn diagnostic_lines(out: &mut Vec<String>, what: &str, old: &[Diagnostic], new: &[Diagnostic]) {
    for d in new.iter().filter(|d| !old.contains(d)) {
        out.push(format!("+ {what}: {d}"));
    }
    for d in old.iter().filter(|d| !new.contains(d)) {
        out.push(format!("- {what} resolved: {d}"));
    }
}

fn config_lines(out: &mut Vec<String>, old: &Config, new: &Config) {
    let roles = |c: &Config| -> Option<BTreeMap<String, BTreeMap<String, Vec<String>>>> {
        c.auth.as_ref().map(|a| {
            a.roles
                .iter()
                .map(|(role, cfg)| (role.clone(), cfg.allowed_envs.clone()))
                .collect()
        })
    };
    match (roles(old), roles(new)) {
        (None, Some(_)) => out.push("auth: enabled (callers need a token)".to_owned()),
        (Some(_), None) => out.push("auth: removed (every caller may call everything)".to_owned()),
        (Some(a), Some(b)) => {
            for (role, envs) in &b {
                match a.get(role) {
                    None => out.push(format!("roles: + {role} {}", envs_text(envs))),
                    Some(before) if before != envs => out.push(format!(
                        "roles: ~ {role} {} -> {}",
                        envs_text(before),
                        envs_text(envs)
                    )),
                    Some(_) => {}
                }
            }
            for role in a.keys().filter(|r| !b.contains_key(*r)) {
                out.push(format!("roles: - {role}"));
            }
        }
        (None, None) => {}
    }
    // Settings without their values: some are credentials, all are in the config file.
    let settings = |c: &Config| format!("{:?} {:?}", c.gateway, c.metrics);
    if settings(old) != settings(new) {
        out.push("config: gateway or metrics settings changed".to_owned());
    }
    let auth_rest = |c: &Config| {
        c.auth.as_ref().map(|a| {
            let mut a = a.clone();
            a.roles.clear();
            format!("{a:?}")
        })
    };
    if auth_rest(old).is_some() && auth_rest(new).is_some() && auth_rest(old) != auth_rest(new) {
        out.push("config: auth settings other than roles changed".to_owned());
    }
    for (name, env) in &new.environments.0 {
        let before = old.environments.0.iter().find(|(n, _)| n == name);
        if let Some((_, before)) = before {
            if before.headers != env.headers {
                let names: Vec<&str> = env.headers.keys().map(String::as_str).collect();
                out.push(format!(
                    "{name}: headers changed (now: {})",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ));
            }
            if before.timeout_seconds != env.timeout_seconds {
                out.push(format!("{name}: timeout_seconds changed"));
            }
        }
    }
}

fn envs_text(envs: &BTreeMap<String, Vec<String>>) -> String {
    let parts: Vec<String> = envs
        .iter()
        .map(|(env, tools)| format!("{env}: [{}]", tools.join(", ")))
        .collect();
    format!("{{{}}}", parts.join("; "))
}

/// `text` in double quotes, cut at [`QUOTE_MAX`] characters.
fn quote(text: &str) -> String {
    let mut cut: String = text.chars().take(QUOTE_MAX).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
