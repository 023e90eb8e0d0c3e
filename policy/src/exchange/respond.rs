//! The answer to a forwarded message. A 2xx streams back, rewritten chunk by chunk when the
//! call needs it (`rewrite.rs`); its backend `Mcp-Session-Id` is removed (the client never
//! sees backend sessions). A 404 to a cached session means the backend ended it: the session
//! is re-opened and the call retried once with a side call, whose answer is written over the
//! held response. Any other failure is held and replaced by a tool error naming the env and
//! the cause, so the model reads it instead of the client seeing a transport error.

use serde_json::json;

use crate::Gateway;
use crate::gateway::ForwardKind;
use crate::metrics::ErrorType;
use crate::outcome_scan::OutcomeScan;
use crate::reply::{self, LocalReply};
use crate::rpc::code;
use crate::session::{Answer, BackendSession};
use crate::upstream;

use super::open::{self, Opening, Progress};
use super::rewrite::{Refused, Rewrite};
use super::{Action, Call, CallOutcome, Exchange, Flow, HeaderOp, Host, State};

/// A retried call's own timeout floor: the side-call timeout is sized for `initialize`, while
/// this one runs a tool.
const RETRY_MIN_TIMEOUT_MS: u64 = 60_000;
/// Bytes of a failure body quoted to the model.
const MAX_FAILURE_BODY: usize = 4096;

/// What the filter read of the response head.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseHead<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    /// The backend sent an `Mcp-Session-Id` (removed before the client sees it).
    pub session_id: bool,
    pub end_of_stream: bool,
}

#[derive(Debug)]
pub(super) struct Retry {
    call: Call,
    stage: Stage,
    body: Held,
    /// The refused answer: its status and the start of its body (for the failure text).
    status: u16,
    refusal: Vec<u8>,
}

#[derive(Debug)]
enum Stage {
    /// A 400 to a cached session: a `ping` in that session tells a lost session (the
    /// TypeScript SDK answers an unknown one with 400) from a body the backend refused.
    Probing {
        token: u32,
    },
    /// The session is alive: the 400 was about this call, and is the caller's to read.
    Refused,
    Opening(Opening),
    Calling {
        token: u32,
    },
    /// The reply to hand the client; `passed` when it is the backend's own 2xx answer.
    Answered {
        reply: LocalReply,
        passed: bool,
    },
}

/// How much of the refused response's body Envoy holds.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// The response ended with its headers.
    None,
    Partial,
    /// The whole body is held: this many bytes.
    Complete(usize),
}

impl Retry {
    /// Whether the held answer may still be what the caller gets (the 400 was about the call).
    fn may_be_refused(&self) -> bool {
        matches!(self.stage, Stage::Probing { .. } | Stage::Refused)
    }

    pub fn waits_for(&self, token: u32) -> bool {
        match &self.stage {
            Stage::Opening(o) => o.token == token,
            Stage::Probing { token: t } | Stage::Calling { token: t } => *t == token,
            Stage::Answered { .. } | Stage::Refused => false,
        }
    }
}

/// A 2xx answer on its way back.
#[derive(Debug)]
pub(super) struct Stream {
    /// A 2026-07-28 caller's SSE answer is held until its first event: a request for a
    /// capability the caller did not declare must become a 400 (-32021) before anything is
    /// sent.
    peek: bool,
    /// The caller's request id.
    id: serde_json::Value,
    rewrite: Option<Rewrite>,
    env: String,
    session: Option<BackendSession>,
}

impl Exchange {
    /// Whether the filter must read the response head (status, content type, session id).
    pub fn wants_response_head(&self) -> bool {
        matches!(self.state, State::Forwarded(_))
    }

    /// Whether the response's content type matters (only for an answer that is rewritten).
    pub fn wants_response_content_type(&self) -> bool {
        matches!(&self.state, State::Forwarded(call) if call.edits.is_some())
    }

