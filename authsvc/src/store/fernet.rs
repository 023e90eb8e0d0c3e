//! Redis values: Fernet tokens (the `fernet` crate, the spec of github.com/fernet/spec, the
//! format of Python's `cryptography.fernet` that seed 000 used) whose plaintext is bound to
//! the Redis key they are stored under: `<key> NUL <value>`.
//!
//! Fernet has no associated data, so the key travels inside the encrypted plaintext and is
//! compared on the way out: a value copied under another key (an admin's `session:` under
//! yours) decrypts, names the wrong key, and is refused. Keys never contain NUL (refused on
//! write), so the first NUL ends the key. Python reads a value with
//! `key, _, value = Fernet(k).decrypt(token).partition(b"\0")`.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FernetError {
    #[error("not a Fernet key (URL-safe base64 of 32 bytes)")]
    Key,
    #[error("invalid Fernet token")]
    Token,
    #[error("the value was stored under another key")]
    Binding,
}

#[derive(Clone)]
pub struct Fernet(fernet::Fernet);

impl Fernet {
    pub fn new(key: &str) -> Result<Fernet, FernetError> {
        fernet::Fernet::new(key.trim())
            .map(Fernet)
            .ok_or(FernetError::Key)
    }

    /// Encrypts `value` bound to `key`.
    pub fn seal(&self, key: &str, value: &[u8]) -> Result<String, FernetError> {
        if key.contains('\0') {
            return Err(FernetError::Binding);
        }
        let mut plain = Vec::with_capacity(key.len() + 1 + value.len());
        plain.extend_from_slice(key.as_bytes());
        plain.push(0);
        plain.extend_from_slice(value);
        Ok(self.0.encrypt(&plain))
    }

    /// Decrypts a value sealed for `key`; a value sealed for any other key is refused.
    pub fn open(&self, key: &str, token: &str) -> Result<Vec<u8>, FernetError> {
        let plain = self
            .0
            .decrypt(token.trim())
            .map_err(|_| FernetError::Token)?;
        let nul = plain
            .iter()
            .position(|b| *b == 0)
            .ok_or(FernetError::Binding)?;
        let (bound, value) = plain.split_at(nul);
        if bound != key.as_bytes() {
            return Err(FernetError::Binding);
        }
        Ok(value.get(1..).unwrap_or_default().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The spec's verify.json vector (plaintext "hello", unbound).
    const SECRET: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";

    #[test]
    fn the_crate_reads_the_spec_vector() {
        let f = fernet::Fernet::new(SECRET).unwrap();
        assert_eq!(f.decrypt(TOKEN).unwrap(), b"hello");
        // Unbound (no key inside): refused by the store's reader.
        assert_eq!(
            Fernet::new(SECRET).unwrap().open("k", TOKEN),
            Err(FernetError::Binding)
        );
    }

    #[test]
    fn round_trip_bound_to_the_key() {
        let f = Fernet::new(SECRET).unwrap();
        let t = f.seal("session:a", b"{\"a\":1}").unwrap();
        assert!(t.starts_with("gAAAAA"), "{t}");
        assert_eq!(f.open("session:a", &t).unwrap(), b"{\"a\":1}");
        assert_ne!(t, f.seal("session:a", b"{\"a\":1}").unwrap());
        let empty = f.seal("k", b"").unwrap();
        assert_eq!(f.open("k", &empty).unwrap(), b"");
    }

    #[test]
    fn another_key_is_refused() {
        let f = Fernet::new(SECRET).unwrap();
        let t = f.seal("session:admin", b"{}").unwrap();
        for other in [
            "session:mine",
            "session:admi",
            "session:admin\0",
            "",
            "session:adminx",
        ] {
            assert_eq!(f.open(other, &t), Err(FernetError::Binding), "{other:?}");
        }
        assert_eq!(f.seal("a\0b", b"{}"), Err(FernetError::Binding));
    }

    #[test]
    fn tampering_and_wrong_keys_are_refused() {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE;
        let f = Fernet::new(SECRET).unwrap();
        let token = f.seal("k", b"hello").unwrap();
        let mut raw = URL_SAFE.decode(&token).unwrap();
        for at in [0, 5, 20, 30, raw.len() - 1] {
            raw[at] ^= 1;
            assert_eq!(
                f.open("k", &URL_SAFE.encode(&raw)),
                Err(FernetError::Token),
                "byte {at}"
            );
            raw[at] ^= 1;
        }
        let other = Fernet::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert_eq!(other.open("k", &token), Err(FernetError::Token));
        assert_eq!(f.open("k", "not a token"), Err(FernetError::Token));
        assert!(Fernet::new("c2hvcnQ=").is_err());
    }
}
