//! authsvc's settings, derived from the user's config file (`policy::config::Config`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use policy::config::{AuthConfig, Config, Format};

/// Which upstream identity provider authenticates people.
#[derive(Debug, Clone)]
pub enum IdpSettings {
    /// Any OpenID Connect provider (Entra ID is one, configured through `azure`).
    Oidc(OidcSettings),
    /// The loopback-only development login page.
    Dev {
        users: BTreeMap<String, Vec<String>>,
    },
}

#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// `azure` or `oidc`, for logs and metrics.
    pub label: &'static str,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub roles_claim: String,
    pub group_roles: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/`: holds the password, so never logged.
    pub url: String,
    pub encryption_key: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `iss` of every token: `auth.base_url` without a trailing slash.
    pub issuer: String,
    /// `aud` of every token: the MCP resource URL (issuer + `gateway.mcp_path`).
    pub audience: String,
    pub mcp_path: String,
    pub idp: IdpSettings,
    pub roles: BTreeSet<String>,
    pub minting_roles: Vec<String>,
    pub max_expiry_days: u32,
    pub signing_key_file: PathBuf,
    pub redis: Option<RedisSettings>,
    pub access_ttl: Duration,
    /// One refresh token's lifetime (each rotation issues a new one, never past the family's end).
    pub refresh_ttl: Duration,
    /// A refresh family's absolute lifetime from its sign-in (`auth.refresh_token_max_lifetime_days`).
    pub refresh_family_lifetime: Duration,
    /// How long a dynamic registration lives unused (renewed by every token grant).
    pub registration_ttl: Duration,
    /// `auth.registrations_per_hour`, per source address.
    pub registrations_per_hour: u32,
    pub ui_session_ttl: Duration,
    /// Accept `http://127.0.0.1`/`localhost` client ID metadata documents (tests only).
    pub allow_loopback_client_metadata: bool,
    /// `auth.users_file`: who may sign in (`crate::users`).
    pub users: Option<UsersSettings>,
}

/// The users file, as read at start, and what re-reading it needs.
#[derive(Debug, Clone)]
pub struct UsersSettings {
    pub path: PathBuf,
    /// The config's servers, which `allowed_tools` entries must name.
    pub servers: Vec<policy::servers::ServerSpec>,
    pub users: policy::users::Users,
}

impl Settings {
    /// Reads and validates the config file (`$VAR`s resolved from the process environment).
    pub fn load(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let name = path.display().to_string();
        let mut config = Config::parse(&text, Format::from_name(&name), &name, &|var| {
            std::env::var(var).ok()
        })?;
        let users_path = config.users_path(path);
        if let Some(users) = &users_path {
            let text = std::fs::read_to_string(users)
                .with_context(|| format!("reading auth.users_file {}", users.display()))?;
            config.attach_users(&text, &users.display().to_string())?;
        }
        let mut settings =
            Settings::from_config(&config).with_context(|| format!("config {name}"))?;
        if let (Some(u), Some(path)) = (&mut settings.users, users_path) {
            u.path = path;
        }
        Ok(settings)
    }

    /// Settings from a parsed config; its users file, if any, must have been attached
    /// (`Config::attach_users`).
    pub fn from_config(config: &Config) -> anyhow::Result<Settings> {
        let Some(auth) = &config.auth else {
            bail!("has no `auth` block: authsvc has nothing to do");
        };
        let mut settings = Settings::from_auth(auth, &config.gateway.mcp_path)?;
        settings.users = match (&auth.users_file, &auth.users) {
            (None, _) => None,
            (Some(file), None) => bail!("auth.users_file {file} was not read"),
            (Some(file), Some(users)) => Some(UsersSettings {
                path: PathBuf::from(file),
                servers: config.servers.clone(),
                users: users.clone(),
            }),
        };
        Ok(settings)
    }

