//! `gateway.tool_exposure: search`: instead of the whole catalog, callers see two tools,
//! `find_tools(query)` (ranked matches among the tools this caller may use, with their
//! schemas) and `call_tool(name, arguments)`, which is checked exactly as a direct call.

use serde_json::{Map, Value, json};

use super::{Caller, Gateway, Outcome, RequestHead};
use crate::merge::ENV_PARAM;
use crate::reply;
use crate::rpc::code;

pub const FIND_TOOLS: &str = "find_tools";
pub const CALL_TOOL: &str = "call_tool";

/// Matches `find_tools` returns when the caller asks for no `limit`, and at most.
const DEFAULT_LIMIT: usize = 8;
const MAX_LIMIT: usize = 50;

/// The two tools served in search mode; `count` is how many tools the catalog holds.
pub(super) fn search_tools(count: usize) -> Vec<Map<String, Value>> {
    let find = json!({
        "name": FIND_TOOLS,
        "description": format!(
            "Search the {count} tools this gateway serves (across its MCP servers and environments) by what you want to do. Returns the best matches with their descriptions and input schemas; then run one with `{CALL_TOOL}`."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Words describing the task, a tool name, or a server name."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "description": format!("How many matches to return (default {DEFAULT_LIMIT}).")}
            },
            "required": ["query"]
        },
        "annotations": {"readOnlyHint": true}
    });
    let call = json!({
        "name": CALL_TOOL,
        "description": format!("Run a tool found with `{FIND_TOOLS}`: its exact name and its arguments (as its input schema says, `env` included where it has one)."),
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The tool's name as `find_tools` returned it."},
                "arguments": {"type": "object", "description": "The tool's arguments."}
            },
            "required": ["name"]
        }
    });
    [find, call]
        .into_iter()
        .filter_map(|t| t.as_object().cloned())
        .collect()
}

/// Lower-case words of `text`, split at anything but letters and digits (so `github__create_issue`
/// is `github`, `create`, `issue`).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// How well `tool` matches the query's words: a word equal to one of the name's counts 4,
/// part of the name 2, a description word 1 (its start 1 more). 0 is no match.
fn score(query: &[String], tool: &Map<String, Value>) -> u32 {
    let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
    let name_words = words(name);
    let lower_name = name.to_lowercase();
    let description = words(
        tool.get("description")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    query
        .iter()
        .map(|q| {
            let in_name = if name_words.iter().any(|w| w == q) {
                4
            } else if lower_name.contains(q.as_str()) {
                2
            } else {
                0
            };
            let in_description = if description.iter().any(|w| w == q) {
                2
            } else if description.iter().any(|w| w.starts_with(q.as_str())) {
                1
            } else {
                0
            };
            in_name + in_description
        })
        .sum()
}

impl Gateway {
    /// `find_tools`: the caller's best matches, as a tool result (text for the model,
    /// `structuredContent` for programs).
    pub(super) fn find_tools(
        &self,
        id: &Value,
        arguments: &Map<String, Value>,
        caller: &Caller,
    ) -> Outcome {
        let Some(query) = arguments.get("query").and_then(Value::as_str) else {
            return Outcome::Reply(reply::tool_error(
                id,
                "`find_tools` needs `query`: words describing what you want to do.",
            ));
        };
        let limit = match arguments.get("limit") {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(v) => match v.as_u64() {
                Some(n @ 1..) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
                _ => {
                    return Outcome::Reply(reply::tool_error(
                        id,
                        &format!("`limit` must be an integer from 1 to {MAX_LIMIT}."),
                    ));
                }
            },
        };
        let query_words = words(query);
        let mut visible: Vec<(u32, usize, Map<String, Value>)> = self
            .config
            .manifest
            .tools
            .iter()
            .enumerate()
            .filter_map(|(i, t)| self.narrow(t, caller).map(|t| (i, t)))
            .map(|(i, t)| (score(&query_words, &t), i, t))
            .collect();
        let total = visible.len();
        visible.retain(|(s, _, _)| *s > 0);
        visible.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        visible.truncate(limit);
        let matches: Vec<Map<String, Value>> = visible
            .into_iter()
            .map(|(_, _, mut tool)| {
                strip_header_hint(&mut tool);
                tool
            })
            .collect();
        let text = if matches.is_empty() {
            format!(
                "No tool matches {query:?} among the {total} you may use; try other words (a task, a tool or server name)."
            )
        } else {
            let mut text = format!(
                "{} of the {total} tools you may use match {query:?}. Run one with `{CALL_TOOL}` (name, arguments):\n",
                matches.len()
            );
            for tool in &matches {
                text.push_str(&serde_json::to_string(tool).unwrap_or_default());
                text.push('\n');
            }
            text
        };
        Outcome::Reply(reply::result(
            id,
            &json!({
                "content": [{"type": "text", "text": text}],
                "structuredContent": {"tools": matches, "total": total},
            }),
        ))
    }

    /// `call_tool`: the named tool called as if directly, through every check a direct call
    /// passes (roles, envs, pins, the 2026-07-28 headers as that call would carry them).
    pub(super) fn call_found_tool(
        &self,
        head: &RequestHead<'_>,
        header_era: bool,
        id: Value,
        mut object: Map<String, Value>,
        caller: &Caller,
    ) -> Outcome {
        let invalid =
            |message: &str| Outcome::Reply(reply::error(200, &id, code::INVALID_PARAMS, message));
        let Some(params) = object.get_mut("params").and_then(Value::as_object_mut) else {
            return invalid("tools/call needs `params`");
        };
        let inner = params
            .get("arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let Some(name) = inner.get("name").and_then(Value::as_str).map(str::to_owned) else {
            return Outcome::Reply(reply::tool_error(
                &id,
                "`call_tool` needs `name`: a tool name `find_tools` returned.",
            ));
        };
        if name == FIND_TOOLS || name == CALL_TOOL {
            return Outcome::Reply(reply::tool_error(
                &id,
                &format!("`call_tool` runs the catalog's tools, not `{name}`."),
            ));
        }
        let arguments = match inner.get("arguments") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::Object(a)) => Value::Object(a.clone()),
            Some(_) => {
                return Outcome::Reply(reply::tool_error(&id, "`arguments` must be an object."));
            }
        };
        let env = arguments
            .get(ENV_PARAM)
            .and_then(Value::as_str)
            .map(str::to_owned);
        params.insert("name".into(), Value::String(name.clone()));
        params.insert("arguments".into(), arguments);
        // The direct call's headers: what a 2026-07-28 client would have sent for it.
        let direct = RequestHead {
            mcp_name: Some(&name),
            mcp_param_env: env.as_deref(),
            ..head.clone()
        };
        self.tools_call(&direct, header_era, id, object, caller)
    }
}

/// The `x-mcp-header` hint names a header of a direct call; through `call_tool` there is none.
fn strip_header_hint(tool: &mut Map<String, Value>) {
    if let Some(env) = tool
        .get_mut("inputSchema")
        .and_then(|s| s.get_mut("properties"))
        .and_then(|p| p.get_mut(ENV_PARAM))
        .and_then(Value::as_object_mut)
    {
        env.remove(crate::merge::HEADER_HINT);
    }
}
