use super::*;
use crate::config::{Config, Format};

fn vars(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("s3cret-token".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// A one-env config whose Prod env has `extra` (JSON members) added.
fn config(extra: &str) -> Result<Config, String> {
    let text = format!(
        r#"{{"environments": {{"Prod": {{"description": "p", "url": "http://127.0.0.1:1/mcp"{extra}}}}}}}"#
    );
    Config::parse(&text, Format::Json, "cfg.json", &vars).map_err(|e| e.to_string())
}

fn credentials_of(extra: &str) -> Option<Credentials> {
    let cfg = config(extra).unwrap_or_else(|e| unreachable!("{e}"));
    cfg.environments.0.into_iter().next()?.1.credentials
}

#[test]
fn every_kind_parses() {
    let cases = [
        (r#", "credentials": {"type": "none"}"#, Credentials::None),
        (
            r#", "credentials": {"type": "bearer", "token": "${TOKEN}"}"#,
            Credentials::Bearer {
                token: "s3cret-token".into(),
            },
        ),
        (
            r#", "credentials": {"type": "header", "name": "X-Api-Key", "value": "$TOKEN"}"#,
            Credentials::Header {
                name: "X-Api-Key".into(),
                value: "s3cret-token".into(),
            },
        ),
        (
            r#", "credentials": {"type": "command", "command": ["helper", "arg"], "ttl_seconds": 300}"#,
            Credentials::Command {
                command: vec!["helper".into(), "arg".into()],
                ttl_seconds: Some(300),
                timeout_seconds: None,
            },
        ),
        (
            r#", "credentials": {"type": "oauth_client_credentials", "token_url": "https://idp/token",
                 "client_id": "gw", "client_secret": "$TOKEN", "scopes": ["a", "b"]}"#,
            Credentials::OauthClientCredentials {
                token_url: "https://idp/token".into(),
                client_id: "gw".into(),
                client_secret: "s3cret-token".into(),
                scopes: vec!["a".into(), "b".into()],
            },
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(credentials_of(extra), Some(expected), "{extra}");
    }
    assert_eq!(credentials_of(""), None);
}

#[test]
fn bad_credentials_are_refused_naming_the_key_and_never_the_secret() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#", "credentials": {"type": "bearer", "token": "x", "extra": 1}"#,
            &["credentials", "unknown field `extra`"],
        ),
        (
            r#", "credentials": {"type": "kerberos"}"#,
            &["credentials", "unknown variant `kerberos`"],
        ),
        (
            r#", "credentials": {"token": "x"}"#,
            &["credentials", "type"],
        ),
        (
            r#", "credentials": {"type": "bearer"}"#,
            &["credentials", "missing field `token`"],
        ),
        (
            r#", "credentials": {"type": "bearer", "token": "$EMPTY"}"#,
            &["environments.Prod.credentials", "token: must not be empty"],
        ),
        (
            r#", "credentials": {"type": "bearer", "token": "a\nb"}"#,
            &["environments.Prod.credentials", "token: holds a control"],
        ),
        (
            r#", "credentials": {"type": "header", "name": "X Key", "value": "v"}"#,
            &["name: \"X Key\" is not a valid HTTP header name"],
        ),
        (
            r#", "credentials": {"type": "header", "name": "host", "value": "v"}"#,
            &["`Host` names the backend"],
        ),
        (
            r#", "credentials": {"type": "command", "command": []}"#,
            &["command: must name a program"],
        ),
        (
            r#", "credentials": {"type": "command", "command": ["h"], "ttl_seconds": 0}"#,
            &["ttl_seconds: must be at least 1"],
        ),
        (
            r#", "credentials": {"type": "command", "command": ["h"], "timeout_seconds": 0}"#,
            &["timeout_seconds: must be at least 1"],
        ),
        (
            r#", "credentials": {"type": "oauth_client_credentials", "token_url": "ftp://x",
                 "client_id": "c", "client_secret": "s"}"#,
            &["token_url: \"ftp://x\" is not an http(s) URL"],
        ),
        (
            r#", "credentials": {"type": "oauth_client_credentials", "token_url": "https://x",
                 "client_id": "c", "client_secret": "s", "scopes": ["a b"]}"#,
            &["scopes: \"a b\" is not a scope"],
        ),
        (
            r#", "headers": {"authorization": "Bearer $TOKEN"},
               "credentials": {"type": "bearer", "token": "$TOKEN"}"#,
            &[
                "environments.Prod.credentials",
                "sets `Authorization`, which `headers` also sets (as `authorization`)",
            ],
        ),
        (
            r#", "headers": {"X-API-KEY": "$TOKEN"},
               "credentials": {"type": "header", "name": "x-api-key", "value": "$TOKEN"}"#,
            &["sets `x-api-key`, which `headers` also sets (as `X-API-KEY`)"],
        ),
        (
            r#", "headers": {"Authorization": "x"},
               "credentials": {"type": "command", "command": ["h"]}"#,
            &["sets `Authorization`"],
        ),
    ];
    for (extra, needles) in cases {
        let err = config(extra).err().unwrap_or_default();
        for needle in *needles {
            assert!(err.contains(needle), "{extra}: {err:?} lacks {needle:?}");
        }
        assert!(!err.contains("s3cret"), "{extra}: a secret in {err:?}");
    }
    // A header the credential does not set is fine next to it.
    let ok = config(
        r#", "headers": {"X-Tenant": "acme"}, "credentials": {"type": "bearer", "token": "t"}"#,
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn debug_output_holds_no_secret() {
    for extra in [
        r#", "credentials": {"type": "bearer", "token": "$TOKEN"}"#,
        r#", "credentials": {"type": "header", "name": "X-Key", "value": "$TOKEN"}"#,
        r#", "credentials": {"type": "oauth_client_credentials", "token_url": "https://x",
             "client_id": "c", "client_secret": "$TOKEN"}"#,
    ] {
        let cfg = config(extra).unwrap_or_else(|e| unreachable!("{e}"));
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("redacted"), "{printed}");
    }
    let lease = Lease {
        header: ("Authorization".into(), "Bearer s3cret".into()),
        renew_at: 5,
    };
    assert!(!format!("{lease:?}").contains("s3cret"));
}