    pub fn handle_response_head(
        &mut self,
        gw: &Gateway,
        host: &mut dyn Host,
        head: ResponseHead<'_>,
    ) -> Flow {
        let call = match std::mem::replace(&mut self.state, State::Idle) {
            State::Forwarded(call) => call,
            other => {
                self.state = other;
                return Flow::Continue;
            }
        };
        match upstream::classify(head.status, call.cached) {
            upstream::Verdict::Pass => {
                let mut ops = Vec::new();
                if head.session_id {
                    ops.push(HeaderOp::Remove("mcp-session-id".into()));
                }
                let rewrite = match (&call.edits, head.end_of_stream) {
                    (Some(edits), false) if upstream::is_mcp_content_type(head.content_type) => {
                        // The body changes length as it is rewritten.
                        ops.push(HeaderOp::Remove("content-length".into()));
                        Some(Rewrite::new(edits.clone(), is_sse(head.content_type)))
                    }
                    _ => None,
                };
                if !ops.is_empty() {
                    self.actions.push_back(Action::EditResponseHeaders(ops));
                }
                if self.metrics && call.fwd.kind == ForwardKind::Call {
                    self.scan = Some(OutcomeScan::sniffing());
                }
                let peek = call.fwd.modern && rewrite.is_some() && is_sse(head.content_type);
                if !head.end_of_stream {
                    self.state = State::Streaming(Stream {
                        peek,
                        id: call.fwd.id.clone(),
                        rewrite,
                        env: call.fwd.env,
                        session: call.session,
                    });
                }
                if peek && !head.end_of_stream {
                    Flow::Pause
                } else {
                    Flow::Continue
                }
            }
            upstream::Verdict::Rewrite if head.end_of_stream => {
                let r = upstream::failure(&call.fwd, Some(head.status), b"");
                self.fail_now(r)
            }
            upstream::Verdict::Rewrite => {
                self.state = State::Holding {
                    call,
                    status: head.status,
                };
                Flow::Pause
            }
            verdict @ (upstream::Verdict::Reopen | upstream::Verdict::Probe) => {
                let stage = if verdict == upstream::Verdict::Probe {
                    probe(gw, host, &call)
                } else {
                    reopen(gw, host, &call)
                };
                let body = if head.end_of_stream {
                    Held::None
                } else {
                    Held::Partial
                };
                self.deliver_if_ready(Retry {
                    call,
                    stage,
                    body,
                    status: head.status,
                    refusal: Vec::new(),
                });
                Flow::Pause
            }
        }
    }

    /// How many bytes of the `size` Envoy holds the filter must read and pass to
    /// [`Exchange::handle_response_chunk`] (0: none).
    pub fn response_bytes_wanted(&self, size: usize, end_of_stream: bool) -> usize {
        match &self.state {
            State::Streaming(s) => {
                let scanning = self.scan.as_ref().is_some_and(|s| s.verdict().is_none())
                    && self.outcome.is_none();
                if s.rewrite.is_some() || scanning {
                    size
                } else {
                    0
                }
            }
            State::Holding { .. } if end_of_stream => size.min(MAX_FAILURE_BODY),
            State::Retrying(r) if end_of_stream && r.may_be_refused() => size.min(MAX_FAILURE_BODY),
            _ => 0,
        }
    }

    /// A chunk of the response: Envoy holds `size` bytes, `chunk` is what the filter read.
    pub fn handle_response_chunk(
        &mut self,
        gw: &Gateway,
        host: &mut dyn Host,
        size: usize,
        end_of_stream: bool,
        chunk: &[u8],
    ) -> Flow {
        match &mut self.state {
            State::Streaming(stream) => {
                let first = stream.peek;
                if stream.peek {
                    let complete = chunk.windows(2).any(|w| w == b"\n\n")
                        || chunk.windows(4).any(|w| w == b"\r\n\r\n");
                    if !complete && !end_of_stream {
                        // Envoy keeps buffering; the next callback sees all of it.
                        return Flow::Pause;
                    }
                    stream.peek = false;
                }
                let mut refused = Vec::new();
                let written = match &mut stream.rewrite {
                    Some(rewrite) => {
                        let (out, r) = rewrite.feed(chunk, end_of_stream);
                        refused = r;
                        let len = out.len();
                        if let Some(scan) = &mut self.scan {
                            scan.feed(&out);
                        }
                        self.actions
                            .push_back(Action::WriteResponseChunk { size, bytes: out });
                        len
                    }
                    None => {
                        if let Some(scan) = &mut self.scan
                            && !chunk.is_empty()
                        {
                            scan.feed(chunk);
                        }
                        size
                    }
                };
                if self.outcome.is_none() {
                    self.bytes = self.bytes.saturating_add(written as u64);
                }
                let (env, session, id) = (
                    stream.env.clone(),
                    stream.session.clone(),
                    stream.id.clone(),
                );
                if end_of_stream {
                    self.state = State::Idle;
                }
                let missing: Vec<String> =
                    refused.iter().filter_map(|r| r.missing.clone()).collect();
                for r in refused {
                    refuse_server_request(gw, host, &env, session.as_ref(), &r);
                }
                if !missing.is_empty() && first {
                    // Nothing went out yet: the caller gets the error the revision asks for.
                    self.actions.clear();
                    self.state = State::Idle;
                    let reply = missing_capability(&id, &missing);
                    self.outcome = Some(CallOutcome::Error(ErrorType::Jsonrpc));
                    self.bytes = reply.body.len() as u64;
                    self.actions.push_back(Action::Reply(reply));
                    return Flow::Pause;
                }
                Flow::Continue
            }
            State::Holding { call, status } => {
                if !end_of_stream {
                    return Flow::Pause;
                }
                let r = upstream::failure(&call.fwd, Some(*status), chunk);
                let r = self.for_caller(r);
                self.failed(ErrorType::Upstream, r.body.len());
                self.actions
                    .push_back(Action::ReplaceResponse { size, reply: r });
                self.state = State::Idle;
                Flow::Continue
            }
            State::Retrying(retry) => {
                if !end_of_stream {
                    return Flow::Pause;
                }
                retry.body = Held::Complete(size);
                retry.refusal = chunk.to_vec();
                if matches!(retry.stage, Stage::Refused) {
                    let r = upstream::failure(&retry.call.fwd, Some(retry.status), chunk);
                    retry.stage = failed(r);
                }
                if let Stage::Answered { reply, passed } = &retry.stage {
                    let (reply, passed) = (reply.clone(), *passed);
                    let reply = if passed {
                        reply
                    } else {
                        self.for_caller(reply)
                    };
                    self.tally_answer(&reply, passed);
                    self.actions
                        .push_back(Action::ReplaceResponse { size, reply });
                    self.state = State::Idle;
                    return Flow::Continue;
                }
                // Held (Envoy buffers it) until the retry answers.
                Flow::Pause
            }
            _ => Flow::Continue,
        }
    }

