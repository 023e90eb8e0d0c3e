use serde_json::json;

use super::*;
use crate::servers::ServerEnv;

fn vars(name: &str) -> Option<String> {
    (name == "GH_TOKEN").then(|| "gh-secret".to_owned())
}

fn parse(value: serde_json::Value) -> Result<Config, String> {
    Config::parse(&value.to_string(), Format::Json, "cfg.json", &vars).map_err(|e| e.to_string())
}

fn backends(config: &Config) -> Vec<&str> {
    config
        .environments
        .0
        .iter()
        .map(|(n, _)| n.as_str())
        .collect()
}

#[test]
fn a_claude_desktop_file_works_unchanged() {
    let config = parse(json!({"mcpServers": {
        "time": {"command": "npx", "args": ["-y", "mcp-time"], "env": {"TZ": "UTC"}},
        "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${GH_TOKEN}"}},
        "legacy": {"url": "http://127.0.0.1:3001/sse", "transport": "sse", "listen": "127.0.0.1:7802"},
        "typed": {"type": "streamable-http", "url": "https://typed.example.com/mcp"}
    }}))
    .unwrap();
    assert_eq!(backends(&config), ["time", "remote", "legacy", "typed"]);
    let (_, time) = &config.environments.0[0];
    assert_eq!(
        time.url, "",
        "a stdio server gets its URL when `up` starts its bridge"
    );
    assert_eq!(
        time.bridge,
        Some(Bridge {
            kind: BridgeKind::Stdio {
                command: "npx".into(),
                args: vec!["-y".into(), "mcp-time".into()],
                env: [("TZ".to_owned(), "UTC".to_owned())].into(),
            },
            listen: None,
        })
    );
    let (_, remote) = &config.environments.0[1];
    assert_eq!(remote.url, "https://mcp.example.com/mcp");
    assert_eq!(remote.headers["Authorization"], "Bearer gh-secret");
    assert!(remote.bridge.is_none());
    let (_, legacy) = &config.environments.0[2];
    assert_eq!(legacy.url, "http://127.0.0.1:7802/mcp");
    assert!(matches!(
        &legacy.bridge,
        Some(Bridge { kind: BridgeKind::Sse { url, .. }, .. }) if url == "http://127.0.0.1:3001/sse"
    ));
    assert_eq!(config.bridged().count(), 2);
    let names: Vec<(&str, Option<&str>, bool)> = config
        .servers
        .iter()
        .map(|s| (s.name.as_str(), s.prefix.as_deref(), s.env_arg))
        .collect();
    assert_eq!(
        names,
        [
            ("time", Some("time"), false),
            ("remote", Some("remote"), false),
            ("legacy", Some("legacy"), false),
            ("typed", Some("typed"), false)
        ]
    );
}

#[test]
fn a_server_with_environments_and_seed_000_envs_combine() {
    let config = parse(json!({
        "environments": {"Prod": {"description": "p", "url": "http://prod/mcp"}},
        "mcpServers": {"obs": {
            "prefix": "never",
            "timeout_seconds": 5,
            "tools": {"query": {"name": "search_logs", "description": "Search."}},
            "environments": {
                "Prod": {"description": "Production", "url": "http://obs-prod/mcp"},
                "Staging": {"description": "Staging", "url": "http://obs-stg/mcp", "timeout_seconds": 9}
            }}}
    }))
    .unwrap();
    assert_eq!(backends(&config), ["Prod", "obs.Prod", "obs.Staging"]);
    assert_eq!(config.environments.0[1].1.timeout_seconds, Some(5));
    assert_eq!(config.environments.0[2].1.timeout_seconds, Some(9));
    let [seed, obs] = config.servers.as_slice() else {
        panic!("{:?}", config.servers)
    };
    assert_eq!(seed.name, "");
    assert_eq!(seed.prefix, None);
    assert!(seed.env_arg);
    assert_eq!(obs.prefix, None);
    assert!(obs.env_arg);
    assert_eq!(
        obs.envs,
        [
            ServerEnv {
                label: "Prod".into(),
                backend: "obs.Prod".into()
            },
            ServerEnv {
                label: "Staging".into(),
                backend: "obs.Staging".into()
            }
        ]
    );
    assert_eq!(obs.tools["query"].name.as_deref(), Some("search_logs"));
    assert_eq!(
        config.key_of("obs.Staging", "url"),
        "mcpServers.obs.environments.Staging.url"
    );
    assert_eq!(config.key_of("Prod", "url"), "environments.Prod.url");
}

