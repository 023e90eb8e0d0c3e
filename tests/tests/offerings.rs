//! Prompts, resources, templates and completions across servers, on real processes:
//! `@modelcontextprotocol/server-everything` (the official TypeScript server, which offers all
//! of them) as a server with one backend (`everything`) and as a server in two envs (`docs`:
//! Prod and Staging), read through Envoy and the filter by rmcp and by plain JSON-RPC.

use anyhow::Result;
use serde_json::{Value, json};
use tests::Gateway;
use tests::auth::{FakeAuthsvc, Issuer};
use tests::backend::Backend;
use tests::rmcp_client::RmcpClient;

const STATIC_DOC: &str = "demo://resource/static/document/architecture.md";

fn rpc(gw: &Gateway, token: Option<&str>, method: &str, params: Value) -> Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": params});
    let mut request = gw.post(body.to_string());
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    request.send()?.rpc()
}

/// The list `key` of a JSON-RPC answer's result (empty when there is none).
fn result_list<'a>(answer: &'a Value, key: &str) -> &'a [Value] {
    answer
        .get("result")
        .and_then(|r| r.get(key))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn field<'a>(items: &'a [Value], key: &str) -> Vec<&'a str> {
    items.iter().filter_map(|i| i[key].as_str()).collect()
}

fn text_of(result: &Value) -> String {
    result.to_string()
}

