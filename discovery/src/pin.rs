//! Tool pinning around `policy::pin`: where the pin file lives, reading and writing it
//! (atomically), applying it to what discovery listed, and the text a reviewer reads (what a
//! re-pin changes, what drifted: description and schema diffs). Only `read`/`write` do IO.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use policy::pin::{self, Change, Drift, PinFile, PinMode, PinReport};
use serde_json::Value;

use crate::catalog::EnvResult;
use crate::fsutil::{Written, write_if_changed};

/// The default pin file of `config.json`: `config.pins.json`, next to it.
pub fn default_path(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map_or_else(|| "meshmux".into(), |s| s.to_string_lossy().into_owned());
    config.with_file_name(format!("{stem}.pins.json"))
}

/// `gateway.pin_file` as a path: relative to the config file's directory, or the default.
pub fn resolve(config: &Path, configured: Option<&str>) -> PathBuf {
    match configured {
        Some(p) if Path::new(p).is_absolute() => PathBuf::from(p),
        Some(p) => config
            .parent()
            .map_or_else(|| PathBuf::from(p), |dir| dir.join(p)),
        None => default_path(config),
    }
}

/// The config's pin file (resolved by `discover::load_config`).
pub fn configured_path(config: &policy::config::Config) -> Result<PathBuf> {
    config
        .gateway
        .pin_file
        .as_deref()
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow!("gateway.pin_file is not set (a config loaded from a file gets a default)")
        })
}

/// Reads and verifies a pin file.
pub fn read(path: &Path) -> Result<PinFile> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the pin file {} (write it with `meshmux pin --config <config>`)",
            path.display()
        )
    })?;
    let file: PinFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a meshmux pin file", path.display()))?;
    file.verify()
        .map_err(|e| anyhow!("pin file {}: {e}", path.display()))?;
    Ok(file)
}