    pub fn from_auth(auth: &AuthConfig, mcp_path: &str) -> anyhow::Result<Settings> {
        let issuer = auth.base_url.trim_end_matches('/').to_owned();
        let idp = if let Some(azure) = &auth.azure {
            // offline_access: Entra ID gives a refresh token, so that a refresh asks it again.
            let mut scopes = vec![
                "openid".into(),
                "profile".into(),
                "email".into(),
                "offline_access".into(),
            ];
            scopes.extend(auth.required_scopes.iter().cloned());
            IdpSettings::Oidc(OidcSettings {
                label: "azure",
                issuer: crate::idp::azure::authority(&azure.tenant_id),
                client_id: azure.client_id.clone(),
                client_secret: Some(azure.client_secret.clone()),
                scopes,
                roles_claim: "roles".into(),
                group_roles: BTreeMap::new(),
            })
        } else if let Some(oidc) = &auth.oidc {
            let mut scopes = oidc.scopes.clone();
            if !scopes.iter().any(|s| s == "openid") {
                scopes.insert(0, "openid".into());
            }
            IdpSettings::Oidc(OidcSettings {
                label: "oidc",
                issuer: oidc.issuer.trim_end_matches('/').to_owned(),
                client_id: oidc.client_id.clone(),
                client_secret: oidc.client_secret.clone(),
                scopes,
                roles_claim: oidc.roles_claim.clone(),
                group_roles: oidc.group_roles.clone(),
            })
        } else if let Some(dev) = &auth.dev {
            IdpSettings::Dev {
                users: dev.users.clone(),
            }
        } else {
            bail!("auth needs an identity provider");
        };
        let redis = match &auth.redis {
            Some(r) if r.enabled => Some(RedisSettings {
                url: redis_url(r)?,
                encryption_key: r
                    .encryption_key
                    .clone()
                    .context("auth.redis.encryption_key is required")?,
            }),
            _ => None,
        };
        Ok(Settings {
            audience: format!("{issuer}{mcp_path}"),
            issuer,
            mcp_path: mcp_path.to_owned(),
            idp,
            roles: auth.roles.keys().cloned().collect(),
            minting_roles: auth.token_minting_roles.clone(),
            max_expiry_days: auth.token_max_expiry_days,
            signing_key_file: PathBuf::from(&auth.signing_key_file),
            redis,
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 86400),
            refresh_family_lifetime: Duration::from_secs(
                u64::from(auth.refresh_token_max_lifetime_days) * 86400,
            ),
            registration_ttl: Duration::from_secs(
                u64::from(auth.refresh_token_max_lifetime_days.max(1)) * 86400,
            ),
            registrations_per_hour: auth.registrations_per_hour,
            ui_session_ttl: Duration::from_secs(8 * 3600),
            allow_loopback_client_metadata: false,
            users: None,
        })
    }

    /// Whether browsers reach us over https (decides the cookie's `Secure`/`__Host-`).
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// Refuses configurations that must not run: the dev IdP off loopback.
    pub fn check_listen(&self, listen: SocketAddr) -> anyhow::Result<()> {
        if let IdpSettings::Dev { .. } = self.idp {
            if !listen.ip().is_loopback() {
                bail!(
                    "the dev identity provider only runs on a loopback listen address, not {listen}"
                );
            }
            let host = url::Url::parse(&self.issuer)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            if !is_loopback_host(&host) {
                bail!(
                    "the dev identity provider needs a loopback auth.base_url, not {}",
                    self.issuer
                );
            }
        }
        Ok(())
    }
}

/// `localhost`, `127.0.0.0/8` or `::1` (brackets allowed).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The connection URL for `auth.redis`, credentials percent-encoded by `url`.
fn redis_url(r: &policy::config::RedisConfig) -> anyhow::Result<String> {
    let mut url = url::Url::parse(&format!("redis://{}:{}/", r.host, r.port))
        .with_context(|| format!("auth.redis.host {:?} is not a host name", r.host))?;
    if let Some(user) = &r.username {
        url.set_username(user)
            .map_err(|()| anyhow::anyhow!("auth.redis.username cannot be set"))?;
    }
    if let Some(password) = &r.password {
        url.set_password(Some(password))
            .map_err(|()| anyhow::anyhow!("auth.redis.password cannot be set"))?;
    }
    Ok(url.into())
}

#[cfg(test)]
mod redis_url_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(username: Option<&str>, password: Option<&str>) -> policy::config::RedisConfig {
        let mut block = serde_json::json!({"enabled": true, "host": "redis", "port": 6380});
        if let Some(u) = username {
            block["username"] = u.into();
        }
        if let Some(p) = password {
            block["password"] = p.into();
        }
        serde_json::from_value(block).unwrap()
    }

    #[test]
    fn credentials_reach_the_redis_client_as_written() {
        for (user, password) in [
            (None, "p@ss/w:rd#?%"),
            (Some("meshmux"), "s3cret"),
            (Some("u:ser@x"), "a b"),
        ] {
            let url = redis_url(&config(user, Some(password))).unwrap();
            let client = redis::Client::open(url.as_str()).unwrap();
            let info = client.get_connection_info().redis_settings();

            assert_eq!(info.password(), Some(password), "{url}");
            assert_eq!(info.username(), user, "{url}");
        }
    }

    #[test]
    fn without_credentials_the_url_has_none() {
        assert_eq!(
            redis_url(&config(None, None)).unwrap(),
            "redis://redis:6380/"
        );
    }
}
