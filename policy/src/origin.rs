//! DNS-rebinding protection on the MCP endpoint: which `Host` and `Origin` values a request
//! may carry (MCP Streamable HTTP: a server MUST validate `Origin` and answer 403 to an
//! invalid one). Envoy rewrites `Host` toward each backend, so a backend's own check never
//! sees the caller's: the gateway is the only place it can be made.
//!
//! Patterns (config keys `gateway.allowed_hosts`, `gateway.allowed_origins`) are exact values
//! compared without regard to ASCII case, in which `*` stands for any run of characters
//! (nothing else is special, so `[::1]:*` means what it says): `*` alone accepts anything,
//! `localhost:*` any port of localhost (but not `localhost` without a port),
//! `https://*.example.com` any subdomain's HTTPS origin on the default port.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::reply::LocalReply;

/// The JSON-RPC code of the 403 body (the TypeScript SDK's for the same refusal).
pub const FORBIDDEN_CODE: i64 = -32000;
/// Where users set the patterns (named in every refusal).
pub const HOSTS_KEY: &str = "gateway.allowed_hosts";
pub const ORIGINS_KEY: &str = "gateway.allowed_origins";
/// Refused values are echoed up to this many characters.
const ECHO_MAX: usize = 200;

/// Which `Host` and `Origin` values the MCP endpoint accepts. Part of the plugin
/// configuration (`FilterConfig.host_policy`); a configuration without it gets
/// [`HostPolicy::default`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPolicy {
    /// Patterns for the `Host` header (`:authority`), port included when the client sent one.
    /// `["*"]`: any Host.
    #[serde(default = "any")]
    pub allowed_hosts: Vec<String>,
    /// Patterns for the `Origin` header. A request without `Origin` (a non-browser client) is
    /// always accepted; `[]` refuses every browser origin.
    #[serde(default = "loopback_origins")]
    pub allowed_origins: Vec<String>,
}

impl Default for HostPolicy {
    /// Any Host; browser origins only from loopback pages. The default of `meshmux discover`
    /// without the config keys: it cannot know the gateway's public names, and a rebinding
    /// page's `Origin` is its own public name, never a loopback one.
    fn default() -> Self {
        Self {
            allowed_hosts: any(),
            allowed_origins: loopback_origins(),
        }
    }
}

impl HostPolicy {
    /// The default of `meshmux up` (a gateway on this machine at `port`): only the loopback
    /// names with that port as Host, and loopback origins.
    pub fn loopback(port: u16) -> Self {
        Self {
            allowed_hosts: LOOPBACK_NAMES
                .iter()
                .map(|name| format!("{name}:{port}"))
                .collect(),
            allowed_origins: loopback_origins(),
        }
    }
}

const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

fn any() -> Vec<String> {
    vec!["*".to_owned()]
}

/// `http://` origins of loopback pages, on any port or none (a page on this machine is as
/// trusted as a local process: DNS rebinding needs a public name in the Origin).
pub fn loopback_origins() -> Vec<String> {
    LOOPBACK_NAMES
        .iter()
        .flat_map(|name| [format!("http://{name}"), format!("http://{name}:*")])
        .collect()
}

/// Checks a request's `Host` and `Origin` against `policy`: `None` to go on, or the 403
/// reply (a JSON-RPC error without `id` naming the refused value and the config key).
/// A missing `Host` passes only when every Host is allowed; a missing `Origin` always does.
pub fn check(policy: &HostPolicy, host: Option<&str>, origin: Option<&str>) -> Option<LocalReply> {
    if !allowed(&policy.allowed_hosts, host) {
        let shown = host.map_or_else(|| "(none)".to_owned(), |h| format!("`{}`", echo(h)));
        return Some(forbidden(&format!(
            "Forbidden: Host {shown} is not allowed on this MCP endpoint (DNS-rebinding \
             protection); to accept it, add it to `{HOSTS_KEY}` in the meshmux config"
        )));
    }
    match origin {
        Some(o) if !allowed(&policy.allowed_origins, Some(o)) => Some(forbidden(&format!(
            "Forbidden: Origin `{}` is not allowed on this MCP endpoint (DNS-rebinding \
             protection); to accept it, add it to `{ORIGINS_KEY}` in the meshmux config",
            echo(o)
        ))),
        _ => None,
    }
}