/// Reads a pin file that may not exist yet.
pub fn read_if_present(path: &Path) -> Result<Option<PinFile>> {
    if path.exists() {
        read(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Writes a pin file atomically (sorted, pretty, one trailing newline).
pub fn write(path: &Path, file: &PinFile) -> Result<Written> {
    let mut text = serde_json::to_string_pretty(file).context("serializing the pin file")?;
    text.push('\n');
    write_if_changed(path, text.as_bytes(), 0o644)
}

/// Applies the pins to every env that listed tools: the results to merge (under `block`,
/// changed tools replaced by their pinned definition, new ones left out) and the report.
pub fn apply(mode: PinMode, pins: &PinFile, results: &[EnvResult]) -> (Vec<EnvResult>, PinReport) {
    let mut drift = Vec::new();
    let served = results
        .iter()
        .map(|r| match &r.outcome {
            Ok(d) => {
                let applied = pin::apply(mode, pins, &r.name, &d.tools);
                drift.extend(applied.drift);
                let mut d = d.clone();
                d.tools = applied.tools;
                EnvResult {
                    name: r.name.clone(),
                    outcome: Ok(d),
                }
            }
            Err(_) => r.clone(),
        })
        .collect();
    drift.sort_by(|a, b| (&a.env, &a.tool).cmp(&(&b.env, &b.tool)));
    (served, PinReport { mode, drift })
}

/// The pin file for what discovery listed now. An env that could not be listed keeps its
/// old pins (a backend down while pinning must not unpin it); their names are returned.
pub fn repin(old: Option<&PinFile>, results: &[EnvResult], now: &str) -> (PinFile, Vec<String>) {
    let listed: Vec<(&str, &[Value])> = results
        .iter()
        .filter_map(|r| {
            r.outcome
                .as_ref()
                .ok()
                .map(|d| (r.name.as_str(), &d.tools[..]))
        })
        .collect();
    let mut file = pin::pin(listed, now);
    let mut kept = Vec::new();
    for r in results.iter().filter(|r| r.outcome.is_err()) {
        if let Some(tools) = old.and_then(|o| o.envs.get(&r.name)) {
            file.envs.insert(r.name.clone(), tools.clone());
            kept.push(r.name.clone());
        }
    }
    if let Some(old) = old.filter(|o| o.envs == file.envs) {
        file.pinned_at.clone_from(&old.pinned_at);
    }
    (file, kept)
}

/// What a re-pin changes, one line per tool: `+` pinned for the first time, `~` re-pinned
/// with another definition, `-` no longer pinned.
pub fn repin_lines(old: Option<&PinFile>, new: &PinFile) -> Vec<String> {
    let empty = PinFile::default();
    let old = old.unwrap_or(&empty);
    let mut out = Vec::new();
    for (env, tools) in &new.envs {
        for (name, p) in tools {
            match old.get(env, name) {
                None => out.push(format!("{env}: + {name}")),
                Some(o) if o.sha256 != p.sha256 => out.push(format!("{env}: ~ {name}")),
                Some(_) => {}
            }
        }
    }
    for (env, tools) in &old.envs {
        for name in tools.keys() {
            if new.get(env, name).is_none() {
                out.push(format!("{env}: - {name}"));
            }
        }
    }
    out
}

/// Longest value quoted in a schema diff line.
const VALUE_MAX: usize = 400;

/// Every drifted tool as a reviewer reads it: what happens to it, then for a changed tool
/// the description as a line diff and every other field as `path: old -> new`.
pub fn drift_text(report: &PinReport, pins: &PinFile, results: &[EnvResult]) -> String {
    let mut out = String::new();
    for d in &report.drift {
        let (what, lines) = drift_lines(report.mode, d, pins, results);
        out.push_str(&format!("  {} in {}: {what}\n", d.tool, d.env));
        for line in lines {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

/// One line for the logs: `pinning: tool X changed since pinned: …`.
pub fn drift_line(mode: PinMode, d: &Drift) -> String {
    format!("pinning: tool {} {}", d.tool, effect(mode, d.change))
}

fn effect(mode: PinMode, change: Change) -> &'static str {
    match (change, mode) {
        (Change::Changed, PinMode::Block) => {
            "changed since pinned: the pinned definition is served, calls are refused"
        }
        (Change::New, PinMode::Block) => "new since pinned: not served",
        (Change::Changed, _) => "changed since pinned: served as changed",
        (Change::New, _) => "new since pinned: served",
    }
}

/// One drifted tool: what happens to it under `mode`, and its diff against the pin (a new
/// tool: its whole definition, as added lines).
pub fn drift_lines(
    mode: PinMode,
    d: &Drift,
    pins: &PinFile,
    results: &[EnvResult],
) -> (&'static str, Vec<String>) {
    let listed = results
        .iter()
        .find(|r| r.name == d.env)
        .and_then(|r| r.outcome.as_ref().ok())
        .and_then(|found| {
            found
                .tools
                .iter()
                .find(|t| pin::tool_name(t) == Some(d.tool.as_str()))
        });
    let what = effect(mode, d.change);
    let pinned = pins.get(&d.env, &d.tool).map(|p| &p.definition);
    let lines = match (pinned, listed) {
        (Some(old), Some(new)) => definition_diff(old, &pin::canonical(new)),
        (None, Some(new)) => serde_json::to_string_pretty(&pin::canonical(new))
            .unwrap_or_default()
            .lines()
            .map(|l| format!("+ {l}"))
            .collect(),
        _ => Vec::new(),
    };
    (what, lines)
}

/// The lines of a definition diff: the description line by line, the rest by JSON path.
pub fn definition_diff(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let text = |v: &Value| {
        v.get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (a, b) = (text(old), text(new));
    if a != b {
        out.push("description:".to_owned());
        let diff = similar::TextDiff::from_lines(&a, &b);
        for change in diff.iter_all_changes() {
            let sign = match change.tag() {
                similar::ChangeTag::Delete => "-",
                similar::ChangeTag::Insert => "+",
                similar::ChangeTag::Equal => " ",
            };
            out.push(format!(
                "  {sign} {}",
                change.value().trim_end_matches('\n')
            ));
        }
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("description");
        }
        v
    };
    json_diff("", &strip(old), &strip(new), &mut out);
    out
}

fn quote(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > VALUE_MAX {
        let mut end = VALUE_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn json_diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => json_diff(&join(key), x, y, out),
                    (Some(x), None) => out.push(format!("- {}: {}", join(key), quote(x))),
                    (None, Some(y)) => out.push(format!("+ {}: {}", join(key), quote(y))),
                    (None, None) => {}
                }
            }
        }
        _ if old != new => out.push(format!("~ {path}: {} -> {}", quote(old), quote(new))),
        _ => {}
    }
}

#[cfg(test)]
#[path = "pin_tests.rs"]
mod tests;
