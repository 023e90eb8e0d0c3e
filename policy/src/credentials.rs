//! Backend credentials the gateway holds for a backend (`credentials` in the config): their
//! shape, their validation, and the pure parts of keeping them fresh (when a cached token is
//! due for renewal, a JWT's `exp`). Running a helper command or asking a token endpoint is IO
//! and belongs to discovery; this module never reads the clock (`now` is passed in, in Unix
//! seconds) and never formats a secret into an error or a `Debug` line.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

/// How long a token from a `command` helper is reused when it says nothing about its
/// lifetime (no `ttl_seconds`, not a JWT with `exp`).
pub const DEFAULT_COMMAND_TTL_SECONDS: u64 = 300;
/// How long a helper command may run.
pub const DEFAULT_COMMAND_TIMEOUT_SECONDS: u64 = 10;
/// A token with an expiry is renewed this long before it, at most (half its lifetime for
/// tokens that live less than twice this).
pub const RENEW_BEFORE_EXPIRY_SECONDS: u64 = 60;

/// One backend's credential: what the gateway sends it, as one header.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Credentials {
    /// Nothing added (the default; stated to make it explicit).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// `<name>: <value>`, for APIs that take a key in their own header.
    Header { name: String, value: String },
    /// A credential helper: its standard output (trimmed) is a bearer token.
    Command {
        /// Program and arguments (no shell).
        command: Vec<String>,
        /// Reuse the token this long (default 300 s; a JWT's `exp` may end it sooner).
        #[serde(default)]
        ttl_seconds: Option<u64>,
        /// How long the helper may run (default 10 s).
        #[serde(default)]
        timeout_seconds: Option<u64>,
    },
    /// An OAuth 2.0 client-credentials grant (RFC 6749 §4.4) at `token_url`; the access
    /// token is sent as a bearer token and renewed before it expires.
    OauthClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        #[serde(default)]
        scopes: Vec<String>,
    },
}

/// `credentials` as a config key: its errors say so (the env's own errors are reported
/// without a path).
pub fn deserialize<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Credentials>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Credentials::deserialize(value)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("credentials: {e}")))
}

/// Never prints a secret: only the kind and the parts that are not secret.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("Credentials::None"),
            Credentials::Bearer { .. } => f.write_str("Credentials::Bearer { token: <redacted> }"),
            Credentials::Header { name, .. } => {
                write!(
                    f,
                    "Credentials::Header {{ name: {name:?}, value: <redacted> }}"
                )
            }
            Credentials::Command {
                command,
                ttl_seconds,
                timeout_seconds,
            } => f
                .debug_struct("Credentials::Command")
                .field("command", command)
                .field("ttl_seconds", ttl_seconds)
                .field("timeout_seconds", timeout_seconds)
                .finish(),
            Credentials::OauthClientCredentials {
                token_url,
                client_id,
                scopes,
                ..
            } => f
                .debug_struct("Credentials::OauthClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .field("scopes", scopes)
                .finish(),
        }
    }
}

/// Whether the value of a resolved header may be renewed while the gateway runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// `none`, `bearer`, `header`: the value comes from the config file.
    Static,
    /// `command`, `oauth_client_credentials`: fetched, cached, renewed.
    Fetched,
}

impl Credentials {
    /// The header this credential sets, if any.
    pub fn header_name(&self) -> Option<&str> {
        match self {
            Credentials::None => None,
            Credentials::Header { name, .. } => Some(name),
            Credentials::Bearer { .. }
            | Credentials::Command { .. }
            | Credentials::OauthClientCredentials { .. } => Some("Authorization"),
        }
    }

    pub fn renewal(&self) -> Renewal {
        match self {
            Credentials::Command { .. } | Credentials::OauthClientCredentials { .. } => {
                Renewal::Fetched
            }
            _ => Renewal::Static,
        }
    }

    /// The header of a static credential (`None` for `none` and for fetched ones).
    pub fn static_header(&self) -> Option<(String, String)> {
        match self {
            Credentials::Bearer { token } => {
                Some(("Authorization".to_owned(), format!("Bearer {token}")))
            }
            Credentials::Header { name, value } => Some((name.clone(), value.clone())),
            _ => None,
        }
    }

