use serde_json::json;

use super::*;
use policy::manifest::{EnvDescriptions, Manifest};

fn check_url(raw: &str, expected: Result<(&str, u16, bool, &str, &str), &str>) {
    let got = BackendUrl::parse(raw);
    match (got, expected) {
        (Ok(u), Ok((host, port, tls, authority, path))) => {
            assert_eq!(
                (
                    u.host.as_str(),
                    u.port,
                    u.tls,
                    u.authority.as_str(),
                    u.path.as_str()
                ),
                (host, port, tls, authority, path),
                "{raw}"
            );
        }
        (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{raw}: {e}"),
        (got, expected) => panic!("{raw}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn backend_urls() {
    check_url(
        "https://mcp.example.com/v1/mcp",
        Ok(("mcp.example.com", 443, true, "mcp.example.com", "/v1/mcp")),
    );
    check_url(
        "http://127.0.0.1:8080/mcp",
        Ok(("127.0.0.1", 8080, false, "127.0.0.1:8080", "/mcp")),
    );
    check_url(
        "https://API.Example.com:8443/mcp?tenant=a",
        Ok((
            "api.example.com",
            8443,
            true,
            "api.example.com:8443",
            "/mcp?tenant=a",
        )),
    );
    check_url(
        "http://[::1]:9000/",
        Ok(("::1", 9000, false, "[::1]:9000", "/")),
    );
    check_url(
        "http://example.com",
        Ok(("example.com", 80, false, "example.com", "/")),
    );
    check_url(
        "https://user:pw@example.com/mcp",
        Err("credentials in the URL"),
    );
    check_url("ftp://example.com/mcp", Err("not http or https"));
    check_url("not a url", Err("not a valid URL"));
}

fn config(text: &str) -> Config {
    let lookup = |name: &str| (name == "PROD_TOKEN").then(|| "s3cret".to_owned());
    Config::parse(text, policy::config::Format::Json, "test.json", &lookup).unwrap()
}

fn three_envs() -> Config {
    config(
        r#"{"environments": {
            "Prod": {"description": "Production", "url": "https://mcp.example.com/mcp",
                     "headers": {"Authorization": "Bearer $PROD_TOKEN", "Host": "internal.example.com"}},
            "Staging": {"description": "Staging", "url": "http://10.0.0.7:8080/mcp", "timeout_seconds": 5},
            "Dev": {"description": "Dev", "url": "http://dev.local/mcp"}
        }}"#,
    )
}

fn found(tools: Vec<serde_json::Value>) -> Result<Discovered, String> {
    Ok(Discovered {
        protocol_version: "2025-06-18".into(),
        server_info: Some(json!({"name": "backend", "version": "1"})),
        tools,
        requires: Default::default(),
        offered: Default::default(),
    })
}

fn tool(name: &str, params: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "description": format!("{name} tool"),
           "inputSchema": {"type": "object", "properties": params}})
}

#[test]
fn manifest_records_unreachable_envs_and_merges_the_rest() {
    let config = three_envs();
    let results = vec![
        EnvResult {
            name: "Prod".into(),
            outcome: found(vec![
                tool("logs", json!({"q": {"type": "string"}})),
                tool("rollback", json!({})),
            ]),
        },
        EnvResult {
            name: "Staging".into(),
            outcome: found(vec![tool("logs", json!({"q": {"type": "string"}}))]),
        },
        EnvResult {
            name: "Dev".into(),
            outcome: Err("connection refused".into()),
        },
    ];
    let m = build_manifest(&config, &results).unwrap();
    assert!(m.hash.starts_with("sha256:"));
    let envs: Vec<(&str, Option<&str>)> = m
        .envs
        .iter()
        .map(|e| (e.name.as_str(), e.unreachable.as_deref()))
        .collect();
    assert_eq!(
        envs,
        [
            ("Prod", None),
            ("Staging", None),
            ("Dev", Some("connection refused"))
        ]
    );
    let prod = &m.envs[0];
    assert_eq!(prod.cluster, "env_Prod");
    // A configured Host names the virtual host the backend serves.
    assert_eq!(prod.authority, "internal.example.com");
    assert_eq!(prod.protocol_version, "2025-06-18");
    assert_eq!(m.envs[1].authority, "10.0.0.7:8080");
    // Unreachable envs get no tools and the newest initialize-era version.
    assert_eq!(m.envs[2].protocol_version, "2025-11-25");
    let tools: Vec<(&str, Vec<&str>)> = m
        .tools
        .iter()
        .map(|t| (t.name(), t.envs.iter().map(|e| e.env.as_str()).collect()))
        .collect();
    assert_eq!(
        tools,
        [
            ("logs", vec!["Prod", "Staging"]),
            ("rollback", vec!["Prod"])
        ]
    );
    // The same inputs seal to the same hash (discover writes only on change).
    assert_eq!(build_manifest(&config, &results).unwrap(), m);
}

