//! One HTTP stream: asks the gateway about the head, buffers the body, and maps the
//! `Outcome` to host calls (local reply, or body rewrite + routing + backend session).
//! The response side is in `response.rs`.

use std::rc::Rc;

use log::{debug, info, warn};
use policy::gateway::{Forward, Head, RequestHead};
use policy::metrics::ErrorType;
use policy::reply::{self, LocalReply};
use policy::rpc::code;
use policy::session::BackendSession;
use policy::{Caller, Gateway, Outcome, health, upstream};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use serde_json::Value;

use crate::host::{self, CallAnswer, Edit};
use crate::metrics::{self, Tally};
use crate::response::{self, Retry};
use crate::session::{self, Opening, Progress};

/// The filter-state key routes match on (Envoy sees it as `wasm.meshmux_env`).
pub const ENV_FILTER_STATE: &str = "meshmux_env";

pub struct Stream {
    gateway: Option<Rc<Gateway>>,
    head: OwnedHead,
    /// Bytes of request body Envoy holds for this filter.
    body_size: usize,
    pub(crate) phase: Phase,
    /// When the headers of an MCP request arrived (host clock, ns; 0 without metrics).
    started_ns: u64,
    /// The `tools/call` being counted, from the moment its tool and env are known.
    pub(crate) tally: Option<Tally>,
}

pub(crate) enum Phase {
    /// Not an MCP request, or already answered: nothing more to do.
    Idle,
    /// Buffering the request body.
    Body,
    /// The call waits for its env's backend session; the request is paused.
    Opening(Call, Opening),
    /// Forwarded; the response is watched (`response.rs`).
    Forwarded(Call),
    /// The upstream answer is being replaced by a tool error.
    Rewriting { env: String, id: Value, status: u16 },
    /// The backend lost the session: re-open it and retry the call once.
    Retrying(Retry),
}

/// A forwarded call and the backend session it went out with.
pub(crate) struct Call {
    pub fwd: Forward,
    pub session: Option<BackendSession>,
    /// The session came from the shared cache (so a refusal may mean it is stale).
    pub cached: bool,
}

#[derive(Default)]
struct OwnedHead {
    method: String,
    path: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_length: Option<String>,
    protocol_version: Option<String>,
    mcp_method: Option<String>,
    mcp_name: Option<String>,
    mcp_param_env: Option<String>,
    /// Every `mcp-param-*` header the client sent (removed when the call is forwarded).
    mcp_params: Vec<String>,
}

impl OwnedHead {
    fn read(headers: &host::Headers) -> Self {
        let get = |name: &str| host::find(headers, name).map(str::to_owned);
        OwnedHead {
            method: get(":method").unwrap_or_default(),
            path: get(":path").unwrap_or_default(),
            content_type: get("content-type"),
            content_encoding: get("content-encoding"),
            content_length: get("content-length"),
            protocol_version: get("mcp-protocol-version"),
            mcp_method: get("mcp-method"),
            mcp_name: get("mcp-name"),
            mcp_param_env: get("mcp-param-env"),
            mcp_params: headers
                .iter()
                .filter(|(k, _)| k.starts_with("mcp-param-"))
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    fn view(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            path: &self.path,
            content_type: self.content_type.as_deref(),
            content_encoding: self.content_encoding.as_deref(),
            content_length: self.content_length.as_deref(),
            protocol_version: self.protocol_version.as_deref(),
            mcp_method: self.mcp_method.as_deref(),
            mcp_name: self.mcp_name.as_deref(),
            mcp_param_env: self.mcp_param_env.as_deref(),
        }
    }
}

impl Stream {
    pub fn new(gateway: Option<Rc<Gateway>>) -> Self {
        Stream {
            gateway,
            head: OwnedHead::default(),
            body_size: 0,
            phase: Phase::Idle,
            started_ns: 0,
            tally: None,
        }
    }

    pub(crate) fn gateway(&self) -> Option<Rc<Gateway>> {
        self.gateway.clone()
    }

    /// Answers locally and ends this filter's work on the stream. A counted call answered
    /// this way after it was chosen for forwarding failed upstream (unless already decided).
    pub(crate) fn answer(&mut self, reply: &LocalReply) -> Action {
        if let Some(t) = &mut self.tally {
            t.failed(ErrorType::Upstream, reply.body.len());
        }
        host::send(reply);
        self.phase = Phase::Idle;
        Action::Pause
    }

