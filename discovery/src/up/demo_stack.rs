//! The demo `up` runs without `--config`: its envs, its sign-in users, the config written for
//! them, and the three demo backends started in this process.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Value, json};

use super::Stack;
use crate::demo::{self, DemoOptions};
use crate::fsutil::write_if_changed;

/// The demo's envs: name, description.
pub const DEMO_ENVS: [(&str, &str); 3] = [
    ("Prod", "Production (demo)"),
    ("Staging", "Staging (demo)"),
    ("Dev", "Development (demo)"),
];

/// The demo's dev sign-in users and their roles.
pub const DEMO_USERS: [(&str, &[&str]); 2] = [("alice", &["admin"]), ("bob", &["staging-reader"])];

/// Where the demo's authsvc runs and what it signs with.
#[derive(Debug, Clone)]
pub struct DemoAuth {
    /// The gateway's URL (`auth.base_url`): tokens' issuer, and where people sign in.
    pub base_url: String,
    pub authsvc_url: String,
    pub signing_key_file: PathBuf,
}

/// The config the demo stack runs with (seed-000 format): each env sends its own
/// credential and an `X-Demo-Env` header, so the backends can tell who reached them. With
/// `auth`: the dev IdP ([`DEMO_USERS`]), roles `admin` (everything) and `staging-reader`
/// (Staging only), and `admin` may mint bot tokens of up to 30 days.
pub fn demo_config(backends: &[(&str, String)], auth: Option<&DemoAuth>) -> Value {
    let envs: serde_json::Map<String, Value> = DEMO_ENVS
        .iter()
        .filter_map(|(name, description)| {
            let url = backends.iter().find(|(n, _)| n == name)?.1.clone();
            let token = format!("Bearer demo-{}-token", name.to_ascii_lowercase());
            Some((
                (*name).to_owned(),
                json!({
                    "description": description,
                    "url": url,
                    "headers": { "Authorization": token, "X-Demo-Env": name }
                }),
            ))
        })
        .collect();
    let Some(auth) = auth else {
        return json!({ "environments": envs });
    };
    let users: serde_json::Map<String, Value> = DEMO_USERS
        .iter()
        .map(|(user, roles)| ((*user).to_owned(), json!(roles)))
        .collect();
    json!({
        "environments": envs,
        "auth": {
            "dev": {"users": users},
            "base_url": auth.base_url,
            "authsvc_url": auth.authsvc_url,
            "signing_key_file": auth.signing_key_file,
            "roles": {
                "admin": {"allowed_envs": {"*": ["*"]}},
                "staging-reader": {"allowed_envs": {"Staging": ["*"]}}
            },
            "token_minting_roles": ["admin"],
            "token_max_expiry_days": 30
        }
    })
}

/// Starts the three demo backends and writes their config; returns its path.
pub(super) async fn start_demo(
    work: &Path,
    stack: &mut Stack,
    auth: Option<&DemoAuth>,
) -> Result<PathBuf> {
    let mut urls = Vec::new();
    for (name, _) in DEMO_ENVS {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let opts = DemoOptions {
            env: name.to_owned(),
            ..DemoOptions::default()
        };
        let backend = demo::start(opts, listener)?;
        println!("demo backend {name:<8} {}", backend.url());
        urls.push((name, backend.url()));
        stack.demos.push(backend);
    }
    let path = work.join("demo-config.json");
    let text = serde_json::to_string_pretty(&demo_config(&urls, auth))? + "\n";
    // It holds the demo's (fake) credentials: owner-only, like any real config should be.
    write_if_changed(&path, text.as_bytes(), 0o600)?;
    Ok(path)
}