/// Whether `value` matches one of `patterns` (a missing value only matches `*`).
fn allowed(patterns: &[String], value: Option<&str>) -> bool {
    patterns.iter().any(|p| match value {
        Some(v) => matches(p.as_bytes(), v.trim().as_bytes()),
        None => p == "*",
    })
}

/// Wildcard match where `*` is any run of bytes and everything else is compared without
/// regard to ASCII case. Linear backtracking on the last `*`: no recursion, no allocation.
pub fn matches(pattern: &[u8], value: &[u8]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, v));
                p += 1;
            }
            Some(c) if value.get(v).is_some_and(|x| x.eq_ignore_ascii_case(c)) => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    p = sp + 1;
                    v = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

/// At most [`ECHO_MAX`] characters of a refused value.
fn echo(value: &str) -> String {
    value.chars().take(ECHO_MAX).collect()
}

fn forbidden(message: &str) -> LocalReply {
    let body = json!({"jsonrpc": "2.0", "error": {"code": FORBIDDEN_CODE, "message": message}});
    LocalReply {
        status: 403,
        headers: vec![("content-type", "application/json".to_owned())],
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// Why a pattern cannot be used (config validation names the key and the pattern).
pub fn invalid_host_pattern(pattern: &str) -> Option<&'static str> {
    if pattern.is_empty() {
        Some("is empty")
    } else if pattern
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        Some("contains whitespace")
    } else if pattern.contains('/') {
        Some("is a host[:port], not a URL (no scheme, no path)")
    } else {
        None
    }
}