    fn finish(&mut self, gateway: &Gateway, body: &[u8]) -> Action {
        let caller = caller(gateway);
        match gateway.on_body(&self.head.view(), body, &caller) {
            Outcome::Reply(r) => self.answer(&r),
            Outcome::Denied { reply, tool, env } => {
                info!("denied tool `{tool}` in env `{env}` to {caller:?}");
                if let Some(mut t) = self.count(gateway, &env, &tool) {
                    t.failed(ErrorType::Denied, reply.body.len());
                    self.tally = Some(t);
                }
                self.answer(&reply)
            }
            Outcome::Forward(fwd) => {
                self.tally = self.count(gateway, &fwd.env, &fwd.tool);
                self.forward(gateway, fwd)
            }
        }
    }

    /// Starts counting a call to `tool` in `env` (nothing when metrics are off).
    fn count(&self, gateway: &Gateway, env: &str, tool: &str) -> Option<Tally> {
        let settings = &gateway.config().metrics;
        if !settings.enabled {
            return None;
        }
        if settings.user_level_metrics {
            metrics::user_call(&principal(gateway));
        }
        Some(Tally::begin(env, tool, self.started_ns))
    }

    fn forward(&mut self, gateway: &Gateway, fwd: Forward) -> Action {
        let Some(entry) = gateway.config().manifest.env(&fwd.env) else {
            return self.answer(&internal(&fwd.id, "the manifest lists no such env"));
        };
        host::replace_body(BufferType::HttpRequestBody, self.body_size, &fwd.body);
        let cached = session::cached(entry);
        let mut edit = Edit::new(MapType::HttpRequestHeaders)
            // The body changed length; a stale Content-Length makes the upstream wait forever.
            .set("content-length", fwd.body.len().to_string())
            .set("accept", "application/json, text/event-stream")
            .remove("authorization")
            .remove("mcp-session-id")
            .remove("mcp-method")
            .remove("mcp-name");
        for name in &self.head.mcp_params {
            edit = edit.remove(name);
        }
        edit = with_session(edit, cached.as_ref(), &fwd.protocol_version);
        if !edit.apply() || !host::set_filter_state(ENV_FILTER_STATE, &fwd.env) {
            return self.answer(&internal(&fwd.id, "the request could not be rewritten"));
        }
        host::clear_route_cache();
        if let Some(s) = cached {
            self.phase = Phase::Forwarded(Call {
                fwd,
                session: Some(s),
                cached: true,
            });
            return Action::Continue;
        }
        match session::begin(gateway, entry, &fwd.protocol_version) {
            Ok(opening) => {
                let call = Call {
                    fwd,
                    session: None,
                    cached: false,
                };
                self.phase = Phase::Opening(call, opening);
                Action::Pause
            }
            Err(reason) => self.answer(&upstream::unavailable(&fwd.env, &fwd.id, &reason)),
        }
    }