#[test]
fn a_seed_000_file_is_one_server_without_prefix() {
    let config = parse(json!({"environments": {
        "Prod": {"description": "p", "url": "http://prod/mcp"},
        "Dev": {"description": "d", "url": "http://dev/mcp"}}}))
    .unwrap();
    let [seed] = config.servers.as_slice() else {
        panic!("{:?}", config.servers)
    };
    assert_eq!(seed.prefix, None);
    assert!(seed.env_arg);
    assert_eq!(seed.envs.len(), 2);
    assert_eq!(config.bridged().count(), 0);
}

#[test]
fn custom_prefixes() {
    let config = parse(
        json!({"mcpServers": {"github-enterprise": {"url": "http://g/mcp", "prefix": "ghe"}}}),
    )
    .unwrap();
    assert_eq!(config.servers[0].prefix.as_deref(), Some("ghe"));
}

#[test]
fn mistakes_are_refused_naming_the_key() {
    let cases = [
        (
            json!({"mcpServers": {}}),
            "environments: must name at least one environment (or give `mcpServers`)",
        ),
        (
            json!({"mcpServers": {"a": {}}}),
            "mcpServers.a: needs `command`",
        ),
        (
            json!({"mcpServers": {"a": {"command": "x", "url": "http://x/mcp"}}}),
            "both `command` and `url`",
        ),
        (
            json!({"mcpServers": {"a": {"url": "http://x/mcp", "args": ["1"]}}}),
            "`args` and `env` are for stdio",
        ),
        (
            json!({"mcpServers": {"a": {"command": "x", "transport": "sse"}}}),
            "mcpServers.a.transport",
        ),
        (
            json!({"mcpServers": {"a": {"command": "x", "headers": {"A": "b"}}}}),
            "mcpServers.a.headers: a stdio server takes no headers",
        ),
        (
            json!({"mcpServers": {"a": {"url": "http://x/mcp", "listen": "127.0.0.1:1"}}}),
            "mcpServers.a.listen: is for stdio and SSE",
        ),
        (
            json!({"mcpServers": {"a": {"command": "x", "listen": "nowhere"}}}),
            "mcpServers.a.listen: \"nowhere\" is not an address:port",
        ),
        (
            json!({"mcpServers": {"a.b": {"url": "http://x/mcp"}}}),
            "mcpServers.a.b: a server name may hold",
        ),
        (
            json!({"mcpServers": {"a": {"url": "http://x/mcp", "prefix": "no way"}}}),
            "mcpServers.a.prefix",
        ),
        (
            json!({"mcpServers": {"a": {"url": "http://x/mcp", "tools": {"t": {"name": "bad name"}}}}}),
            "mcpServers.a.tools.t.name",
        ),
        (
            json!({"mcpServers": {"a": {"url": "http://x/mcp", "tools": {"t": {"rename": "x"}}}}}),
            "unknown field `rename`",
        ),
        (
            json!({"mcpServers": {"a": {"url": "ftp://x/mcp"}}}),
            "mcpServers.a.url: \"ftp://x/mcp\" is not an http",
        ),
        (
            json!({"mcpServers": {"a": {"url": "http://x/mcp", "environments": {"P": {"description": "p", "url": "http://p/mcp"}}}}}),
            "`url` belongs in each of its `environments`",
        ),
        (
            json!({"mcpServers": {"a": {"environments": {}}}}),
            "mcpServers.a.environments: must name at least one",
        ),
        (
            json!({"mcpServers": {"a": {"environments": {"P": {"description": "p", "url": "gopher://p"}}}}}),
            "mcpServers.a.environments.P.url",
        ),
        (
            json!({"mcpServers": {"a": {"url": "http://x/mcp", "surprise": 1}}}),
            "unknown field `surprise`",
        ),
        (
            json!({"environments": {"a": {"description": "d", "url": "http://x/mcp"}},
                "mcpServers": {"a": {"url": "http://y/mcp"}}}),
            "backend name `a` is already used",
        ),
    ];
    for (config, expected) in cases {
        let error = parse(config.clone()).unwrap_err();
        assert!(error.contains(expected), "{config}: {error}");
    }
}
