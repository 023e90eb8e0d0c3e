use serde_json::json;

use super::*;
use crate::config::{Config, Format};
use crate::rbac::{Caller, Policy};

/// `filesystem` and `time` as seed 002 has them (default prefix), `obs` unprefixed in two
/// envs, `gh` with a custom prefix, and seed-000 envs Prod and Dev.
fn config() -> Config {
    let file = json!({
        "environments": {
            "Prod": {"description": "p", "url": "http://127.0.0.1:1/mcp"},
            "Dev": {"description": "d", "url": "http://127.0.0.1:2/mcp"}
        },
        "mcpServers": {
            "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"]},
            "time": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-time"]},
            "obs": {"prefix": "never", "environments": {
                "Prod": {"description": "p", "url": "http://127.0.0.1:3/mcp"},
                "Staging": {"description": "s", "url": "http://127.0.0.1:4/mcp"}
            }},
            "gh": {"url": "http://127.0.0.1:5/mcp", "prefix": "github"}
        }
    });
    Config::parse(&file.to_string(), Format::Json, "cfg.json", &|_| None).unwrap()
}

fn parse(file: serde_json::Value) -> Result<Users, String> {
    Users::parse(&file.to_string(), "users.json", &config().servers).map_err(|e| e.to_string())
}

/// The rules `allowed_tools` turns into.
fn check(allowed_tools: &[&str], expected: serde_json::Value) {
    let users = parse(json!({"a@example.com": {"allowed_tools": allowed_tools}})).unwrap();
    let user = users.get("a@example.com").unwrap();
    assert_eq!(
        serde_json::to_value(&user.rules.allowed_envs).unwrap(),
        expected,
        "{allowed_tools:?}"
    );
}

#[test]
fn allowed_tools_become_globs_over_the_served_names_in_the_servers_envs() {
    check(&["*"], json!({"*": ["*"]}));
    check(&["filesystem:*"], json!({"filesystem": ["filesystem__*"]}));
    check(
        &["filesystem:*", "time:*"],
        json!({"filesystem": ["filesystem__*"], "time": ["time__*"]}),
    );
    check(
        &["filesystem:read_*", "filesystem:list_directory"],
        json!({"filesystem": ["filesystem__read_*", "filesystem__list_directory"]}),
    );
    // No prefix: the glob as written, but only in that server's envs.
    check(&["obs:*"], json!({"Prod": ["*"], "Staging": ["*"]}));
    // A custom prefix replaces the server's name in tool names, not in env names.
    check(&["gh:search*"], json!({"gh": ["github__search*"]}));
    check(&["time:*", "time:*"], json!({"time": ["time__*"]}));
    check(&[], json!({}));
}

#[test]
fn the_seed_002_file_maps_onto_roles() {
    let users = parse(json!({
        "user@example.com": {"name": "User Name", "roles": ["admin"], "allowed_tools": ["*"]},
        "friend@example.com": {"name": "Friend", "roles": ["user"], "allowed_tools": ["filesystem:*", "time:*"]}
    }))
    .unwrap();
    assert_eq!(users.len(), 2);
    let friend = users.get("Friend@Example.COM").unwrap();
    assert_eq!(friend.name.as_deref(), Some("Friend"));
    assert_eq!(
        friend.granted_roles(),
        ["user", "user:friend@example.com"],
        "the file's roles, then the user's own"
    );
    assert!(users.get("stranger@example.com").is_none());

    let roles: crate::rbac::Roles = users.roles().collect();
    let policy = Policy::compile(&roles).unwrap();
    let as_friend = Caller::Roles(vec!["user:friend@example.com".into()]);
    let allows = |env: &str, tool: &str| policy.allows(&as_friend, env, tool);
    assert!(allows("filesystem", "filesystem__read_file"));
    assert!(allows("time", "time__get_current_time"));
    assert!(!allows("gh", "github__search"));
    assert!(!allows("Prod", "search_logs"), "obs and seed-000 tools");
    assert!(
        !allows("filesystem", "time__get_current_time"),
        "a tool in another server's env"
    );
    let as_user = Caller::Roles(vec!["user:user@example.com".into()]);
    assert!(policy.allows(&as_user, "Prod", "search_logs"));
    assert!(policy.allows(&as_user, "gh", "github__search"));
}

