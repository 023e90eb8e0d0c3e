//! How big `tools/list` is for 2, 3 and 5 environments: meshmux's merged list (Envoy +
//! meshmux answering, i.e. the real filter reply), a naive aggregator's (every env's tools
//! listed again under an env prefix), and mcp-env-mux's own merge; for an unrestricted caller
//! and for one whose role allows half the tools. meshmux is measured in both
//! `gateway.env_descriptions` modes: `per_tool` (the default) and `instructions` (envs
//! described once, in `initialize`'s instructions, whose tokens are counted separately). Tokens
//! are counted with tiktoken's `o200k_base` encoding (the GPT-4o family's).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use policy::gateway::{Caller, Gateway, Outcome, RequestHead};
use policy::manifest::FilterConfig;
use serde_json::{Value, json};

use crate::net::{free_port, http, json_payload};
use crate::server::Server;
use crate::{Args, envoy, peer};

/// The demo backends' envs, in the order they are added (Prod and Dev differ from the rest);
/// descriptions in the style of seed 000's example config.
const ENVS: [(&str, &str); 5] = [
    ("Prod", "Production environment"),
    ("Staging", "Staging environment"),
    ("Dev", "Development environment"),
    ("Qa", "QA environment"),
    ("Perf", "Performance-test environment"),
];

/// One list's size.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub tools: usize,
    pub bytes: usize,
    pub tokens: usize,
}

pub struct SizeRow {
    pub envs: usize,
    /// "all tools" or "role allows half".
    pub caller: &'static str,
    pub naive: Size,
    /// `gateway.env_descriptions: per_tool` (the default).
    pub meshmux: Size,
    /// `gateway.env_descriptions: instructions`: the list only.
    pub once: Size,
    /// ... and the tokens of the `instructions` text `initialize` returns to this caller,
    /// which a client reads once per session (not per list).
    pub instructions_tokens: usize,
    /// mcp-env-mux needs Azure sign-in for roles, so only the unrestricted row has it.
    pub peer: Option<Size>,
}

struct Counter(tiktoken_rs::CoreBPE);

impl Counter {
    fn size(&self, body: &str) -> Result<Size> {
        let tools = json_payload(body)?
            .pointer("/result/tools")
            .and_then(Value::as_array)
            .map(Vec::len)
            .with_context(|| format!("no result.tools in {body:.300}"))?;
        Ok(Size {
            tools,
            bytes: body.len(),
            tokens: self.tokens(body),
        })
    }

    fn tokens(&self, text: &str) -> usize {
        self.0.encode_with_special_tokens(text).len()
    }
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"meshmux-bench","version":"0"}}}"#;