    pub(super) fn retry_answered(
        &mut self,
        gw: &Gateway,
        host: &mut dyn Host,
        retry: Retry,
        answer: &Answer<'_>,
    ) {
        let Retry {
            call,
            stage,
            body,
            status,
            refusal,
        } = retry;
        let (env, fwd) = (&call.fwd.env, &call.fwd);
        let stage = match stage {
            Stage::Probing { .. } if matches!(answer.status, Some(200..=299)) => match body {
                Held::Partial => Stage::Refused,
                _ => failed(upstream::failure(fwd, Some(status), &refusal)),
            },
            Stage::Probing { .. } => reopen(gw, host, &call),
            Stage::Opening(opening) => match gw.config().manifest.env(env) {
                None => failed(upstream::unavailable(fwd, "unknown env")),
                Some(entry) => match opening.advance(gw, host, entry, answer) {
                    Progress::Waiting(next) => Stage::Opening(next),
                    Progress::Failed(reason) => failed(upstream::unavailable(fwd, &reason)),
                    Progress::Open(opened) => {
                        let sent = open::side_call(
                            gw,
                            entry,
                            opened.session_id.as_deref(),
                            Some(&opened.protocol_version),
                            call.body.clone(),
                            Some(RETRY_MIN_TIMEOUT_MS),
                        );
                        match host.dispatch(&sent) {
                            Ok(token) => Stage::Calling { token },
                            Err(reason) => failed(upstream::unavailable(fwd, &reason)),
                        }
                    }
                },
            },
            Stage::Calling { .. } => {
                let passed = upstream::retry_passes(answer.status, answer.content_type);
                let mut reply =
                    upstream::retried(fwd, answer.status, answer.content_type, answer.body);
                if passed && let Some(edits) = &call.edits {
                    let mut rewrite = Rewrite::new(edits.clone(), is_sse(answer.content_type));
                    let (out, _) = rewrite.feed(&reply.body, true);
                    reply.body = out;
                }
                Stage::Answered { reply, passed }
            }
            done @ (Stage::Answered { .. } | Stage::Refused) => done,
        };
        self.deliver_if_ready(Retry {
            call,
            stage,
            body,
            status,
            refusal,
        });
    }

    fn deliver_if_ready(&mut self, retry: Retry) {
        let (reply, passed) = match &retry.stage {
            Stage::Answered { reply, passed } => (reply.clone(), *passed),
            _ => {
                self.state = State::Retrying(retry);
                return;
            }
        };
        let reply = if passed {
            reply
        } else {
            self.for_caller(reply)
        };
        match retry.body {
            // No body to write over: a local reply, which Envoy sends straight to the client
            // since no response headers went out yet.
            Held::None => {
                self.tally_answer(&reply, passed);
                self.state = State::Idle;
                self.actions.push_back(Action::Reply(reply));
            }
            Held::Complete(size) => {
                self.tally_answer(&reply, passed);
                self.state = State::Idle;
                self.actions
                    .push_back(Action::ReplaceResponse { size, reply });
                self.actions.push_back(Action::ResumeResponse);
            }
            Held::Partial => self.state = State::Retrying(retry),
        }
    }

