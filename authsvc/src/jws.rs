//! Compact JWS: RS256 signing with our key, and RS256/ES256 verification against a JWKS
//! (the upstream IdP's, or ours in tests).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::keys::SigningKey;

/// `header.payload.signature` with `alg: RS256`, `typ: JWT` and the key's `kid`.
pub fn sign(key: &SigningKey, claims: &Value) -> anyhow::Result<String> {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid});
    let mut input = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
    input.push('.');
    input.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
    let signature = key.sign(input.as_bytes())?;
    input.push('.');
    input.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(input)
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

/// Verifies the signature against `jwks` (`{"keys": [...]}`) and returns the claims.
/// Claim checks (iss, aud, exp, nonce) are the caller's.
pub fn verify(token: &str, jwks: &Value) -> Result<Value, VerifyError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| VerifyError::Malformed)
    };
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| VerifyError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kid = header.get("kid").and_then(Value::as_str);
    let signature = decode(s)?;
    let message = format!("{h}.{p}");
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(VerifyError::Malformed)?;
    let key = keys
        .iter()
        .find(|k| kid.is_none_or(|kid| k.get("kid").and_then(Value::as_str) == Some(kid)))
        .ok_or_else(|| VerifyError::UnknownKey(kid.unwrap_or_default().to_owned()))?;
    let field = |name: &str| -> Result<Vec<u8>, VerifyError> {
        key.get(name)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or(VerifyError::Malformed)
    };
    use aws_lc_rs::signature as sig;
    let ok = match alg {
        "RS256" => sig::RsaPublicKeyComponents {
            n: field("n")?,
            e: field("e")?,
        }
        .verify(
            &sig::RSA_PKCS1_2048_8192_SHA256,
            message.as_bytes(),
            &signature,
        )
        .is_ok(),
        "ES256" => {
            let mut point = vec![4u8];
            point.extend(field("x")?);
            point.extend(field("y")?);
            sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                .verify(message.as_bytes(), &signature)
                .is_ok()
        }
        other => return Err(VerifyError::Algorithm(other.to_owned())),
    };
    if !ok {
        return Err(VerifyError::Signature);
    }
    serde_json::from_slice(&decode(p)?).map_err(|_| VerifyError::Malformed)
}
