//! One HTTP exchange between a caller and the gateway, as a sans-IO state machine: the filter
//! feeds it host events (`handle_*`) and carries out the [`Action`]s it queues (`poll_action`);
//! the few things it must read or write synchronously (the caller's roles, the shared
//! backend-session records, starting a side call, a fresh call id) go through [`Host`]. The
//! filter holds no phase, retry or session state of its own, so every path here is a native
//! test (`tests.rs`), and a native filter can drive the same object.
//!
//! The life of a forwarded `tools/call`:
//! 1. head → [`Gateway::on_headers`]: pass, answer, or read the body;
//! 2. body → [`Gateway::on_body`]: answer, deny, or a [`Forward`] to one env;
//! 3. the env's backend session from shared data, or opened now with side calls
//!    (`initialize`, `notifications/initialized`) while the request waits;
//! 4. the message gets an id of the gateway's inside a backend session that keeps state
//!    (callers reuse ids; the backend would mix their answers up), the request is rewritten
//!    and routed;
//! 5. the answer: a 2xx streams back through [`rewrite::Rewrite`] when anything in it must
//!    change (the id, a progress token, server requests, `resultType`), untouched otherwise;
//!    a 404 to a cached session (the spec's "session ended") re-opens it and retries once
//!    with a side call; any other failure becomes a tool error naming the env and the cause.
//!
//! **Invariant:** what one caller sends never changes what another receives: inside a shared
//! backend session every forwarded request carries a gateway-unique id, and each answer
//! stream is only ever rewritten back to the caller whose request opened it.

mod cancel;
pub mod ids;
mod open;
mod request;
mod respond;
pub mod rewrite;

use std::collections::VecDeque;

use serde_json::Value;

use crate::gateway::{Forward, ForwardKind, Head};
use crate::health;
use crate::metrics::ErrorType;
use crate::outcome_scan::OutcomeScan;
use crate::reply::{self, LocalReply};
use crate::rpc::code;
use crate::session::{self, BackendSession};
use crate::{Caller, Gateway, Outcome};

use open::Opening;
use respond::Retry;
use rewrite::Edits;

pub use request::Request;
pub use respond::ResponseHead;

/// What the exchange reads and writes synchronously on the host.
pub trait Host {
    /// Who is calling (from the verified token's claims).
    fn caller(&self) -> Caller;
    /// The verified token's subject, or [`crate::metrics::ANONYMOUS`].
    fn principal(&self) -> String;
    /// A refusal when the caller's token has been revoked.
    fn revoked(&self) -> Option<LocalReply>;
    /// Shared data (every worker sees it): value and compare-and-swap version.
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Compare-and-swap write; `false` when another worker wrote first.
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool;
    /// Starts a side call; its answer comes back through
    /// [`Exchange::handle_side_call_answer`] with the returned token.
    fn dispatch(&mut self, call: &SideCall) -> Result<u32, String>;
    /// A request id no other forwarded request of this Envoy process carries.
    fn next_call_id(&mut self) -> String;
}

/// An HTTP call the gateway makes itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SideCall {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// A header edit.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderOp {
    Set(String, String),
    Remove(String),
}

/// Work for the filter, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answer the client now (request path, or response path before anything was sent).
    Reply(LocalReply),
    /// Replace the whole buffered request body (`size` bytes) with `body`.
    ReplaceRequestBody {
        size: usize,
        body: Vec<u8>,
    },
    EditRequestHeaders(Vec<HeaderOp>),
    /// Route to this env (filter state + route cache cleared).
    Route(String),
    /// Let a paused request go on.
    ResumeRequest,
    EditResponseHeaders(Vec<HeaderOp>),
    /// Replace the response chunk being handled (`size` bytes) with `bytes`.
    WriteResponseChunk {
        size: usize,
        bytes: Vec<u8>,
    },
    /// Write this answer over the held response: status and headers, then the whole body
    /// (`size` bytes held).
    ReplaceResponse {
        size: usize,
        reply: LocalReply,
    },
    /// Let a paused response go on.
    ResumeResponse,
}

