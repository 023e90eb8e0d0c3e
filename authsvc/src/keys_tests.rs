use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn all_three_sources_in_seed_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/signing.pem");

    let (generated, source) = resolve(&path, None).unwrap();
    assert_eq!(source, KeySource::Generated);
    let warning = source.message(&path);
    assert!(warning.contains("MUST share"), "{warning}");
    assert!(warning.contains(&path.display().to_string()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // The file now exists: it wins over the env var.
    let other = SigningKey::generate().unwrap().to_pem().unwrap();
    let (loaded, source) = resolve(&path, Some(&other)).unwrap();
    assert_eq!(source, KeySource::File);
    assert_eq!(loaded.current.kid, generated.current.kid);

    // No file: the env var's PEM is written there and used.
    let env_path = dir.path().join("from-env.pem");
    let (from_env, source) = resolve(&env_path, Some(&other)).unwrap();
    assert_eq!(source, KeySource::EnvVar);
    assert_eq!(std::fs::read_to_string(&env_path).unwrap(), other);
    assert_ne!(from_env.current.kid, generated.current.kid);
    assert_eq!(
        std::fs::metadata(&env_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_bad_env_pem_is_an_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let err = resolve(&dir.path().join("k.pem"), Some("not a pem"))
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("MCP_ENV_MUX_SIGNING_KEY_PEM"),
        "{err:#}"
    );
}

#[test]
fn rotation_keeps_the_previous_key_published() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    let (before, _) = resolve(&path, None).unwrap();
    let new_kid = rotate(&path).unwrap();
    let (after, source) = resolve(&path, None).unwrap();
    assert_eq!(source, KeySource::File);
    assert_eq!(after.current.kid, new_kid);
    let kids: Vec<String> = after.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, vec![new_kid, before.current.kid.clone()]);
    // A token signed before the rotation still verifies against the new JWKS.
    let old = crate::jws::sign(&before.current, &serde_json::json!({"a": 1})).unwrap();
    assert_eq!(crate::jws::verify(&old, &after.jwks()).unwrap()["a"], 1);
}

#[test]
fn retiring_stops_publishing_the_previous_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    // Nothing to retire before a rotation: a clear error, nothing deleted.
    let (before, _) = resolve(&path, None).unwrap();
    let e = retire(&path).unwrap_err().to_string();
    assert!(e.contains("no previous key"), "{e}");
    let new_kid = rotate(&path).unwrap();
    assert_eq!(retire(&path).unwrap(), before.current.kid);
    let (after, _) = resolve(&path, None).unwrap();
    let jwks = after.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str()]);
    let old = crate::jws::sign(&before.current, &serde_json::json!({"a": 1})).unwrap();
    assert!(crate::jws::verify(&old, &after.jwks()).is_err());
    assert!(path.exists(), "the current key stays");
}

#[test]
fn signatures_verify_and_tampering_is_caught() {
    let key = SigningKey::generate().unwrap();
    let ring = KeyRing {
        current: SigningKey::from_pem(key.to_pem().unwrap().as_bytes()).unwrap(),
        previous: None,
    };
    assert_eq!(ring.current.kid, key.kid);
    let token = crate::jws::sign(&key, &serde_json::json!({"sub": "a"})).unwrap();
    assert_eq!(
        crate::jws::verify(&token, &ring.jwks()).unwrap()["sub"],
        "a"
    );
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"b"}"#);
    parts[1] = &forged;
    assert_eq!(
        crate::jws::verify(&parts.join("."), &ring.jwks()),
        Err(crate::jws::VerifyError::Signature)
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        forged
    );
    assert!(crate::jws::verify(&none, &ring.jwks()).is_err());
}

/// What Envoy's jwt_authn and our JWKS rely on: RS256, `typ: JWT`, the key's `kid`.
#[test]
fn tokens_carry_the_header_jwt_authn_expects() {
    let key = SigningKey::generate().unwrap();
    let token = crate::jws::sign(&key, &serde_json::json!({"sub": "a"})).unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key.kid})
    );
    // Another key with the same kid does not verify it; an unknown kid is named.
    let other = SigningKey::generate().unwrap();
    let mut jwk = other.jwk().clone();
    jwk["kid"] = key.kid.clone().into();
    assert_eq!(
        crate::jws::verify(&token, &serde_json::json!({"keys": [jwk]})),
        Err(crate::jws::VerifyError::Signature)
    );
    assert_eq!(
        crate::jws::verify(&token, &serde_json::json!({"keys": [other.jwk()]})),
        Err(crate::jws::VerifyError::UnknownKey(key.kid.clone()))
    );
}
