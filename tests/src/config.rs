//! The user's config file in seed 000's format (`environments` → `description`, `url`,
//! `headers`), built by a test and written where `meshmux` reads it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::{Map, Value, json};

use crate::backend::Backend;

#[derive(Debug, Clone)]
struct EnvConfig {
    name: String,
    description: String,
    url: String,
    headers: Vec<(String, String)>,
    /// `credentials`, as written.
    credentials: Option<Value>,
}

/// A seed-000 config: the envs in order, each with its URL, description and headers.
#[derive(Debug, Clone, Default)]
pub struct Config {
    envs: Vec<EnvConfig>,
    max_body_bytes: Option<u64>,
    /// `gateway.env_descriptions` (absent: the default, `per_tool`).
    env_descriptions: Option<String>,
    auth: Option<AuthConfig>,
    port: Option<u16>,
    /// The `metrics` block as written (absent: seed 000's defaults).
    metrics: Option<Value>,
    /// More `gateway` keys, as written.
    gateway: Vec<(String, Value)>,
    /// `gateway.pinning` (absent: `off`).
    pinning: Option<String>,
    /// `mcpServers` entries as written, in order.
    servers: Vec<(String, Value)>,
    /// Load this native filter build, whatever `MESHMUX_TEST_FILTER_KIND` says.
    native_filter: Option<PathBuf>,
}

/// The `auth` block: tokens from authsvc at `authsvc_url`, these roles.
#[derive(Debug, Clone)]
struct AuthConfig {
    base_url: String,
    authsvc_url: String,
    roles: Value,
    signing_key_file: PathBuf,
    /// The identity-provider keys (`dev`, `oidc`); default `{"dev": {"users": {}}}`.
    idp: Value,
    token_minting_roles: Vec<String>,
    token_max_expiry_days: Option<u32>,
    revocation_max_age_seconds: Option<u64>,
    /// More `auth` keys, as written.
    extra: Vec<(String, Value)>,
}

impl Config {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `mcpServers.<name>`, written as `entry` says.
    pub fn server(mut self, name: &str, entry: Value) -> Self {
        self.servers.push((name.to_owned(), entry));
        self
    }

    /// Adds env `name` served by `backend`, described as "`<name>` environment".
    pub fn env(self, name: &str, backend: &Backend) -> Self {
        self.env_url(name, &backend.url())
    }

    /// Adds env `name` at any URL (for instance one where nothing listens).
    pub fn env_url(mut self, name: &str, url: &str) -> Self {
        self.envs.push(EnvConfig {
            name: name.to_owned(),
            description: format!("{name} environment"),
            url: url.to_owned(),
            headers: Vec::new(),
            credentials: None,
        });
        self
    }

    /// Sets env `name`'s description.
    pub fn describe(mut self, name: &str, description: &str) -> Self {
        if let Some(e) = self.envs.iter_mut().find(|e| e.name == name) {
            e.description = description.to_owned();
        }
        self
    }

    /// Adds a header the gateway sends to env `name` (its credential, in real life).
    pub fn env_header(mut self, name: &str, header: &str, value: &str) -> Self {
        if let Some(e) = self.envs.iter_mut().find(|e| e.name == name) {
            e.headers.push((header.to_owned(), value.to_owned()));
        }
        self
    }

    /// Sets env `name`'s backend credential (`credentials`, as written).
    pub fn env_credentials(mut self, name: &str, credentials: Value) -> Self {
        if let Some(e) = self.envs.iter_mut().find(|e| e.name == name) {
            e.credentials = Some(credentials);
        }
        self
    }

    /// The gateway's request body limit (`gateway.max_body_bytes`).
    pub fn max_body_bytes(mut self, bytes: u64) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// Where the envs' descriptions go (`gateway.env_descriptions`: `per_tool`, `instructions`).
    pub fn env_descriptions(mut self, mode: &str) -> Self {
        self.env_descriptions = Some(mode.to_owned());
        self
    }

