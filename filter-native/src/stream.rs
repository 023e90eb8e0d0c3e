//! One HTTP stream: feeds Envoy's events to the same `policy::exchange::Exchange` the wasm
//! filter drives and carries out the actions it queues. Like the wasm glue it holds no
//! phase, retry or session state of its own; what differs is only how Envoy hands over
//! bodies (a buffered part plus the chunk just received, instead of one growing buffer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use policy::exchange::{Action, Exchange, Flow, HeaderOp, Host, Request, ResponseHead, SideCall};
use policy::reply::{self, LocalReply};
use policy::rpc::code;
use policy::{Caller, Gateway};
use serde_json::Value;

use crate::abi::{self, Body, CalloutAnswer, Filter, HeaderMap};
use crate::metrics::Tally;
use crate::root::{Root, Shared, now_ns};

/// The filter-state key routes match on. The wasm filter's `meshmux_env` property lands
/// under `wasm.`; the native filter writes the same key, so one route table serves both.
pub const ENV_FILTER_STATE: &str = "wasm.meshmux_env";

pub struct Stream {
    shared: Arc<Shared>,
    exchange: Exchange,
    started_ns: u64,
    tally: Option<Tally>,
    /// Inside a body hook Envoy holds the chunk just received apart from the buffered body.
    in_body_hook: bool,
    /// A resume queued inside a hook: the hook returns "continue" instead.
    resumed: bool,
    /// A panic was caught on this stream: it was failed closed and is left alone.
    poisoned: bool,
}

impl Stream {
    pub fn new(root: &Root) -> Stream {
        Stream {
            shared: root.shared.clone(),
            exchange: Exchange::new(),
            started_ns: 0,
            tally: None,
            in_body_hook: false,
            resumed: false,
            poisoned: false,
        }
    }

    pub fn poisoned(&self) -> bool {
        self.poisoned
    }

    /// A panic was caught in one of this stream's hooks: answer 500 (Envoy resets the stream
    /// instead if the response has started) and ignore the stream from now on.
    pub fn poison(&mut self, f: Filter) {
        self.poisoned = true;
        send(
            f,
            &reply::error(
                500,
                &Value::Null,
                code::INTERNAL_ERROR,
                "the meshmux filter failed on this request",
            ),
        );
    }

    /// Carries out the queued actions; `true` lets the current callback continue.
    fn drain(&mut self, f: Filter, flow: Flow) -> bool {
        self.resumed = false;
        while let Some(action) = self.exchange.poll_action() {
            if let Err(what) = self.perform(f, action) {
                abi::log_warn(&format!("meshmux: {what}"));
                self.exchange.handle_host_failure(what);
                while let Some(action) = self.exchange.poll_action() {
                    let _ = self.perform(f, action);
                }
                return false;
            }
        }
        self.start_counting(f);
        self.resumed || flow == Flow::Continue
    }

    fn start_counting(&mut self, f: Filter) {
        if self.tally.is_some() {
            return;
        }
        let shared = self.shared.clone();
        let Some(ids) = &shared.metrics else { return };
        if let Some((tool, env)) = self.exchange.counted() {
            if shared.gateway.config().metrics.user_level_metrics {
                ids.user_call(f, policy::metrics::ANONYMOUS);
            }
            self.tally = Some(Tally::begin(ids, f, env, tool, self.started_ns));
        }
    }

