//! `gateway.tool_exposure: search` on a catalog of more than 100 tools: the tokens of the
//! whole `tools/list` against the two search tools plus one `find_tools` answer. Computed by
//! `policy::Gateway` itself (the filter's code) on a manifest of 18 servers, each serving the
//! demo backend's Prod tools under its own prefix.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use policy::gateway::{Caller, Gateway, Outcome, RequestHead};
use policy::manifest::{
    EnvDescriptions, EnvEntry, FilterConfig, MANIFEST_FORMAT, Manifest, ServerInfo, ToolExposure,
};
use policy::servers::{BackendTools, ServerEnv, ServerSpec, assemble};
use serde_json::{Value, json};

const SERVERS: [&str; 18] = [
    "github",
    "jira",
    "confluence",
    "grafana",
    "prometheus",
    "loki",
    "pagerduty",
    "slack",
    "sentry",
    "datadog",
    "k8s",
    "argo",
    "vault",
    "postgres",
    "snowflake",
    "linear",
    "gitlab",
    "notion",
];

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const QUERY: &str = "roll back a deployment";

pub struct Exposure {
    pub tools: usize,
    pub all_tokens: usize,
    pub search_list_tokens: usize,
    pub find_tokens: usize,
    pub found: usize,
}

fn gateway(tools: &[Value], exposure: ToolExposure) -> Result<Gateway> {
    let specs: Vec<ServerSpec> = SERVERS
        .iter()
        .map(|s| ServerSpec {
            name: (*s).into(),
            prefix: Some((*s).into()),
            env_arg: false,
            tools: Default::default(),
            envs: vec![ServerEnv {
                label: (*s).into(),
                backend: (*s).into(),
            }],
        })
        .collect();
    let found: Vec<BackendTools<'_>> = SERVERS
        .iter()
        .map(|s| BackendTools {
            backend: s,
            description: s,
            tools,
        })
        .collect();
    let merged = assemble(&specs, &found, EnvDescriptions::PerTool);
    if !merged.errors.is_empty() {
        bail!("the catalog did not assemble: {:?}", merged.errors);
    }
    let envs = SERVERS
        .iter()
        .map(|s| EnvEntry {
            name: (*s).into(),
            description: (*s).into(),
            cluster: format!("env_{s}"),
            url: format!("http://{s}.internal/mcp"),
            authority: format!("{s}.internal"),
            path: "/mcp".into(),
            protocol_version: "2025-06-18".into(),
            server_info: None,
            unreachable: None,
            stale: None,
            server: Some((*s).into()),
            label: None,
        })
        .collect();
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        hash: String::new(),
        server: ServerInfo {
            name: "meshmux".into(),
            version: "bench".into(),
            instructions: None,
            env_descriptions: EnvDescriptions::PerTool,
            tool_exposure: exposure,
        },
        envs,
        tools: merged.tools,
        warnings: merged.warnings,
        errors: vec![],
        pinning: None,
        prompts: vec![],
        resources: vec![],
        resource_templates: vec![],
    }
    .seal();
    let config: FilterConfig = serde_json::from_value(json!({"manifest": manifest}))?;
    Gateway::new(config).map_err(anyhow::Error::msg)
}

fn answer(gateway: &Gateway, body: &str) -> Result<String> {
    let head = RequestHead {
        method: "POST",
        path: "/mcp",
        content_type: Some("application/json"),
        ..RequestHead::default()
    };
    match gateway.on_body(&head, body.as_bytes(), &Caller::Unrestricted) {
        Outcome::Reply(reply) => Ok(reply.body_text()),
        other => bail!("policy::Gateway did not answer {body} itself: {other:?}"),
    }
}

/// Measures the catalog built from `tools` (the demo backend's Prod list).
pub fn measure(tools: &[Value], count: &dyn Fn(&str) -> usize) -> Result<Exposure> {
    let all = answer(&gateway(tools, ToolExposure::All)?, LIST)?;
    let listed = serde_json::from_str::<Value>(&all)?
        .pointer("/result/tools")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let search = gateway(tools, ToolExposure::Search)?;
    let search_list = answer(&search, LIST)?;
    let find = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "find_tools", "arguments": {"query": QUERY}}})
    .to_string();
    let found_answer = answer(&search, &find)?;
    let found = serde_json::from_str::<Value>(&found_answer)?
        .pointer("/result/structuredContent/tools")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if found == 0 {
        bail!("find_tools found nothing for {QUERY:?}: {found_answer:.300}");
    }
    Ok(Exposure {
        tools: listed,
        all_tokens: count(&all),
        search_list_tokens: count(&search_list),
        find_tokens: count(&found_answer),
        found,
    })
}

pub fn section(e: &Exposure) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## tool_exposure: search on a {}-tool catalog\n",
        e.tools
    );
    let _ = writeln!(
        s,
        "18 servers, each serving the demo backend's Prod tools under its own prefix, answered\n\
         by `policy::Gateway` (the filter's code). **all**: the whole `tools/list`. **search**: the\n\
         `tools/list` of `gateway.tool_exposure: search` (`find_tools`, `call_tool`), then one\n\
         `find_tools` answer for {QUERY:?} ({} matches with their schemas). Tokens: tiktoken\n\
         `o200k_base` over the JSON-RPC response.\n",
        e.found
    );
    let _ = writeln!(
        s,
        "| tools | all: tokens | search: list | + one find_tools | search total | ÷ all |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
    let total = e.search_list_tokens + e.find_tokens;
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {:.3} |",
        e.tools,
        e.all_tokens,
        e.search_list_tokens,
        e.find_tokens,
        total,
        total as f64 / e.all_tokens.max(1) as f64
    );
    s
}
