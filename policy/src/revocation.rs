//! Revoked tokens: where the filter fetches authsvc's list, how the answer is read, when a
//! worker should fetch again, and what a request bearing a revoked `jti` gets. jwt_authn
//! checks signatures and expiry; only this list can stop a valid long-lived bot token early.
//! Pure: the glue passes the clock in.

use std::borrow::Cow;

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
/// The most a list may hold (8 bytes each in shared data, 16 MB at most); a longer answer is
/// refused whole (and the last list kept). authsvc lists only tokens not yet expired.
pub const MAX_ENTRIES: usize = 2_000_000;
/// What the list in shared data starts with: the compact form, sorted 64-bit hashes.
const COMPACT_MAGIC: &[u8; 8] = b"mmxrev1\n";

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
    /// Fail closed: refuse every request (503) while the last list fetched is older than
    /// this (`auth.revocation_max_age_seconds`). Without it a stale list is kept and used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
}

impl Default for RevocationSource {
    fn default() -> Self {
        RevocationSource {
            cluster: default_cluster(),
            path: default_path(),
            refresh_ms: DEFAULT_REFRESH_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_age_ms: None,
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
    /// `have_list`: no list was fetched yet, so fetch on every tick (at most once a second
    /// per worker) until one arrives: the filter serves nothing until then.
    pub fn due(&self, now_ms: u64, last_ms: Option<u64>, have_list: bool) -> bool {
        let period = if have_list {
            self.refresh_ms.max(1)
        } else {
            self.refresh_ms.clamp(1, 1_000)
        };
        match last_ms {
            None => true,
            // A clock that went back (or a fetch stamped in the future) must not stall fetching.
            Some(last) if last > now_ms => true,
            Some(last) => now_ms - last >= period,
        }
    }

    /// Whether requests may be served given when the last list arrived (`None`: never):
    /// `None` lets them through, else the 503 they get. No list yet is always 503 (a
    /// revoked token must not work in a fresh worker); an old one only with `max_age_ms`.
    pub fn gate(&self, now_ms: u64, updated_ms: Option<u64>) -> Option<LocalReply> {
        let Some(updated) = updated_ms else {
            return Some(unavailable(
                "The gateway is starting: it has not fetched the token revocation list from \
                 authsvc yet. Retry shortly."
                    .to_owned(),
            ));
        };
        let max = self.max_age_ms?;
        let age = now_ms.saturating_sub(updated);
        (age > max).then(|| {
            unavailable(format!(
                "The gateway cannot check tokens: its revocation list is {} s old, older than \
                 auth.revocation_max_age_seconds ({} s), because authsvc does not answer.",
                age / 1_000,
                max / 1_000
            ))
        })
    }
}

fn unavailable(message: String) -> LocalReply {
    let mut reply = crate::reply::error(503, &Value::Null, code::INTERNAL_ERROR, &message);
    reply.headers.push(("retry-after", "1".to_owned()));
    reply
}

/// The revoked token ids, compact: each a 64-bit FNV-1a hash of the id, sorted. A hash
/// collision would refuse a token that was not revoked (about n / 2^64 per request, and
/// token ids are authsvc's random values, not the caller's); no revoked id is ever missed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revoked(Vec<u64>);

/// authsvc's answer; unknown keys are ignored, ids are borrowed from the body.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    revoked: Vec<Cow<'a, str>>,
}

fn hash(jti: &str) -> u64 {
    jti.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Revoked {
    /// Reads authsvc's answer, `{"revoked": ["<jti>", …]}`. Anything else is an error that
    /// says what was wrong; the caller keeps its previous list.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let answer: Answer<'_> = serde_json::from_slice(body)
            .map_err(|e| format!(r#"not authsvc's {{"revoked": ["<jti>", …]}}: {e}"#))?;
        if answer.revoked.len() > MAX_ENTRIES {
            return Err(format!(
                "{} entries, more than the {MAX_ENTRIES} the filter holds",
                answer.revoked.len()
            ));
        }
        let mut ids: Vec<u64> = answer.revoked.iter().map(|j| hash(j)).collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(Revoked(ids))
    }

    /// The list as stored in shared data: a magic line, then 8 bytes (little-endian) per id.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(COMPACT_MAGIC.len() + self.0.len() * 8);
        out.extend_from_slice(COMPACT_MAGIC);
        for h in &self.0 {
            out.extend_from_slice(&h.to_le_bytes());
        }
        out
    }

    /// Reads what [`Revoked::to_bytes`] wrote (`None`: anything else).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(COMPACT_MAGIC.as_slice())?;
        if rest.len() % 8 != 0 {
            return None;
        }
        let ids: Vec<u64> = rest
            .chunks_exact(8)
            .filter_map(|c| <[u8; 8]>::try_from(c).ok().map(u64::from_le_bytes))
            .collect();
        ids.is_sorted().then_some(Revoked(ids))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, jti: &str) -> bool {
        self.0.binary_search(&hash(jti)).is_ok()
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
        check(r#"{"revoked": ["a\"b"]}"#, Ok(&["a\"b"]));
        check(r#"{"revoked": "a"}"#, Err("not authsvc's"));
        check(r#"{}"#, Err("missing field `revoked`"));
        check(r#"["a"]"#, Err("not authsvc's"));
        check(r#"{"revoked": [1]}"#, Err("invalid type"));
        check("<html>", Err("not authsvc's"));
        check("", Err("not authsvc's"));
    }

    #[test]
    fn round_trips_through_shared_data() {
        let r = Revoked::parse(br#"{"revoked": ["x", "y"]}"#).unwrap();
        assert_eq!(Revoked::from_bytes(&r.to_bytes()).unwrap(), r);
        assert_eq!(r.to_bytes().len(), 8 + 16);
        assert!(Revoked::default().is_empty());
        // The JSON form an older filter stored is not the compact form.
        assert_eq!(Revoked::from_bytes(br#"{"revoked": ["x"]}"#), None);
        assert_eq!(Revoked::from_bytes(b"mmxrev1\n1234567"), None);
    }

    #[test]
    fn a_list_far_over_100k_entries_is_held() {
        let ids: Vec<String> = (0..250_000).map(|i| format!("jti-{i:08}")).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "revoked": ids })).unwrap();
        let r = Revoked::parse(&body).unwrap();
        assert_eq!(r.len(), 250_000);
        let r = Revoked::from_bytes(&r.to_bytes()).unwrap();
        assert!(r.contains("jti-00000000") && r.contains("jti-00249999"));
        assert!(!r.contains("jti-00250000"));
    }

    #[test]
    fn no_list_or_a_list_too_old_is_503() {
        let src = RevocationSource::default();
        let starting = src.gate(1_000, None).unwrap();
        assert_eq!(starting.status, 503);
        assert!(String::from_utf8_lossy(&starting.body).contains("revocation list"));
        assert_eq!(
            src.gate(1_000_000, Some(0)),
            None,
            "no max age: a stale list is used"
        );
        let strict = RevocationSource {
            max_age_ms: Some(60_000),
            ..Default::default()
        };
        assert_eq!(strict.gate(60_000, Some(0)), None);
        let old = strict.gate(61_000, Some(0)).unwrap();
        assert_eq!(old.status, 503);
        assert!(String::from_utf8_lossy(&old.body).contains("61 s old"));
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
        assert!(src.due(0, None, true));
        assert!(!src.due(1_000, Some(0), true));
        assert!(!src.due(4_999, Some(0), true));
        assert!(src.due(5_000, Some(0), true));
        assert!(src.due(1_000, Some(9_000), true), "a clock that went back");
        // Without a list, every second.
        assert!(!src.due(999, Some(0), false));
        assert!(src.due(1_000, Some(0), false));
        let zero = RevocationSource {
            refresh_ms: 0,
            ..Default::default()
        };
        assert!(!zero.due(10, Some(10), true));
        assert!(zero.due(11, Some(10), true));
    }

    #[test]
    fn old_plugin_configs_get_the_defaults() {
        let src: RevocationSource = serde_json::from_str("{}").unwrap();
        assert_eq!(src, RevocationSource::default());
        assert_eq!(src.cluster, "authsvc");
        assert_eq!(src.path, "/internal/revocations");
    }
}
