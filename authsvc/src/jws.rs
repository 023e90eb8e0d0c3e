//! Compact JWS through the `jsonwebtoken` crate (aws-lc-rs backend): RS256 signing with our
//! key, and RS256/ES256 verification against a JWKS (the upstream IdP's, or ours in tests).
//! What stays here is only the choice of key by `kid` and the mapping of the crate's errors.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Serialize;
use serde_json::Value;

use crate::keys::SigningKey;

/// `header.payload.signature` with `alg: RS256`, `typ: JWT` and the key's `kid`.
pub fn sign(key: &SigningKey, claims: &impl Serialize) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    Ok(jsonwebtoken::encode(&header, claims, key.encoding())?)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    #[error("no key {0:?} in the JWKS")]
    UnknownKey(String),
    #[error("bad signature")]
    Signature,
}

/// The algorithms we accept: ours (RS256) and what OIDC providers sign ID tokens with.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// Verifies the signature against `jwks` (`{"keys": [...]}`) and returns the claims.
/// Claim checks (iss, aud, exp, nonce) are the caller's.
pub fn verify(token: &str, jwks: &Value) -> Result<Value, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(VerifyError::Algorithm(format!("{:?}", header.alg)));
    }
    let kid = header.kid.as_deref();
    // Keys are parsed one by one: an IdP's JWKS may hold kinds of key we never use.
    let key = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(VerifyError::Malformed)?
        .iter()
        .find(|k| kid.is_none_or(|kid| k.get("kid").and_then(Value::as_str) == Some(kid)))
        .ok_or_else(|| VerifyError::UnknownKey(kid.unwrap_or_default().to_owned()))?;
    let jwk: Jwk = serde_json::from_value(key.clone()).map_err(|_| VerifyError::Malformed)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| VerifyError::Malformed)?;
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    match jsonwebtoken::decode::<Value>(token, &key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => VerifyError::Signature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                VerifyError::Algorithm(format!("{:?}", header.alg))
            }
            _ => VerifyError::Malformed,
        }),
    }
}