/// The header edits that turn a held response's head into `reply`'s, for
/// [`Action::ReplaceResponse`]: status and length, no encoding, etag or session of the
/// answer it replaces, then the reply's own headers.
pub fn replacement_head(reply: &LocalReply) -> Vec<HeaderOp> {
    let mut ops = vec![
        HeaderOp::Set(":status".into(), reply.status.to_string()),
        HeaderOp::Set("content-length".into(), reply.body.len().to_string()),
        HeaderOp::Remove("content-encoding".into()),
        HeaderOp::Remove("etag".into()),
        HeaderOp::Remove("mcp-session-id".into()),
    ];
    ops.extend(
        reply
            .headers
            .iter()
            .map(|(name, value)| HeaderOp::Set((*name).to_owned(), value.clone())),
    );
    ops
}

/// What the filter returns from the current callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

/// How a counted `tools/call` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Success,
    Error(ErrorType),
}

impl CallOutcome {
    /// What an answer's outcome scan found; no verdict means the answer never completed (the
    /// upstream's fault).
    fn from_verdict(verdict: Option<crate::outcome_scan::Verdict>) -> Self {
        use crate::outcome_scan::Verdict;
        match verdict {
            Some(Verdict::Success) => CallOutcome::Success,
            Some(Verdict::ToolError) => CallOutcome::Error(ErrorType::Tool),
            Some(Verdict::JsonRpcError) => CallOutcome::Error(ErrorType::Jsonrpc),
            None => CallOutcome::Error(ErrorType::Upstream),
        }
    }
}

/// A forwarded message and what it went out with.
#[derive(Debug)]
struct Call {
    fwd: Forward,
    /// The body sent (kept for a retry).
    body: Vec<u8>,
    session: Option<BackendSession>,
    /// The session came from the shared cache (so a 404 may mean it is stale).
    cached: bool,
    /// What the answer needs changed (`None`: it streams back untouched).
    edits: Option<Edits>,
}

#[derive(Debug)]
enum State {
    /// Not an MCP request, or answered: nothing more to do.
    Idle,
    /// Buffering the request body.
    Body,
    /// The request waits for its env's backend session.
    Opening(Call, Opening),
    /// Forwarded; the response head is awaited.
    Forwarded(Call),
    /// A 2xx answer streams back (rewritten when the call needs it).
    Streaming(respond::Stream),
    /// A failed answer is held until it ends, then replaced by a tool error.
    Holding { call: Call, status: u16 },
    /// The backend lost the session: re-open it and retry the call once.
    Retrying(Retry),
}

/// One exchange (one HTTP stream of the filter).
#[derive(Debug)]
pub struct Exchange {
    state: State,
    actions: VecDeque<Action>,
    request: Request,
    /// Bytes of request body Envoy holds.
    body_size: usize,
    /// The counted call (tool, env), from the moment both are known.
    counted: Option<(String, String)>,
    outcome: Option<CallOutcome>,
    /// Bytes of answer the client got.
    bytes: u64,
    /// Reads a 2xx answer's outcome as it streams (metrics only).
    scan: Option<OutcomeScan>,
    /// Metrics are on: the outcome of a streamed answer is read as it passes.
    metrics: bool,
    /// The shared-data slot and record key noting this call for cancellation.
    inflight: Option<(String, String)>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new()
    }
}

impl Exchange {
    pub fn new() -> Self {
        Exchange {
            state: State::Idle,
            actions: VecDeque::new(),
            request: Request::default(),
            body_size: 0,
            counted: None,
            outcome: None,
            bytes: 0,
            scan: None,
            metrics: false,
            inflight: None,
        }
    }

    /// The next piece of work for the filter.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The call being counted (tool, env), once known.
    pub fn counted(&self) -> Option<(&str, &str)> {
        self.counted.as_ref().map(|(t, e)| (t.as_str(), e.as_str()))
    }

    /// How the counted call ended, as far as known when the stream ends (no verdict from a
    /// streamed answer means it never completed: the upstream's fault), and the bytes the
    /// client got.
    pub fn outcome(&self) -> (CallOutcome, u64) {
        let outcome = self.outcome.unwrap_or_else(|| {
            CallOutcome::from_verdict(self.scan.as_ref().and_then(OutcomeScan::verdict))
        });
        (outcome, self.bytes)
    }