/// Why an origin pattern cannot be used: `*`, `null` or `scheme://host[:port]` without a path.
pub fn invalid_origin_pattern(pattern: &str) -> Option<&'static str> {
    if pattern == "*" || pattern.eq_ignore_ascii_case("null") {
        return None;
    }
    if pattern
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Some("contains whitespace");
    }
    match pattern.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !rest.is_empty() => {
            if rest.contains('/') {
                Some("is an origin, scheme://host[:port], without a path or a trailing `/`")
            } else {
                None
            }
        }
        _ => Some("is not an origin such as `https://app.example.com` (or `*`, `null`)"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use serde_json::Value;

    use super::*;

    fn policy(hosts: &[&str], origins: &[&str]) -> HostPolicy {
        HostPolicy {
            allowed_hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// `None`: accepted; `Some(text)`: refused with a message containing `text`.
    fn check_case(p: &HostPolicy, host: Option<&str>, origin: Option<&str>, want: Option<&str>) {
        let got = check(p, host, origin);
        match (got, want) {
            (None, None) => {}
            (Some(reply), Some(text)) => {
                assert_eq!(reply.status, 403, "{host:?} {origin:?}");
                let body: Value = serde_json::from_slice(&reply.body).unwrap();
                assert!(body.get("id").is_none(), "a 403 body has no id: {body}");
                assert_eq!(body["jsonrpc"], "2.0");
                assert_eq!(body["error"]["code"], FORBIDDEN_CODE);
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains(text), "{host:?} {origin:?}: {message}");
                assert_eq!(
                    reply.headers,
                    vec![("content-type", "application/json".to_owned())]
                );
            }
            (got, want) => panic!("{host:?} {origin:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn default_accepts_any_host_and_refuses_foreign_browser_origins() {
        let p = HostPolicy::default();
        let cases: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            (Some("gw.example.com"), None, None),
            (Some("evil.example.com"), None, None),
            (None, None, None),
            (Some("127.0.0.1:8080"), Some("http://localhost:6274"), None),
            (Some("gw"), Some("http://127.0.0.1"), None),
            (Some("gw"), Some("http://[::1]:3000"), None),
            (Some("gw"), Some("HTTP://LOCALHOST:6274"), None),
            (
                Some("evil.example.com"),
                Some("http://evil.example.com"),
                Some("Origin `http://evil.example.com` is not allowed"),
            ),
            (
                Some("gw"),
                Some("https://localhost:6274"),
                Some("gateway.allowed_origins"),
            ),
            (Some("gw"), Some("null"), Some("Origin `null`")),
            (
                Some("gw"),
                Some("http://localhost.evil.example.com"),
                Some("localhost.evil"),
            ),
        ];
        for (host, origin, want) in cases {
            check_case(&p, *host, *origin, *want);
        }
    }

    #[test]
    fn loopback_policy_pins_the_listener_port() {
        let p = HostPolicy::loopback(8080);
        assert_eq!(
            p.allowed_hosts,
            ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"]
        );
        let cases: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            (Some("127.0.0.1:8080"), None, None),
            (Some("LocalHost:8080"), None, None),
            (Some("[::1]:8080"), Some("http://localhost:5173"), None),
            (
                Some("evil.example.com:8080"),
                Some("http://evil.example.com:8080"),
                Some("Host `evil.example.com:8080` is not allowed"),
            ),
            (Some("localhost:9090"), None, Some("gateway.allowed_hosts")),
            (Some("localhost"), None, Some("Host `localhost`")),
            (None, None, Some("Host (none)")),
            (
                Some("localhost:8080"),
                Some("http://evil.example.com"),
                Some("Origin `http://evil.example.com`"),
            ),
        ];
        for (host, origin, want) in cases {
            check_case(&p, *host, *origin, *want);
        }
    }

    #[test]
    fn configured_patterns() {
        let p = policy(
            &["gw.example.com", "*.gw.example.com", "gw.example.com:*"],
            &["https://app.example.com", "https://*.tools.example.com"],
        );
        let cases: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            (Some("gw.example.com"), None, None),
            (Some("GW.Example.COM:443"), None, None),
            (Some("eu.gw.example.com"), None, None),
            (Some("gw.example.com.evil.net"), None, Some("Host")),
            (Some("example.com"), None, Some("Host")),
            (
                Some("gw.example.com"),
                Some("https://app.example.com"),
                None,
            ),
            (
                Some("gw.example.com"),
                Some("https://a.tools.example.com"),
                None,
            ),
            (
                Some("gw.example.com"),
                Some("http://app.example.com"),
                Some("Origin `http://app.example.com`"),
            ),
            (
                Some("gw.example.com"),
                Some("https://app.example.com:8443"),
                Some("Origin"),
            ),
            // The default loopback origins are replaced, not extended, by a configured list.
            (
                Some("gw.example.com"),
                Some("http://localhost:3000"),
                Some("Origin"),
            ),
        ];
        for (host, origin, want) in cases {
            check_case(&p, *host, *origin, *want);
        }
        let none = policy(&["*"], &[]);
        check_case(&none, Some("x"), None, None);
        check_case(&none, Some("x"), Some("http://localhost"), Some("Origin"));
        let all = policy(&["*"], &["*"]);
        check_case(&all, None, Some("https://anything.example"), None);
    }

    #[test]
    fn refused_values_are_echoed_short_and_escaped() {
        let long = format!("http://{}\".example", "a".repeat(1000));
        let reply = check(&policy(&["*"], &[]), None, Some(&long)).unwrap();
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.len() < 500, "{message}");
        assert!(!message.contains("\".example"), "{message}");
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbcd", false),
            ("*.x.com", ".x.com", true),
            ("*.x.com", "a.b.x.com", true),
            ("*.x.com", "x.com", false),
            ("[::1]:*", "[::1]:80", true),
            ("[::1]:*", "1:80", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("**", "z", true),
            ("", "", true),
            ("", "a", false),
            ("abc", "ABC", true),
        ];
        for (pattern, value, want) in cases {
            assert_eq!(
                matches(pattern.as_bytes(), value.as_bytes()),
                want,
                "{pattern:?} {value:?}"
            );
        }
    }

    #[test]
    fn pattern_validation() {
        for ok in ["gw.example.com", "*", "localhost:*", "[::1]:8080"] {
            assert_eq!(invalid_host_pattern(ok), None, "{ok}");
        }
        for bad in ["", "gw example", "https://gw.example.com", "gw/mcp"] {
            assert!(invalid_host_pattern(bad).is_some(), "{bad}");
        }
        for ok in ["*", "null", "https://app.example.com", "http://localhost:*"] {
            assert_eq!(invalid_origin_pattern(ok), None, "{ok}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://",
            "a b",
        ] {
            assert!(invalid_origin_pattern(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn absent_fields_take_the_defaults() {
        let p: HostPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, HostPolicy::default());
        let p: HostPolicy = serde_json::from_str(r#"{"allowed_hosts": ["a"]}"#).unwrap();
        assert_eq!(p.allowed_origins, loopback_origins());
        assert!(serde_json::from_str::<HostPolicy>(r#"{"allowed_host": []}"#).is_err());
    }
}
