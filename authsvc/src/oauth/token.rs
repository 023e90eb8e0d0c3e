//! `/auth/token`: authorization_code (PKCE S256 required, single-use code, exact
//! redirect_uri) and refresh_token (rotated: the old one stops working on use; presenting a
//! rotated one again revokes its whole family, OAuth 2.1 §4.3.1). A family ends
//! `refresh_family_lifetime` after its sign-in however often it is refreshed, when its
//! subject is revoked (`revoke::subject`), or when the user lost every role; each refresh
//! re-derives the roles (see `reevaluate`).

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::authorize::CodeGrant;
use crate::app::App;
use crate::error::{Error, Result};
use crate::store::ns;
use crate::tokens::{Claims, Identity, Kind, digest, now, pkce_s256_matches, random_id, same};

#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    resource: Option<String>,
}

/// What a refresh token stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshGrant {
    pub client_id: String,
    pub identity: Identity,
    pub scope: String,
    /// Every refresh token rotated from one authorization code shares this id.
    /// (Empty in grants stored before families existed: a new one is started on use.)
    #[serde(default)]
    pub family: String,
    /// When the family's sign-in happened (seconds since the epoch), carried unchanged
    /// through every rotation. (0 in grants stored before this existed: the first refresh
    /// starts the clock.)
    #[serde(default)]
    pub family_started: u64,
}

pub async fn token(
    State(app): State<App>,
    headers: HeaderMap,
    Form(r): Form<TokenRequest>,
) -> Result<Response> {
    let client = authenticate(&app, &headers, &r).await?;
    let client_id = client.client_id.clone();
    if let Some(resource) = &r.resource
        && resource.trim_end_matches('/') != app.settings.audience
    {
        return Err(Error::oauth(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_target",
            "this server only issues tokens for its MCP resource",
        ));
    }
    let response = match r.grant_type.as_deref() {
        Some("authorization_code") => authorization_code(&app, &client_id, r).await?,
        Some("refresh_token") => refresh(&app, &client_id, r).await?,
        Some(other) => {
            return Err(Error::oauth(
                axum::http::StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported"),
            ));
        }
        None => return Err(Error::invalid_request("grant_type is required")),
    };
    // A registration in use stays; one nobody uses expires (`registration_ttl`).
    if !super::clients::is_metadata_url(&client_id) {
        super::clients::save(&app, &client).await?;
    }
    Ok(response)
}

/// The client: public (no secret registered) or confidential (secret by Basic or post).
async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    r: &TokenRequest,
) -> Result<super::clients::ClientInfo> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((dec(id)?, dec(secret)?))
        });
    let (client_id, secret) = match (basic, &r.client_id) {
        (Some((id, secret)), _) => (id, Some(secret)),
        (None, Some(id)) => (id.clone(), r.client_secret.clone()),
        (None, None) => return Err(Error::invalid_client("client_id is required")),
    };
    let client = super::clients::resolve(app, &client_id)
        .await?
        .map_err(Error::invalid_client)?;
    if let Some(expected) = &client.secret_digest {
        let given = secret.as_deref().map(digest).unwrap_or_default();
        if !same(&given, expected) {
            return Err(Error::invalid_client("client authentication failed"));
        }
    }
    Ok(client)
}

