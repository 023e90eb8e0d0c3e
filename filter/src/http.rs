//! One HTTP stream: feeds host events to a `policy::exchange::Exchange` and carries out the
//! actions it queues. It holds no phase, retry or session state of its own.

use std::cell::Cell;
use std::rc::Rc;

use log::{info, warn};
use policy::exchange::{Action, Exchange, Flow, HeaderOp, Host, Request, ResponseHead, SideCall};
use policy::reply::{self, LocalReply};
use policy::rpc::code;
use policy::{Caller, Gateway, health};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action as HostAction, BufferType, MapType};
use serde_json::Value;

use crate::host::{self, CallAnswer, Edit};
use crate::metrics::{self, Tally};

/// The filter-state key routes match on (Envoy sees it as `wasm.meshmux_env`).
pub const ENV_FILTER_STATE: &str = "meshmux_env";

pub struct Stream {
    gateway: Option<Rc<Gateway>>,
    exchange: Exchange,
    /// When the headers of an MCP request arrived (host clock, ns; 0 without metrics).
    started_ns: u64,
    tally: Option<Tally>,
}

impl Stream {
    pub fn new(gateway: Option<Rc<Gateway>>) -> Self {
        Stream {
            gateway,
            exchange: Exchange::new(),
            started_ns: 0,
            tally: None,
        }
    }

    /// Carries out the exchange's actions, then returns `flow` to Envoy.
    fn drain(&mut self, flow: Flow) -> HostAction {
        while let Some(action) = self.exchange.poll_action() {
            if let Err(what) = perform(action) {
                warn!("{what}");
                self.exchange.handle_host_failure(what);
                // The failure is a local reply: send it, and stop.
                while let Some(action) = self.exchange.poll_action() {
                    let _ = perform(action);
                }
                return HostAction::Pause;
            }
        }
        self.start_counting();
        match flow {
            Flow::Continue => HostAction::Continue,
            Flow::Pause => HostAction::Pause,
        }
    }

    /// Begins the call's metrics once the exchange knows its tool and env.
    fn start_counting(&mut self) {
        if self.tally.is_some() {
            return;
        }
        let Some(gateway) = &self.gateway else { return };
        let settings = &gateway.config().metrics;
        if !settings.enabled {
            return;
        }
        if let Some((tool, env)) = self.exchange.counted() {
            if settings.user_level_metrics {
                metrics::user_call(&principal(gateway));
            }
            self.tally = Some(Tally::begin(env, tool, self.started_ns));
        }
    }
}

fn perform(action: Action) -> Result<(), &'static str> {
    match action {
        Action::Reply(r) => host::send(&r),
        Action::ReplaceRequestBody { size, body } => {
            host::replace_body(BufferType::HttpRequestBody, size, &body);
        }
        Action::EditRequestHeaders(ops) => {
            if !edit(MapType::HttpRequestHeaders, ops).apply() {
                return Err("the request could not be rewritten");
            }
        }
        Action::Route(env) => {
            if !host::set_filter_state(ENV_FILTER_STATE, &env) {
                return Err("the request could not be routed");
            }
            host::clear_route_cache();
        }
        Action::ResumeRequest => host::resume_request(),
        Action::EditResponseHeaders(ops) => {
            edit(MapType::HttpResponseHeaders, ops).apply();
        }
        Action::WriteResponseChunk { size, bytes } => {
            host::replace_body(BufferType::HttpResponseBody, size, &bytes);
        }
        Action::ReplaceResponse { size, reply } => replace_response(&reply, size),
        Action::ResumeResponse => host::resume_response(),
    }
    Ok(())
}

fn edit(map: MapType, ops: Vec<HeaderOp>) -> Edit {
    ops.into_iter().fold(Edit::new(map), |e, op| match op {
        HeaderOp::Set(name, value) => e.set(&name, value),
        HeaderOp::Remove(name) => e.remove(&name),
    })
}

/// Writes `reply` over the held response: headers (still paused) and the buffered body.
fn replace_response(reply: &LocalReply, old_size: usize) {
    edit(
        MapType::HttpResponseHeaders,
        policy::exchange::replacement_head(reply),
    )
    .apply();
    host::replace_body(BufferType::HttpResponseBody, old_size, &reply.body);
}

/// The host as the exchange sees it.
struct StreamHost<'g> {
    gateway: &'g Gateway,
}