    /// A session-opening side call answered while the request waits.
    fn opening_answered(
        &mut self,
        gateway: &Gateway,
        call: Call,
        opening: Opening,
        answer: &CallAnswer,
    ) {
        let Some(entry) = gateway.config().manifest.env(&call.fwd.env) else {
            self.answer(&internal(&call.fwd.id, "the manifest lists no such env"));
            return;
        };
        match session::advance(gateway, entry, opening, answer) {
            Progress::Waiting(next) => self.phase = Phase::Opening(call, next),
            Progress::Open(opened) => {
                let edit = with_session(
                    Edit::new(MapType::HttpRequestHeaders),
                    Some(&opened),
                    &call.fwd.protocol_version,
                );
                if !edit.apply() {
                    self.answer(&internal(
                        &call.fwd.id,
                        "the request could not be rewritten",
                    ));
                    return;
                }
                self.phase = Phase::Forwarded(Call {
                    session: Some(opened),
                    cached: false,
                    ..call
                });
                host::resume_request();
            }
            Progress::Failed(reason) => {
                warn!("env `{}` is unavailable: {reason}", call.fwd.env);
                self.answer(&upstream::unavailable(&call.fwd.env, &call.fwd.id, &reason));
            }
        }
    }
}

/// The backend-session headers of a forwarded call: the session's version (or the env's until
/// one is open) and its id when the backend keeps sessions.
fn with_session(edit: Edit, session: Option<&BackendSession>, env_version: &str) -> Edit {
    let version = session.map_or(env_version, |s| s.protocol_version.as_str());
    let edit = edit.set("mcp-protocol-version", version);
    match session.and_then(|s| s.session_id.as_deref()) {
        Some(id) => edit.set("mcp-session-id", id),
        None => edit,
    }
}

fn internal(id: &Value, message: &str) -> LocalReply {
    reply::error(500, id, code::INTERNAL_ERROR, message)
}

/// Who is calling: unrestricted without auth; else the `roles` claim jwt_authn left in the
/// dynamic metadata (no metadata: no roles, so nothing is allowed).
fn caller(gateway: &Gateway) -> Caller {
    let Some(auth) = &gateway.config().auth else {
        return Caller::Unrestricted;
    };
    let mut path = vec!["metadata", "filter_metadata"];
    path.extend(auth.claims_path.iter().map(String::as_str));
    path.push("roles");
    Caller::Roles(policy::claims::roles(host::property(path).as_deref()))
}

/// Who the metrics name as the caller: the token's `sub` claim, `anonymous` without one.
fn principal(gateway: &Gateway) -> String {
    let Some(auth) = &gateway.config().auth else {
        return policy::metrics::ANONYMOUS.to_owned();
    };
    let mut path = vec!["metadata", "filter_metadata"];
    path.extend(auth.claims_path.iter().map(String::as_str));
    path.push("sub");
    host::property(path)
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| policy::metrics::ANONYMOUS.to_owned())
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(gateway) = self.gateway.clone() else {
            return;
        };
        let answer = CallAnswer::read(body_size);
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Opening(call, opening) if opening.token == token => {
                self.opening_answered(&gateway, call, opening, &answer);
            }
            Phase::Retrying(retry) if retry.waits_for(token) => {
                response::retry_answered(self, &gateway, retry, &answer);
            }
            other => {
                // The answer to a DELETE of a surplus session, or to a call this stream
                // stopped waiting for.
                debug!("ignoring side-call answer {token}");
                self.phase = other;
            }
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(gateway) = self.gateway.clone() else {
            let method = host::request_header(":method").unwrap_or_default();
            let path = host::request_header(":path").unwrap_or_default();
            if health::is_ready_probe(&method, &path) {
                return self.answer(&health::readiness(None));
            }
            // No configuration was accepted: fail closed rather than forward unchecked.
            return self.answer(&reply::error(
                503,
                &Value::Null,
                code::INTERNAL_ERROR,
                "the meshmux filter has no valid configuration",
            ));
        };
        self.head = OwnedHead::read(&host::headers(MapType::HttpRequestHeaders));
        if health::is_ready_probe(&self.head.method, &self.head.path) {
            return self.answer(&health::readiness(Some(gateway.config())));
        }
        let head = gateway.on_headers(&self.head.view());
        // A revoked token is refused before anything else is answered on the MCP path.
        if head != Head::Pass
            && let Some(r) = crate::revocation::refusal(&gateway)
        {
            info!("refused a revoked token");
            return self.answer(&r);
        }
        match head {
            Head::Pass => Action::Continue,
            Head::Reply(r) => self.answer(&r),
            Head::ReadBody => {
                // A tools/call's latency counts from here (only a body can hold one).
                if gateway.config().metrics.enabled {
                    self.started_ns = metrics::now_ns();
                }
                if end_of_stream {
                    return self.finish(&gateway, b"");
                }
                self.phase = Phase::Body;
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Phase::Body, Some(gateway)) = (&self.phase, self.gateway.clone()) else {
            return Action::Continue;
        };
        self.body_size = body_size;
        if let Some(r) = gateway.body_too_large(body_size) {
            return self.answer(&r);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host::body(BufferType::HttpRequestBody, body_size);
        self.finish(&gateway, &body)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body that ends with trailers never sees `end_of_stream` in the body callback.
        let (Phase::Body, Some(gateway)) = (&self.phase, self.gateway.clone()) else {
            return Action::Continue;
        };
        let body = host::body(BufferType::HttpRequestBody, self.body_size);
        self.finish(&gateway, &body)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        response::on_headers(self, end_of_stream)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        response::on_body(self, body_size, end_of_stream)
    }

    fn on_log(&mut self) {
        // Envoy calls this once per stream however it ended (reset and abort included).
        if let Some(t) = self.tally.take() {
            t.finish(metrics::now_ns());
        }
    }
}
