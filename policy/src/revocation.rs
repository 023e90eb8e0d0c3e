//! Revoked tokens: where the filter fetches authsvc's list, how the answer is read, when a
//! worker should fetch again, and what a request bearing a revoked `jti` gets. jwt_authn
//! checks signatures and expiry; only this list can stop a valid long-lived bot token early.
//! Pure: the glue passes the clock in.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::reply::LocalReply;
use crate::rpc::code;

/// The cluster meshmux's generated Envoy config names authsvc by.
pub const AUTHSVC_CLUSTER: &str = "authsvc";
/// authsvc's internal endpoint; Envoy never routes it from the public listener.
pub const REVOCATIONS_PATH: &str = "/internal/revocations";
pub const DEFAULT_REFRESH_MS: u64 = 5_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// The most a list may hold; a longer answer is refused whole (and the last list kept).
pub const MAX_ENTRIES: usize = 100_000;

/// Where and how often the filter fetches the list (`auth.revocations` in the plugin config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationSource {
    #[serde(default = "default_cluster")]
    pub cluster: String,
    #[serde(default = "default_path")]
    pub path: String,
    /// How often the list is fetched; a revoked token is refused within about this long
    /// (plus a tick and the fetch).
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for RevocationSource {
    fn default() -> Self {
        RevocationSource {
            cluster: default_cluster(),
            path: default_path(),
            refresh_ms: DEFAULT_REFRESH_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

fn default_cluster() -> String {
    AUTHSVC_CLUSTER.to_owned()
}
fn default_path() -> String {
    REVOCATIONS_PATH.to_owned()
}
fn default_refresh_ms() -> u64 {
    DEFAULT_REFRESH_MS
}
fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl RevocationSource {
    /// Whether a worker whose store says the last fetch started at `last_ms` should start one
    /// at `now_ms`. Every worker ticks; the first to claim the slot fetches for all of them.
    pub fn due(&self, now_ms: u64, last_ms: Option<u64>) -> bool {
        match last_ms {
            None => true,
            // A clock that went back (or a fetch stamped in the future) must not stall fetching.
            Some(last) if last > now_ms => true,
            Some(last) => now_ms - last >= self.refresh_ms.max(1),
        }
    }
}

/// The revoked token ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revoked(BTreeSet<String>);

impl Revoked {
    /// Reads authsvc's answer, `{"revoked": ["<jti>", …]}`. Anything else is an error that
    /// says what was wrong; the caller keeps its previous list.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let list = value
            .get("revoked")
            .and_then(Value::as_array)
            .ok_or("no `revoked` array")?;
        if list.len() > MAX_ENTRIES {
            return Err(format!(
                "{} entries, more than the {MAX_ENTRIES} the filter holds",
                list.len()
            ));
        }
        list.iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("`revoked` holds a non-string: {v}"))
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Revoked)
    }

    /// The list as stored in shared data (the same shape authsvc sends).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "revoked": self.0 })).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, jti: &str) -> bool {
        self.0.contains(jti)
    }

    /// The answer for a request whose token has id `jti` (`None`: the token carries none),
    /// or `None` to let it through.
    pub fn refusal(
        &self,
        jti: Option<&str>,
        resource_metadata: Option<&str>,
    ) -> Option<LocalReply> {
        let jti = jti?;
        self.contains(jti)
            .then(|| unauthorized(resource_metadata, "The access token has been revoked"))
    }
}

/// 401 with the MCP challenge (`WWW-Authenticate: Bearer …, resource_metadata="…"`) and a
/// JSON-RPC error body, as the 401s jwt_authn sends for missing or invalid tokens carry.
pub fn unauthorized(resource_metadata: Option<&str>, message: &str) -> LocalReply {
    let mut reply = crate::reply::error(401, &Value::Null, code::INVALID_REQUEST, message);
    let challenge = match resource_metadata {
        Some(url) => format!(
            "Bearer error=\"invalid_token\", error_description=\"{message}\", resource_metadata=\"{url}\""
        ),
        None => format!("Bearer error=\"invalid_token\", error_description=\"{message}\""),
    };
    reply.headers.push(("www-authenticate", challenge));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: Result<&[&str], &str>) {
        let got = Revoked::parse(body.as_bytes());
        match (got, expected) {
            (Ok(r), Ok(ids)) => {
                assert_eq!(r.len(), ids.len(), "{body}");
                for id in ids {
                    assert!(r.contains(id), "{body}: {id}");
                }
            }
            (Err(e), Err(part)) => assert!(e.contains(part), "{body}: {e}"),
            (got, expected) => panic!("{body}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn parses_authsvc_answers() {
        check(r#"{"revoked": []}"#, Ok(&[]));
        check(r#"{"revoked": ["a", "b", "a"]}"#, Ok(&["a", "b"]));
        check(r#"{"revoked": ["a"], "extra": 1}"#, Ok(&["a"]));
        check(r#"{"revoked": "a"}"#, Err("no `revoked` array"));
        check(r#"{}"#, Err("no `revoked` array"));
        check(r#"["a"]"#, Err("no `revoked` array"));
        check(r#"{"revoked": [1]}"#, Err("non-string"));
        check("<html>", Err("not JSON"));
        check("", Err("not JSON"));
    }

    #[test]
    fn round_trips_through_shared_data() {
        let r = Revoked::parse(br#"{"revoked": ["x", "y"]}"#).unwrap();
        assert_eq!(Revoked::parse(&r.to_bytes()).unwrap(), r);
        assert!(Revoked::default().is_empty());
    }

    #[test]
    fn refuses_only_listed_ids() {
        let r = Revoked::parse(br#"{"revoked": ["gone"]}"#).unwrap();
        assert_eq!(r.refusal(Some("kept"), None), None);
        assert_eq!(r.refusal(None, None), None);
        let reply = r
            .refusal(
                Some("gone"),
                Some("https://gw/.well-known/oauth-protected-resource/mcp"),
            )
            .unwrap();
        assert_eq!(reply.status, 401);
        let challenge = &reply
            .headers
            .iter()
            .find(|(k, _)| *k == "www-authenticate")
            .unwrap()
            .1;
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(
                r#"resource_metadata="https://gw/.well-known/oauth-protected-resource/mcp""#
            ),
            "{challenge}"
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["error"]["code"], code::INVALID_REQUEST);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("revoked")
        );
    }

    #[test]
    fn fetches_are_due_once_per_period() {
        let src = RevocationSource {
            refresh_ms: 5_000,
            ..Default::default()
        };
        assert!(src.due(0, None));
        assert!(!src.due(1_000, Some(0)));
        assert!(!src.due(4_999, Some(0)));
        assert!(src.due(5_000, Some(0)));
        assert!(src.due(1_000, Some(9_000)), "a clock that went back");
        let zero = RevocationSource {
            refresh_ms: 0,
            ..Default::default()
        };
        assert!(!zero.due(10, Some(10)));
        assert!(zero.due(11, Some(10)));
    }

    #[test]
    fn old_plugin_configs_get_the_defaults() {
        let src: RevocationSource = serde_json::from_str("{}").unwrap();
        assert_eq!(src, RevocationSource::default());
        assert_eq!(src.cluster, "authsvc");
        assert_eq!(src.path, "/internal/revocations");
    }
}