    /// The request's head arrived.
    pub fn handle_request_head(
        &mut self,
        gw: &Gateway,
        host: &mut dyn Host,
        request: Request,
        end_of_stream: bool,
    ) -> Flow {
        self.request = request;
        if health::is_ready_probe(&self.request.method, &self.request.path) {
            // Not ready while tokens cannot be checked (no revocation list yet: a 503).
            let unready = host.revoked().filter(|r| r.status == 503);
            return self.reply(unready.unwrap_or_else(|| health::readiness(Some(gw.config()))));
        }
        let head = gw.on_headers(&self.request.view());
        // A revoked token is refused before anything else is answered on the MCP path.
        if head != Head::Pass
            && let Some(r) = host.revoked()
        {
            return self.reply(r);
        }
        match head {
            Head::Pass => Flow::Continue,
            Head::Reply(r) => self.reply(r),
            Head::ReadBody => {
                self.state = State::Body;
                if end_of_stream {
                    // No body at all: decided on an empty one.
                    return self.finish_request(gw, host, b"");
                }
                Flow::Pause
            }
        }
    }

    /// Whether the filter must read the buffered request body and pass it to
    /// [`Exchange::handle_request_body`] (only once it is complete).
    pub fn wants_request_body(&self, end_of_stream: bool) -> bool {
        end_of_stream && matches!(self.state, State::Body)
    }