    fn perform(&mut self, f: Filter, action: Action) -> Result<(), &'static str> {
        match action {
            Action::Reply(r) => send(f, &r),
            Action::ReplaceRequestBody { body, .. } => {
                replace_body(f, true, self.in_body_hook, &body);
            }
            Action::EditRequestHeaders(ops) => {
                if !edit(f, HeaderMap::RequestHeaders, ops) {
                    return Err("the request could not be rewritten");
                }
            }
            Action::Route(env) => {
                if !f.set_filter_state(ENV_FILTER_STATE, &env) {
                    return Err("the request could not be routed");
                }
                f.clear_route_cache();
            }
            Action::ResumeRequest => {
                if self.in_body_hook {
                    self.resumed = true;
                } else {
                    f.continue_request();
                }
            }
            Action::EditResponseHeaders(ops) => {
                edit(f, HeaderMap::ResponseHeaders, ops);
            }
            Action::WriteResponseChunk { bytes, .. } => {
                replace_body(f, false, self.in_body_hook, &bytes);
            }
            Action::ReplaceResponse { reply, .. } => {
                replace_response(f, &reply, self.in_body_hook);
            }
            Action::ResumeResponse => {
                if self.in_body_hook {
                    self.resumed = true;
                } else {
                    f.continue_response();
                }
            }
        }
        Ok(())
    }

    pub fn on_request_headers(&mut self, f: Filter, end_of_stream: bool) -> bool {
        let shared = self.shared.clone();
        let headers = f.headers(HeaderMap::RequestHeaders);
        #[cfg(feature = "panic-probe")]
        #[allow(clippy::panic)] // The point of the probe build.
        if headers.iter().any(|(k, _)| k == "x-meshmux-panic-probe") {
            panic!("panic probe");
        }
        let request = Request::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if shared.gateway.config().metrics.enabled {
            self.started_ns = now_ns();
        }
        let mut host = NativeHost {
            gateway: &shared.gateway,
            filter: f,
        };
        let flow =
            self.exchange
                .handle_request_head(&shared.gateway, &mut host, request, end_of_stream);
        self.drain(f, flow)
    }

    pub fn on_request_body(&mut self, f: Filter, end_of_stream: bool) -> bool {
        let shared = self.shared.clone();
        self.in_body_hook = true;
        let size = body_size(f, true, true);
        let body = if self.exchange.wants_request_body(end_of_stream) {
            read_body(f, true, true)
        } else {
            Vec::new()
        };
        let mut host = NativeHost {
            gateway: &shared.gateway,
            filter: f,
        };
        let flow = self.exchange.handle_request_body(
            &shared.gateway,
            &mut host,
            size,
            end_of_stream,
            &body,
        );
        let go = self.drain(f, flow);
        self.in_body_hook = false;
        go
    }

    pub fn on_request_trailers(&mut self, f: Filter) -> bool {
        if !self.exchange.wants_request_body(true) {
            return true;
        }
        let shared = self.shared.clone();
        let body = read_body(f, true, false);
        let mut host = NativeHost {
            gateway: &shared.gateway,
            filter: f,
        };
        let flow = self
            .exchange
            .handle_request_trailers(&shared.gateway, &mut host, &body);
        self.drain(f, flow)
    }

    pub fn on_response_headers(&mut self, f: Filter, end_of_stream: bool) -> bool {
        if !self.exchange.wants_response_head() {
            return true;
        }
        let shared = self.shared.clone();
        let status = f
            .header(HeaderMap::ResponseHeaders, ":status")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let content_type = self
            .exchange
            .wants_response_content_type()
            .then(|| f.header(HeaderMap::ResponseHeaders, "content-type"))
            .flatten();
        let head = ResponseHead {
            status,
            content_type: content_type.as_deref(),
            session_id: f
                .header(HeaderMap::ResponseHeaders, "mcp-session-id")
                .is_some(),
            end_of_stream,
        };
        let mut host = NativeHost {
            gateway: &shared.gateway,
            filter: f,
        };
        let flow = self
            .exchange
            .handle_response_head(&shared.gateway, &mut host, head);
        self.drain(f, flow)
    }

    pub fn on_response_body(&mut self, f: Filter, end_of_stream: bool) -> bool {
        let shared = self.shared.clone();
        self.in_body_hook = true;
        let size = body_size(f, false, true);
        let wanted = self.exchange.response_bytes_wanted(size, end_of_stream);
        let mut chunk = if wanted > 0 {
            read_body(f, false, true)
        } else {
            Vec::new()
        };
        chunk.truncate(wanted);
        let mut host = NativeHost {
            gateway: &shared.gateway,
            filter: f,
        };
        let flow = self.exchange.handle_response_chunk(
            &shared.gateway,
            &mut host,
            size,
            end_of_stream,
            &chunk,
        );
        let go = self.drain(f, flow);
        self.in_body_hook = false;
        go
    }

    pub fn on_side_call_answer(&mut self, f: Filter, callout: u64, answer: &CalloutAnswer) {
        let Ok(token) = u32::try_from(callout) else {
            return;
        };
        let shared = self.shared.clone();
        let find = |name: &str| {
            answer
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let session_answer = policy::session::Answer {
            status: answer.status,
            content_type: find("content-type"),
            session_id: find("mcp-session-id"),
            body: &answer.body,
        };
        let mut host = NativeHost {
            gateway: &shared.gateway,
            filter: f,
        };
        self.exchange
            .handle_side_call_answer(&shared.gateway, &mut host, token, &session_answer);
        self.drain(f, Flow::Pause);
    }

    /// Envoy calls this once per stream however it ended (reset and abort included).
    pub fn on_end(&mut self, f: Filter) {
        let shared = self.shared.clone();
        self.exchange.handle_end(&mut NativeHost {
            gateway: &shared.gateway,
            filter: f,
        });
        if let (Some(t), Some(ids)) = (self.tally.take(), &shared.metrics) {
            let (outcome, size) = self.exchange.outcome();
            t.finish(ids, f, now_ns(), outcome, size);
        }
    }
}

