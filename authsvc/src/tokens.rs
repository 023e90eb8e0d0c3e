//! The tokens authsvc issues: claims, signing, random secrets and their store keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::keys::KeyRing;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    User,
    Bot,
}

/// The claims of every access token (the contract with Envoy's jwt_authn and the filter).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub roles: Vec<String>,
    pub kind: Kind,
    pub name: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
}

/// Who a token is for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    pub name: String,
    pub roles: Vec<String>,
    /// The refresh token the upstream IdP gave at sign-in, if any: a refresh asks the IdP
    /// again with it (`Oidc::refresh_identity`). Only in the store (encrypted in Redis),
    /// never in a token we issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_refresh: Option<String>,
    /// The email the IdP vouched for (the dev IdP's user name): what `auth.users_file`
    /// lists. Only in the store, never in a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The roles the users file added to the IdP's (`crate::users`), taken off again before
    /// a refresh asks the IdP and the file anew.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listed_roles: Vec<String>,
}

impl Claims {
    pub fn new(settings: &Settings, who: &Identity, kind: Kind, lifetime: Duration) -> Claims {
        let iat = now();
        Claims {
            iss: settings.issuer.clone(),
            aud: settings.audience.clone(),
            sub: who.sub.clone(),
            roles: who.roles.clone(),
            kind,
            name: who.name.clone(),
            jti: random_id(16),
            iat,
            exp: iat.saturating_add(lifetime.as_secs()),
        }
    }

    pub fn sign(&self, keys: &KeyRing) -> anyhow::Result<String> {
        crate::jws::sign(&keys.current, self)
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `bytes` random bytes, base64url without padding.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The system RNG does not fail on Linux; a zeroed buffer would only ever follow a
    // broken kernel, and would then be caught by uniqueness checks downstream.
    let _ = aws_lc_rs::rand::fill(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The store key for a secret (codes, refresh tokens, sessions): never the secret itself.
pub fn digest(secret: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    URL_SAFE_NO_PAD.encode(d)
}

/// SHA-256 of bytes, base64url (binds an internal request's assertion to its body).
pub fn digest_bytes(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// PKCE S256: base64url(SHA-256(verifier)) == challenge, in constant time.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let valid_len = (43..=128).contains(&verifier.len());
    let valid_chars = verifier
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    valid_len
        && valid_chars
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            computed.as_bytes(),
            challenge.as_bytes(),
        )
        .is_ok()
}

/// Constant-time string equality (CSRF tokens, client secrets).
pub fn same(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}