    /// Envoy holds `size` bytes of request body; `body` is them when the exchange asked.
    pub fn handle_request_body(
        &mut self,
        gw: &Gateway,
        host: &mut dyn Host,
        size: usize,
        end_of_stream: bool,
        body: &[u8],
    ) -> Flow {
        if !matches!(self.state, State::Body) {
            return Flow::Continue;
        }
        self.body_size = size;
        if let Some(r) = gw.body_too_large(size) {
            return self.reply(r);
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.finish_request(gw, host, body)
    }

    /// Bytes of request body Envoy holds (for a body that ended with trailers).
    pub fn request_body_size(&self) -> usize {
        self.body_size
    }

    /// The request ended with trailers: its body is complete.
    pub fn handle_request_trailers(
        &mut self,
        gw: &Gateway,
        host: &mut dyn Host,
        body: &[u8],
    ) -> Flow {
        if !matches!(self.state, State::Body) {
            return Flow::Continue;
        }
        self.finish_request(gw, host, body)
    }

    fn finish_request(&mut self, gw: &Gateway, host: &mut dyn Host, body: &[u8]) -> Flow {
        self.metrics = gw.config().metrics.enabled;
        let caller = host.caller();
        match gw.on_body(&self.request.view(), body, &caller) {
            Outcome::Reply(r) => self.reply(r),
            Outcome::Denied { reply, tool, env } => {
                self.counted = Some((tool, env));
                self.failed(ErrorType::Denied, reply.body.len());
                self.reply(reply)
            }
            Outcome::Initialized(mut r) => {
                // The gateway keeps nothing per client session: the id only tells this client
                // apart from others (cancellation, answers to server requests).
                r.headers.push(("mcp-session-id", host.next_call_id()));
                self.reply(r)
            }
            Outcome::Cancel { request_id } => self.cancel(gw, host, &request_id),
            Outcome::LogLevel { level, reply } => {
                if let Some(caller) = self.caller_key(host) {
                    let (slot, key) = ids::log_level_slot(&caller);
                    let record = serde_json::json!({"key": key, "level": level});
                    host.shared_set(&slot, record.to_string().as_bytes(), None);
                }
                self.reply(reply)
            }
            Outcome::Forward(fwd) => {
                if fwd.kind == ForwardKind::Relay
                    && fwd.bind.as_deref() != self.caller_key(host).as_deref()
                {
                    // Not the caller that request was sent to: dropped.
                    return self.reply(reply::accepted());
                }
                if fwd.kind == ForwardKind::Call {
                    self.counted = Some((fwd.tool.clone(), fwd.env.clone()));
                }
                self.forward(gw, host, *fwd)
            }
        }
    }

    fn forward(&mut self, gw: &Gateway, host: &mut dyn Host, mut fwd: Forward) -> Flow {
        if !fwd.modern && fwd.kind != ForwardKind::Relay && fwd.log_level.is_none() {
            fwd.log_level = self.noted_log_level(host);
        }
        let Some(entry) = gw.config().manifest.env(&fwd.env) else {
            return self.fail_now(internal(&fwd.id, "the manifest lists no such env"));
        };
        let cached = open::cached(host, entry);
        if fwd.kind == ForwardKind::Relay && cached.is_none() {
            // The session that asked is gone, and the request with it.
            return self.reply(reply::accepted());
        }
        // Inside a session the backend keeps, callers' ids must not meet. Until the env's
        // session is known, assume it keeps one.
        let isolate = cached.as_ref().is_none_or(|s| s.session_id.is_some())
            && fwd.kind != ForwardKind::Relay;
        // Who is calling matters only inside a shared session (one host read saved otherwise).
        let caller = isolate.then(|| self.caller_key(host)).flatten();
        let call = prepare(host, fwd, isolate, caller.as_deref());
        if let Some(caller) = &caller {
            self.note_inflight(host, caller, &call);
        }
        self.actions.push_back(Action::ReplaceRequestBody {
            size: self.body_size,
            body: call.body.clone(),
        });
        // The body changed length; a stale Content-Length makes the upstream wait forever.
        let mut ops = vec![HeaderOp::Set(
            "content-length".into(),
            call.body.len().to_string(),
        )];
        if self.request.accept.as_deref() != Some(FORWARD_ACCEPT) {
            ops.push(HeaderOp::Set("accept".into(), FORWARD_ACCEPT.into()));
        }
        // Only an allowlist of the client's headers, and none of its query, reach a backend.
        ops.extend(
            self.request
                .strip
                .iter()
                .map(|n| HeaderOp::Remove(n.clone())),
        );
        ops.push(HeaderOp::Set(":path".into(), gw.config().mcp_path.clone()));
        session_headers(&mut ops, cached.as_ref(), &call.fwd.protocol_version);
        self.actions.push_back(Action::EditRequestHeaders(ops));
        self.actions.push_back(Action::Route(call.fwd.env.clone()));
        match cached {
            Some(s) => {
                self.state = State::Forwarded(Call {
                    session: Some(s),
                    cached: true,
                    ..call
                });
                Flow::Continue
            }
            None => match Opening::begin(gw, host, entry, &call.fwd.protocol_version) {
                Ok(opening) => {
                    self.state = State::Opening(call, opening);
                    Flow::Pause
                }
                Err(reason) => self.fail_now(crate::upstream::unavailable(&call.fwd, &reason)),
            },
        }
    }

    /// A side call this exchange started has answered (`answer.status` is `None` when none
    /// came: reset or refused).
    pub fn handle_side_call_answer(
        &mut self,
        gw: &Gateway,
        host: &mut dyn Host,
        token: u32,
        answer: &session::Answer<'_>,
    ) {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Opening(call, opening) if opening.token == token => {
                self.opening_answered(gw, host, call, opening, answer);
            }
            State::Retrying(retry) if retry.waits_for(token) => {
                self.retry_answered(gw, host, retry, answer);
            }
            // The answer to a DELETE of a surplus session, to a refused server request, or
            // to a call this exchange stopped waiting for.
            other => self.state = other,
        }
    }

    fn opening_answered(
        &mut self,
        gw: &Gateway,
        host: &mut dyn Host,
        call: Call,
        opening: Opening,
        answer: &session::Answer<'_>,
    ) {
        let Some(entry) = gw.config().manifest.env(&call.fwd.env) else {
            self.fail_now(internal(&call.fwd.id, "the manifest lists no such env"));
            return;
        };
        match opening.advance(gw, host, entry, answer) {
            open::Progress::Waiting(next) => self.state = State::Opening(call, next),
            open::Progress::Open(opened) => {
                let mut ops = Vec::new();
                session_headers(&mut ops, Some(&opened), &call.fwd.protocol_version);
                self.actions.push_back(Action::EditRequestHeaders(ops));
                self.actions.push_back(Action::ResumeRequest);
                self.state = State::Forwarded(Call {
                    session: Some(opened),
                    cached: false,
                    ..call
                });
            }
            open::Progress::Failed(reason) => {
                self.fail_now(crate::upstream::unavailable(&call.fwd, &reason));
            }
        }
    }

