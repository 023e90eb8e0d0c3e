//! A real OpenID Connect provider (npm `oidc-provider`, `tests/node/oidc-idp.mjs`) on a free
//! loopback port, standing in for Entra ID or Auth0: users with roles in their ID tokens, one
//! confidential client registered for authsvc. Stopped on drop.

use std::process::Command;

use anyhow::Result;
use serde_json::{Value, json};

use crate::process::Proc;
use crate::{READY_TIMEOUT, http, ports, prereq};

pub const CLIENT_ID: &str = "meshmux-authsvc";
pub const CLIENT_SECRET: &str = "test-idp-client-secret-not-a-real-one";

pub struct OidcIdp {
    proc: Proc,
    port: u16,
}

impl OidcIdp {
    /// Starts the provider with `users` (`{"alice": {"name": "Alice", "roles": [...]}}`) and a
    /// client whose redirect URIs are authsvc's callbacks under `base_url` (the gateway's URL).
    pub fn start(base_url: &str, users: Value) -> Result<Self> {
        Self::start_with(base_url, users, json!({}))
    }

    /// Like [`OidcIdp::start`], with more keys of the spec (`oidc-idp.mjs`): `machines`
    /// (client-credentials clients, which also turn on introspection), `machine_token_ttl`.
    pub fn start_with(base_url: &str, users: Value, extra: Value) -> Result<Self> {
        let port = ports::free_port()?;
        let base = base_url.trim_end_matches('/');
        let spec = json!({
            "port": port,
            "client": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [format!("{base}/auth/callback"), format!("{base}/ui/callback")],
            },
            "users": users,
        });
        let mut spec = spec;
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        let mut cmd = Command::new(prereq::node()?);
        cmd.current_dir(prereq::node_dir())
            .arg(prereq::node_dir().join("oidc-idp.mjs"))
            .arg(spec.to_string());
        let mut proc = Proc::spawn("oidc-idp", &mut cmd)?;
        let probe = http::client()?;
        let discovery = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
        proc.wait_until(
            "the OIDC provider's discovery document",
            READY_TIMEOUT,
            || Ok(probe.get(&discovery).send()?.status().is_success()),
        )?;
        Ok(OidcIdp { proc, port })
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The token endpoint (client credentials).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer())
    }

    /// The RFC 7662 introspection endpoint.
    pub fn introspection_url(&self) -> String {
        format!("{}/token/introspection", self.issuer())
    }

    pub fn log(&self) -> &std::path::Path {
        self.proc.log()
    }

    /// The `auth` keys that make authsvc sign people in here (`auth.oidc`).
    pub fn auth_block(&self) -> Value {
        json!({"oidc": {
            "issuer": self.issuer(),
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": ["openid", "profile", "roles"],
            "roles_claim": "roles",
        }})
    }
}
