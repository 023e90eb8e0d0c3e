//! Bot tokens: the minting rules, the records kept for listing and revocation, and the
//! endpoint through which `meshmux-authsvc mint` records a token in a running authsvc.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::keys::KeyRing;
use crate::store::{Db, ns};
use crate::tokens::{Claims, Identity, Kind, now};

/// Records outlive their token by this much, so the UI shows recently expired ones.
const KEEP_AFTER_EXPIRY: u64 = 7 * 86400;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MintedRecord {
    pub name: String,
    pub jti: String,
    pub roles: Vec<String>,
    pub created: u64,
    pub expires: u64,
    /// `sub` of the person who minted it, or `cli`.
    pub minted_by: String,
    pub minted_by_name: String,
    pub revoked_at: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct MintRequest {
    pub name: String,
    pub roles: Vec<String>,
    pub days: u32,
}

/// The rules, as a value: `Err` says why in words the page shows. `minter` is `None` for
/// the CLI (whoever holds the key file may mint anything the config defines).
pub fn check(
    settings: &Settings,
    minter: Option<&Identity>,
    req: &MintRequest,
) -> Result<(), String> {
    let name = req.name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_. ".contains(c))
    {
        return Err(
            "Give the token a name of 1–64 letters, digits, spaces, '-', '_' or '.'.".into(),
        );
    }
    if req.roles.is_empty() {
        return Err("Pick at least one role.".into());
    }
    if let Some(unknown) = req.roles.iter().find(|r| !settings.roles.contains(*r)) {
        return Err(format!("{unknown:?} is not a configured role."));
    }
    if req.days == 0 || req.days > settings.max_expiry_days {
        return Err(format!(
            "The lifetime must be 1 to {} days.",
            settings.max_expiry_days
        ));
    }
    if let Some(who) = minter {
        if !who.roles.iter().any(|r| settings.minting_roles.contains(r)) {
            return Err("Your roles do not allow minting tokens.".into());
        }
        if let Some(extra) = req.roles.iter().find(|r| !who.roles.contains(r)) {
            return Err(format!(
                "You do not hold the role {extra:?}; a token can only carry roles you hold."
            ));
        }
    }
    Ok(())
}

/// The claims of the bot token `req` asks for (`sub` = `bot:<name>`).
fn bot_claims(settings: &Settings, req: &MintRequest) -> Claims {
    let who = Identity {
        sub: format!("bot:{}", req.name.trim()),
        name: req.name.trim().to_owned(),
        roles: req.roles.clone(),
        upstream_refresh: None,
        email: None,
        listed_roles: Vec::new(),
    };
    Claims::new(
        settings,
        &who,
        Kind::Bot,
        Duration::from_secs(u64::from(req.days) * 86400),
    )
}

/// Signs a bot token and records it. Returns the token (shown once) and its record.
pub async fn mint(
    settings: &Settings,
    keys: &KeyRing,
    db: &Db,
    req: &MintRequest,
    by: (&str, &str),
) -> Result<(String, MintedRecord)> {
    let claims = bot_claims(settings, req);
    let token = claims.sign(keys).map_err(Error::internal)?;
    let record = record_of(&claims, by);
    save(db, &record).await?;
    crate::metrics::global().minted("bot");
    tracing::info!(name = %record.name, jti = %record.jti, roles = ?record.roles, minted_by = %record.minted_by, "bot token minted");
    Ok((token, record))
}

fn record_of(claims: &Claims, by: (&str, &str)) -> MintedRecord {
    MintedRecord {
        name: claims.name.clone(),
        jti: claims.jti.clone(),
        roles: claims.roles.clone(),
        created: claims.iat,
        expires: claims.exp,
        minted_by: by.0.to_owned(),
        minted_by_name: by.1.to_owned(),
        revoked_at: None,
    }
}

async fn save(db: &Db, record: &MintedRecord) -> Result<()> {
    let keep = record
        .expires
        .saturating_sub(now())
        .saturating_add(KEEP_AFTER_EXPIRY);
    db.put(
        ns::MINTED,
        &record.jti,
        record,
        Some(Duration::from_secs(keep)),
    )
    .await
}

/// Marks the record revoked and lists the jti until the token would have expired.
pub async fn revoke(db: &Db, mut record: MintedRecord) -> Result<()> {
    if record.revoked_at.is_some() {
        return Ok(());
    }
    record.revoked_at = Some(now());
    save(db, &record).await?;
    let left = record.expires.saturating_sub(now()).max(1);
    db.put(
        ns::REVOKED,
        &record.jti,
        &record.jti,
        Some(Duration::from_secs(left)),
    )
    .await?;
    crate::metrics::global().revoked();
    tracing::info!(jti = %record.jti, name = %record.name, "bot token revoked");
    Ok(())
}

/// `POST /internal/minted {"token": "<jwt>"}`: records a bot token the CLI signed with the
/// shared key (used when there is no Redis for the CLI to write to). The request carries an
/// assertion signed with that key (`internal::authenticate`), and only a token this key ring
/// verifies is recorded; an already recorded token is not overwritten (a revoked one stays
/// revoked).
pub async fn record_from_cli(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>> {
    crate::internal::authenticate(&app, &headers, &body)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = body
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let claims: Claims = crate::jws::verify(token, &app.keys.jwks())
        .ok()
        .and_then(|c| serde_json::from_value(c).ok())
        .filter(|c: &Claims| c.kind == Kind::Bot && c.iss == app.settings.issuer && c.exp > now())
        .ok_or_else(|| {
            Error::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_token",
                "not a valid bot token of this issuer",
            )
        })?;
    if app
        .db
        .get::<MintedRecord>(ns::MINTED, &claims.jti)
        .await?
        .is_none()
    {
        let record = record_of(&claims, ("cli", "command line"));
        save(&app.db, &record).await?;
        crate::metrics::global().minted("bot");
    }
    Ok(Json(json!({"recorded": claims.jti})))
}

/// `meshmux-authsvc mint`: signs with the shared key and records the token, in Redis when
/// configured, else in the running authsvc at `authsvc_url` (`POST /internal/minted`).
pub async fn cli_mint(
    settings: &Settings,
    env_pem: Option<&str>,
    name: &str,
    roles: Vec<String>,
    days: u32,
    authsvc_url: &str,
) -> anyhow::Result<String> {
    let req = MintRequest {
        name: name.to_owned(),
        roles,
        days,
    };
    check(settings, None, &req).map_err(|e| anyhow::anyhow!(e))?;
    let (keys, source) = crate::keys::resolve(&settings.signing_key_file, env_pem)?;
    source.log(&settings.signing_key_file);
    if settings.redis.is_some() {
        let db = crate::App::store_for(settings)?;
        let (token, _) = mint(settings, &keys, &db, &req, ("cli", "command line"))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        return Ok(token);
    }
    let claims = bot_claims(settings, &req);
    let token = claims.sign(&keys)?;
    crate::internal::call(
        settings,
        &keys,
        authsvc_url,
        "/internal/minted",
        &json!({ "token": token }),
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the token failed: {e}"))?;
    Ok(token)
}
