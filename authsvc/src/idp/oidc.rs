//! A generic OpenID Connect provider: discovery, the authorization URL (PKCE S256 and nonce,
//! no `resource`), the code exchange, ID-token verification and roles from a claim.
//! The OAuth parts (authorization URL, PKCE, client authentication, token and error responses)
//! are the `oauth2` crate's; the ID token is verified with `jsonwebtoken` (`crate::jws`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse as _, TokenUrl,
};
use serde::{Deserialize, Serialize};
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

    /// The `oauth2` client for this provider's endpoints, sending `redirect_uri`.
    fn client(&self, p: &Provider, redirect_uri: Option<&str>) -> Result<Client> {
        let mut client = oauth2::Client::new(ClientId::new(self.settings.client_id.clone()))
            .set_auth_uri(
                AuthUrl::new(p.discovery.authorization_endpoint.clone()).map_err(upstream)?,
            )
            .set_token_uri(TokenUrl::new(p.discovery.token_endpoint.clone()).map_err(upstream)?);
        if let Some(uri) = redirect_uri {
            client = client.set_redirect_uri(RedirectUrl::new(uri.to_owned()).map_err(upstream)?);
        }
        if let Some(secret) = &self.settings.client_secret {
            // client_secret_basic is the default (RFC 8414); post where it is the only one.
            let methods = p
                .discovery
                .token_endpoint_auth_methods_supported
                .clone()
                .unwrap_or_default();
            let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
            client = client
                .set_client_secret(ClientSecret::new(secret.clone()))
                .set_auth_type(if basic {
                    AuthType::BasicAuth
                } else {
                    AuthType::RequestBody
                });
        }
        Ok(client)
    }

    pub async fn authorize_url(
        &self,
        http: &reqwest::Client,
        redirect_uri: &str,
        state: &str,
        tx: &Transaction,
    ) -> Result<String> {
        let p = self.provider(http).await?;
        let (url, _) = self
            .client(&p, Some(redirect_uri))?
            .authorize_url(|| CsrfToken::new(state.to_owned()))
            .add_scopes(self.settings.scopes.iter().cloned().map(Scope::new))
            .add_extra_param("nonce", &tx.nonce)
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier(tx)?))
            .url();
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
        let body = self
            .client(&p, Some(redirect_uri))?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(verifier(tx)?)
            .request_async(&Http(http))
            .await
            .map_err(token_error)?;
        let id_token = body
            .extra_fields()
            .id_token
            .as_deref()
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
        let refreshed = self
            .client(&p, None)?
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
            .request_async(&Http(http))
            .await;
        let body = match refreshed {
            Ok(body) => body,
            Err(RequestTokenError::ServerResponse(r))
                if *r.error() == BasicErrorResponseType::InvalidGrant =>
            {
                return Ok(None);
            }
            Err(e) => return Err(token_error(e)),
        };
        let mut identity = match body.extra_fields().id_token.as_deref() {
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
        // What `auth.users_file` is matched against: `email`, unless the IdP says it is not
        // verified, else `preferred_username` (Entra ID's user principal name).
        let verified = claims.get("email_verified").and_then(Value::as_bool) != Some(false);
        let email = text("email")
            .filter(|_| verified)
            .or_else(|| text("preferred_username"));
        Identity {
            sub,
            name,
            roles: roles.into_iter().collect(),
            upstream_refresh: None,
            email,
            listed_roles: Vec::new(),
        }
    }
}

/// The token response with OIDC's `id_token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type Client = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Our verifier, checked first: `oauth2` asserts RFC 7636's 43 to 128 characters.
fn verifier(tx: &Transaction) -> Result<PkceCodeVerifier> {
    if !(43..=128).contains(&tx.verifier.len()) {
        return Err(Error::internal("PKCE verifier of the wrong length"));
    }
    Ok(PkceCodeVerifier::new(tx.verifier.clone()))
}

/// `oauth2`'s HTTP calls through our client (reqwest 0.13, no redirects followed); `oauth2`
/// 5.0's own adapter is for reqwest 0.12.
struct Http<'a>(&'a reqwest::Client);

type SendFuture<'c> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = std::result::Result<HttpResponse, oauth2::HttpClientError<reqwest::Error>>,
            > + Send
            + 'c,
    >,
>;

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = oauth2::HttpClientError<reqwest::Error>;
    type Future = SendFuture<'c>;
    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(self.0, request))
    }
}

async fn send(
    http: &reqwest::Client,
    request: HttpRequest,
) -> std::result::Result<HttpResponse, oauth2::HttpClientError<reqwest::Error>> {
    let request = reqwest::Request::try_from(request).map_err(Box::new)?;
    let response = http.execute(request).await.map_err(Box::new)?;
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    builder
        .body(response.bytes().await.map_err(Box::new)?.to_vec())
        .map_err(oauth2::HttpClientError::Http)
}

/// The refresh token of a token response, if it has a usable one.
fn refresh_token_of(body: &TokenResponse) -> Option<String> {
    body.refresh_token()
        .map(|t| t.secret().clone())
        .filter(|t| !t.is_empty())
}

fn token_error<E: std::error::Error + 'static>(
    e: RequestTokenError<E, BasicErrorResponse>,
) -> Error {
    match e {
        RequestTokenError::ServerResponse(r) => {
            upstream(format!("token endpoint answered {:?}", r.error().as_ref()))
        }
        RequestTokenError::Parse(e, _) => {
            upstream(format!("token endpoint answered something else: {e}"))
        }
        other => upstream(format!("token endpoint: {other}")),
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// The email `auth.users_file` is matched against: a verified (or not denied) `email`,
    /// else `preferred_username`.
    #[test]
    fn the_email_is_the_verified_email_or_the_preferred_username() {
        let config = json!({
            "environments": {"Prod": {"description": "p", "url": "http://127.0.0.1:1/mcp"}},
            "auth": {"oidc": {"issuer": "https://idp.example", "client_id": "c"},
                     "base_url": "http://127.0.0.1:2", "signing_key_file": "k.pem",
                     "roles": {"admin": {"allowed_envs": {"*": ["*"]}}}}
        });
        let config = policy::config::Config::parse(
            &config.to_string(),
            policy::config::Format::Json,
            "c.json",
            &|_| None,
        )
        .unwrap();
        let settings = Settings::from_config(&config).unwrap();
        let crate::config::IdpSettings::Oidc(o) = &settings.idp else {
            unreachable!("an oidc config")
        };
        let oidc = Oidc::new(o.clone());
        let email = |claims: Value| oidc.identity(&claims, &settings).email;
        let (a, b) = ("a@example.com", "upn@example.com");
        assert_eq!(email(json!({"sub": "1", "email": a})).as_deref(), Some(a));
        assert_eq!(
            email(json!({"sub": "1", "email": a, "email_verified": true, "preferred_username": b}))
                .as_deref(),
            Some(a)
        );
        assert_eq!(
            email(
                json!({"sub": "1", "email": a, "email_verified": false, "preferred_username": b})
            )
            .as_deref(),
            Some(b)
        );
        assert_eq!(
            email(json!({"sub": "1", "email": a, "email_verified": false})),
            None
        );
        assert_eq!(email(json!({"sub": "1"})), None);
    }
}
