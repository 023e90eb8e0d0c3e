//! The response of a forwarded call. A 2xx streams through untouched (only a backend
//! `Mcp-Session-Id` is removed: the client never sees backend sessions). Anything else is held
//! and replaced, never streamed: a refusal of a cached session re-opens it and retries the
//! call once through a side call (`policy::upstream::classify`), other failures become a tool
//! error naming the env. The replacement is written into the paused response: `:status`,
//! `content-type` and `content-length` on its headers, the new body over the buffered one.
//! A counted call's outcome (`metrics.rs`) is read from the 2xx chunks as they pass, or taken
//! from the answer the filter wrote.

use log::{info, warn};
use policy::metrics::ErrorType;
use policy::reply::LocalReply;
use policy::{Gateway, upstream};
use proxy_wasm::types::{Action, BufferType, MapType};

use crate::host::{self, CallAnswer, Edit};
use crate::http::{Call, Phase, Stream};
use crate::session::{self, Opening, Progress};

/// A retried call's own timeout floor: the side-call timeout is sized for `initialize`, while
/// this one runs a tool.
const RETRY_MIN_TIMEOUT_MS: u64 = 60_000;
/// Bytes of a failure body quoted to the model.
const MAX_FAILURE_BODY: usize = 4096;

pub(crate) struct Retry {
    call: Call,
    stage: Stage,
    body: Body,
}

enum Stage {
    Opening(Opening),
    Calling {
        token: u32,
    },
    /// The reply to hand the client; `passed` when it is the backend's own 2xx MCP answer
    /// (otherwise a failure the filter wrote).
    Answered {
        reply: LocalReply,
        passed: bool,
    },
}

/// How much of the refused response's body Envoy holds for the filter.
#[derive(Clone, Copy)]
enum Body {
    /// The response ended with its headers.
    None,
    Partial,
    Complete(usize),
}

impl Retry {
    pub fn waits_for(&self, token: u32) -> bool {
        match &self.stage {
            Stage::Opening(o) => o.token == token,
            Stage::Calling { token: t } => *t == token,
            Stage::Answered { .. } => false,
        }
    }
}

pub(crate) fn on_headers(s: &mut Stream, end_of_stream: bool) -> Action {
    let call = match std::mem::replace(&mut s.phase, Phase::Idle) {
        Phase::Forwarded(call) => call,
        other => {
            s.phase = other;
            return Action::Continue;
        }
    };
    // Two lookups instead of copying the whole map into the VM: this runs on every call.
    let status = host::response_header(":status")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    match upstream::classify(status, call.cached) {
        upstream::Verdict::Pass => {
            if let Some(t) = &mut s.tally {
                t.streaming();
            }
            if host::response_header("mcp-session-id").is_some() {
                Edit::new(MapType::HttpResponseHeaders)
                    .remove("mcp-session-id")
                    .apply();
            }
            Action::Continue
        }
        upstream::Verdict::Rewrite if end_of_stream => {
            let reply = upstream::failure(&call.fwd.env, &call.fwd.id, Some(status), b"");
            s.answer(&reply)
        }
        upstream::Verdict::Rewrite => {
            s.phase = Phase::Rewriting {
                env: call.fwd.env,
                id: call.fwd.id,
                status,
            };
            Action::Pause
        }
        upstream::Verdict::Reopen => {
            let Some(gateway) = s.gateway() else {
                return Action::Continue;
            };
            let stage = reopen(&gateway, &call);
            let body = if end_of_stream {
                Body::None
            } else {
                Body::Partial
            };
            deliver_if_ready(s, Retry { call, stage, body });
            Action::Pause
        }
    }
}

pub(crate) fn on_body(s: &mut Stream, body_size: usize, end_of_stream: bool) -> Action {
    match &mut s.phase {
        Phase::Rewriting { env, id, status } => {
            if !end_of_stream {
                return Action::Pause;
            }
            let body = host::body(
                BufferType::HttpResponseBody,
                body_size.min(MAX_FAILURE_BODY),
            );
            let reply = upstream::failure(env, id, Some(*status), &body);
            warn!(
                "env `{env}`: a forwarded call failed: {}",
                reply.body_text()
            );
            s.phase = Phase::Idle;
            if let Some(t) = &mut s.tally {
                t.failed(ErrorType::Upstream, reply.body.len());
            }
            replace(&reply, body_size);
            Action::Continue
        }
        Phase::Retrying(retry) => {
            if !end_of_stream {
                return Action::Pause;
            }
            retry.body = Body::Complete(body_size);
            if let Stage::Answered { reply, passed } = &retry.stage {
                tally_answer(&mut s.tally, reply, *passed);
                replace(reply, body_size);
                s.phase = Phase::Idle;
                return Action::Continue;
            }
            // Held (Envoy buffers it) until the retry answers; `retry_answered` resumes.
            Action::Pause
        }
        _ => {
            // A 2xx answer streaming through: read each chunk once, and only until the
            // answer's verdict is known.
            if let Some(t) = &mut s.tally {
                let chunk = t
                    .wants_body()
                    .then(|| host::body(BufferType::HttpResponseBody, body_size));
                t.chunk(body_size, chunk.as_deref());
            }
            Action::Continue
        }
    }
}

