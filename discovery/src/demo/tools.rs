//! The demo backends' ops tools. They differ per env so that every merge rule shows: a tool
//! only Prod has, a parameter only Dev has, and (with `--drift`) a description or a type
//! that no longer matches. Pure: definitions and answers, no IO.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A deliberate difference from the other envs, for `check` to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Drift {
    /// `search_logs` gets another description (a merge error).
    Description,
    /// `search_logs.limit` becomes a string (a merge error).
    Type,
}

/// Most progress steps `stream_progress` will run.
pub const MAX_STEPS: i64 = 100;

fn is(env: &str, name: &str) -> bool {
    env.eq_ignore_ascii_case(name)
}

/// The tool definitions this env's backend lists.
pub fn definitions(env: &str, drift: Option<Drift>) -> Vec<Value> {
    let search_description = match drift {
        Some(Drift::Description) => {
            "Search the logs of every service for lines that match a query (newest first)."
        }
        _ => {
            "Search the service logs for lines matching a query. Returns the newest matches first."
        }
    };
    let limit_type = match drift {
        Some(Drift::Type) => "string",
        _ => "integer",
    };
    let mut metrics_props = json!({
        "metric": {"type": "string", "description": "Metric name, e.g. http_requests_total"},
        "window": {"type": "string", "description": "Time window, e.g. 5m or 1h"}
    });
    if is(env, "dev")
        && let Some(props) = metrics_props.as_object_mut()
    {
        props.insert(
            "debug".into(),
            json!({"type": "boolean", "description": "Include the raw query plan"}),
        );
    }
    let mut tools = vec![
        json!({
            "name": "search_logs",
            "description": search_description,
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Text or pattern to look for"},
                    "limit": {"type": limit_type, "description": "Most lines to return (default 20)"}
                },
                "required": ["query"]
            },
            "annotations": {"readOnlyHint": true}
        }),
        json!({
            "name": "get_service_status",
            "title": "Service status",
            "description": "Current health, version and replica count of one service.",
            "inputSchema": {
                "type": "object",
                "properties": {"service": {"type": "string", "description": "Service name"}},
                "required": ["service"]
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "env": {"type": "string"},
                    "service": {"type": "string"},
                    "healthy": {"type": "boolean"},
                    "version": {"type": "string"},
                    "replicas": {"type": "integer"}
                },
                "required": ["env", "service", "healthy", "version", "replicas"]
            },
            "annotations": {"title": "Service status", "readOnlyHint": true, "openWorldHint": false}
        }),
        json!({
            "name": "list_deployments",
            "description": "Recent deployments of a service, newest first.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "service": {"type": "string", "description": "Service name"},
                    "limit": {"type": "integer", "description": "Most deployments to return (default 5)"}
                },
                "required": ["service"]
            },
            "annotations": {"readOnlyHint": true}
        }),
        json!({
            "name": "query_metrics",
            "description": "Query a metric over a time window and summarise it.",
            "inputSchema": {
                "type": "object",
                "properties": metrics_props,
                "required": ["metric", "window"]
            },
            "annotations": {"readOnlyHint": true}
        }),
        json!({
            "name": "stream_progress",
            "description": "Run a long task in steps, reporting progress and logs as it goes.",
            "inputSchema": {
                "type": "object",
                "properties": {"steps": {"type": "integer", "description": "Number of steps (1-100)"}},
                "required": ["steps"]
            }
        }),
    ];
    if is(env, "prod") {
        tools.insert(
            3,
            json!({
                "name": "rollback_deployment",
                "description": "Roll a service back to an earlier version.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "service": {"type": "string", "description": "Service name"},
                        "version": {"type": "string", "description": "Version to roll back to"}
                    },
                    "required": ["service", "version"]
                },
                "annotations": {"destructiveHint": true, "readOnlyHint": false, "idempotentHint": true}
            }),
        );
    }
    tools
}

/// Changes to the built-in tools, from `--catalog FILE` (re-read on every request), so a test
/// can add a tool or change a description while the backend runs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Extra tool definitions (replacing a built-in one of the same name).
    #[serde(default)]
    pub add: Vec<Value>,
    /// Names of built-in tools to leave out.
    #[serde(default)]
    pub remove: Vec<String>,
    /// New descriptions by tool name.
    #[serde(default)]
    pub descriptions: BTreeMap<String, String>,
}