#[test]
fn an_env_without_a_result_is_unreachable() {
    let m = build_manifest(&three_envs(), &[]).unwrap();
    assert!(m.envs.iter().all(|e| e.unreachable.is_some()));
    assert!(m.tools.is_empty());
}

#[test]
fn filter_config_carries_credentials_and_roles() {
    let mut config = three_envs();
    let m = build_manifest(&config, &[]).unwrap();
    let fc = filter_config(&config, m.clone());
    let prod = &fc.backends["Prod"];
    assert_eq!(prod.headers["Authorization"], "Bearer s3cret");
    assert!(!prod.headers.contains_key("Host"), "Host is the authority");
    assert_eq!(prod.timeout_ms, SIDE_CALL_TIMEOUT_MS);
    assert!(fc.backends["Dev"].headers.is_empty());
    assert!(fc.auth.is_none());
    assert_eq!(fc.mcp_path, "/mcp");

    config = config_with_auth();
    let fc = filter_config(&config, m);
    let auth = fc.auth.unwrap();
    assert_eq!(auth.claims_path, CLAIMS_PATH);
    assert_eq!(auth.roles["ops"].allowed_envs["Staging"], ["*"]);
}

#[test]
fn filter_config_carries_the_users_files_roles_next_to_auth_roles() {
    let mut config = config(
        r#"{"mcpServers": {"fs": {"url": "http://f/mcp"}, "time": {"url": "http://t/mcp"}},
            "auth": {"dev": {"users": {}}, "base_url": "http://localhost:10000",
                     "signing_key_file": "k.pem", "users_file": "users.json",
                     "roles": {"admin": {"allowed_envs": {"*": ["*"]}}}}}"#,
    );
    config
        .attach_users(
            r#"{"Friend@example.com": {"roles": ["user"], "allowed_tools": ["fs:*"]}}"#,
            "users.json",
        )
        .unwrap();
    let fc = filter_config(&config, build_manifest(&config, &[]).unwrap());
    let roles = fc.auth.unwrap().roles;
    assert_eq!(
        roles.keys().collect::<Vec<_>>(),
        ["admin", "user:friend@example.com"]
    );
    assert_eq!(
        roles["user:friend@example.com"].allowed_envs["fs"],
        ["fs__*"]
    );
}

fn config_with_auth() -> Config {
    config(
        r#"{"environments": {"Staging": {"description": "S", "url": "http://s/mcp"}},
            "auth": {"dev": {"users": {"alice": ["ops"]}}, "base_url": "http://localhost:10000",
                     "signing_key_file": "k.pem", "roles": {"ops": {"allowed_envs": {"Staging": ["*"]}}}}}"#,
    )
}

#[test]
fn targets_use_defaults_and_drop_host() {
    let t = targets(&three_envs()).unwrap();
    assert_eq!(t[0].timeout_seconds, DEFAULT_TIMEOUT_SECONDS);
    assert_eq!(t[1].timeout_seconds, 5);
    assert_eq!(t[0].headers.keys().collect::<Vec<_>>(), ["Authorization"]);
    assert_eq!(t[0].url.authority, "internal.example.com");
    assert_eq!(
        t[0].url.host, "mcp.example.com",
        "TLS and DNS still use the URL's host"
    );
}