#[test]
fn headers_of_static_credentials() {
    let bearer = Credentials::Bearer { token: "t".into() };
    assert_eq!(
        bearer.static_header(),
        Some(("Authorization".into(), "Bearer t".into()))
    );
    assert_eq!(bearer.renewal(), Renewal::Static);
    let header = Credentials::Header {
        name: "X-Api-Key".into(),
        value: "k".into(),
    };
    assert_eq!(
        header.static_header(),
        Some(("X-Api-Key".into(), "k".into()))
    );
    assert_eq!(Credentials::None.static_header(), None);
    assert_eq!(Credentials::None.header_name(), None);
    let command = Credentials::Command {
        command: vec!["h".into()],
        ttl_seconds: None,
        timeout_seconds: None,
    };
    assert_eq!(command.static_header(), None);
    assert_eq!(command.header_name(), Some("Authorization"));
    assert_eq!(command.renewal(), Renewal::Fetched);
}

fn jwt(payload: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(payload))
}

#[test]
fn jwt_exp_is_read_from_the_payload_only() {
    let cases: Vec<(String, Option<u64>)> = vec![
        (
            jwt(r#"{"exp": 1700000000, "sub": "gw"}"#),
            Some(1_700_000_000),
        ),
        (jwt(r#"{"exp": 1700000000.75}"#), Some(1_700_000_000)),
        (jwt(r#"{"sub": "gw"}"#), None),
        (jwt(r#"{"exp": "soon"}"#), None),
        (jwt(r#"{"exp": -5}"#), None),
        (jwt("not json"), None),
        ("opaque-token".into(), None),
        ("a.b".into(), None),
        ("a.%%%.c".into(), None),
        (format!("{}.extra", jwt(r#"{"exp": 1}"#)), None),
    ];
    for (token, expected) in cases {
        assert_eq!(jwt_exp(&token), expected, "{token}");
    }
    // Padded base64url is accepted too.
    let padded = format!(
        "h.{}.s",
        base64::engine::general_purpose::URL_SAFE.encode(r#"{"exp":42}"#)
    );
    assert_eq!(jwt_exp(&padded), Some(42));
}

#[test]
fn renewal_comes_at_the_ttl_or_before_the_expiry_whichever_is_first() {
    let now = 1_000;
    // (ttl, expires_at) -> renew_at
    let cases = [
        ((Some(300), None), 1_300),
        ((None, None), 1_000 + DEFAULT_COMMAND_TTL_SECONDS),
        // An hour-long token: renewed a minute early.
        ((None, Some(4_600)), 4_540),
        ((Some(300), Some(4_600)), 1_300),
        ((Some(9_000), Some(4_600)), 4_540),
        // A 20 s token: renewed half-way.
        ((None, Some(1_020)), 1_010),
        // Already expired: due at once.
        ((None, Some(900)), 900),
        ((Some(u64::MAX), None), u64::MAX),
    ];
    for ((ttl, exp), expected) in cases {
        assert_eq!(renew_at(now, ttl, exp), expected, "ttl {ttl:?} exp {exp:?}");
    }
}

#[test]
fn the_cache_reuses_a_lease_until_it_is_due_or_the_config_changes() {
    let creds = Credentials::Command {
        command: vec!["helper".into()],
        ttl_seconds: Some(10),
        timeout_seconds: None,
    };
    let lease = |v: &str, at| Lease {
        header: ("Authorization".into(), format!("Bearer {v}")),
        renew_at: at,
    };
    let mut cache = LeaseCache::default();
    assert_eq!(cache.fresh("Prod", &creds, 0), None);
    cache.put("Prod", &creds, lease("one", 110));
    assert_eq!(cache.fresh("Prod", &creds, 100), Some(&lease("one", 110)));
    assert_eq!(cache.fresh("Prod", &creds, 109), Some(&lease("one", 110)));
    assert_eq!(cache.fresh("Prod", &creds, 110), None, "due at renew_at");
    assert_eq!(cache.last("Prod", &creds), Some(&lease("one", 110)));
    assert_eq!(cache.fresh("Staging", &creds, 100), None);

    // Another credential config for the same backend never reuses the old value.
    let other = Credentials::Command {
        command: vec!["helper".into(), "--other".into()],
        ttl_seconds: Some(10),
        timeout_seconds: None,
    };
    assert_eq!(cache.fresh("Prod", &other, 100), None);
    assert_eq!(cache.last("Prod", &other), None);

    // A refusal makes it due now, but it stays the last known value.
    cache.expire("Prod");
    assert_eq!(cache.fresh("Prod", &creds, 100), None);
    assert_eq!(cache.last("Prod", &creds).map(|l| l.renew_at), Some(0));

    cache.retain(&|name| name != "Prod");
    assert_eq!(cache.last("Prod", &creds), None);
}

#[test]
fn servers_take_credentials_per_server_or_per_environment() {
    let text = r#"{"mcpServers": {
        "github": {"url": "https://api.example.com/mcp",
                   "credentials": {"type": "bearer", "token": "$TOKEN"}},
        "obs": {"credentials": {"type": "header", "name": "X-Key", "value": "default"},
                "environments": {
                    "Prod": {"description": "p", "url": "https://prod/mcp",
                             "credentials": {"type": "command", "command": ["h"]}},
                    "Staging": {"description": "s", "url": "https://staging/mcp"}}}}}"#;
    let cfg = Config::parse(text, Format::Json, "cfg.json", &vars)
        .unwrap_or_else(|e| unreachable!("{e}"));
    let creds = |backend: &str| {
        cfg.environments
            .0
            .iter()
            .find(|(n, _)| n == backend)
            .and_then(|(_, e)| e.credentials.clone())
    };
    assert_eq!(
        creds("github"),
        Some(Credentials::Bearer {
            token: "s3cret-token".into()
        })
    );
    assert!(matches!(
        creds("obs.Prod"),
        Some(Credentials::Command { .. })
    ));
    assert!(matches!(
        creds("obs.Staging"),
        Some(Credentials::Header { .. })
    ));

    let cases: &[(&str, &str)] = &[
        (
            r#"{"mcpServers": {"time": {"command": "npx", "credentials": {"type": "none"}}}}"#,
            "mcpServers.time.credentials: are for remote",
        ),
        (
            r#"{"mcpServers": {"gh": {"url": "https://x/mcp", "headers": {"Authorization": "a"},
                "credentials": {"type": "bearer", "token": "b"}}}}"#,
            "mcpServers.gh.credentials: sets `Authorization`",
        ),
        (
            r#"{"mcpServers": {"gh": {"url": "https://x/mcp", "credentials": {"type": "nope"}}}}"#,
            "credentials: unknown variant `nope`",
        ),
    ];
    for (text, needle) in cases {
        let err = Config::parse(text, Format::Json, "cfg.json", &vars)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(needle), "{text}: {err}");
    }
}