impl Overlay {
    /// `defs` with this overlay applied.
    pub fn apply(&self, defs: Vec<Value>) -> Vec<Value> {
        let name = |t: &Value| t.get("name").and_then(Value::as_str).map(str::to_owned);
        let added: Vec<String> = self.add.iter().filter_map(name).collect();
        let mut out: Vec<Value> = defs
            .into_iter()
            .filter(|t| name(t).is_some_and(|n| !self.remove.contains(&n) && !added.contains(&n)))
            .collect();
        out.extend(self.add.iter().cloned());
        for tool in &mut out {
            if let Some(text) = name(tool).and_then(|n| self.descriptions.get(&n))
                && let Some(obj) = tool.as_object_mut()
            {
                obj.insert("description".into(), Value::String(text.clone()));
            }
        }
        out
    }
}

/// What a call returns: text lines, optional structured content, or an error text.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ok {
        text: String,
        structured: Option<Value>,
    },
    Error(String),
    /// `stream_progress`: run this many steps first, then answer `text`.
    Steps {
        steps: u32,
        text: String,
    },
}

/// Checks `arguments` against the tool's schema (unknown, missing and mistyped arguments
/// are errors, so a gateway that forgets to strip `env` is caught) and answers.
pub fn call(
    env: &str,
    drift: Option<Drift>,
    tool: &str,
    arguments: &Map<String, Value>,
) -> Option<Answer> {
    call_in(&definitions(env, drift), env, tool, arguments)
}

/// Like [`call`] against `defs` (the built-in tools with an [`Overlay`]); a tool the overlay
/// added answers that it ran.
pub fn call_in(
    defs: &[Value],
    env: &str,
    tool: &str,
    arguments: &Map<String, Value>,
) -> Option<Answer> {
    let def = defs
        .iter()
        .find(|d| d.get("name").and_then(Value::as_str) == Some(tool))?;
    let head = format!(
        "[{env}] {tool} called with {}",
        Value::Object(arguments.clone())
    );
    if let Err(problem) = validate(def, arguments) {
        return Some(Answer::Error(format!("{head}: {problem}")));
    }
    let s = |k: &str| arguments.get(k).and_then(Value::as_str).unwrap_or_default();
    let n = |k: &str, default: i64| arguments.get(k).and_then(Value::as_i64).unwrap_or(default);
    let text = |lines: Vec<String>| Answer::Ok {
        text: format!("{head}\n{}", lines.join("\n")),
        structured: None,
    };
    Some(match tool {
        "search_logs" => {
            let limit = n("limit", 20).clamp(0, 3);
            text(
                (1..=limit)
                    .map(|i| {
                        format!(
                            "2026-11-22T10:0{i}:00Z {env} api: {} (match {i})",
                            s("query")
                        )
                    })
                    .collect(),
            )
        }
        "get_service_status" => {
            let status = json!({
                "env": env,
                "service": s("service"),
                "healthy": true,
                "version": if is(env, "prod") { "1.4.2" } else { "1.5.0-rc.1" },
                "replicas": if is(env, "prod") { 6 } else { 2 },
            });
            Answer::Ok {
                text: format!("{head}\n{status}"),
                structured: Some(status),
            }
        }
        "list_deployments" => {
            let limit = n("limit", 5).clamp(0, 3);
            text(
                (0..limit)
                    .map(|i| format!("{} 1.4.{} deployed to {env}", s("service"), 2 - i))
                    .collect(),
            )
        }
        "rollback_deployment" => text(vec![format!(
            "rolled {} back to {} in {env}",
            s("service"),
            s("version")
        )]),
        "query_metrics" => {
            let mut lines = vec![format!(
                "{} over {} in {env}: avg 42.0, p99 97.5",
                s("metric"),
                s("window")
            )];
            if arguments.get("debug").and_then(Value::as_bool) == Some(true) {
                lines.push("query plan: rate(...) by (service)".into());
            }
            text(lines)
        }
        "stream_progress" => {
            let steps = n("steps", 0);
            if !(1..=MAX_STEPS).contains(&steps) {
                return Some(Answer::Error(format!(
                    "{head}: steps must be between 1 and {MAX_STEPS}"
                )));
            }
            let steps = u32::try_from(steps).unwrap_or(1);
            Answer::Steps {
                steps,
                text: format!("{head}\ncompleted {steps} steps"),
            }
        }
        // A tool from `--catalog`.
        _ => text(vec![format!("{tool} done in {env}")]),
    })
}