/// The two halves of a body Envoy may hold: what earlier callbacks buffered and, inside a
/// body hook, the chunk just received (unless that chunk *is* the buffered body).
fn kinds(request: bool) -> (Body, Body) {
    if request {
        (Body::BufferedRequest, Body::ReceivedRequest)
    } else {
        (Body::BufferedResponse, Body::ReceivedResponse)
    }
}

fn body_size(f: Filter, request: bool, in_hook: bool) -> usize {
    let (buffered, received) = kinds(request);
    if in_hook && f.received_is_buffered(request) {
        return f.body_size(received);
    }
    let extra = if in_hook { f.body_size(received) } else { 0 };
    f.body_size(buffered).saturating_add(extra)
}

fn read_body(f: Filter, request: bool, in_hook: bool) -> Vec<u8> {
    let (buffered, received) = kinds(request);
    if in_hook && f.received_is_buffered(request) {
        return f.body(received);
    }
    let mut all = f.body(buffered);
    if in_hook {
        all.extend(f.body(received));
    }
    all
}

/// Replaces the whole body Envoy holds with `new`.
fn replace_body(f: Filter, request: bool, in_hook: bool, new: &[u8]) {
    let (buffered, received) = kinds(request);
    let same = in_hook && f.received_is_buffered(request);
    let held = f.body_size(buffered);
    let chunk = if in_hook && !same {
        f.body_size(received)
    } else {
        0
    };
    let ok = if held > 0 || !in_hook {
        f.drain_body(buffered, held);
        if chunk > 0 {
            f.drain_body(received, chunk);
        }
        f.append_body(buffered, new)
    } else {
        f.drain_body(received, chunk);
        f.append_body(received, new)
    };
    if !ok {
        abi::log_warn("meshmux: replacing a body failed: Envoy no longer holds it");
    }
}

fn edit(f: Filter, map: HeaderMap, ops: Vec<HeaderOp>) -> bool {
    ops.into_iter().all(|op| match op {
        HeaderOp::Set(name, value) => f.set_header(map, &name, Some(&value)),
        HeaderOp::Remove(name) => f.set_header(map, &name, None),
    })
}

/// Writes `reply` over the held response: headers (still paused) and the buffered body.
fn replace_response(f: Filter, reply: &LocalReply, in_hook: bool) {
    edit(
        f,
        HeaderMap::ResponseHeaders,
        policy::exchange::replacement_head(reply),
    );
    replace_body(f, false, in_hook, &reply.body);
}

fn send(f: Filter, reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    f.send_response(reply.status, &headers, &reply.body);
}

/// Shared data for every worker of the process (the wasm filter's `shared_data`): value and
/// a version for compare-and-swap.
/// key → (value, version).
type SharedData = HashMap<String, (Vec<u8>, u32)>;
static SHARED_DATA: Mutex<Option<SharedData>> = Mutex::new(None);
static CALL_SEQ: AtomicU64 = AtomicU64::new(0);

struct NativeHost<'g> {
    gateway: &'g Gateway,
    filter: Filter,
}

impl Host for NativeHost<'_> {
    fn caller(&self) -> Caller {
        // Configurations with auth are refused (root.rs), so every caller is unrestricted.
        Caller::Unrestricted
    }

    fn principal(&self) -> String {
        policy::metrics::ANONYMOUS.to_owned()
    }

    fn revoked(&self) -> Option<LocalReply> {
        let _ = self.gateway;
        None
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        let Ok(map) = SHARED_DATA.lock() else {
            return (None, None);
        };
        match map.as_ref().and_then(|m| m.get(key)) {
            Some((v, version)) => (Some(v.clone()), Some(*version)),
            None => (None, None),
        }
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let Ok(mut map) = SHARED_DATA.lock() else {
            return false;
        };
        let map = map.get_or_insert_with(HashMap::new);
        let current = map.get(key).map(|(_, v)| *v);
        // Like proxy-wasm: a CAS of 0/None writes unconditionally.
        if let Some(cas) = cas.filter(|c| *c != 0)
            && current != Some(cas)
        {
            return false;
        }
        let next = current.unwrap_or(0).wrapping_add(1).max(1);
        map.insert(key.to_owned(), (value.to_vec(), next));
        true
    }

    fn dispatch(&mut self, call: &SideCall) -> Result<u32, String> {
        let id = self
            .filter
            .callout(&call.cluster, &call.headers, &call.body, call.timeout_ms)?;
        u32::try_from(id).map_err(|_| "side-call ids ran out".to_owned())
    }

    fn next_call_id(&mut self) -> String {
        // One process, one counter: ids never repeat across workers.
        let seq = CALL_SEQ.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        policy::exchange::ids::call(self.filter.worker_index(), seq)
    }
}
