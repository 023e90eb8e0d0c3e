//! authsvc's list of revoked token ids, kept in shared data for every worker. Each worker's
//! root context ticks; the first to claim a refresh period (compare-and-swap on a timestamp)
//! fetches the list with a side call and stores it; requests read it. Until a first list
//! arrives the MCP path answers 503 (a new Envoy must not let a revoked token through), and
//! the root contexts fetch every tick until then, the first fetch right from `on_configure`.
//! A failed fetch later is logged and the last list kept; with `max_age_ms` a list older
//! than that makes the MCP path answer 503 again (fail closed).

use std::cell::RefCell;
use std::time::UNIX_EPOCH;

use log::{info, warn};
use policy::reply::LocalReply;
use policy::revocation::{RevocationSource, Revoked};
use policy::{FilterConfig, Gateway};
use proxy_wasm::hostcalls;

use crate::host::{self, CallAnswer, shared};

/// The list in its compact form ([`Revoked::to_bytes`]; older filters stored JSON under
/// `meshmux.revocations`).
const LIST_KEY: &str = "meshmux.revocations.v2";
/// When the last list arrived, milliseconds since the epoch, u64 little-endian.
const UPDATED_KEY: &str = "meshmux.revocations.updated_at";
/// When the last fetch started, milliseconds since the epoch, u64 little-endian.
const STAMP_KEY: &str = "meshmux.revocations.fetched_at";

thread_local! {
    /// This worker's parsed copy of the list and the shared-data version it was parsed from,
    /// so a request parses the list only after it changed.
    static PARSED: RefCell<Option<(u32, Revoked)>> = const { RefCell::new(None) };
}

/// How often the root contexts tick: often enough that a period is not overshot by much.
pub fn tick_period_ms(source: &RevocationSource) -> u64 {
    source.refresh_ms.clamp(100, 1_000)
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
}

/// When the last list arrived (`None`: no list yet in this Envoy).
fn updated_at() -> Option<u64> {
    shared::get(UPDATED_KEY).0.as_deref().and_then(read_u64)
}

fn now_ms() -> Option<u64> {
    let now = hostcalls::get_current_time().ok()?;
    let since = now.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

/// On a tick: starts a fetch if this worker claims the period; returns the side call's token.
pub fn tick(source: &RevocationSource) -> Option<u32> {
    let now = now_ms()?;
    let (stamp, cas) = shared::get(STAMP_KEY);
    let last = stamp.as_deref().and_then(read_u64);
    let have_list = updated_at().is_some();
    if !source.due(now, last, have_list) || !shared::set(STAMP_KEY, &now.to_le_bytes(), cas) {
        return None;
    }
    let headers = [
        (":method".to_owned(), "GET".to_owned()),
        (":path".to_owned(), source.path.clone()),
        (":authority".to_owned(), source.cluster.clone()),
        ("accept".to_owned(), "application/json".to_owned()),
    ];
    match host::dispatch(&source.cluster, &headers, b"", source.timeout_ms) {
        Ok(token) => Some(token),
        Err(e) => {
            warn!("revocation list: {e}; keeping the last list");
            None
        }
    }
}

/// The fetch answered: store the new list, or log why not and keep the last one.
pub fn answered(source: &RevocationSource, answer: &CallAnswer) {
    let list = match answer.status {
        Some(200) => Revoked::parse(&answer.body),
        Some(status) => Err(format!("HTTP {status}")),
        None => Err("no answer (connection reset)".to_owned()),
    };
    match list {
        Ok(list) => {
            let bytes = list.to_bytes();
            let previous = shared::get(LIST_KEY).0;
            if previous.as_deref() != Some(bytes.as_slice()) {
                info!("revocation list: {} revoked token ids", list.len());
                shared::set(LIST_KEY, &bytes, None);
            }
            // The list first, then the time that says there is one.
            if let Some(now) = now_ms() {
                shared::set(UPDATED_KEY, &now.to_le_bytes(), None);
            }
        }
        Err(e) => warn!(
            "revocation list from cluster `{}` {}: {e}; keeping the last list",
            source.cluster, source.path
        ),
    }
}

/// The answer for a request on the MCP path whose token was revoked, or that cannot be
/// checked (503: no list yet, or one older than `max_age_ms`); `None` lets it through (no
/// auth, no `jti`, not revoked).
pub fn refusal(gateway: &Gateway) -> Option<LocalReply> {
    let auth = gateway.config().auth.as_ref()?;
    // No clock: nothing to compare with, so only "no list yet" can be told.
    let now = now_ms().unwrap_or(0);
    if let Some(reply) = auth.revocations.gate(now, updated_at()) {
        return Some(reply);
    }
    let jti = claim(gateway.config(), "jti")?;
    let (bytes, cas) = shared::get(LIST_KEY);
    let (bytes, cas) = (bytes?, cas.unwrap_or_default());
    PARSED
        .try_with(|cell| {
            let mut parsed = cell.try_borrow_mut().ok()?;
            if parsed.as_ref().is_none_or(|(version, _)| *version != cas) {
                *parsed = Some((cas, Revoked::from_bytes(&bytes)?));
            }
            let (_, list) = parsed.as_ref()?;
            list.refusal(Some(&jti), auth.resource_metadata.as_deref())
        })
        .ok()
        .flatten()
}

/// A string claim from jwt_authn's payload in the dynamic metadata.
fn claim(config: &FilterConfig, name: &str) -> Option<String> {
    let auth = config.auth.as_ref()?;
    let mut path = vec!["metadata", "filter_metadata"];
    path.extend(auth.claims_path.iter().map(String::as_str));
    path.push(name);
    let bytes = host::property(path)?;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}