async fn authorization_code(app: &App, client_id: &str, r: TokenRequest) -> Result<Response> {
    let code = r
        .code
        .ok_or_else(|| Error::invalid_request("code is required"))?;
    let verifier = r
        .code_verifier
        .ok_or_else(|| Error::invalid_request("code_verifier is required (PKCE)"))?;
    // Taken, not read: a code works once, even when two replicas race for it.
    let grant: CodeGrant = app
        .db
        .take(ns::CODE, &digest(&code))
        .await?
        .ok_or_else(|| Error::invalid_grant("the code is invalid, expired or already used"))?;
    if grant.request.client_id != client_id {
        return Err(Error::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if r.redirect_uri.as_deref() != Some(grant.request.redirect_uri.as_str()) {
        return Err(Error::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if !pkce_s256_matches(&verifier, &grant.request.code_challenge) {
        return Err(Error::invalid_grant(
            "the code_verifier does not match the code_challenge",
        ));
    }
    crate::metrics::global().minted("user");
    issue(
        app,
        RefreshGrant {
            client_id: client_id.to_owned(),
            identity: grant.identity,
            scope: grant.request.scope,
            family: random_id(24),
            family_started: now(),
        },
    )
    .await
}

async fn refresh(app: &App, client_id: &str, r: TokenRequest) -> Result<Response> {
    let token = r
        .refresh_token
        .ok_or_else(|| Error::invalid_request("refresh_token is required"))?;
    let key = digest(&token);
    // Taken, not read: of two concurrent uses, one rotates; the other is a reuse.
    let Some(mut grant) = app.db.take::<RefreshGrant>(ns::REFRESH, &key).await? else {
        if let Some(family) = app.db.get::<String>(ns::REFRESH_USED, &key).await? {
            revoke_family(app, &family).await?;
            return Err(Error::invalid_grant(
                "the refresh token was already used; every token rotated from it is revoked, sign in again",
            ));
        }
        return Err(Error::invalid_grant(
            "the refresh token is invalid, expired or already used",
        ));
    };
    if grant.client_id != client_id {
        return Err(Error::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if grant.family.is_empty() {
        grant.family = random_id(24);
    }
    if grant.family_started == 0 {
        grant.family_started = now();
    }
    app.db
        .put(
            ns::REFRESH_USED,
            &key,
            &grant.family,
            Some(app.settings.refresh_ttl),
        )
        .await?;
    if family_revoked(app, &grant.family).await? {
        return Err(Error::invalid_grant(
            "the refresh token was revoked (an earlier token of its family was reused), sign in again",
        ));
    }
    let lifetime = app.settings.refresh_family_lifetime.as_secs();
    if now() >= grant.family_started.saturating_add(lifetime) {
        return Err(Error::invalid_grant(
            "this sign-in is older than the refresh lifetime allows; sign in again",
        ));
    }
    if let Some(revoked_at) =
        crate::revoke::subject_revoked_at(&app.db, &grant.identity.sub).await?
        && revoked_at >= grant.family_started
    {
        return Err(Error::invalid_grant(
            "the user's tokens were revoked; sign in again",
        ));
    }
    grant.identity = reevaluate(app, grant.identity)
        .await?
        .map_err(Error::invalid_grant)?;
    crate::metrics::global().refreshed();
    issue(app, grant).await
}

/// The roles a refreshed token may carry: only roles still configured, and what the IdP
/// says now where it can: the dev IdP (which knows its users) drops roles the user no longer
/// holds and ends the family of a user no longer configured; an OIDC IdP that gave a refresh
/// token at sign-in is asked again with it (new ID token, new roles; a refusal ends the
/// family). An OIDC IdP that gave none is not asked: its roles stay those of the sign-in, for
/// at most the family's lifetime (revoke the subject to end them at once). With
/// `auth.users_file`, the file is read again (if it changed): a user no longer listed ends
/// the family, and the file's roles are those it gives now.
async fn reevaluate(
    app: &App,
    identity: Identity,
) -> Result<std::result::Result<Identity, String>> {
    // The IdP's part first; the users file's roles are added again at the end.
    let mut identity = crate::users::without_listed_roles(identity);
    let held: Option<Vec<String>> = match &app.idp {
        crate::idp::Idp::Dev(dev) => {
            match identity
                .sub
                .strip_prefix("dev:")
                .and_then(|user| dev.users.get(user))
            {
                Some(roles) => Some(roles.clone()),
                None => return Ok(Err("the user is no longer configured; sign in again".into())),
            }
        }
        crate::idp::Idp::Oidc(oidc) => {
            match oidc
                .refresh_identity(&app.http, &identity, &app.settings)
                .await?
            {
                Some(fresh) => identity = fresh,
                None => {
                    return Ok(Err(
                        "the identity provider no longer accepts this sign-in; sign in again"
                            .into(),
                    ));
                }
            }
            None
        }
    };
    identity
        .roles
        .retain(|r| app.settings.roles.contains(r) && held.as_ref().is_none_or(|h| h.contains(r)));
    // `auth.users_file`, as it is now: a user no longer listed is refused.
    Ok(app
        .admit(identity)
        .map_err(|why| format!("{why} Sign in again once you are listed.")))
}

/// A rotated refresh token came back: someone else holds a copy (the client or the
/// attacker). Every token of its family stops working (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
/// The marker lives as long as any token of the family could: each is issued with
/// `refresh_ttl`, and none is issued after this.
async fn revoke_family(app: &App, family: &str) -> Result<()> {
    app.db
        .put(
            ns::REFRESH_FAMILY_REVOKED,
            &digest(family),
            &true,
            Some(app.settings.refresh_ttl),
        )
        .await?;
    crate::metrics::global().error("refresh_token_reuse");
    tracing::warn!(
        family = %digest(family),
        "a rotated refresh token was presented again: its family is revoked"
    );
    Ok(())
}

async fn family_revoked(app: &App, family: &str) -> Result<bool> {
    Ok(app
        .db
        .get::<bool>(ns::REFRESH_FAMILY_REVOKED, &digest(family))
        .await?
        .is_some())
}

/// A short-lived access token and a new refresh token.
async fn issue(app: &App, grant: RefreshGrant) -> Result<Response> {
    let claims = Claims::new(
        &app.settings,
        &grant.identity,
        Kind::User,
        app.settings.access_ttl,
    );
    let access = claims.sign(&app.keys).map_err(Error::internal)?;
    crate::revoke::remember_issued(&app.db, &claims).await?;
    let refresh = random_id(32);
    // Never past the family's end.
    let family_left = grant
        .family_started
        .saturating_add(app.settings.refresh_family_lifetime.as_secs())
        .saturating_sub(now())
        .max(1);
    let ttl = app
        .settings
        .refresh_ttl
        .min(std::time::Duration::from_secs(family_left));
    app.db
        .put(ns::REFRESH, &digest(&refresh), &grant, Some(ttl))
        .await?;
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": app.settings.access_ttl.as_secs(),
            "refresh_token": refresh,
            "scope": grant.scope,
        })),
    )
        .into_response())
}