    /// Checks the credential against the backend's `headers`; the message names the key at
    /// fault (relative to the credential) and never the secret.
    pub fn validate(&self, headers: &BTreeMap<String, String>) -> Result<(), String> {
        match self {
            Credentials::None => {}
            Credentials::Bearer { token } => check_secret("token", token)?,
            Credentials::Header { name, value } => {
                if !valid_header_name(name) {
                    return Err(format!("name: {name:?} is not a valid HTTP header name"));
                }
                if name.eq_ignore_ascii_case("host") {
                    return Err("name: `Host` names the backend, not a credential".into());
                }
                check_secret("value", value)?;
            }
            Credentials::Command {
                command,
                ttl_seconds,
                timeout_seconds,
            } => {
                match command.first() {
                    Some(program) if !program.trim().is_empty() => {}
                    _ => return Err("command: must name a program (a non-empty list)".into()),
                }
                if *ttl_seconds == Some(0) {
                    return Err("ttl_seconds: must be at least 1".into());
                }
                if *timeout_seconds == Some(0) {
                    return Err("timeout_seconds: must be at least 1".into());
                }
            }
            Credentials::OauthClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
            } => {
                if !(token_url.starts_with("http://") || token_url.starts_with("https://")) {
                    return Err(format!("token_url: {token_url:?} is not an http(s) URL"));
                }
                if client_id.trim().is_empty() {
                    return Err("client_id: must not be empty".into());
                }
                check_secret("client_secret", client_secret)?;
                if let Some(bad) = scopes
                    .iter()
                    .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace()))
                {
                    return Err(format!(
                        "scopes: {bad:?} is not a scope (one word per entry)"
                    ));
                }
            }
        }
        if let Some(name) = self.header_name()
            && let Some(clash) = headers.keys().find(|k| k.eq_ignore_ascii_case(name))
        {
            return Err(format!(
                "sets `{name}`, which `headers` also sets (as `{clash}`); keep one of them"
            ));
        }
        Ok(())
    }
}

/// A secret must be usable as (part of) a header value: not empty, no control characters.
/// The message names the key only.
fn check_secret(key: &str, secret: &str) -> Result<(), String> {
    if secret.trim().is_empty() {
        return Err(format!("{key}: must not be empty"));
    }
    check_header_value(secret).map_err(|why| format!("{key}: {why}"))
}

/// Whether `value` can be sent as an HTTP header value (visible ASCII, spaces and tabs
/// inside); the reason never quotes the value.
pub fn check_header_value(value: &str) -> Result<(), String> {
    if value
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f || !b.is_ascii())
    {
        return Err("holds a control or non-ASCII character".into());
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err("starts or ends with white space".into());
    }
    Ok(())
}

/// RFC 9110 token characters.
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
}

/// The `exp` of a JWT-shaped token (its payload decoded, not verified: the backend verifies
/// it; the gateway only wants to know when to fetch a new one). `None` for anything else.
pub fn jwt_exp(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_u64().or_else(|| {
        exp.as_f64()
            .filter(|e| e.is_finite() && *e >= 0.0)
            // Truncation is intended: whole seconds.
            .map(|e| e as u64)
    })
}

/// When a token fetched at `now` is due for renewal: `ttl` seconds on (if given), or before
/// its expiry (`expires_at`, from a JWT's `exp` or a token response's `expires_in`), renewed
/// [`RENEW_BEFORE_EXPIRY_SECONDS`] early (half its lifetime when that is shorter), whichever
/// comes first. Neither given: [`DEFAULT_COMMAND_TTL_SECONDS`].
pub fn renew_at(now: u64, ttl: Option<u64>, expires_at: Option<u64>) -> u64 {
    let by_ttl = ttl.map(|t| now.saturating_add(t));
    let by_expiry = expires_at.map(|exp| {
        let lifetime = exp.saturating_sub(now);
        exp.saturating_sub(RENEW_BEFORE_EXPIRY_SECONDS.min(lifetime / 2))
    });
    match (by_ttl, by_expiry) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => now.saturating_add(DEFAULT_COMMAND_TTL_SECONDS),
    }
}

/// A fetched header value and when to fetch the next one.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    pub header: (String, String),
    pub renew_at: u64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Lease {{ header: {:?}: <redacted>, renew_at: {} }}",
            self.header.0, self.renew_at
        )
    }
}

/// The fetched credentials of every backend, keyed by backend name. An entry is reused while
/// the backend's credential config is unchanged and its lease has not come due.
#[derive(Debug, Default, Clone)]
pub struct LeaseCache {
    entries: BTreeMap<String, (Credentials, Lease)>,
}

impl LeaseCache {
    /// The cached header of `backend`, if it was fetched for this same `credentials` and is
    /// not due at `now`.
    pub fn fresh(&self, backend: &str, credentials: &Credentials, now: u64) -> Option<&Lease> {
        self.entries
            .get(backend)
            .filter(|(c, lease)| c == credentials && now < lease.renew_at)
            .map(|(_, lease)| lease)
    }

    /// The last header fetched for `backend` with these `credentials`, due or not: what to
    /// keep sending while a renewal fails.
    pub fn last(&self, backend: &str, credentials: &Credentials) -> Option<&Lease> {
        self.entries
            .get(backend)
            .filter(|(c, _)| c == credentials)
            .map(|(_, lease)| lease)
    }

    pub fn put(&mut self, backend: &str, credentials: &Credentials, lease: Lease) {
        self.entries
            .insert(backend.to_owned(), (credentials.clone(), lease));
    }

    /// Makes `backend`'s lease due now (the backend refused it), keeping it as the last one.
    pub fn expire(&mut self, backend: &str) {
        if let Some((_, lease)) = self.entries.get_mut(backend) {
            lease.renew_at = 0;
        }
    }

    /// Forgets backends no longer in `keep`.
    pub fn retain(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.entries.retain(|name, _| keep(name));
    }
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
