//! The RSA signing key: resolution (seed 000's order), the JWKS, and rotation.
//!
//! **Only authsvc holds private keys**: Envoy and the filter see the JWKS alone.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

/// Where the signing key came from; logged at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    File,
    EnvVar,
    Generated,
}

impl KeySource {
    /// The line logged at start (a warning for `Generated`).
    pub fn message(self, path: &Path) -> String {
        match self {
            KeySource::File => format!("signing key loaded from {}", path.display()),
            KeySource::EnvVar => format!(
                "signing key taken from MCP_ENV_MUX_SIGNING_KEY_PEM and written to {}",
                path.display()
            ),
            KeySource::Generated => format!(
                "NO SIGNING KEY FOUND: generated a new RSA 2048 key and wrote it to {}. \
                 Every authsvc replica MUST share this same key (copy the file or set \
                 MCP_ENV_MUX_SIGNING_KEY_PEM), or tokens minted by one replica are refused by \
                 the others and rolling restarts invalidate every token",
                path.display()
            ),
        }
    }

    pub fn log(self, path: &Path) {
        match self {
            KeySource::Generated => {
                let line = self.message(path);
                for _ in 0..3 {
                    tracing::warn!("{line}");
                }
            }
            _ => tracing::info!("{}", self.message(path)),
        }
    }
}

/// A private key with its published form. aws-lc-rs generates and parses it (and gives the
/// public components for the JWK); `jsonwebtoken` signs with it.
pub struct SigningKey {
    pub kid: String,
    pair: KeyPair,
    encoding: jsonwebtoken::EncodingKey,
    jwk: Value,
}

impl SigningKey {
    pub fn from_pem(pem: &[u8]) -> anyhow::Result<SigningKey> {
        let der = PrivateKeyDer::from_pem_slice(pem).context("not a PEM private key")?;
        let pair = match der {
            PrivateKeyDer::Pkcs1(k) => KeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => KeyPair::from_pkcs8(k.secret_pkcs8_der()),
            _ => bail!("the private key is not RSA"),
        }
        .map_err(|e| anyhow::anyhow!("unusable RSA key: {e}"))?;
        SigningKey::from_pair(pair)
    }

    pub fn generate() -> anyhow::Result<SigningKey> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        SigningKey::from_pair(pair)
    }

    fn from_pair(pair: KeyPair) -> anyhow::Result<SigningKey> {
        // One PKCS#8 encoding for both: what `to_pem` writes is what signs.
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(pem_of(&pair)?.as_bytes())
            .context("the RSA key is not usable for RS256")?;
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        // RFC 7638 thumbprint: members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ));
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        Ok(SigningKey {
            kid,
            pair,
            encoding,
            jwk,
        })
    }

    pub fn to_pem(&self) -> anyhow::Result<String> {
        pem_of(&self.pair)
    }

    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The key `jsonwebtoken` signs with (RS256).
    pub fn encoding(&self) -> &jsonwebtoken::EncodingKey {
        &self.encoding
    }
}

/// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
fn pem_of(pair: &KeyPair) -> anyhow::Result<String> {
    let der = pair
        .as_der()
        .map_err(|_| anyhow::anyhow!("encoding the key failed"))?;
    let b64 = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// The current key (signs) and the previous one (still published after a rotation).
pub struct KeyRing {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
}

impl KeyRing {
    /// `{"keys": [...]}`, current first.
    pub fn jwks(&self) -> Value {
        let mut keys = vec![self.current.jwk().clone()];
        keys.extend(self.previous.iter().map(|k| k.jwk().clone()));
        json!({ "keys": keys })
    }
}

/// The path where a rotation keeps the previous key.
pub fn previous_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".previous");
    PathBuf::from(name)
}

/// Seed 000's order: the file if it exists; else `env_pem` (the value of
/// `MCP_ENV_MUX_SIGNING_KEY_PEM`) written there; else a new key written there.
pub fn resolve(path: &Path, env_pem: Option<&str>) -> anyhow::Result<(KeyRing, KeySource)> {
    let (current, source) = if path.exists() {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let key =
            SigningKey::from_pem(&pem).with_context(|| format!("key file {}", path.display()))?;
        (key, KeySource::File)
    } else if let Some(pem) = env_pem.filter(|p| !p.trim().is_empty()) {
        let key = SigningKey::from_pem(pem.as_bytes()).context("MCP_ENV_MUX_SIGNING_KEY_PEM")?;
        write_private(path, pem.as_bytes())?;
        (key, KeySource::EnvVar)
    } else {
        let key = SigningKey::generate()?;
        write_private(path, key.to_pem()?.as_bytes())?;
        (key, KeySource::Generated)
    };
    let prev = previous_path(path);
    let previous = if prev.exists() {
        let pem = std::fs::read(&prev).with_context(|| format!("reading {}", prev.display()))?;
        Some(SigningKey::from_pem(&pem).with_context(|| format!("key file {}", prev.display()))?)
    } else {
        None
    };
    Ok((KeyRing { current, previous }, source))
}

/// Rotation: the current key moves to `<file>.previous` (still published) and a new key is
/// written to the file. Replicas pick it up on restart.
pub fn rotate(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        bail!("{} does not exist; nothing to rotate", path.display());
    }
    std::fs::rename(path, previous_path(path)).context("moving the current key aside")?;
    let key = SigningKey::generate()?;
    write_private(path, key.to_pem()?.as_bytes())?;
    Ok(key.kid.clone())
}

/// Retirement: the previous key (`<file>.previous`) is deleted, so it is no longer
/// published and tokens it signed stop verifying once replicas restart. Returns its kid.
pub fn retire(path: &Path) -> anyhow::Result<String> {
    let prev = previous_path(path);
    if !prev.exists() {
        bail!(
            "{} does not exist: there is no previous key to retire (rotate-key makes one)",
            prev.display()
        );
    }
    let pem = std::fs::read(&prev).with_context(|| format!("reading {}", prev.display()))?;
    let kid = SigningKey::from_pem(&pem)
        .map(|k| k.kid)
        .unwrap_or_else(|_| "(unreadable)".into());
    std::fs::remove_file(&prev).with_context(|| format!("deleting {}", prev.display()))?;
    Ok(kid)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