    /// Tool pinning (`gateway.pinning`: `off`, `warn`, `block`) against the default pin file
    /// next to the config (`config.pins.json`, which `meshmux pin` writes).
    pub fn pinning(mut self, mode: &str) -> Self {
        self.pinning = Some(mode.to_owned());
        self
    }

    /// Turns authorization on: Envoy verifies tokens that authsvc (at `authsvc_url`, e.g. a
    /// [`crate::auth::FakeAuthsvc`]) signed for [`crate::auth::BASE_URL`], and the filter applies
    /// `roles` (role → env glob → tool globs, seed 000's `auth.roles`).
    pub fn auth(self, authsvc_url: &str, roles: Value) -> Self {
        self.auth_at(crate::auth::BASE_URL, authsvc_url, roles)
    }

    /// Like [`Config::auth`] with the gateway's public URL `base_url` (the real authsvc's dev
    /// IdP wants a loopback one, e.g. `http://127.0.0.1:<port>` with [`Config::port`]).
    pub fn auth_at(mut self, base_url: &str, authsvc_url: &str, roles: Value) -> Self {
        self.auth = Some(AuthConfig {
            base_url: base_url.to_owned(),
            authsvc_url: authsvc_url.to_owned(),
            roles,
            signing_key_file: crate::auth::signing_key_path(),
            idp: json!({"dev": {"users": {}}}),
            token_minting_roles: Vec::new(),
            token_max_expiry_days: None,
            revocation_max_age_seconds: None,
            extra: Vec::new(),
        });
        self
    }

    /// Sets `auth.<key>` to `value` (e.g. `users_file`).
    pub fn auth_key(mut self, key: &str, value: Value) -> Self {
        if let Some(a) = &mut self.auth {
            a.extra.push((key.to_owned(), value));
        }
        self
    }

    /// The identity provider, as the `auth` keys it takes: `{"dev": {"users": …}}` or
    /// `{"oidc": {"issuer": …, "client_id": …}}` (see [`crate::oidc_idp::OidcIdp::auth_block`]).
    pub fn idp(mut self, idp: Value) -> Self {
        if let Some(a) = &mut self.auth {
            a.idp = idp;
        }
        self
    }

    /// `auth.revocation_max_age_seconds`: fail closed when the list is older.
    pub fn revocation_max_age(mut self, seconds: u64) -> Self {
        if let Some(a) = &mut self.auth {
            a.revocation_max_age_seconds = Some(seconds);
        }
        self
    }

    /// `auth.token_minting_roles` and `auth.token_max_expiry_days`.
    pub fn minting(mut self, roles: &[&str], max_days: u32) -> Self {
        if let Some(a) = &mut self.auth {
            a.token_minting_roles = roles.iter().map(|r| (*r).to_owned()).collect();
            a.token_max_expiry_days = Some(max_days);
        }
        self
    }

    /// `auth.signing_key_file` (default: the test signer's key).
    pub fn signing_key_file(mut self, path: &Path) -> Self {
        if let Some(a) = &mut self.auth {
            a.signing_key_file = path.to_path_buf();
        }
        self
    }

    /// The gateway's listener port (default: a free one chosen at start).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets `gateway.<key>` to `value`.
    pub fn gateway_key(mut self, key: &str, value: Value) -> Self {
        self.gateway.push((key.to_owned(), value));
        self
    }

    /// The `metrics` block (`enabled`, `path`, `user_level_metrics`).
    pub fn metrics(mut self, block: Value) -> Self {
        self.metrics = Some(block);
        self
    }

    pub fn fixed_port(&self) -> Option<u16> {
        self.port
    }

    /// Runs this native filter build (a test-only build, for instance) instead of the
    /// filter `MESHMUX_TEST_FILTER_KIND` selects.
    pub fn native_filter(mut self, path: PathBuf) -> Self {
        self.native_filter = Some(path);
        self
    }