/// The example the project ships parses, and the generator accepts it.
#[test]
fn the_shipped_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/example-config.json");
    let text = std::fs::read_to_string(path).unwrap();
    let lookup = |name: &str| name.ends_with("_API_KEY").then(|| format!("key-{name}"));
    let config = Config::parse(&text, policy::config::Format::Json, path, &lookup).unwrap();
    let t = targets(&config).unwrap();
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Prod", "Staging", "Dev"]);
    assert_eq!(t[0].timeout_seconds, 120);
    assert_eq!(t[2].headers["X-Team"], "platform");
    let m = build_manifest(&config, &[]).unwrap();
    assert_eq!(m.server.name, "observability");
}

#[test]
fn auth_target_matches_the_tokens_authsvc_issues() {
    assert_eq!(auth_target(&three_envs()).unwrap(), None);
    let config = config(
        r#"{"environments": {"Staging": {"description": "S", "url": "http://s/mcp"}},
            "gateway": {"mcp_path": "/v1/mcp"},
            "auth": {"dev": {}, "base_url": "https://gw.example.com/", "authsvc_url": "https://auth.internal:8443/",
                     "signing_key_file": "k.pem", "roles": {"ops": {"allowed_envs": {"*": ["*"]}}}}}"#,
    );
    let t = auth_target(&config).unwrap().unwrap();
    assert_eq!(t.issuer, "https://gw.example.com");
    assert_eq!(t.audience, "https://gw.example.com/v1/mcp");
    assert_eq!(
        t.resource_metadata,
        "https://gw.example.com/.well-known/oauth-protected-resource/v1/mcp"
    );
    assert_eq!(
        t.jwks_uri,
        "https://auth.internal:8443/.well-known/jwks.json"
    );
    assert!(t.authsvc.tls);
    assert_eq!(
        (t.authsvc.host.as_str(), t.authsvc.port),
        ("auth.internal", 8443)
    );
    let fc = filter_config(&config, build_manifest(&config, &[]).unwrap());
    assert_eq!(
        fc.auth.unwrap().resource_metadata.as_deref(),
        Some("https://gw.example.com/.well-known/oauth-protected-resource/v1/mcp")
    );
}

#[test]
fn env_descriptions_reach_the_manifest_and_its_tools() {
    let results = |config: &Config| {
        let results: Vec<EnvResult> = ["Prod", "Staging"]
            .iter()
            .map(|e| EnvResult {
                name: (*e).into(),
                outcome: found(vec![tool("logs", json!({"q": {"type": "string"}}))]),
            })
            .collect();
        build_manifest(config, &results).unwrap()
    };
    let envs = r#""environments": {
            "Prod": {"description": "Production", "url": "http://p/mcp"},
            "Staging": {"description": "Staging", "url": "http://s/mcp"}}"#;
    let per_tool = results(&config(&format!("{{{envs}}}")));
    let once = results(&config(&format!(
        r#"{{{envs}, "gateway": {{"env_descriptions": "instructions"}}}}"#
    )));
    assert_eq!(per_tool.server.env_descriptions, EnvDescriptions::PerTool);
    assert_eq!(once.server.env_descriptions, EnvDescriptions::Instructions);
    let env = |m: &Manifest| m.tools[0].tool["inputSchema"]["properties"]["env"].clone();
    assert!(
        env(&per_tool)["description"]
            .as_str()
            .unwrap()
            .contains("- Prod: Production")
    );
    assert_eq!(env(&once)["description"], json!(policy::merge::ENV_POINTER));
    assert_eq!(env(&once)["enum"], json!(["Prod", "Staging"]));
    assert_ne!(per_tool.hash, once.hash);
}

