//! Seed 000's merge rules, kept exactly, but lossless: tools are grouped by name across envs;
//! descriptions and parameter types must match; a tool in some envs only gets an `env` enum of
//! those; parameters in some envs only become optional (with a warning) and are stripped from
//! calls to envs that lack them. Every other field and schema keyword is kept.

use serde_json::{Map, Value, json};

use crate::manifest::{Diagnostic, EnvDescriptions, ToolEntry, ToolEnv};

/// The name of the argument meshmux injects.
pub const ENV_PARAM: &str = "env";

/// The schema keyword telling 2026-07-28-era clients which header mirrors the `env` argument.
pub const HEADER_HINT: &str = "x-mcp-header";

/// One environment's discovered tools.
#[derive(Debug, Clone)]
pub struct EnvTools<'a> {
    pub env: &'a str,
    pub description: &'a str,
    pub tools: &'a [Value],
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeOutput {
    pub tools: Vec<ToolEntry>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Merges the tools of every env (given in config order), describing the envs in every
/// tool's `env` parameter (seed 000's behaviour).
pub fn merge(envs: &[EnvTools<'_>]) -> MergeOutput {
    merge_with(envs, EnvDescriptions::PerTool)
}

/// [`merge`], with the envs' descriptions stated where `descriptions` says.
pub fn merge_with(envs: &[EnvTools<'_>], descriptions: EnvDescriptions) -> MergeOutput {
    merge_envs(envs, descriptions, true)
}

/// [`merge_with`]; without `inject_env` (a server with one backend) the tools are served as
/// the backend defines them, an `env` parameter of their own included, and marked
/// `implicit_env`.
pub fn merge_envs(
    envs: &[EnvTools<'_>],
    descriptions: EnvDescriptions,
    inject_env: bool,
) -> MergeOutput {
    let mut out = MergeOutput::default();
    // name → [(env, tool object)], in order of first appearance.
    let mut groups: Vec<(String, Vec<Member<'_, '_>>)> = Vec::new();
    for env in envs {
        for tool in env.tools {
            let Some(obj) = tool.as_object() else {
                out.errors.push(diag(
                    "?",
                    format!("{} returned a tool that is not an object", env.env),
                ));
                continue;
            };
            let Some(name) = obj.get("name").and_then(Value::as_str) else {
                out.errors.push(diag(
                    "?",
                    format!("{} returned a tool without a name", env.env),
                ));
                continue;
            };
            match groups.iter_mut().find(|(n, _)| n == name) {
                Some((_, members)) => members.push((env, obj)),
                None => groups.push((name.to_owned(), vec![(env, obj)])),
            }
        }
    }
    for (name, members) in &groups {
        if let Some(entry) = merge_group(name, members, descriptions, inject_env, &mut out) {
            out.tools.push(entry);
        }
    }
    out
}

/// One env's definition of a tool.
type Member<'e, 'a> = (&'e EnvTools<'a>, &'a Map<String, Value>);

fn diag(tool: &str, message: String) -> Diagnostic {
    Diagnostic {
        tool: tool.to_owned(),
        message,
    }
}

fn env_list<T>(items: &[(&str, T)]) -> String {
    items.iter().map(|(e, _)| *e).collect::<Vec<_>>().join(", ")
}

fn properties(schema: &Map<String, Value>) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn required(schema: &Map<String, Value>) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn merge_group(
    name: &str,
    members: &[Member<'_, '_>],
    where_described: EnvDescriptions,
    inject_env: bool,
    out: &mut MergeOutput,
) -> Option<ToolEntry> {
    let empty = Map::new();
    let mut failed = false;
    let schemas: Vec<(&str, &Map<String, Value>)> = members
        .iter()
        .map(|(env, tool)| {
            let schema = tool.get("inputSchema").and_then(Value::as_object);
            if schema.is_none() {
                out.errors.push(diag(
                    name,
                    format!("{}: inputSchema is missing or not an object", env.env),
                ));
                failed = true;
            }
            (env.env, schema.unwrap_or(&empty))
        })
        .collect();

    // Descriptions must match.
    let descriptions: Vec<(&str, Option<&Value>)> = members
        .iter()
        .map(|(env, tool)| (env.env, tool.get("description")))
        .collect();
    if descriptions
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.1 != b.1))
    {
        let detail = descriptions
            .iter()
            .map(|(env, d)| format!("{env}: {}", d.map_or("(none)".to_owned(), Value::to_string)))
            .collect::<Vec<_>>()
            .join("; ");
        out.errors.push(diag(
            name,
            format!("description differs between environments: {detail}"),
        ));
        failed = true;
    }

    // Union of parameters, in first-seen order, with the envs that have each.
    let mut params: Vec<(String, Vec<(&str, &Value)>)> = Vec::new();
    for (env, schema) in &schemas {
        for (param, param_schema) in properties(schema).into_iter().flatten() {
            match params.iter_mut().find(|(p, _)| p == param) {
                Some((_, owners)) => owners.push((env, param_schema)),
                None => params.push((param.clone(), vec![(env, param_schema)])),
            }
        }
    }
    if inject_env && params.iter().any(|(p, _)| p == ENV_PARAM) {
        out.errors.push(diag(
            name,
            format!(
                "already has a parameter named `{ENV_PARAM}` ({}); meshmux injects its own `{ENV_PARAM}` argument, so this tool cannot be merged",
                env_list(&params.iter().find(|(p, _)| p == ENV_PARAM).map(|(_, o)| o.clone()).unwrap_or_default())
            ),
        ));
        failed = true;
    }

    // Shared parameters must have the same type.
    for (param, owners) in &params {
        let types: Vec<(&str, Option<&Value>)> =
            owners.iter().map(|(e, s)| (*e, s.get("type"))).collect();
        if types.windows(2).any(|w| matches!(w, [a, b] if a.1 != b.1)) {
            let detail = types
                .iter()
                .map(|(env, t)| {
                    format!("{env}: {}", t.map_or("(none)".to_owned(), Value::to_string))
                })
                .collect::<Vec<_>>()
                .join("; ");
            out.errors.push(diag(
                name,
                format!("parameter `{param}` has different types: {detail}"),
            ));
            failed = true;
        }
    }
    if failed {
        return None;
    }

    let all_envs: Vec<&str> = members.iter().map(|(e, _)| e.env).collect();
    let mut merged_required = Vec::new();
    for (param, owners) in &params {
        if owners.len() < all_envs.len() {
            let missing: Vec<&str> = all_envs
                .iter()
                .copied()
                .filter(|e| !owners.iter().any(|(o, _)| o == e))
                .collect();
            out.warnings.push(diag(
                name,
                format!(
                    "parameter `{param}` only available on: {}; it is optional and stripped from calls to {}",
                    env_list(owners),
                    missing.join(", ")
                ),
            ));
            continue;
        }
        let required_in: Vec<&str> = schemas
            .iter()
            .filter(|(_, s)| required(s).contains(&param.as_str()))
            .map(|(e, _)| *e)
            .collect();
        if required_in.len() == all_envs.len() {
            merged_required.push(Value::String(param.clone()));
        } else if !required_in.is_empty() {
            out.warnings.push(diag(
                name,
                format!(
                    "parameter `{param}` is required on {} only; it is optional in the merged tool",
                    required_in.join(", ")
                ),
            ));
        }
    }

    // Every other top-level field comes from the first env; say so when they differ.
    let (_, first) = members.first()?;
    for key in first
        .keys()
        .chain(members.iter().skip(1).flat_map(|(_, t)| t.keys()))
    {
        if matches!(key.as_str(), "name" | "description" | "inputSchema") {
            continue;
        }
        let values: Vec<Option<&Value>> = members.iter().map(|(_, t)| t.get(key)).collect();
        if values.windows(2).any(|w| matches!(w, [a, b] if a != b))
            && !out
                .warnings
                .iter()
                .any(|w| w.tool == name && w.message.starts_with(&format!("`{key}`")))
        {
            out.warnings.push(diag(
                name,
                format!(
                    "`{key}` differs between environments; serving {}'s",
                    members.first().map_or("", |(e, _)| e.env)
                ),
            ));
        }
    }

    let mut tool = (*first).clone();
    let mut schema = schemas
        .first()
        .map(|(_, s)| (*s).clone())
        .unwrap_or_default();
    let mut merged_props = Map::new();
    for (param, owners) in &params {
        if let Some((_, s)) = owners.first() {
            merged_props.insert(param.clone(), (*s).clone());
        }
    }
    let tool_envs: Vec<ToolEnv> = schemas
        .iter()
        .map(|(env, s)| ToolEnv {
            env: (*env).to_owned(),
            backend: None,
            params: properties(s)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default(),
            requires: Vec::new(),
        })
        .collect();
    if !inject_env {
        // One backend: its definition as it is.
        return Some(ToolEntry {
            tool,
            envs: tool_envs,
            upstream: None,
            implicit_env: true,
        });
    }
    let env_descriptions: Vec<(&str, &str)> = members
        .iter()
        .map(|(e, _)| (e.env, e.description))
        .collect();
    merged_props.insert(
        ENV_PARAM.to_owned(),
        env_property(
            &env_descriptions,
            &params_only_on(&tool_envs),
            where_described,
        ),
    );
    merged_required.push(Value::String(ENV_PARAM.to_owned()));
    schema.insert("type".to_owned(), json!("object"));
    schema.insert("properties".to_owned(), Value::Object(merged_props));
    schema.insert("required".to_owned(), Value::Array(merged_required));
    tool.insert("inputSchema".to_owned(), Value::Object(schema));
    Some(ToolEntry {
        tool,
        envs: tool_envs,
        upstream: None,
        implicit_env: false,
    })
}

/// Parameters that only some of `envs` have: (param, the envs that have it).
pub fn params_only_on(envs: &[ToolEnv]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for env in envs {
        for p in &env.params {
            if !out.iter().any(|(q, _)| q == p) {
                let owners: Vec<String> = envs
                    .iter()
                    .filter(|e| e.params.contains(p))
                    .map(|e| e.env.clone())
                    .collect();
                if owners.len() < envs.len() {
                    out.push((p.clone(), owners));
                }
            }
        }
    }
    out
}

/// The `env` parameter's description when the envs are described in the instructions.
pub const ENV_POINTER: &str = "Environment to run in (see the server instructions).";

/// The injected `env` property for these envs (name, description), with notes on the
/// parameters only some of them support. The notes are per tool, so they stay in both modes.
pub fn env_property(
    envs: &[(&str, &str)],
    partial: &[(String, Vec<String>)],
    descriptions: EnvDescriptions,
) -> Value {
    let mut description = match descriptions {
        EnvDescriptions::PerTool => {
            let mut d = String::from("Environment to run this tool in. One of:");
            for (env, desc) in envs {
                d.push_str(&format!("\n- {env}: {desc}"));
            }
            d
        }
        EnvDescriptions::Instructions => ENV_POINTER.to_owned(),
    };
    let visible: Vec<&str> = envs.iter().map(|(e, _)| *e).collect();
    let notes: Vec<String> = partial
        .iter()
        .filter_map(|(param, owners)| {
            let owners: Vec<&str> = owners
                .iter()
                .map(String::as_str)
                .filter(|o| visible.contains(o))
                .collect();
            (!owners.is_empty() && owners.len() < visible.len())
                .then(|| format!("\n- `{param}` is only supported on {}.", owners.join(", ")))
        })
        .collect();
    if !notes.is_empty() {
        description.push_str("\nParameter notes:");
        for n in notes {
            description.push_str(&n);
        }
    }
    json!({
        "type": "string",
        "enum": visible,
        "description": description,
        // 2026-07-28 clients mirror this argument into an `Mcp-Param-Env` header; the gateway
        // drops it when serving older clients (`gateway::list_result`).
        (HEADER_HINT): "Env",
    })
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