/// Counts the outcome of a call whose answer the filter hands over whole.
fn tally_answer(tally: &mut Option<crate::metrics::Tally>, reply: &LocalReply, passed: bool) {
    let Some(t) = tally else { return };
    if passed {
        let content_type = reply
            .headers
            .iter()
            .find(|(k, _)| *k == "content-type")
            .map(|(_, v)| v.as_str());
        t.answered(content_type, &reply.body);
    } else {
        t.failed(ErrorType::Upstream, reply.body.len());
    }
}

/// A side call of a retry answered: the session-opening steps, then the retried call.
pub(crate) fn retry_answered(s: &mut Stream, gateway: &Gateway, retry: Retry, answer: &CallAnswer) {
    let Retry { call, stage, body } = retry;
    let (env, id) = (&call.fwd.env, &call.fwd.id);
    let stage = match stage {
        Stage::Opening(opening) => match gateway.config().manifest.env(env) {
            None => failed(upstream::unavailable(env, id, "unknown env")),
            Some(entry) => match session::advance(gateway, entry, opening, answer) {
                Progress::Waiting(next) => Stage::Opening(next),
                Progress::Failed(reason) => failed(upstream::unavailable(env, id, &reason)),
                Progress::Open(opened) => {
                    info!(
                        "env `{env}`: retrying tool `{}` in the new session",
                        call.fwd.tool
                    );
                    let sent = session::send(
                        gateway,
                        entry,
                        opened.session_id.as_deref(),
                        Some(&opened.protocol_version),
                        &call.fwd.body,
                        Some(RETRY_MIN_TIMEOUT_MS),
                    );
                    match sent {
                        Ok(token) => Stage::Calling { token },
                        Err(reason) => failed(upstream::unavailable(env, id, &reason)),
                    }
                }
            },
        },
        Stage::Calling { .. } => {
            let content_type = host::find(&answer.headers, "content-type");
            Stage::Answered {
                passed: upstream::retry_passes(answer.status, content_type),
                reply: upstream::retried(env, id, answer.status, content_type, &answer.body),
            }
        }
        answered @ Stage::Answered { .. } => answered,
    };
    deliver_if_ready(s, Retry { call, stage, body });
}

/// Drops the stale session and starts opening a new one.
fn reopen(gateway: &Gateway, call: &Call) -> Stage {
    let (env, id) = (&call.fwd.env, &call.fwd.id);
    let Some(entry) = gateway.config().manifest.env(env) else {
        return failed(upstream::unavailable(env, id, "unknown env"));
    };
    if let Some(used) = &call.session {
        session::forget(entry, used);
    }
    match session::begin(gateway, entry, &call.fwd.protocol_version) {
        Ok(opening) => Stage::Opening(opening),
        Err(reason) => failed(upstream::unavailable(env, id, &reason)),
    }
}

/// A retry that ends with a failure the filter wrote.
fn failed(reply: LocalReply) -> Stage {
    Stage::Answered {
        reply,
        passed: false,
    }
}

fn deliver_if_ready(s: &mut Stream, retry: Retry) {
    match (&retry.stage, retry.body) {
        // No body to write over: answer with a local reply, which Envoy sends straight to the
        // client since no response headers went out yet.
        (Stage::Answered { reply, passed }, Body::None) => {
            tally_answer(&mut s.tally, reply, *passed);
            s.answer(reply);
        }
        (Stage::Answered { reply, passed }, Body::Complete(size)) => {
            tally_answer(&mut s.tally, reply, *passed);
            replace(reply, size);
            s.phase = Phase::Idle;
            host::resume_response();
        }
        _ => s.phase = Phase::Retrying(retry),
    }
}

/// Writes `reply` over the held response: headers (still paused) and the buffered body.
fn replace(reply: &LocalReply, old_size: usize) {
    let mut edit = Edit::new(MapType::HttpResponseHeaders)
        .set(":status", reply.status.to_string())
        .set("content-length", reply.body.len().to_string())
        .remove("content-encoding")
        .remove("etag")
        .remove("mcp-session-id");
    for (name, value) in &reply.headers {
        edit = edit.set(name, value.clone());
    }
    edit.apply();
    host::replace_body(BufferType::HttpResponseBody, old_size, &reply.body);
}