    /// Counts the outcome of an answer the gateway hands over whole.
    fn tally_answer(&mut self, reply: &LocalReply, passed: bool) {
        if self.outcome.is_some() {
            return;
        }
        if !passed {
            self.failed(ErrorType::Upstream, reply.body.len());
            return;
        }
        let content_type = reply
            .headers
            .iter()
            .find(|(k, _)| *k == "content-type")
            .map(|(_, v)| v.as_str());
        let mut scan = OutcomeScan::for_content_type(content_type);
        if let Some(s) = &mut scan {
            s.feed(&reply.body);
        }
        self.bytes = reply.body.len() as u64;
        self.outcome = Some(CallOutcome::from_verdict(scan.and_then(|s| s.verdict())));
    }
}

/// 2026-07-28 `MissingRequiredClientCapabilityError`: HTTP 400, `data.requiredCapabilities` a
/// `ClientCapabilities` object keyed by what is missing.
fn missing_capability(id: &serde_json::Value, missing: &[String]) -> LocalReply {
    let required: serde_json::Map<String, serde_json::Value> =
        missing.iter().map(|c| (c.clone(), json!({}))).collect();
    reply::json(
        400,
        &json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": code::MISSING_REQUIRED_CLIENT_CAPABILITY,
                "message": format!(
                    "The tool needs the client capabilities {} (it asks the client during the call), which the request did not declare",
                    missing.join(", ")
                ),
                "data": {"requiredCapabilities": required},
            },
        }),
    )
}

/// Asks the session the call was refused in whether it still exists.
fn probe(gw: &Gateway, host: &mut dyn Host, call: &Call) -> Stage {
    let (env, fwd) = (&call.fwd.env, &call.fwd);
    let (Some(entry), Some(session)) = (gw.config().manifest.env(env), &call.session) else {
        return failed(upstream::unavailable(fwd, "unknown env"));
    };
    let ping = open::side_call(
        gw,
        entry,
        session.session_id.as_deref(),
        Some(&session.protocol_version),
        br#"{"jsonrpc":"2.0","id":"meshmux-probe","method":"ping"}"#.to_vec(),
        None,
    );
    match host.dispatch(&ping) {
        Ok(token) => Stage::Probing { token },
        Err(reason) => failed(upstream::unavailable(fwd, &reason)),
    }
}

/// Drops the stale session and starts opening a new one.
fn reopen(gw: &Gateway, host: &mut dyn Host, call: &Call) -> Stage {
    let (env, fwd) = (&call.fwd.env, &call.fwd);
    let Some(entry) = gw.config().manifest.env(env) else {
        return failed(upstream::unavailable(fwd, "unknown env"));
    };
    if let Some(used) = &call.session {
        open::forget(host, entry, used);
    }
    match Opening::begin(gw, host, entry, &call.fwd.protocol_version) {
        Ok(opening) => Stage::Opening(opening),
        Err(reason) => failed(upstream::unavailable(fwd, &reason)),
    }
}

fn failed(reply: LocalReply) -> Stage {
    Stage::Answered {
        reply,
        passed: false,
    }
}

fn is_sse(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("text/event-stream")
    })
}

/// Answers a backend's request the caller cannot take (a 2026-07-28 caller gets no requests
/// on a call's stream), so the tool gets a clear error at once instead of waiting for an
/// answer that never comes.
fn refuse_server_request(
    gw: &Gateway,
    host: &mut dyn Host,
    env: &str,
    session: Option<&BackendSession>,
    refused: &Refused,
) {
    let Some(entry) = gw.config().manifest.env(env) else {
        return;
    };
    let body = json!({
        "jsonrpc": "2.0",
        "id": refused.id,
        "error": {
            "code": code::METHOD_NOT_FOUND,
            "message": format!(
                "The client cannot be sent `{}` through the meshmux gateway: it speaks MCP 2026-07-28, which has no server-to-client requests on a call's stream",
                refused.method
            ),
        },
    });
    let call = open::side_call(
        gw,
        entry,
        session.and_then(|s| s.session_id.as_deref()),
        session.map(|s| s.protocol_version.as_str()),
        serde_json::to_vec(&body).unwrap_or_default(),
        None,
    );
    // Nothing waits for its answer.
    let _ = host.dispatch(&call);
}
