//! Backend sessions, kept per env in shared data (every worker of the VM id sees them) and
//! opened lazily with two side calls: `initialize`, then `notifications/initialized` with the
//! session id the backend returned. The bodies, headers and the reading of answers are in
//! `policy::session`; this module only sequences the host calls.

use log::{info, warn};
use policy::Gateway;
use policy::manifest::EnvEntry;
use policy::session::{self, BackendSession};

use crate::host::{self, CallAnswer};

/// A session being opened: the side call in flight and what it is for.
#[derive(Debug)]
pub struct Opening {
    pub token: u32,
    step: Step,
}

#[derive(Debug)]
enum Step {
    Initialize,
    /// `initialize` succeeded; waiting for the backend to accept `notifications/initialized`.
    Initialized(BackendSession),
}

pub enum Progress {
    Waiting(Opening),
    Open(BackendSession),
    /// Why the env cannot be reached, for `policy::upstream::unavailable`.
    Failed(String),
}

/// The session record cached for `entry`, if any.
pub fn cached(entry: &EnvEntry) -> Option<BackendSession> {
    let (bytes, _) = host::shared::get(&session::shared_key(&entry.name));
    BackendSession::decode(&bytes?, entry)
}

/// Starts opening a session with the env's protocol version.
pub fn begin(
    gateway: &Gateway,
    entry: &EnvEntry,
    protocol_version: &str,
) -> Result<Opening, String> {
    let body = session::initialize_body(protocol_version);
    let token = send(gateway, entry, None, None, &body, None)?;
    Ok(Opening {
        token,
        step: Step::Initialize,
    })
}

/// Takes the next step after a side call answered.
pub fn advance(
    gateway: &Gateway,
    entry: &EnvEntry,
    opening: Opening,
    answer: &CallAnswer,
) -> Progress {
    match opening.step {
        Step::Initialize => match session::opened(&answer.session_answer(), entry) {
            Ok(opened) => {
                let body = session::initialized_body();
                match send(
                    gateway,
                    entry,
                    opened.session_id.as_deref(),
                    Some(&opened.protocol_version),
                    &body,
                    None,
                ) {
                    Ok(token) => Progress::Waiting(Opening {
                        token,
                        step: Step::Initialized(opened),
                    }),
                    Err(reason) => Progress::Failed(reason),
                }
            }
            Err(reason) => Progress::Failed(reason),
        },
        Step::Initialized(opened) => match session::acknowledged(&answer.session_answer()) {
            Ok(()) => Progress::Open(store_or_adopt(gateway, entry, opened)),
            Err(reason) => Progress::Failed(reason),
        },
    }
}

/// Sends one side call to the env's cluster, with its configured headers.
pub fn send(
    gateway: &Gateway,
    entry: &EnvEntry,
    session_id: Option<&str>,
    protocol_version: Option<&str>,
    body: &[u8],
    min_timeout_ms: Option<u64>,
) -> Result<u32, String> {
    let access = gateway.config().backends.get(&entry.name);
    let headers = session::side_call_headers(entry, access, session_id, protocol_version);
    let timeout = session::timeout_ms(access).max(min_timeout_ms.unwrap_or(0));
    host::dispatch(&entry.cluster, &headers, body, timeout)
}

/// Stores the session just opened, unless a stream opened one for this env first (a burst
/// of first calls opens several at once): then that one is used by everybody and ours is
/// closed, so the backend keeps one session per env instead of leaking the losers.
fn store_or_adopt(gateway: &Gateway, entry: &EnvEntry, opened: BackendSession) -> BackendSession {
    let key = session::shared_key(&entry.name);
    let (bytes, cas) = host::shared::get(&key);
    if let Some(existing) = bytes.and_then(|b| BackendSession::decode(&b, entry))
        && existing != opened
    {
        close(gateway, entry, &opened);
        return existing;
    }
    if host::shared::set(&key, &opened.encode(), cas) {
        info!(
            "env `{}`: backend session opened ({}, version {})",
            entry.name,
            opened
                .session_id
                .as_deref()
                .unwrap_or("the backend keeps none"),
            opened.protocol_version
        );
    }
    opened
}

/// Ends a backend session we will not use (best effort: a DELETE whose answer is ignored).
fn close(gateway: &Gateway, entry: &EnvEntry, unused: &BackendSession) {
    let Some(id) = unused.session_id.as_deref() else {
        return;
    };
    let access = gateway.config().backends.get(&entry.name);
    let mut headers =
        session::side_call_headers(entry, access, Some(id), Some(&unused.protocol_version));
    for (name, value) in &mut headers {
        if name == ":method" {
            *value = "DELETE".into();
        }
    }
    let timeout = session::timeout_ms(access);
    if let Err(e) = host::dispatch(&entry.cluster, &headers, b"", timeout) {
        warn!(
            "env `{}`: could not close the surplus backend session: {e}",
            entry.name
        );
    }
}

/// Drops the cached record if it is still the one `used` (a worker may already have replaced
/// it with a fresh session).
pub fn forget(entry: &EnvEntry, used: &BackendSession) {
    let key = session::shared_key(&entry.name);
    let (bytes, cas) = host::shared::get(&key);
    let current = bytes.and_then(|b| BackendSession::decode(&b, entry));
    if current.as_ref() == Some(used) && host::shared::set(&key, b"", cas) {
        warn!(
            "env `{}`: backend session {} is gone; opening a new one",
            entry.name,
            used.session_id.as_deref().unwrap_or("(none)")
        );
    }
}