impl Host for StreamHost<'_> {
    fn caller(&self) -> Caller {
        let Some(auth) = &self.gateway.config().auth else {
            return Caller::Unrestricted;
        };
        let mut path = vec!["metadata", "filter_metadata"];
        path.extend(auth.claims_path.iter().map(String::as_str));
        path.push("roles");
        Caller::Roles(policy::claims::roles(host::property(path).as_deref()))
    }

    fn principal(&self) -> String {
        principal(self.gateway)
    }

    fn revoked(&self) -> Option<LocalReply> {
        let refusal = crate::revocation::refusal(self.gateway);
        if refusal.as_ref().is_some_and(|r| r.status == 401) {
            info!("refused a revoked token");
        }
        refusal
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        host::shared::get(key)
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        host::shared::set(key, value, cas)
    }

    fn dispatch(&mut self, call: &SideCall) -> Result<u32, String> {
        host::dispatch(&call.cluster, &call.headers, &call.body, call.timeout_ms)
    }

    fn next_call_id(&mut self) -> String {
        thread_local! {
            static SEQ: Cell<u64> = const { Cell::new(0) };
        }
        let seq = SEQ.with(|s| {
            let n = s.get().wrapping_add(1);
            s.set(n);
            n
        });
        thread_local! {
            /// This VM's number among the VMs of the Envoy process, claimed once.
            static VM: Cell<Option<u32>> = const { Cell::new(None) };
        }
        let vm = VM.with(|cell| {
            let vm = cell.get().unwrap_or_else(|| {
                policy::exchange::ids::claim_vm(self).unwrap_or_else(|| {
                    u32::try_from(metrics::now_ns() % 1_000_000_007).unwrap_or(1)
                })
            });
            cell.set(Some(vm));
            vm
        });
        policy::exchange::ids::call(vm, seq)
    }
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
        let mut host = StreamHost { gateway: &gateway };
        self.exchange
            .handle_side_call_answer(&gateway, &mut host, token, &answer.session_answer());
        self.drain(Flow::Pause);
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> HostAction {
        let Some(gateway) = self.gateway.clone() else {
            let method = host::request_header(":method").unwrap_or_default();
            let path = host::request_header(":path").unwrap_or_default();
            if health::is_ready_probe(&method, &path) {
                host::send(&health::readiness(None));
                return HostAction::Pause;
            }
            // No configuration was accepted: fail closed rather than forward unchecked.
            host::send(&reply::error(
                503,
                &Value::Null,
                code::INTERNAL_ERROR,
                "the meshmux filter has no valid configuration",
            ));
            return HostAction::Pause;
        };
        let headers = host::headers(MapType::HttpRequestHeaders);
        let request = Request::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if gateway.config().metrics.enabled {
            // A tools/call's latency counts from here.
            self.started_ns = metrics::now_ns();
        }
        let mut host = StreamHost { gateway: &gateway };
        let flow = self
            .exchange
            .handle_request_head(&gateway, &mut host, request, end_of_stream);
        self.drain(flow)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> HostAction {
        let Some(gateway) = self.gateway.clone() else {
            return HostAction::Continue;
        };
        let body = if self.exchange.wants_request_body(end_of_stream) {
            host::body(BufferType::HttpRequestBody, body_size)
        } else {
            Vec::new()
        };
        let mut host = StreamHost { gateway: &gateway };
        let flow =
            self.exchange
                .handle_request_body(&gateway, &mut host, body_size, end_of_stream, &body);
        self.drain(flow)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> HostAction {
        // A body that ends with trailers never sees `end_of_stream` in the body callback.
        let Some(gateway) = self.gateway.clone() else {
            return HostAction::Continue;
        };
        if !self.exchange.wants_request_body(true) {
            return HostAction::Continue;
        }
        let body = host::body(
            BufferType::HttpRequestBody,
            self.exchange.request_body_size(),
        );
        let mut host = StreamHost { gateway: &gateway };
        let flow = self
            .exchange
            .handle_request_trailers(&gateway, &mut host, &body);
        self.drain(flow)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> HostAction {
        let Some(gateway) = self.gateway.clone() else {
            return HostAction::Continue;
        };
        if !self.exchange.wants_response_head() {
            return HostAction::Continue;
        }
        // A few lookups instead of copying the whole map into the VM: this runs on every call.
        let status = host::response_header(":status")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let content_type = self
            .exchange
            .wants_response_content_type()
            .then(|| host::response_header("content-type"))
            .flatten();
        let head = ResponseHead {
            status,
            content_type: content_type.as_deref(),
            session_id: host::response_header("mcp-session-id").is_some(),
            end_of_stream,
        };
        let mut host = StreamHost { gateway: &gateway };
        let flow = self
            .exchange
            .handle_response_head(&gateway, &mut host, head);
        self.drain(flow)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> HostAction {
        let Some(gateway) = self.gateway.clone() else {
            return HostAction::Continue;
        };
        let wanted = self
            .exchange
            .response_bytes_wanted(body_size, end_of_stream);
        let chunk = if wanted > 0 {
            host::body(BufferType::HttpResponseBody, wanted)
        } else {
            Vec::new()
        };
        let mut host = StreamHost { gateway: &gateway };
        let flow = self.exchange.handle_response_chunk(
            &gateway,
            &mut host,
            body_size,
            end_of_stream,
            &chunk,
        );
        self.drain(flow)
    }

    fn on_log(&mut self) {
        // Envoy calls this once per stream however it ended (reset and abort included).
        if let Some(gateway) = self.gateway.clone() {
            self.exchange
                .handle_end(&mut StreamHost { gateway: &gateway });
        }
        if let Some(t) = self.tally.take() {
            let (outcome, size) = self.exchange.outcome();
            t.finish(metrics::now_ns(), outcome, size);
        }
    }
}
