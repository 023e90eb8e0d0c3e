use super::*;

const SEED_000: &str = r#"{
  "environments": {
    "Prod": {"description": "Production environment", "url": "https://api.example.com/mcp",
             "headers": {"Authorization": "$PROD_API_KEY"}},
    "Staging": {"description": "Staging environment", "url": "https://api-staging.example.com/mcp",
                "headers": {"Authorization": "${STAGING_API_KEY}"}}
  },
  "auth": {
    "azure": {"tenant_id": "t", "client_id": "c", "client_secret": "$AZURE_CLIENT_SECRET"},
    "base_url": "https://mux.example.com",
    "required_scopes": ["access_as_user"],
    "signing_key_file": ".keys/mcp-env-mux.pem",
    "redis": {"enabled": true, "host": "${REDIS_HOST}", "port": 6379,
              "encryption_key": "${REDIS_ENCRYPTION_KEY}"},
    "roles": {
      "admin": {"allowed_envs": {"*": ["*"]}},
      "staging-reader": {"allowed_envs": {"Staging": ["*"]}},
      "prod-logs": {"allowed_envs": {"Prod": ["logs*"]}}
    },
    "token_minting_roles": ["admin"],
    "token_max_expiry_days": 180
  },
  "metrics": {"enabled": true, "path": "/metrics", "user_level_metrics": false}
}"#;

fn vars(name: &str) -> Option<String> {
    match name {
        "PROD_API_KEY" => Some("prod-key".into()),
        "STAGING_API_KEY" => Some("staging-key".into()),
        "AZURE_CLIENT_SECRET" => Some("azure-secret".into()),
        "REDIS_HOST" => Some("redis.internal".into()),
        "REDIS_ENCRYPTION_KEY" => Some("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=".into()),
        _ => None,
    }
}

fn parse(text: &str, format: Format) -> Result<Config, String> {
    Config::parse(text, format, "cfg.json", &vars).map_err(|e| e.to_string())
}

/// Asserts that `text` fails with an error containing every one of `needles`.
fn check_err(text: &str, needles: &[&str]) {
    let err = parse(text, Format::Json).err().unwrap_or_default();
    for needle in needles {
        assert!(
            err.contains(needle),
            "error {err:?} should mention {needle:?}"
        );
    }
}

#[test]
fn seed_000_file_is_accepted_unchanged() {
    let cfg = parse(SEED_000, Format::Json).map_err(|e| e.to_string());
    let cfg = cfg.unwrap_or_else(|e| unreachable!("{e}"));
    let names: Vec<&str> = cfg.environments.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Prod", "Staging"]);
    assert_eq!(cfg.environments.0[0].1.headers["Authorization"], "prod-key");
    assert_eq!(
        cfg.environments.0[1].1.headers["Authorization"],
        "staging-key"
    );
    let auth = cfg.auth.unwrap_or_else(|| unreachable!());
    assert_eq!(
        auth.azure.map(|a| a.client_secret).as_deref(),
        Some("azure-secret")
    );
    assert_eq!(
        auth.redis.map(|r| r.host).as_deref(),
        Some("redis.internal")
    );
    assert_eq!(auth.roles.len(), 3);
    assert_eq!(cfg.gateway.max_body_bytes, 1024 * 1024);
}

#[test]
fn yaml_is_accepted() {
    let yaml = "environments:\n  Dev:\n    description: Dev\n    url: http://127.0.0.1:9000/mcp\n    headers:\n      X-Team: ${TEAM:-core}\ngateway:\n  max_body_bytes: 2048\n";
    let cfg = parse(yaml, Format::Yaml).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(cfg.environments.0[0].1.headers["X-Team"], "core");
    assert_eq!(cfg.gateway.max_body_bytes, 2048);
}

