//! A generic OpenID Connect provider: discovery, the authorization URL (PKCE S256 and nonce,
//! no `resource`), the code exchange, ID-token verification and roles from a claim.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use super::Transaction;
use crate::config::{OidcSettings, Settings};
use crate::error::{Error, Result};
use crate::tokens::{Identity, now};

const REFRESH_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the IdP puts `iss` on every authorization response (oidc-provider does).
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

#[derive(Clone)]
pub struct Provider {
    pub discovery: Discovery,
    pub jwks: Value,
    fetched: Instant,
}

pub struct Oidc {
    pub settings: OidcSettings,
    cache: RwLock<Option<Provider>>,
}

fn upstream(e: impl std::fmt::Display) -> Error {
    Error::Upstream(e.to_string())
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Oidc {
        Oidc {
            settings,
            cache: RwLock::new(None),
        }
    }

    /// Discovery document and JWKS, fetched on first use and refreshed hourly.
    pub async fn provider(&self, http: &reqwest::Client) -> Result<Provider> {
        if let Some(p) = self
            .cache
            .read()
            .await
            .as_ref()
            .filter(|p| p.fetched.elapsed() < REFRESH_AFTER)
        {
            return Ok(p.clone());
        }
        self.refresh(http).await
    }

    async fn refresh(&self, http: &reqwest::Client) -> Result<Provider> {
        let url = format!("{}/.well-known/openid-configuration", self.settings.issuer);
        let discovery: Discovery = get_json(http, &url).await?;
        if discovery.issuer.trim_end_matches('/') != self.settings.issuer {
            return Err(upstream(format!(
                "{url} names issuer {:?}, expected {:?}",
                discovery.issuer, self.settings.issuer
            )));
        }
        let jwks: Value = get_json(http, &discovery.jwks_uri).await?;
        let provider = Provider {
            discovery,
            jwks,
            fetched: Instant::now(),
        };
        *self.cache.write().await = Some(provider.clone());
        Ok(provider)
    }

    pub async fn authorize_url(
        &self,
        http: &reqwest::Client,
        redirect_uri: &str,
        state: &str,
        tx: &Transaction,
    ) -> Result<String> {
        let p = self.provider(http).await?;
        let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            tx.verifier.as_bytes(),
        ));
        let mut url = url::Url::parse(&p.discovery.authorization_endpoint).map_err(upstream)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.settings.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", &tx.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    pub async fn exchange(
        &self,
        http: &reqwest::Client,
        redirect_uri: &str,
        code: &str,
        tx: &Transaction,
        settings: &Settings,
    ) -> Result<Identity> {
        let p = self.provider(http).await?;
        let form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", tx.verifier.as_str()),
            ("client_id", self.settings.client_id.as_str()),
        ];
        let (status, body) = self.token_request(http, &p, form).await?;
        if !status.is_success() {
            return Err(upstream(format!(
                "token endpoint answered {status}: {}",
                body.get("error").unwrap_or(&Value::Null)
            )));
        }
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| upstream("no id_token in the token response"))?;
        let claims = self.verify_id_token(http, &p, id_token).await?;
        self.check_claims(&claims, &p.discovery.issuer, Some(&tx.nonce))?;
        let mut identity = self.identity(&claims, settings);
        identity.upstream_refresh = refresh_token_of(&body);
        Ok(identity)
    }

    /// Asks the IdP again who `previous` is, with the refresh token it gave at sign-in
    /// (none: `previous` unchanged). `Ok(None)` when the IdP refuses (`invalid_grant`: the
    /// user was removed, or the grant revoked there). Roles come from the new ID token; an
    /// answer without one keeps the roles.
    pub async fn refresh_identity(
        &self,
        http: &reqwest::Client,
        previous: &Identity,
        settings: &Settings,
    ) -> Result<Option<Identity>> {
        let Some(refresh_token) = previous.upstream_refresh.as_deref() else {
            return Ok(Some(previous.clone()));
        };
        let p = self.provider(http).await?;
        let form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.settings.client_id.as_str()),
        ];
        let (status, body) = self.token_request(http, &p, form).await?;
        if !status.is_success() {
            if body.get("error").and_then(Value::as_str) == Some("invalid_grant") {
                return Ok(None);
            }
            return Err(upstream(format!(
                "token endpoint answered {status} to a refresh: {}",
                body.get("error").unwrap_or(&Value::Null)
            )));
        }
        let mut identity = match body.get("id_token").and_then(Value::as_str) {
            Some(id_token) => {
                let claims = self.verify_id_token(http, &p, id_token).await?;
                // OIDC Core §12.2: a refreshed ID token carries no new nonce.
                self.check_claims(&claims, &p.discovery.issuer, None)?;
                let fresh = self.identity(&claims, settings);
                if fresh.sub != previous.sub {
                    return Err(upstream("refreshed ID token: another subject"));
                }
                fresh
            }
            None => previous.clone(),
        };
        identity.upstream_refresh =
            refresh_token_of(&body).or_else(|| previous.upstream_refresh.clone());
        Ok(Some(identity))
    }

    /// POSTs `form` to the token endpoint with this client's authentication.
    async fn token_request(
        &self,
        http: &reqwest::Client,
        p: &Provider,
        mut form: Vec<(&str, &str)>,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let mut request = http.post(&p.discovery.token_endpoint);
        if let Some(secret) = &self.settings.client_secret {
            // client_secret_basic is the default (RFC 8414); post where it is the only one.
            let methods = p
                .discovery
                .token_endpoint_auth_methods_supported
                .clone()
                .unwrap_or_default();
            let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
            if basic {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", enc(&self.settings.client_id), enc(secret));
                request =
                    request.header("authorization", format!("Basic {}", STANDARD.encode(pair)));
            } else {
                form.push(("client_secret", secret.as_str()));
            }
        }
        let response = request.form(&form).send().await.map_err(upstream)?;
        let status = response.status();
        let body: Value = response.json().await.map_err(upstream)?;
        Ok((status, body))
    }

    async fn verify_id_token(
        &self,
        http: &reqwest::Client,
        p: &Provider,
        id_token: &str,
    ) -> Result<Value> {
        match crate::jws::verify(id_token, &p.jwks) {
            Err(crate::jws::VerifyError::UnknownKey(_)) => {
                let fresh = self.refresh(http).await?;
                crate::jws::verify(id_token, &fresh.jwks)
            }
            other => other,
        }
        .map_err(|e| upstream(format!("ID token: {e}")))
    }

    fn check_claims(&self, claims: &Value, issuer: &str, nonce: Option<&str>) -> Result<()> {
        let str_claim = |n: &str| claims.get(n).and_then(Value::as_str);
        if str_claim("iss") != Some(issuer) {
            return Err(upstream("ID token: wrong issuer"));
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.settings.client_id,
            Some(Value::Array(a)) => a
                .iter()
                .any(|v| v.as_str() == Some(&self.settings.client_id)),
            _ => false,
        };
        if !aud_ok {
            return Err(upstream("ID token: wrong audience"));
        }
        if nonce.is_some_and(|n| str_claim("nonce") != Some(n)) {
            return Err(upstream("ID token: nonce mismatch"));
        }
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if exp.saturating_add(60) < now() {
            return Err(upstream("ID token: expired"));
        }
        Ok(())
    }

    /// `sub`, a display name, and roles from `roles_claim` (a dotted path such as
    /// `realm_access.roles` works), mapped through `group_roles` when that map is set.
    pub fn identity(&self, claims: &Value, settings: &Settings) -> Identity {
        let text = |n: &str| claims.get(n).and_then(Value::as_str).map(str::to_owned);
        let sub = text("sub").unwrap_or_default();
        let name = text("name")
            .or_else(|| text("preferred_username"))
            .or_else(|| text("email"))
            .unwrap_or_else(|| sub.clone());
        let mut node = Some(claims);
        for part in self.settings.roles_claim.split('.') {
            node = node.and_then(|n| n.get(part));
        }
        let values: Vec<String> = match node {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => s
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let roles: BTreeSet<String> = if self.settings.group_roles.is_empty() {
            values.into_iter().collect()
        } else {
            values
                .iter()
                .flat_map(|v| {
                    let mapped = self
                        .settings
                        .group_roles
                        .get(v)
                        .cloned()
                        .unwrap_or_default();
                    let direct = settings.roles.contains(v).then(|| v.clone());
                    mapped.into_iter().chain(direct)
                })
                .collect()
        };
        Identity {
            sub,
            name,
            roles: roles.into_iter().collect(),
            upstream_refresh: None,
        }
    }
}

fn refresh_token_of(body: &Value) -> Option<String> {
    body.get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| upstream(format!("GET {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(upstream(format!("GET {url}: {}", response.status())));
    }
    response
        .json()
        .await
        .map_err(|e| upstream(format!("GET {url}: {e}")))
}