fn validate(def: &Value, arguments: &Map<String, Value>) -> Result<(), String> {
    let props = def
        .pointer("/inputSchema/properties")
        .and_then(Value::as_object);
    for (name, value) in arguments {
        let Some(schema) = props.and_then(|p| p.get(name)) else {
            return Err(format!("unexpected argument `{name}`"));
        };
        let ok = match schema.get("type").and_then(Value::as_str) {
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("boolean") => value.is_boolean(),
            _ => true,
        };
        if !ok {
            let expected = schema.get("type").cloned().unwrap_or_default();
            return Err(format!("argument `{name}` must be of type {expected}"));
        }
    }
    let required = def
        .pointer("/inputSchema/required")
        .and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        if !arguments.contains_key(name) {
            return Err(format!("missing required argument `{name}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(env: &str) -> Vec<String> {
        definitions(env, None)
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn envs_differ_where_the_merge_rules_show() {
        assert!(names("Prod").contains(&"rollback_deployment".to_owned()));
        assert!(!names("Staging").contains(&"rollback_deployment".to_owned()));
        let dev = definitions("Dev", None);
        let metrics = dev.iter().find(|t| t["name"] == "query_metrics").unwrap();
        assert!(metrics["inputSchema"]["properties"]["debug"].is_object());
        let prod = definitions("Prod", None);
        let metrics = prod.iter().find(|t| t["name"] == "query_metrics").unwrap();
        assert!(metrics["inputSchema"]["properties"].get("debug").is_none());
    }

    #[test]
    fn drift_changes_search_logs() {
        let typed = definitions("Staging", Some(Drift::Type));
        assert_eq!(
            typed[0]["inputSchema"]["properties"]["limit"]["type"],
            "string"
        );
        let described = definitions("Staging", Some(Drift::Description));
        assert_ne!(
            described[0]["description"],
            definitions("Staging", None)[0]["description"]
        );
    }

    #[test]
    fn answers_name_the_env_and_the_arguments() {
        let args = json!({"query": "timeout", "limit": 2});
        let Some(Answer::Ok { text, .. }) =
            call("Prod", None, "search_logs", args.as_object().unwrap())
        else {
            panic!("search_logs failed")
        };
        assert!(
            text.starts_with(r#"[Prod] search_logs called with {"query":"timeout","limit":2}"#),
            "{text}"
        );
    }

    #[test]
    fn unknown_missing_and_mistyped_arguments_are_errors() {
        let check = |args: Value, expected: &str| {
            let answer = call("Staging", None, "query_metrics", args.as_object().unwrap());
            match answer {
                Some(Answer::Error(e)) => assert!(e.contains(expected), "{e}"),
                other => panic!("expected an error with {expected:?}, got {other:?}"),
            }
        };
        check(
            json!({"metric": "m", "window": "5m", "env": "Staging"}),
            "unexpected argument `env`",
        );
        check(
            json!({"metric": "m", "window": "5m", "debug": true}),
            "unexpected argument `debug`",
        );
        check(json!({"metric": "m"}), "missing required argument `window`");
        check(json!({"metric": 1, "window": "5m"}), "must be of type");
        assert!(call("Staging", None, "rollback_deployment", &Map::new()).is_none());
    }

    #[test]
    fn an_overlay_adds_removes_and_redescribes() {
        let overlay: Overlay = serde_json::from_value(json!({
            "add": [{"name": "restart_service", "description": "Restart.",
                     "inputSchema": {"type": "object", "properties": {"service": {"type": "string"}}}}],
            "remove": ["stream_progress"],
            "descriptions": {"search_logs": "Grep the logs."}
        }))
        .unwrap();
        let defs = overlay.apply(definitions("Staging", None));
        let names: Vec<&str> = defs.iter().filter_map(|t| t["name"].as_str()).collect();
        assert!(names.contains(&"restart_service"), "{names:?}");
        assert!(!names.contains(&"stream_progress"), "{names:?}");
        assert_eq!(defs[0]["description"], "Grep the logs.");
        let args = json!({"service": "api"});
        let Some(Answer::Ok { text, .. }) = call_in(
            &defs,
            "Staging",
            "restart_service",
            args.as_object().unwrap(),
        ) else {
            panic!("the added tool did not answer")
        };
        assert!(text.contains("restart_service done in Staging"), "{text}");
        assert!(call_in(&defs, "Staging", "stream_progress", &Map::new()).is_none());
        assert!(serde_json::from_value::<Overlay>(json!({"tools": []})).is_err());
    }

    #[test]
    fn status_has_structured_content() {
        let args = json!({"service": "api"});
        let Some(Answer::Ok {
            structured: Some(s),
            ..
        }) = call("Dev", None, "get_service_status", args.as_object().unwrap())
        else {
            panic!("no structured content")
        };
        assert_eq!(s["env"], "Dev");
        assert_eq!(s["service"], "api");
    }
}