    /// The `meshmux discover` arguments for the filter, and the environment Envoy needs.
    pub fn filter_setup(&self) -> anyhow::Result<crate::prereq::FilterSetup> {
        match &self.native_filter {
            Some(so) => Ok(crate::prereq::FilterSetup::native(so)),
            None => crate::prereq::filter_setup(),
        }
    }

    pub fn has_auth(&self) -> bool {
        self.auth.is_some()
    }

    pub fn env_names(&self) -> Vec<String> {
        self.envs.iter().map(|e| e.name.clone()).collect()
    }

    /// The config as seed 000's JSON.
    pub fn to_json(&self) -> Value {
        let mut environments = Map::new();
        for e in &self.envs {
            let headers: Map<String, Value> = e
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let mut env = json!({"description": e.description, "url": e.url});
            if !headers.is_empty()
                && let Some(obj) = env.as_object_mut()
            {
                obj.insert("headers".into(), Value::Object(headers));
            }
            if let (Some(c), Some(obj)) = (&e.credentials, env.as_object_mut()) {
                obj.insert("credentials".into(), c.clone());
            }
            environments.insert(e.name.clone(), env);
        }
        let mut config = if self.servers.is_empty() || !environments.is_empty() {
            json!({"environments": environments})
        } else {
            json!({})
        };
        if let (false, Some(obj)) = (self.servers.is_empty(), config.as_object_mut()) {
            let servers: Map<String, Value> = self.servers.iter().cloned().collect();
            obj.insert("mcpServers".into(), Value::Object(servers));
        }
        if let (Some(block), Some(obj)) = (&self.metrics, config.as_object_mut()) {
            obj.insert("metrics".into(), block.clone());
        }
        let mut gateway = serde_json::Map::new();
        if let Some(limit) = self.max_body_bytes {
            gateway.insert("max_body_bytes".into(), json!(limit));
        }
        if let Some(mode) = &self.env_descriptions {
            gateway.insert("env_descriptions".into(), json!(mode));
        }
        for (key, value) in &self.gateway {
            gateway.insert(key.clone(), value.clone());
        }
        if let Some(mode) = &self.pinning {
            gateway.insert("pinning".into(), json!(mode));
        }
        if let (false, Some(obj)) = (gateway.is_empty(), config.as_object_mut()) {
            obj.insert("gateway".into(), Value::Object(gateway));
        }
        if let (Some(auth), Some(obj)) = (&self.auth, config.as_object_mut()) {
            let roles: Map<String, Value> = auth
                .roles
                .as_object()
                .into_iter()
                .flatten()
                .map(|(role, envs)| (role.clone(), json!({"allowed_envs": envs})))
                .collect();
            let mut block = json!({
                "base_url": auth.base_url,
                "authsvc_url": auth.authsvc_url,
                "signing_key_file": auth.signing_key_file,
                "roles": roles,
                "token_minting_roles": auth.token_minting_roles,
            });
            if let Some(map) = block.as_object_mut() {
                for (k, v) in auth.idp.as_object().into_iter().flatten() {
                    map.insert(k.clone(), v.clone());
                }
                if let Some(secs) = auth.revocation_max_age_seconds {
                    map.insert("revocation_max_age_seconds".into(), json!(secs));
                }
                if let Some(days) = auth.token_max_expiry_days {
                    map.insert("token_max_expiry_days".into(), json!(days));
                }
                for (k, v) in &auth.extra {
                    map.insert(k.clone(), v.clone());
                }
            }
            obj.insert("auth".into(), block);
        }
        config
    }

    /// Writes the config as `dir/config.json`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&self.to_json())?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Runs discovery and starts Envoy with the filter (see [`crate::Gateway`]).
    pub fn start(self) -> Result<crate::Gateway> {
        crate::Gateway::start(self)
    }

    /// Runs `meshmux check --format json` on this config.
    pub fn check(&self) -> Result<crate::CheckRun> {
        crate::check::run(self, &["--format", "json"])
    }

    /// Runs `meshmux check` on this config, in the human format.
    pub fn check_text(&self) -> Result<crate::CheckRun> {
        crate::check::run(self, &[])
    }
}
