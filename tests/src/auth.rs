//! Tokens and a stand-in for authsvc, so the gateway's side of authorization is tested on real
//! Envoy: [`Issuer`] signs RS256 JWTs the way authsvc does (same claims, `kid`), and
//! [`FakeAuthsvc`] serves the two things Envoy and the filter fetch from authsvc, the JWKS
//! and the revocation list, on a free loopback port.
//!
//! The keys in `tests/keys/` are test-only keys generated for this purpose.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

use crate::prereq::root;

/// The gateway's public URL in the auth tests (`auth.base_url`): the tokens' `iss`, and with
/// `/mcp` their `aud`. Envoy compares strings; nothing resolves this name.
pub const BASE_URL: &str = "https://mcp.gateway.test";
/// The key id the signer's key is published under.
pub const KID: &str = "test-key-1";

/// Signs tokens as authsvc would (or, on request, as it would not).
pub struct Issuer {
    key: RsaKeyPair,
    impostor: RsaKeyPair,
    base_url: String,
    rng: SystemRandom,
    next_jti: AtomicU64,
}

fn load_key(name: &str) -> Result<RsaKeyPair> {
    let path = root().join("tests/keys").join(name);
    let pem =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = STANDARD
        .decode(b64)
        .with_context(|| format!("{} is not PEM", path.display()))?;
    RsaKeyPair::from_pkcs8(&der).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Issuer {
    /// The issuer for `base_url` with the test signing key.
    pub fn new(base_url: &str) -> Result<Self> {
        Ok(Issuer {
            key: load_key("signer.pem")?,
            impostor: load_key("impostor.pem")?,
            base_url: base_url.to_owned(),
            rng: SystemRandom::new(),
            next_jti: AtomicU64::new(1),
        })
    }

    /// The MCP URL, the tokens' audience.
    pub fn audience(&self) -> String {
        format!("{}/mcp", self.base_url.trim_end_matches('/'))
    }

    /// The JWKS authsvc would publish: the signer's public key under [`KID`].
    pub fn jwks(&self) -> Value {
        let public = PublicKeyComponents::<Vec<u8>>::from(self.key.public());
        json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID,
            "n": b64(&public.n), "e": b64(&public.e),
        }]})
    }

    /// A user token's claims, valid for 10 minutes, with a fresh `jti`.
    pub fn claims(&self, sub: &str, roles: &[&str]) -> Value {
        let iat = now();
        let n = self.next_jti.fetch_add(1, Ordering::Relaxed);
        json!({
            "iss": self.base_url,
            "aud": self.audience(),
            "sub": sub,
            "roles": roles,
            "kind": "user",
            "name": sub,
            "jti": format!("jti-{sub}-{n}-{iat}"),
            "iat": iat,
            "exp": iat + 600,
        })
    }

    /// `claims` signed with the published key: a token the gateway accepts.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        self.sign_raw(
            &json!({"alg": "RS256", "typ": "JWT", "kid": KID}),
            claims,
            false,
        )
    }

    /// `claims` signed with another key under the published `kid`: a bad signature.
    pub fn sign_as_impostor(&self, claims: &Value) -> Result<String> {
        self.sign_raw(
            &json!({"alg": "RS256", "typ": "JWT", "kid": KID}),
            claims,
            true,
        )
    }

    /// A token for `sub` with `roles`.
    pub fn token(&self, sub: &str, roles: &[&str]) -> Result<String> {
        self.sign(&self.claims(sub, roles))
    }

    /// `alg: none` and an empty signature.
    pub fn unsigned(claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT"});
        format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    }

    fn sign_raw(&self, header: &Value, claims: &Value, impostor: bool) -> Result<String> {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key = if impostor { &self.impostor } else { &self.key };
        let mut sig = vec![0u8; key.public().modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .map_err(|e| anyhow!("signing: {e}"))?;
        Ok(format!("{input}.{}", b64(&sig)))
    }
}

#[derive(Default)]
struct State {
    jwks: String,
    revoked: Vec<String>,
    /// Answer the revocation list with a 503 (authsvc in trouble).
    failing: bool,
    /// Paths requested, oldest first.
    requests: Vec<String>,
}

/// authsvc's JWKS and revocation list on a free loopback port; stops on drop.
pub struct FakeAuthsvc {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeAuthsvc {
    pub fn start(issuer: &Issuer) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the fake authsvc")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State {
            jwks: issuer.jwks().to_string(),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let _ = serve(conn, &state);
                    }
                }
            })
        };
        Ok(FakeAuthsvc {
            port,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// `auth.authsvc_url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds `jti` to the revocation list.
    pub fn revoke(&self, jti: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.revoked.push(jti.to_owned());
        }
    }

    /// Makes the revocation list answer 503 (`true`) or the list again (`false`).
    pub fn fail_revocations(&self, failing: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.failing = failing;
        }
    }

    /// How many times `path` was requested.
    pub fn requests_of(&self, path: &str) -> usize {
        self.state
            .lock()
            .map_or(0, |s| s.requests.iter().filter(|p| *p == path).count())
    }
}

impl Drop for FakeAuthsvc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(500),
        );
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one HTTP/1.1 request and closes the connection.
fn serve(mut conn: TcpStream, state: &Mutex<State>) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&head);
    let path = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let (status, body) = {
        let mut s = state.lock().map_err(|_| anyhow!("state poisoned"))?;
        s.requests.push(path.clone());
        match path.as_str() {
            "/.well-known/jwks.json" => ("200 OK", s.jwks.clone()),
            "/internal/revocations" if s.failing => (
                "503 Service Unavailable",
                json!({"error": "unavailable"}).to_string(),
            ),
            "/internal/revocations" => ("200 OK", json!({"revoked": s.revoked}).to_string()),
            _ => ("404 Not Found", json!({"error": "not_found"}).to_string()),
        }
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()?;
    Ok(())
}

/// `auth.signing_key_file`: the signer's key (authsvc reads it; the gateway never does).
pub fn signing_key_path() -> std::path::PathBuf {
    root().join("tests/keys/signer.pem")
}