#[test]
fn prompts_resources_and_completions_reach_the_server_they_name() -> Result<()> {
    let everything = Backend::everything("everything").start()?;
    let prod = Backend::everything("Prod").start()?;
    let staging = Backend::everything("Staging").start()?;
    let gw = Gateway::builder()
        .server("everything", json!({"url": everything.url()}))
        .server(
            "docs",
            json!({"environments": {
                "Prod": {"description": "Production", "url": prod.url()},
                "Staging": {"description": "Staging", "url": staging.url()}
            }}),
        )
        .start()?;
    let client = RmcpClient::connect(&gw.url())?;

    // Prompts: namespaced; the same prompt in two envs is one, with `env`.
    let prompts = client.list_all_prompts()?;
    let names = field(&prompts, "name");
    for name in [
        "everything__simple-prompt",
        "everything__completable-prompt",
        "docs__simple-prompt",
        "docs__args-prompt",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(!names.contains(&"simple-prompt"), "{names:?}");
    let args_prompt = prompts
        .iter()
        .find(|p| p["name"] == "docs__args-prompt")
        .unwrap_or(&Value::Null);
    let env_arg = args_prompt["arguments"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "env"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(env_arg["required"], json!(true), "{args_prompt}");
    assert!(
        env_arg["description"]
            .as_str()
            .is_some_and(|d| d.ends_with("One of: Prod, Staging")),
        "{env_arg}"
    );
    let single = prompts
        .iter()
        .find(|p| p["name"] == "everything__args-prompt")
        .unwrap_or(&Value::Null);
    assert!(
        !text_of(&single["arguments"]).contains(r#""name":"env""#),
        "one backend: no env: {single}"
    );

    let got = client.get_prompt("everything__simple-prompt", json!({}))?;
    assert!(
        got["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "{got}"
    );
    let got = client.get_prompt(
        "docs__args-prompt",
        json!({"city": "Lisbon", "state": "LX", "env": "Staging"}),
    )?;
    assert!(text_of(&got).contains("Lisbon"), "{got}");
    let missing = rpc(
        &gw,
        None,
        "prompts/get",
        json!({"name": "docs__args-prompt", "arguments": {"city": "Lisbon"}}),
    )?;
    assert_eq!(missing["error"]["code"], json!(-32602), "{missing}");
    assert!(
        text_of(&missing).contains("Missing required argument `env`"),
        "{missing}"
    );

    // Resources: URIs name their backend; a read gets the resource under the URI it named.
    let resources = client.list_all_resources()?;
    let uris = field(&resources, "uri");
    for backend in ["everything", "docs.Prod", "docs.Staging"] {
        let uri = format!("meshmux://{backend}/{STATIC_DOC}");
        assert!(uris.contains(&uri.as_str()), "{uri} missing from {uris:?}");
    }
    let uri = format!("meshmux://docs.Staging/{STATIC_DOC}");
    let read = client.read_resource(&uri)?;
    assert_eq!(read["contents"][0]["uri"], json!(uri), "{read}");
    assert!(
        read["contents"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{read}"
    );
    let unknown = rpc(&gw, None, "resources/read", json!({"uri": STATIC_DOC}))?;
    assert_eq!(unknown["error"]["code"], json!(-32002), "{unknown}");

    // Templates: the same wrapping, so an expanded URI reaches its backend.
    let templates = rpc(&gw, None, "resources/templates/list", json!({}))?;
    let listed = result_list(&templates, "resourceTemplates");
    let template = "meshmux://everything/demo://resource/dynamic/text/{resourceId}";
    assert!(
        field(listed, "uriTemplate").contains(&template),
        "{templates}"
    );
    let dynamic = client.read_resource("meshmux://everything/demo://resource/dynamic/text/2")?;
    assert_eq!(
        dynamic["contents"][0]["uri"],
        json!("meshmux://everything/demo://resource/dynamic/text/2"),
        "{dynamic}"
    );

    // Completions: the backend's own, and the env argument the gateway's.
    let complete = |name: &str, argument: Value, context: Value| {
        rpc(
            &gw,
            None,
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": name}, "argument": argument,
                   "context": {"arguments": context}}),
        )
    };
    let c = complete(
        "everything__completable-prompt",
        json!({"name": "department", "value": "E"}),
        json!({}),
    )?;
    assert_eq!(
        c["result"]["completion"]["values"],
        json!(["Engineering"]),
        "{c}"
    );
    let c = complete(
        "docs__completable-prompt",
        json!({"name": "env", "value": "S"}),
        json!({}),
    )?;
    assert_eq!(
        c["result"]["completion"]["values"],
        json!(["Staging"]),
        "{c}"
    );
    let c = complete(
        "docs__completable-prompt",
        json!({"name": "name", "value": ""}),
        json!({"department": "Sales", "env": "Prod"}),
    )?;
    assert_eq!(
        c["result"]["completion"]["values"],
        json!(["David", "Eve", "Frank"]),
        "the backend reads its own context, without env: {c}"
    );
    let c = rpc(
        &gw,
        None,
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": template},
               "argument": {"name": "resourceId", "value": "1"}}),
    )?;
    assert!(c["result"]["completion"]["values"].is_array(), "{c}");

    // One env down: its requests fail naming it, the other env's still work.
    drop(prod);
    let down = rpc(
        &gw,
        None,
        "prompts/get",
        json!({"name": "docs__simple-prompt", "arguments": {"env": "Prod"}}),
    )?;
    assert!(
        text_of(&down).contains("Server `docs` (env `Prod`) is unavailable"),
        "{down}"
    );
    assert!(down.get("result").is_none(), "a JSON-RPC error: {down}");
    let up = client.get_prompt("docs__simple-prompt", json!({"env": "Staging"}))?;
    assert!(up["messages"].is_array(), "{up}");
    Ok(())
}

#[test]
fn callers_see_and_reach_only_the_prompts_and_resources_their_roles_allow() -> Result<()> {
    let issuer = Issuer::new(tests::auth::BASE_URL)?;
    let authsvc = FakeAuthsvc::start(&issuer)?;
    let everything = Backend::everything("everything").start()?;
    let prod = Backend::everything("Prod").start()?;
    let staging = Backend::everything("Staging").start()?;
    let gw = Gateway::builder()
        .server("everything", json!({"url": everything.url()}))
        .server(
            "docs",
            json!({"environments": {
                "Prod": {"description": "Production", "url": prod.url()},
                "Staging": {"description": "Staging", "url": staging.url()}
            }}),
        )
        .auth(
            &authsvc.url(),
            json!({
                // Staging's prompts, and its static documents only.
                "writer": {"Staging": ["docs__*", "demo://resource/static/*"]},
                "admin": {"*": ["*"]}
            }),
        )
        .start()?;
    let writer = issuer.token("wes", &["writer"])?;
    let admin = issuer.token("ada", &["admin"])?;
    let w = Some(writer.as_str());

    let prompts = rpc(&gw, w, "prompts/list", json!({}))?;
    let listed = result_list(&prompts, "prompts");
    let names = field(listed, "name");
    assert!(names.contains(&"docs__simple-prompt"), "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("docs__")),
        "only docs: {names:?}"
    );
    assert!(
        text_of(&prompts).contains("One of: Staging\""),
        "env narrowed to Staging: {prompts}"
    );
    let all = rpc(&gw, Some(&admin), "prompts/list", json!({}))?;
    assert!(text_of(&all).contains("everything__simple-prompt"), "{all}");

    let resources = rpc(&gw, w, "resources/list", json!({}))?;
    let listed = result_list(&resources, "resources");
    let uris = field(listed, "uri");
    assert!(!uris.is_empty(), "{resources}");
    assert!(
        uris.iter()
            .all(|u| u.starts_with("meshmux://docs.Staging/demo://resource/static/")),
        "{uris:?}"
    );

    let denied = rpc(
        &gw,
        w,
        "prompts/get",
        json!({"name": "docs__simple-prompt", "arguments": {"env": "Prod"}}),
    )?;
    assert!(text_of(&denied).contains("Access denied"), "{denied}");
    let hidden = rpc(
        &gw,
        w,
        "prompts/get",
        json!({"name": "everything__simple-prompt"}),
    )?;
    assert!(
        text_of(&hidden).contains("Unknown prompt: everything__simple-prompt"),
        "{hidden}"
    );
    for uri in [
        format!("meshmux://docs.Prod/{STATIC_DOC}"),
        format!("meshmux://everything/{STATIC_DOC}"),
        "meshmux://docs.Staging/demo://resource/dynamic/text/1".to_owned(),
    ] {
        let refused = rpc(&gw, w, "resources/read", json!({"uri": uri}))?;
        assert_eq!(refused["error"]["code"], json!(-32002), "{uri}: {refused}");
    }
    let read = rpc(
        &gw,
        w,
        "resources/read",
        json!({"uri": format!("meshmux://docs.Staging/{STATIC_DOC}")}),
    )?;
    assert!(read["result"]["contents"].is_array(), "{read}");
    Ok(())
}
