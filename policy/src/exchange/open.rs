//! Backend sessions: one per env, kept in shared data (every worker sees it) and opened lazily
//! with two side calls: `initialize`, then `notifications/initialized` with the session id the
//! backend returned. A burst of first calls may open several at once; the first record stored
//! wins and the others are closed with `DELETE`, so the backend keeps one session per env.

use crate::Gateway;
use crate::manifest::EnvEntry;
use crate::session::{self, Answer, BackendSession};

use super::{Host, SideCall};

/// A session being opened: the side call in flight and what it is for.
#[derive(Debug)]
pub(super) struct Opening {
    pub token: u32,
    step: Step,
}

#[derive(Debug)]
enum Step {
    Initialize,
    /// `initialize` succeeded; waiting for the backend to accept `notifications/initialized`.
    Initialized(BackendSession),
}

pub(super) enum Progress {
    Waiting(Opening),
    Open(BackendSession),
    /// Why the env cannot be reached, for `upstream::unavailable`.
    Failed(String),
}

/// The session record cached for `entry`, if any.
pub(super) fn cached(host: &dyn Host, entry: &EnvEntry) -> Option<BackendSession> {
    let (bytes, _) = host.shared_get(&session::shared_key(&entry.name));
    BackendSession::decode(&bytes?, entry)
}

impl Opening {
    /// Starts opening a session with the env's protocol version.
    pub fn begin(
        gw: &Gateway,
        host: &mut dyn Host,
        entry: &EnvEntry,
        protocol_version: &str,
    ) -> Result<Opening, String> {
        let body = session::initialize_body(protocol_version);
        let token = host.dispatch(&side_call(gw, entry, None, None, body, None))?;
        Ok(Opening {
            token,
            step: Step::Initialize,
        })
    }

    /// The next step after the side call answered.
    pub fn advance(
        self,
        gw: &Gateway,
        host: &mut dyn Host,
        entry: &EnvEntry,
        answer: &Answer<'_>,
    ) -> Progress {
        match self.step {
            Step::Initialize => match session::opened(answer, entry) {
                Ok(opened) => {
                    let call = side_call(
                        gw,
                        entry,
                        opened.session_id.as_deref(),
                        Some(&opened.protocol_version),
                        session::initialized_body(),
                        None,
                    );
                    match host.dispatch(&call) {
                        Ok(token) => Progress::Waiting(Opening {
                            token,
                            step: Step::Initialized(opened),
                        }),
                        Err(reason) => Progress::Failed(reason),
                    }
                }
                Err(reason) => Progress::Failed(reason),
            },
            Step::Initialized(opened) => match session::acknowledged(answer) {
                Ok(()) => Progress::Open(store_or_adopt(gw, host, entry, opened)),
                Err(reason) => {
                    close(gw, host, entry, &opened);
                    Progress::Failed(reason)
                }
            },
        }
    }
}

/// A side call to the env's cluster with its configured headers (its credentials).
pub(super) fn side_call(
    gw: &Gateway,
    entry: &EnvEntry,
    session_id: Option<&str>,
    protocol_version: Option<&str>,
    body: Vec<u8>,
    min_timeout_ms: Option<u64>,
) -> SideCall {
    let access = gw.config().backends.get(&entry.name);
    SideCall {
        cluster: entry.cluster.clone(),
        headers: session::side_call_headers(entry, access, session_id, protocol_version),
        body,
        timeout_ms: session::timeout_ms(access).max(min_timeout_ms.unwrap_or(0)),
    }
}

/// Stores the session just opened, unless another stream stored one for this env first: then
/// that one is used by everybody and ours is closed.
fn store_or_adopt(
    gw: &Gateway,
    host: &mut dyn Host,
    entry: &EnvEntry,
    opened: BackendSession,
) -> BackendSession {
    let key = session::shared_key(&entry.name);
    let (bytes, cas) = host.shared_get(&key);
    if let Some(existing) = bytes.and_then(|b| BackendSession::decode(&b, entry))
        && existing != opened
    {
        close(gw, host, entry, &opened);
        return existing;
    }
    // A lost race here only means another worker stored a record a moment later; ours is
    // still a working session for this call.
    host.shared_set(&key, &opened.encode(), cas);
    opened
}

/// Ends a backend session the gateway will not use (best effort: the answer is ignored).
pub(super) fn close(gw: &Gateway, host: &mut dyn Host, entry: &EnvEntry, unused: &BackendSession) {
    let Some(id) = unused.session_id.as_deref() else {
        return;
    };
    let mut call = side_call(
        gw,
        entry,
        Some(id),
        Some(&unused.protocol_version),
        Vec::new(),
        None,
    );
    for (name, value) in &mut call.headers {
        if name == ":method" {
            *value = "DELETE".into();
        }
    }
    call.headers
        .retain(|(name, _)| name != "content-type" && name != "accept");
    // Nothing waits for it; a failure to start leaves the session to the backend's expiry.
    let _ = host.dispatch(&call);
}

/// Drops the cached record if it is still the one `used` (a worker may already have replaced
/// it with a fresh session). The backend said the session is gone, so nothing is closed.
pub(super) fn forget(host: &mut dyn Host, entry: &EnvEntry, used: &BackendSession) {
    let key = session::shared_key(&entry.name);
    let (bytes, cas) = host.shared_get(&key);
    let current = bytes.and_then(|b| BackendSession::decode(&b, entry));
    if current.as_ref() == Some(used) {
        host.shared_set(&key, b"", cas);
    }
}