    /// The host could not carry out an action: the request cannot go on safely.
    pub fn handle_host_failure(&mut self, what: &str) {
        self.actions.clear();
        let id = match &self.state {
            State::Opening(c, _) | State::Forwarded(c) => c.fwd.id.clone(),
            _ => Value::Null,
        };
        self.fail_now(internal(&id, what));
    }

    /// The level a legacy caller set with `logging/setLevel`, if it set one.
    fn noted_log_level(&self, host: &dyn Host) -> Option<String> {
        let caller = self.caller_key(host)?;
        let (slot, key) = ids::log_level_slot(&caller);
        let record: Value = serde_json::from_slice(&host.shared_get(&slot).0?).ok()?;
        (record.get("key")?.as_str()? == key)
            .then(|| record.get("level")?.as_str().map(str::to_owned))
            .flatten()
    }

    fn reply(&mut self, r: LocalReply) -> Flow {
        self.state = State::Idle;
        self.actions.push_back(Action::Reply(r));
        Flow::Pause
    }

    /// Answers with a failure the gateway wrote (counted as an upstream failure).
    fn fail_now(&mut self, r: LocalReply) -> Flow {
        self.failed(ErrorType::Upstream, r.body.len());
        let r = self.for_caller(r);
        self.reply(r)
    }

    /// A reply the gateway wrote, in the form the caller's protocol version needs.
    fn for_caller(&self, r: LocalReply) -> LocalReply {
        let modern = self
            .request
            .protocol_version
            .as_deref()
            .is_some_and(crate::protocol::header_era);
        if modern {
            reply::with_result_type(r)
        } else {
            r
        }
    }

    fn failed(&mut self, error: ErrorType, size: usize) {
        if self.outcome.is_none() {
            self.outcome = Some(CallOutcome::Error(error));
            self.bytes = size as u64;
        }
    }
}

/// The `Accept` of every forwarded call: backends may answer either way.
const FORWARD_ACCEPT: &str = "application/json, text/event-stream";

/// Gives the message its id (and progress token) inside the backend session and serializes it.
fn prepare(host: &mut dyn Host, mut fwd: Forward, isolate: bool, caller: Option<&str>) -> Call {
    let mut edits = Edits {
        env: fwd.env.clone(),
        bind: caller.unwrap_or("anyone").to_owned(),
        original_id: fwd.id.clone(),
        forwarded_id: None,
        progress: None,
        result_type: fwd.modern,
        relay_server_requests: !fwd.modern,
        capabilities: fwd
            .modern
            .then(|| fwd.client_capabilities.clone().unwrap_or_default()),
        log_level: fwd.log_level.clone(),
        result: fwd.result.clone(),
    };
    if isolate {
        let id = host.next_call_id();
        fwd.message.insert("id".into(), Value::String(id.clone()));
        let token = fwd
            .message
            .get_mut("params")
            .and_then(|p| p.get_mut("_meta"))
            .and_then(|m| m.get_mut("progressToken"));
        if let Some(token) = token {
            let namespaced = ids::progress(&id);
            let original = std::mem::replace(token, Value::String(namespaced.clone()));
            edits.progress = Some((namespaced, original));
        }
        edits.forwarded_id = Some(id);
    }
    let body = fwd.body();
    let edits = (fwd.kind != ForwardKind::Relay
        && (isolate || fwd.modern || !fwd.result.is_empty() || fwd.log_level.is_some()))
    .then_some(edits);
    Call {
        fwd,
        body,
        session: None,
        cached: false,
        edits,
    }
}

/// The backend-session headers of a forwarded call: the session's version (or the env's until
/// one is open) and its id when the backend keeps sessions.
fn session_headers(ops: &mut Vec<HeaderOp>, session: Option<&BackendSession>, env_version: &str) {
    let version = session.map_or(env_version, |s| s.protocol_version.as_str());
    ops.push(HeaderOp::Set("mcp-protocol-version".into(), version.into()));
    if let Some(id) = session.and_then(|s| s.session_id.as_deref()) {
        ops.push(HeaderOp::Set("mcp-session-id".into(), id.into()));
    }
}

fn internal(id: &Value, message: &str) -> LocalReply {
    reply::error(500, id, code::INTERNAL_ERROR, message)
}

#[cfg(test)]
mod tests;