/// The `instructions` of an `initialize` answer ("" when it has none).
fn instructions_of(answer: &str) -> Result<String> {
    let payload = json_payload(answer)?;
    if payload.get("result").is_none() {
        bail!("initialize got no result: {answer:.300}");
    }
    Ok(payload
        .pointer("/result/instructions")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

pub fn table(args: &Args) -> Result<(Vec<SizeRow>, crate::exposure::Exposure)> {
    let counter = Counter(tiktoken_rs::o200k_base().context("loading the o200k_base encoding")?);
    // One demo backend per env (`meshmux demo-backend`, the same rmcp servers the tests use).
    let mut backends = Vec::new();
    let mut per_env: Vec<(&str, &str, String, Vec<Value>)> = Vec::new();
    for (name, description) in ENVS {
        let port = free_port()?;
        let mut cmd = Command::new(&args.meshmux);
        cmd.args(["demo-backend", "--env", name, "--port", &port.to_string()])
            .args(["--stateless", "--json-response"]);
        let log = args.work.join(format!("demo-{name}.log"));
        backends.push(Server::start(
            cmd,
            "meshmux demo-backend",
            &log,
            true,
            Duration::from_secs(20),
            || matches!(http(port, "POST", "/mcp", LIST), Ok((200, _))),
        )?);
        let (_, body) = http(port, "POST", "/mcp", LIST)?;
        let tools = json_payload(&body)?
            .pointer("/result/tools")
            .and_then(Value::as_array)
            .cloned()
            .with_context(|| format!("demo backend {name} listed no tools: {body:.300}"))?;
        per_env.push((
            name,
            description,
            format!("http://127.0.0.1:{port}/mcp"),
            tools,
        ));
    }

    let mut rows = Vec::new();
    for n in [2, 3, 5] {
        let envs = per_env.get(..n).context("fewer demo envs than rows")?;
        let spec: Vec<(&str, &str, String)> = envs
            .iter()
            .map(|(name, description, url, _)| (*name, *description, url.clone()))
            .collect();
        let work = args.work.join(format!("tokens-{n}"));
        let (merged, manifest, _) = meshmux_answers(args, &work, &spec, None)?;
        let work_once = args.work.join(format!("tokens-{n}-instructions"));
        let (merged_once, manifest_once, initialized) =
            meshmux_answers(args, &work_once, &spec, Some("instructions"))?;
        let instructions = instructions_of(&initialized)?;
        if !instructions.contains(ENVS[0].1) {
            bail!("initialize's instructions do not describe the envs: {instructions:?}");
        }
        let mut names: Vec<String> = json_payload(&merged)?
            .pointer("/result/tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        names.sort();
        let half: Vec<String> = names.iter().take(names.len() / 2).cloned().collect();
        let roles = json!({"half": {"allowed_envs": {"*": half}}});
        let half_caller = Caller::Roles(vec!["half".into()]);
        let restricted = gateway_answer(&manifest, Some(&roles), &half_caller, LIST)?;
        let restricted_once = gateway_answer(&manifest_once, Some(&roles), &half_caller, LIST)?;
        let restricted_instructions = instructions_of(&gateway_answer(
            &manifest_once,
            Some(&roles),
            &half_caller,
            INITIALIZE,
        )?)?;

        let peer_list = {
            let port = free_port()?;
            let config = work.join("mcp-env-mux.json");
            std::fs::write(&config, peer::config(&spec))?;
            let _peer = peer::start(&args.peer, &config, &work.join("mcp-env-mux.log"), port)?;
            let (status, body) = http(port, "POST", "/mcp", LIST)?;
            if status != 200 {
                bail!("mcp-env-mux answered tools/list with {status}: {body:.300}");
            }
            json_payload(&body)?.to_string()
        };

        rows.push(SizeRow {
            envs: n,
            caller: "all tools",
            naive: counter.size(&naive(envs, None))?,
            meshmux: counter.size(&merged)?,
            once: counter.size(&merged_once)?,
            instructions_tokens: counter.tokens(&instructions),
            peer: Some(counter.size(&peer_list)?),
        });
        rows.push(SizeRow {
            envs: n,
            caller: "role allows half",
            naive: counter.size(&naive(envs, Some(&half)))?,
            meshmux: counter.size(&restricted)?,
            once: counter.size(&restricted_once)?,
            instructions_tokens: counter.tokens(&restricted_instructions),
            peer: None,
        });
    }
    let prod = per_env.first().map(|e| e.3.as_slice()).unwrap_or_default();
    let exposure = crate::exposure::measure(prod, &|text| counter.tokens(text))?;
    drop(backends);
    Ok((rows, exposure))
}

/// What an aggregator without a merge sends: each env's tools again, renamed `<env>_<tool>`
/// so the names stay unique, descriptions and schemas as the backend gave them.
fn naive(envs: &[(&str, &str, String, Vec<Value>)], only: Option<&[String]>) -> String {
    let mut tools = Vec::new();
    for (env, _, _, list) in envs {
        for tool in list {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            if only.is_some_and(|allowed| !allowed.iter().any(|a| a == name)) {
                continue;
            }
            let mut tool = tool.clone();
            if let Some(obj) = tool.as_object_mut() {
                obj.insert("name".into(), json!(format!("{env}_{name}")));
            }
            tools.push(tool);
        }
    }
    json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}).to_string()
}

/// `meshmux discover` for these envs (with `gateway.env_descriptions` when given), then
/// tools/list and initialize through Envoy + meshmux: (list answer, manifest, initialize
/// answer). The list must equal `policy::Gateway`'s for the same manifest (the filter's own
/// decision code), so that the restricted rows computed natively are the filter's too.
fn meshmux_answers(
    args: &Args,
    work: &Path,
    envs: &[(&str, &str, String)],
    env_descriptions: Option<&str>,
) -> Result<(String, Value, String)> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let mut config_json: Value = serde_json::from_str(&peer::config(envs))?;
    if let (Some(mode), Some(obj)) = (env_descriptions, config_json.as_object_mut()) {
        obj.insert("gateway".into(), json!({"env_descriptions": mode}));
    }
    let (list, initialized) = meshmux_list(args, work, &config_json)?;
    let manifest = work.join("out/manifest.json");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(&manifest).with_context(|| format!("reading {}", manifest.display()))?,
    )
    .with_context(|| format!("parsing {}", manifest.display()))?;
    let native = gateway_answer(&manifest, None, &Caller::Unrestricted, LIST)?;
    if json_payload(&native)? != json_payload(&list)? {
        bail!(
            "the filter's tools/list through Envoy differs from policy::Gateway's:\n{list}\n{native}"
        );
    }
    Ok((list, manifest, initialized))
}

