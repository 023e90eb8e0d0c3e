//! Fernet (the spec of github.com/fernet/spec): version 0x80, big-endian timestamp, IV,
//! AES-128-CBC with PKCS#7, HMAC-SHA256 over all of it; URL-safe base64 with padding.
//! Compatible with Python's `cryptography.fernet`, which seed 000 used.

use aws_lc_rs::cipher::{
    AES_128, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;

const VERSION: u8 = 0x80;
const HEADER: usize = 1 + 8 + 16;
const MAC: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FernetError {
    #[error("not a Fernet key (URL-safe base64 of 32 bytes)")]
    Key,
    #[error("invalid Fernet token")]
    Token,
}

#[derive(Clone)]
pub struct Fernet {
    signing: hmac::Key,
    encryption: [u8; 16],
}

impl Fernet {
    pub fn new(key: &str) -> Result<Fernet, FernetError> {
        let bytes = URL_SAFE.decode(key.trim()).map_err(|_| FernetError::Key)?;
        if bytes.len() != 32 {
            return Err(FernetError::Key);
        }
        let (signing, encryption) = bytes.split_at(16);
        Ok(Fernet {
            signing: hmac::Key::new(hmac::HMAC_SHA256, signing),
            encryption: encryption.try_into().map_err(|_| FernetError::Key)?,
        })
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, FernetError> {
        let mut iv = [0u8; 16];
        aws_lc_rs::rand::fill(&mut iv).map_err(|_| FernetError::Token)?;
        self.encrypt_with(plaintext, crate::tokens::now(), iv)
    }

    /// Deterministic encryption for the spec's test vectors.
    pub fn encrypt_with(
        &self,
        plaintext: &[u8],
        time: u64,
        iv: [u8; 16],
    ) -> Result<String, FernetError> {
        let key =
            UnboundCipherKey::new(&AES_128, &self.encryption).map_err(|_| FernetError::Key)?;
        let cipher = PaddedBlockEncryptingKey::cbc_pkcs7(key).map_err(|_| FernetError::Key)?;
        let mut body = plaintext.to_vec();
        cipher
            .less_safe_encrypt(&mut body, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| FernetError::Token)?;
        let mut token = Vec::with_capacity(HEADER + body.len() + MAC);
        token.push(VERSION);
        token.extend_from_slice(&time.to_be_bytes());
        token.extend_from_slice(&iv);
        token.extend_from_slice(&body);
        let tag = hmac::sign(&self.signing, &token);
        token.extend_from_slice(tag.as_ref());
        Ok(URL_SAFE.encode(token))
    }

    pub fn decrypt(&self, token: &str) -> Result<Vec<u8>, FernetError> {
        let raw = URL_SAFE
            .decode(token.trim())
            .map_err(|_| FernetError::Token)?;
        if raw.len() < HEADER + 16 + MAC || raw.first() != Some(&VERSION) {
            return Err(FernetError::Token);
        }
        let (signed, tag) = raw.split_at(raw.len() - MAC);
        hmac::verify(&self.signing, signed, tag).map_err(|_| FernetError::Token)?;
        let iv: [u8; 16] = signed
            .get(9..HEADER)
            .and_then(|s| s.try_into().ok())
            .ok_or(FernetError::Token)?;
        let mut body = signed.get(HEADER..).ok_or(FernetError::Token)?.to_vec();
        if body.len() % 16 != 0 {
            return Err(FernetError::Token);
        }
        let key =
            UnboundCipherKey::new(&AES_128, &self.encryption).map_err(|_| FernetError::Key)?;
        let cipher = PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| FernetError::Key)?;
        let plain = cipher
            .decrypt(&mut body, DecryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| FernetError::Token)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The spec's generate.json / verify.json vector.
    const SECRET: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    const NOW: u64 = 499_162_800; // 1985-10-26T01:20:00-07:00

    fn iv() -> [u8; 16] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn spec_vector_encrypts_and_decrypts() {
        let f = Fernet::new(SECRET).unwrap();
        assert_eq!(f.encrypt_with(b"hello", NOW, iv()).unwrap(), TOKEN);
        assert_eq!(f.decrypt(TOKEN).unwrap(), b"hello");
    }

    #[test]
    fn round_trip_with_random_iv() {
        let f = Fernet::new(SECRET).unwrap();
        let t = f.encrypt(b"{\"a\":1}").unwrap();
        assert_eq!(f.decrypt(&t).unwrap(), b"{\"a\":1}");
        assert_ne!(t, f.encrypt(b"{\"a\":1}").unwrap());
    }

    #[test]
    fn tampering_and_wrong_keys_are_refused() {
        let f = Fernet::new(SECRET).unwrap();
        let mut raw = URL_SAFE.decode(TOKEN).unwrap();
        for at in [0, 5, 20, 30, raw.len() - 1] {
            raw[at] ^= 1;
            assert_eq!(
                f.decrypt(&URL_SAFE.encode(&raw)),
                Err(FernetError::Token),
                "byte {at}"
            );
            raw[at] ^= 1;
        }
        let other = Fernet::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert_eq!(other.decrypt(TOKEN), Err(FernetError::Token));
        assert_eq!(f.decrypt("not a token"), Err(FernetError::Token));
        assert!(Fernet::new("c2hvcnQ=").is_err());
    }
}