#[test]
fn errors_name_the_key() {
    check_err(
        r#"{"environments": {}, "extra": 1}"#,
        &["unknown field `extra`"],
    );
    check_err(
        r#"{"environments": {"Prod": {"description": "p", "url": "http://x/mcp", "hedaers": {}}}}"#,
        &["environments", "Prod", "unknown field `hedaers`"],
    );
    check_err(
        r#"{"environments": {"Prod": {"description": "p", "url": "http://x/mcp", "headers": {"A": "$NOT_SET"}}}}"#,
        &["cfg.json", "environments.Prod.headers.A", "NOT_SET"],
    );
    check_err(
        r#"{"environments": {"Prod": {"url": "http://x/mcp"}}}"#,
        &["Prod", "missing field `description`"],
    );
    check_err(r#"{"environments": {}}"#, &["environments", "at least one"]);
    check_err(
        r#"{"environments": {"P rod": {"description": "p", "url": "http://x"}}}"#,
        &["environments.P rod"],
    );
    check_err(
        r#"{"environments": {"Prod": {"description": "p", "url": "ftp://x"}}}"#,
        &["environments.Prod.url"],
    );
    check_err(
        r#"{"metrics": {"path": "metrics"}, "environments": {"P": {"description": "p", "url": "http://x"}}}"#,
        &["metrics.path"],
    );
    check_err(r#"{"environments": "#, &["not valid JSON"]);
}

#[test]
fn auth_block_is_validated() {
    let with_auth = |auth: &str| {
        format!(
            r#"{{"environments": {{"P": {{"description": "p", "url": "http://x"}}}}, "auth": {auth}}}"#
        )
    };
    check_err(
        &with_auth(
            r#"{"base_url": "https://m", "signing_key_file": "k.pem", "roles": {"a": {"allowed_envs": {"*": ["*"]}}}}"#,
        ),
        &["auth", "identity provider"],
    );
    check_err(
        &with_auth(
            r#"{"dev": {}, "base_url": "https://m", "signing_key_file": "k.pem", "roles": {"a": {"allowed_envs": {"*": ["*"]}}}, "token_minting_roles": ["nope"]}"#,
        ),
        &["auth.token_minting_roles", "nope"],
    );
    check_err(
        &with_auth(
            r#"{"dev": {}, "base_url": "https://m", "signing_key_file": "k.pem", "roles": {"a": {"allowed_envs": {"*": ["*"]}}}, "redis": {"enabled": true}}"#,
        ),
        &["auth.redis.encryption_key", "required"],
    );
    check_err(
        &with_auth(
            r#"{"dev": {}, "base_url": "https://m", "signing_key_file": "k.pem", "roles": {"a": {"allowed_envs": {"*": ["*"]}}}, "redis": {"encryption_key": "short"}}"#,
        ),
        &["auth.redis.encryption_key", "Fernet"],
    );
    check_err(
        &with_auth(
            r#"{"dev": {}, "base_url": "https://m", "signing_key_file": "k.pem", "roles": {"a": {"allowed_envs": {"[P": ["*"]}}}}"#,
        ),
        &["auth.roles.a.allowed_envs", "[P"],
    );
    check_err(
        &with_auth(
            r#"{"azure": {"tenant_id": "t", "client_id": "c", "client_secret": "s"}, "base_url": "https://m", "signing_key_file": "k.pem", "roles": {"a": {"allowed_envs": {}}}}"#,
        ),
        &["auth.required_scopes"],
    );
}

#[test]
fn format_from_name() {
    assert_eq!(Format::from_name("a.yaml"), Format::Yaml);
    assert_eq!(Format::from_name("a.YML"), Format::Yaml);
    assert_eq!(Format::from_name("config.json"), Format::Json);
}

#[test]
fn env_descriptions_default_to_per_tool_and_are_validated() {
    let env = r#""environments": {"P": {"description": "p", "url": "http://x/mcp"}}"#;
    let cfg = parse(&format!("{{{env}}}"), Format::Json).unwrap();
    assert_eq!(cfg.gateway.env_descriptions, EnvDescriptions::PerTool);
    let cfg = parse(
        &format!(r#"{{{env}, "gateway": {{"env_descriptions": "instructions"}}}}"#),
        Format::Json,
    )
    .unwrap();
    assert_eq!(cfg.gateway.env_descriptions, EnvDescriptions::Instructions);
    check_err(
        &format!(r#"{{{env}, "gateway": {{"env_descriptions": "once"}}}}"#),
        &[
            "gateway",
            "unknown variant `once`",
            "per_tool",
            "instructions",
        ],
    );
}

#[test]
fn allowed_hosts_and_origins_default_per_mode_and_are_validated() {
    let env = r#""environments": {"P": {"description": "p", "url": "http://x/mcp"}}"#;
    let cfg = parse(&format!("{{{env}}}"), Format::Json).unwrap();
    assert_eq!(cfg.gateway.allowed_hosts, None);
    assert_eq!(
        cfg.gateway.host_policy(HostPolicy::default()),
        HostPolicy::default()
    );
    assert_eq!(
        cfg.gateway.host_policy(HostPolicy::loopback(8080)),
        HostPolicy::loopback(8080)
    );

    let yaml = "environments:\n  P:\n    description: p\n    url: http://x/mcp\ngateway:\n  allowed_hosts: [mcp.example.com, \"*.mcp.example.com\"]\n  allowed_origins: [\"https://app.example.com\"]\n";
    let cfg = parse(yaml, Format::Yaml).unwrap();
    let policy = cfg.gateway.host_policy(HostPolicy::loopback(8080));
    assert_eq!(
        policy.allowed_hosts,
        ["mcp.example.com", "*.mcp.example.com"]
    );
    assert_eq!(policy.allowed_origins, ["https://app.example.com"]);
    // Only the hosts: the origins keep the mode's default.
    let cfg = parse(
        &format!(r#"{{{env}, "gateway": {{"allowed_hosts": ["*"]}}}}"#),
        Format::Json,
    )
    .unwrap();
    let policy = cfg.gateway.host_policy(HostPolicy::loopback(8080));
    assert_eq!(policy.allowed_hosts, ["*"]);
    assert_eq!(
        policy.allowed_origins,
        HostPolicy::default().allowed_origins
    );
    // An empty origin list is meaningful: no browser origin at all.
    let cfg = parse(
        &format!(r#"{{{env}, "gateway": {{"allowed_origins": []}}}}"#),
        Format::Json,
    )
    .unwrap();
    assert!(
        cfg.gateway
            .host_policy(HostPolicy::default())
            .allowed_origins
            .is_empty()
    );

    let bad: &[(&str, &[&str])] = &[
        (
            r#""allowed_hosts": []"#,
            &["gateway.allowed_hosts", "refuse every request", "[\"*\"]"],
        ),
        (
            r#""allowed_hosts": ["https://mcp.example.com"]"#,
            &[
                "gateway.allowed_hosts",
                "https://mcp.example.com",
                "not a URL",
            ],
        ),
        (
            r#""allowed_origins": ["app.example.com"]"#,
            &[
                "gateway.allowed_origins",
                "app.example.com",
                "not an origin",
            ],
        ),
        (
            r#""allowed_origins": ["https://app.example.com/"]"#,
            &["gateway.allowed_origins", "without a path"],
        ),
        (
            r#""allowed_origin": ["*"]"#,
            &["gateway", "unknown field `allowed_origin`"],
        ),
    ];
    for (keys, needles) in bad {
        check_err(&format!(r#"{{{env}, "gateway": {{{keys}}}}}"#), needles);
    }
}

#[test]
fn ops_allow_from_takes_ranges_and_bare_addresses_and_refuses_the_rest() {
    let with = |ranges: &str| {
        parse(
            &format!(
                r#"{{"environments": {{"Prod": {{"description": "p", "url": "http://p/mcp"}}}},
                    "gateway": {{"ops_allow_from": {ranges}}}}}"#
            ),
            Format::Json,
        )
    };
    let config = with(r#"["10.0.0.0/8", "::1", "2001:db8::/32"]"#).unwrap();
    let ranges = config.gateway.ops_allow_from().unwrap();
    assert_eq!(
        ranges.iter().map(|r| r.prefix_len).collect::<Vec<_>>(),
        [8, 128, 32]
    );
    for bad in [
        r#"[]"#,
        r#"["10.0.0.0/33"]"#,
        r#"["example.com"]"#,
        r#"["::/129"]"#,
    ] {
        let err = with(bad).unwrap_err();
        assert!(err.contains("gateway.ops_allow_from"), "{bad}: {err}");
    }
}

#[test]
fn pinning_defaults_to_off_and_is_validated() {
    let env = r#""environments": {"P": {"description": "p", "url": "http://x/mcp"}}"#;
    let cfg = parse(&format!("{{{env}}}"), Format::Json).unwrap();
    assert_eq!(cfg.gateway.pinning, PinMode::Off);
    assert_eq!(cfg.gateway.pin_file, None);
    let yaml = "environments:\n  P:\n    description: p\n    url: http://x/mcp\ngateway:\n  pinning: block\n  pin_file: ${REDIS_HOST}/pins.json\n";
    let cfg = parse(yaml, Format::Yaml).unwrap();
    assert_eq!(cfg.gateway.pinning, PinMode::Block);
    assert_eq!(
        cfg.gateway.pin_file.as_deref(),
        Some("redis.internal/pins.json")
    );
    check_err(
        &format!(r#"{{{env}, "gateway": {{"pinning": "strict"}}}}"#),
        &[
            "gateway",
            "unknown variant `strict`",
            "off",
            "warn",
            "block",
        ],
    );
    check_err(
        &format!(r#"{{{env}, "gateway": {{"pinning": "warn", "pin_file": "$NO_SUCH_VAR"}}}}"#),
        &["gateway.pin_file", "NO_SUCH_VAR"],
    );
    check_err(
        &format!(r#"{{{env}, "gateway": {{"pins": "x"}}}}"#),
        &["unknown field `pins`"],
    );
}