#[test]
fn mistakes_are_errors_naming_the_file_and_the_entry() {
    let cases = [
        (json!([]), "users.json: must be a JSON object of email"),
        (
            json!({"a@x": {"allowed_tools": ["*"], "tools": []}}),
            "users.json: user \"a@x\": unknown field `tools`",
        ),
        (
            json!({"a@x": {"allowed_tools": ["files:*"]}}),
            "users.json: user \"a@x\": allowed_tools \"files:*\": names server `files`, which is not in the config's mcpServers (it has filesystem, time, obs, gh)",
        ),
        (
            json!({"a@x": {"allowed_tools": ["filesystem:[abc"]}}),
            "users.json: user \"a@x\": allowed_tools \"filesystem:[abc\": \"[abc\": unclosed `[` in glob",
        ),
        (
            json!({"a@x": {"allowed_tools": ["filesystem"]}}),
            "users.json: user \"a@x\": allowed_tools \"filesystem\": write `*` (every tool) or `<server>:<tool glob>`",
        ),
        (
            json!({"a@x": {"allowed_tools": ["filesystem:"]}}),
            "allowed_tools \"filesystem:\": names no tool glob",
        ),
        (
            json!({"a@x": {"roles": "admin"}}),
            "users.json: user \"a@x\": invalid type: string \"admin\", expected a sequence",
        ),
        (
            json!({"A@x": {}, "a@X": {}}),
            "users.json: user \"a@X\": listed twice (also as \"A@x\"; emails are compared ignoring case)",
        ),
        (
            json!({" a@x": {}}),
            "users.json: user \" a@x\": an email must be non-empty",
        ),
        (json!({"": {}}), "an email must be non-empty"),
    ];
    for (file, expected) in cases {
        let err = parse(file.clone()).unwrap_err();
        assert!(err.contains(expected), "{file}: {err}");
    }
    let err = Users::parse("{\"a@x\": {}, ", "users.json", &[]).unwrap_err();
    assert!(
        err.to_string().starts_with("users.json: not valid JSON: "),
        "{err}"
    );
    // Duplicate keys that serde_json's maps would silently merge.
    let err = Users::parse(r#"{"a@x": {}, "a@x": {}}"#, "users.json", &[]).unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
}

#[test]
fn a_config_takes_the_file_relative_to_itself_and_keeps_its_role_names_apart() {
    let with = |auth: serde_json::Value| {
        let mut block = json!({"dev": {"users": {}}, "base_url": "http://127.0.0.1:1",
            "signing_key_file": "k.pem"});
        for (k, v) in auth.as_object().unwrap() {
            block[k] = v.clone();
        }
        let file = json!({"mcpServers": {"fs": {"url": "http://127.0.0.1:1/mcp"}}, "auth": block});
        Config::parse(&file.to_string(), Format::Json, "cfg.json", &|v| {
            (v == "DATA").then(|| "/data".to_owned())
        })
    };
    // No `roles` needed with a users file.
    let mut config = with(json!({"users_file": "users.json"})).unwrap();
    assert_eq!(
        config.users_path(std::path::Path::new("/etc/meshmux/config.json")),
        Some("/etc/meshmux/users.json".into())
    );
    let config_abs = with(json!({"users_file": "$DATA/users.json"})).unwrap();
    assert_eq!(
        config_abs.users_path(std::path::Path::new("/etc/meshmux/config.json")),
        Some("/data/users.json".into())
    );
    config
        .attach_users(
            &json!({"a@x": {"allowed_tools": ["fs:*"]}}).to_string(),
            "users.json",
        )
        .unwrap();
    let users = config.auth.as_ref().and_then(|a| a.users.as_ref()).unwrap();
    assert_eq!(
        users.roles().collect::<Vec<_>>(),
        [(
            "user:a@x".to_owned(),
            RoleRules {
                allowed_envs: [("fs".to_owned(), vec!["fs__*".to_owned()])].into()
            }
        )]
    );

    let err = with(json!({})).unwrap_err().to_string();
    assert!(
        err.contains("auth.roles: must define at least one role (or give `users_file`)"),
        "{err}"
    );
    let err = with(json!({"users_file": "u.json",
        "roles": {"user:a@x": {"allowed_envs": {"*": ["*"]}}}}))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("auth.roles.user:a@x: role names starting with `user:` are the users file's"),
        "{err}"
    );
}