#[test]
fn capability_needs_reach_the_manifest_per_env_and_leave_other_tools_alone() {
    let config = three_envs();
    let with_needs = |needs: &[(&str, &[&str])]| {
        let mut d = found(vec![
            tool("ask", json!({})),
            tool("logs", json!({"q": {"type": "string"}})),
        ])
        .unwrap();
        d.requires = needs
            .iter()
            .map(|(t, caps)| {
                (
                    (*t).to_owned(),
                    caps.iter().map(|c| (*c).to_owned()).collect(),
                )
            })
            .collect();
        Ok(d)
    };
    let results = vec![
        EnvResult {
            name: "Prod".into(),
            outcome: with_needs(&[("ask", &["elicitation", "sampling"])]),
        },
        EnvResult {
            name: "Staging".into(),
            outcome: with_needs(&[]),
        },
        EnvResult {
            name: "Dev".into(),
            outcome: with_needs(&[("ask", &["elicitation"])]),
        },
    ];
    let m = build_manifest(&config, &results).unwrap();
    let ask = m.tools.iter().find(|t| t.name() == "ask").unwrap();
    let needs: Vec<(&str, Vec<String>)> = ask
        .envs
        .iter()
        .map(|e| (e.env.as_str(), e.requires.clone()))
        .collect();
    assert_eq!(
        needs,
        [
            ("Prod", vec!["elicitation".into(), "sampling".into()]),
            ("Staging", vec![]),
            ("Dev", vec!["elicitation".into()]),
        ]
    );
    let logs = m.tools.iter().find(|t| t.name() == "logs").unwrap();
    assert!(logs.envs.iter().all(|e| e.requires.is_empty()));

    // Without any need the manifest is byte-identical to one built before the field existed.
    let plain: Vec<EnvResult> = ["Prod", "Staging", "Dev"]
        .iter()
        .map(|n| EnvResult {
            name: (*n).into(),
            outcome: with_needs(&[]),
        })
        .collect();
    let text = serde_json::to_string(&build_manifest(&config, &plain).unwrap()).unwrap();
    assert!(!text.contains("requires"), "{text}");
    let text = serde_json::to_string(&m).unwrap();
    assert!(
        text.contains(r#""requires":["elicitation","sampling"]"#),
        "{text}"
    );
}

/// What a backend offers besides tools reaches the manifest: prompts merged across the
/// envs, resource URIs naming their backend (three backends here), a down env's left out.
#[test]
fn prompts_and_resources_reach_the_manifest() {
    let config = three_envs();
    let offering = |env: &str| {
        let mut d = found(vec![tool("logs", json!({}))]).unwrap();
        d.offered = Offered {
            prompts: vec![json!({"name": "triage", "description": "Triage an incident"})],
            resources: vec![json!({"uri": format!("file:///{env}.md"), "name": env})],
            templates: vec![],
        };
        Ok(d)
    };
    let results = vec![
        EnvResult {
            name: "Prod".into(),
            outcome: offering("prod"),
        },
        EnvResult {
            name: "Staging".into(),
            outcome: offering("staging"),
        },
        EnvResult {
            name: "Dev".into(),
            outcome: Err("down".into()),
        },
    ];
    let m = build_manifest(&config, &results).unwrap();
    assert_eq!(m.prompts.len(), 1);
    let triage = &m.prompts[0];
    assert_eq!(triage.name(), "triage");
    assert!(triage.takes_env());
    assert_eq!(
        triage.prompt["arguments"][0]["description"],
        json!("Environment to get this prompt from. One of: Prod, Staging")
    );
    let uris: Vec<&str> = m.resources.iter().map(|r| r.uri()).collect();
    assert_eq!(
        uris,
        [
            "meshmux://Prod/file:///prod.md",
            "meshmux://Staging/file:///staging.md"
        ]
    );
    assert!(m.resource_templates.is_empty());
    // A tools-only catalog's manifest does not mention them.
    let plain = build_manifest(
        &config,
        &[EnvResult {
            name: "Prod".into(),
            outcome: found(vec![tool("logs", json!({}))]),
        }],
    )
    .unwrap();
    let text = serde_json::to_string(&plain).unwrap();
    assert!(
        !text.contains("prompts") && !text.contains("resources"),
        "{text}"
    );
}
