//! Revoking tokens, bot and user alike, by `jti` or by subject: a revoked jti goes on the
//! list the filter polls (`ns::REVOKED`, `/internal/revocations`); a revoked subject also
//! loses every refresh family it started before the revocation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::error::Result;
use crate::mint::MintedRecord;
use crate::store::{Db, ns};
use crate::tokens::{Claims, Kind, digest, now};

/// What to revoke (the body of `POST /internal/revoke`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Jti(String),
    Subject(String),
}

/// What a revocation did, for the command line.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    /// Access-token jtis put on the revocation list.
    pub jtis: Vec<String>,
    /// Whether the subject's refresh families were ended.
    pub refresh_families_ended: bool,
}

/// Records a user access token, so that revoking its subject can find it.
pub async fn remember_issued(db: &Db, claims: &Claims) -> Result<()> {
    if claims.kind != Kind::User {
        return Ok(());
    }
    let left = claims.exp.saturating_sub(now()).max(1);
    db.put(
        &issued_prefix(&claims.sub),
        &claims.jti,
        &claims.jti,
        Some(Duration::from_secs(left)),
    )
    .await
}

fn issued_prefix(sub: &str) -> String {
    format!("{}{}:", ns::ISSUED, digest(sub))
}

/// When `sub` was last revoked, if within the refresh family lifetime.
pub async fn subject_revoked_at(db: &Db, sub: &str) -> Result<Option<u64>> {
    db.get(ns::SUBJECT_REVOKED, &digest(sub)).await
}

pub async fn revoke(db: &Db, settings: &Settings, target: &Target) -> Result<Outcome> {
    match target {
        Target::Jti(jti) => revoke_jti(db, settings, jti).await,
        Target::Subject(sub) => revoke_subject(db, settings, sub).await,
    }
}

/// A bot token's jti revokes its record (as the UI does); any other jti is taken for a
/// user access token, listed for as long as one can live.
async fn revoke_jti(db: &Db, settings: &Settings, jti: &str) -> Result<Outcome> {
    if let Some(record) = db.get::<MintedRecord>(ns::MINTED, jti).await? {
        crate::mint::revoke(db, record).await?;
    } else {
        list(db, settings, jti).await?;
    }
    Ok(Outcome {
        jtis: vec![jti.to_owned()],
        refresh_families_ended: false,
    })
}

async fn list(db: &Db, settings: &Settings, jti: &str) -> Result<()> {
    db.put(ns::REVOKED, jti, &jti, Some(settings.access_ttl))
        .await?;
    crate::metrics::global().revoked();
    tracing::info!(%jti, "access token revoked");
    Ok(())
}

/// Every live access token of `sub` (user tokens, and bot tokens whose `sub` is
/// `bot:<name>`), and its refresh families started until now.
async fn revoke_subject(db: &Db, settings: &Settings, sub: &str) -> Result<Outcome> {
    db.put(
        ns::SUBJECT_REVOKED,
        &digest(sub),
        &now(),
        Some(settings.refresh_family_lifetime),
    )
    .await?;
    let mut jtis: Vec<String> = db.scan(&issued_prefix(sub)).await?;
    for jti in &jtis {
        list(db, settings, jti).await?;
    }
    if let Some(name) = sub.strip_prefix("bot:") {
        let records: Vec<MintedRecord> = db.scan(ns::MINTED).await?;
        for record in records.into_iter().filter(|r| r.name == name) {
            jtis.push(record.jti.clone());
            crate::mint::revoke(db, record).await?;
        }
    }
    jtis.sort();
    tracing::info!(sub = %sub, tokens = jtis.len(), "subject revoked");
    Ok(Outcome {
        jtis,
        refresh_families_ended: true,
    })
}

/// `meshmux-authsvc revoke`: in Redis when configured (every replica sees it), else through
/// the running authsvc at `authsvc_url` (`POST /internal/revoke`, signed with the key).
pub async fn cli_revoke(
    settings: &Settings,
    env_pem: Option<&str>,
    target: &Target,
    authsvc_url: &str,
) -> anyhow::Result<Outcome> {
    if settings.redis.is_some() {
        let db = crate::App::store_for(settings)?;
        return revoke(&db, settings, target)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"));
    }
    let (keys, _) = crate::keys::resolve(&settings.signing_key_file, env_pem)?;
    let answer = crate::internal::call(
        settings,
        &keys,
        authsvc_url,
        "/internal/revoke",
        &serde_json::to_value(target)?,
    )
    .await?;
    Ok(serde_json::from_value(answer)?)
}
