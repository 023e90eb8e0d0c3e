//! State shared by replicas: one trait (`Store`), in memory or in Redis, and typed access
//! (`Db`). Secrets used as keys (codes, refresh tokens, sessions) are stored under their
//! SHA-256 digest, never in clear.

pub mod fernet;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A key-value store with TTLs and an atomic take (single use of codes and states).
#[async_trait]
pub trait Store: Send + Sync {
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Get and delete in one step: of two concurrent takes, one gets the value.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Every value whose key starts with `prefix`.
    async fn scan(&self, prefix: &str) -> Result<Vec<Vec<u8>>>;
    async fn ping(&self) -> Result<()>;
    fn kind(&self) -> &'static str;
}

/// Key namespaces.
pub mod ns {
    /// Upstream login in flight, by our `state` to the IdP (10 min).
    pub const TRANSACTION: &str = "tx:";
    /// Authorization codes (60 s).
    pub const CODE: &str = "code:";
    /// Refresh tokens (rotated on use).
    pub const REFRESH: &str = "rt:";
    /// Refresh tokens already rotated, by digest → their family (kept as long as the token
    /// could have lived): presenting one again revokes the family.
    pub const REFRESH_USED: &str = "rt-used:";
    /// Revoked refresh-token families (kept as long as any of their tokens could live).
    pub const REFRESH_FAMILY_REVOKED: &str = "rt-family-revoked:";
    /// Registered clients (dynamic registration).
    pub const CLIENT: &str = "client:";
    /// Remembered consent, by user and client.
    pub const CONSENT: &str = "consent:";
    /// Consent pages shown and not yet answered (10 min).
    pub const CONSENT_PENDING: &str = "consent-pending:";
    /// Bot tokens minted (UI or CLI), kept until they expire.
    pub const MINTED: &str = "minted:";
    /// Revoked token jtis (bot and user), kept until the token would have expired; the
    /// filter polls them (`/internal/revocations`).
    pub const REVOKED: &str = "revoked:";
    /// User access tokens issued, by `digest(sub):jti` → jti, kept while the token lives
    /// (so revoking a subject can list its live tokens).
    pub const ISSUED: &str = "issued:";
    /// Revoked subjects, by `digest(sub)` → when (seconds): their refresh families that
    /// started before then are refused. Kept for the refresh family lifetime.
    pub const SUBJECT_REVOKED: &str = "sub-revoked:";
    /// Token UI sessions.
    pub const SESSION: &str = "session:";
    /// Dev IdP one-time codes (60 s).
    pub const DEV_CODE: &str = "dev-code:";
}

/// Typed access to a `Store`: JSON values.
#[derive(Clone)]
pub struct Db(pub Arc<dyn Store>);

impl Db {
    pub fn memory() -> Db {
        Db(Arc::new(memory::MemoryStore::default()))
    }

    pub async fn put<T: Serialize + Sync>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(Error::internal)?;
        self.0.put(&format!("{ns}{key}"), &bytes, ttl).await
    }

    pub async fn get<T: DeserializeOwned>(&self, ns: &str, key: &str) -> Result<Option<T>> {
        decode(self.0.get(&format!("{ns}{key}")).await?)
    }

    pub async fn take<T: DeserializeOwned>(&self, ns: &str, key: &str) -> Result<Option<T>> {
        decode(self.0.take(&format!("{ns}{key}")).await?)
    }

    pub async fn delete(&self, ns: &str, key: &str) -> Result<()> {
        self.0.delete(&format!("{ns}{key}")).await
    }

    pub async fn scan<T: DeserializeOwned>(&self, ns: &str) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for bytes in self.0.scan(ns).await? {
            out.push(serde_json::from_slice(&bytes).map_err(Error::internal)?);
        }
        Ok(out)
    }

    pub async fn ping(&self) -> Result<()> {
        self.0.ping().await
    }
}

fn decode<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Result<Option<T>> {
    bytes
        .map(|b| serde_json::from_slice(&b).map_err(Error::internal))
        .transpose()
}