/// `meshmux discover` for this config, then (tools/list, initialize) through Envoy + meshmux.
fn meshmux_list(args: &Args, work: &Path, config_json: &Value) -> Result<(String, String)> {
    let (port, admin) = (free_port()?, free_port()?);
    let config = work.join("meshmux.json");
    std::fs::write(&config, config_json.to_string())?;
    let out = work.join("out");
    envoy::discover(
        &args.meshmux,
        &args.filter,
        &config,
        &out,
        (port, admin),
        true,
    )?;
    let _envoy = envoy::start(
        &args.envoy,
        &out.join("envoy.yaml"),
        &work.join("envoy.log"),
        admin,
    )?;
    let (status, body) = http(port, "POST", "/mcp", LIST)?;
    if status != 200 {
        bail!("Envoy + meshmux answered tools/list with {status}: {body:.300}");
    }
    let (status, initialized) = http(port, "POST", "/mcp", INITIALIZE)?;
    if status != 200 {
        bail!("Envoy + meshmux answered initialize with {status}: {initialized:.300}");
    }
    Ok((body, initialized))
}

/// The filter's answer to `body` (answered locally: tools/list, initialize) computed by
/// `policy::Gateway` for `caller`, with `roles` as the config's `auth.roles` when given.
fn gateway_answer(
    manifest: &Value,
    roles: Option<&Value>,
    caller: &Caller,
    body: &str,
) -> Result<String> {
    let mut config = json!({"manifest": manifest});
    if let (Some(roles), Some(obj)) = (roles, config.as_object_mut()) {
        obj.insert(
            "auth".into(),
            json!({"claims_path": ["envoy.filters.http.jwt_authn", "jwt_payload"], "roles": roles}),
        );
    }
    let config: FilterConfig =
        serde_json::from_value(config).context("building the filter config from manifest.json")?;
    let gateway = Gateway::new(config).map_err(anyhow::Error::msg)?;
    let head = RequestHead {
        method: "POST",
        path: "/mcp",
        content_type: Some("application/json"),
        ..RequestHead::default()
    };
    match gateway.on_body(&head, body.as_bytes(), caller) {
        Outcome::Reply(reply) | Outcome::Initialized(reply) => Ok(reply.body_text()),
        other => bail!("policy::Gateway did not answer {body} itself: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_lists_every_env_again_under_a_prefix() -> Result<()> {
        let tools = vec![json!({"name": "a"}), json!({"name": "b"})];
        let envs = vec![
            ("Prod", "p", String::new(), tools.clone()),
            ("Dev", "d", String::new(), tools),
        ];
        let all = json_payload(&naive(&envs, None))?;
        let names: Vec<&str> = all
            .pointer("/result/tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .collect();
        assert_eq!(names, ["Prod_a", "Prod_b", "Dev_a", "Dev_b"]);
        let half = json_payload(&naive(&envs, Some(&["b".to_owned()])))?;
        assert_eq!(half.pointer("/result/tools/1/name"), Some(&json!("Dev_b")));
        Ok(())
    }
}
