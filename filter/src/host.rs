//! Panic-free host calls. The SDK's trait methods unwrap, and even its `hostcalls` panic on
//! any status they do not expect; a panic kills the VM for every later request. So:
//! header maps are read with `get_map_bytes` (always `Ok`, empty when the map is gone) and
//! written only after checking that the map is still there; bodies are replaced only where
//! the caller knows Envoy holds them; every failure is logged and reported, never unwrapped.

use std::time::Duration;

use log::warn;
use policy::reply::LocalReply;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status};

/// A header map as (lower-case name, value), values decoded lossily.
pub type Headers = Vec<(String, String)>;

pub fn headers(map: MapType) -> Headers {
    hostcalls::get_map_bytes(map)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, utf8_lossy(v)))
        .collect()
}

/// A header value as text, without a copy when it is valid UTF-8 (nearly always).
fn utf8_lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One response header. Call it only from the response-headers callback, where Envoy holds
/// the map (elsewhere the host answers `BadArgument`, which the SDK turns into a panic).
pub fn response_header(name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
        .ok()
        .flatten()
        .map(utf8_lossy)
}

/// One request header. Call it only from the request-headers callback (see
/// [`response_header`]).
pub fn request_header(name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
        .map(utf8_lossy)
}

/// The first value of `name` (lower-case).
pub fn find<'h>(headers: &'h Headers, name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Edits to one header map, applied only if Envoy still holds the map: writing to a map it
/// has already passed on is `BadArgument`, which the SDK turns into a panic.
pub struct Edit {
    map: MapType,
    ops: Vec<(String, Option<String>)>,
}

impl Edit {
    pub fn new(map: MapType) -> Self {
        Edit { map, ops: vec![] }
    }

    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.ops.push((name.to_owned(), Some(value.into())));
        self
    }

    pub fn remove(mut self, name: &str) -> Self {
        self.ops.push((name.to_owned(), None));
        self
    }

    /// Applies the edits; `false` (and a log line) when the map is no longer writable.
    pub fn apply(self) -> bool {
        // Every request map has `:method`, every response map `:status`: a failed or empty
        // read of that one header (not the whole map: this runs on every forwarded call)
        // means Envoy no longer holds the map for this filter.
        let probe = match self.map {
            MapType::HttpResponseHeaders => ":status",
            _ => ":method",
        };
        if !matches!(hostcalls::get_map_value_bytes(self.map, probe), Ok(Some(_))) {
            warn!(
                "header map {:?} is no longer writable; edits dropped",
                self.map
            );
            return false;
        }
        for (name, value) in &self.ops {
            let done = match value {
                Some(v) => hostcalls::set_map_value(self.map, name, Some(v)),
                None => hostcalls::remove_map_value(self.map, name),
            };
            if let Err(s) = done {
                warn!("editing header {name}: {s:?}");
                return false;
            }
        }
        true
    }
}

/// The first `size` bytes of a body buffer (empty when Envoy holds none).
pub fn body(buffer: BufferType, size: usize) -> Vec<u8> {
    match hostcalls::get_buffer(buffer, 0, size) {
        Ok(b) => b.unwrap_or_default(),
        Err(s) => {
            warn!("reading {buffer:?}: {s:?}");
            Vec::new()
        }
    }
}

/// Replaces a body buffer. Call it only where Envoy holds the body for this filter: inside the
/// body callback, or after this filter returned `Pause` from one (Envoy then buffers it).
pub fn replace_body(buffer: BufferType, old_size: usize, body: &[u8]) {
    if let Err(s) = hostcalls::set_buffer(buffer, 0, old_size, body) {
        warn!("replacing {buffer:?}: {s:?}");
    }
}

/// Sends a local reply. In Envoy 1.40 the host call always succeeds (the reply is deferred
/// until the filter callback returns); call it at most once per stream.
pub fn send(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let body = (!reply.body.is_empty()).then_some(reply.body.as_slice());
    if let Err(s) = hostcalls::send_http_response(u32::from(reply.status), headers, body) {
        warn!("sending a local reply: {s:?}");
    }
}

pub fn set_filter_state(name: &str, value: &str) -> bool {
    match hostcalls::set_property(vec![name], Some(value.as_bytes())) {
        Ok(()) => true,
        Err(s) => {
            warn!("setting filter state {name}: {s:?}");
            false
        }
    }
}

/// Since Envoy 1.33 the host does not clear the route cache for ABI > 0.2.1 modules, and it
/// never does for a filter-state change: ask for it explicitly.
pub fn clear_route_cache() {
    if let Err(s) = hostcalls::call_foreign_function("clear_route_cache", None) {
        warn!("clear_route_cache: {s:?}");
    }
}

pub fn property(path: Vec<&str>) -> Option<Vec<u8>> {
    match hostcalls::get_property(path) {
        Ok(v) => v,
        Err(s) => {
            warn!("reading a property: {s:?}");
            None
        }
    }
}

pub fn resume_request() {
    if let Err(s) = hostcalls::resume_http_request() {
        warn!("resuming the request: {s:?}");
    }
}

pub fn resume_response() {
    if let Err(s) = hostcalls::resume_http_response() {
        warn!("resuming the response: {s:?}");
    }
}

/// Starts a side call; its answer comes to `on_http_call_response` of the calling context.
pub fn dispatch(
    cluster: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout_ms: u64,
) -> Result<u32, String> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    hostcalls::dispatch_http_call(
        cluster,
        headers,
        Some(body),
        vec![],
        Duration::from_millis(timeout_ms),
    )
    .map_err(|s| match s {
        Status::BadArgument => format!("the gateway has no cluster `{cluster}`"),
        // Envoy fails the call at once when the request cannot start, most often because the
        // cluster has no healthy host.
        Status::InternalFailure => format!(
            "Envoy could not start a request to cluster `{cluster}` (usually: no healthy host, \
             i.e. the backend fails its health checks; see /readyz)"
        ),
        other => format!("Envoy could not start a request to cluster `{cluster}` ({other:?})"),
    })
}

/// A side call's answer: status (none when the call failed without one), headers, body.
pub struct CallAnswer {
    pub status: Option<u16>,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl CallAnswer {
    /// Reads the answer; only valid inside `on_http_call_response`.
    pub fn read(body_size: usize) -> Self {
        let headers = headers(MapType::HttpCallResponseHeaders);
        let status = find(&headers, ":status").and_then(|s| s.trim().parse().ok());
        let content = if body_size == 0 {
            Vec::new()
        } else {
            body(BufferType::HttpCallResponseBody, body_size)
        };
        CallAnswer {
            status,
            headers,
            body: content,
        }
    }

    pub fn session_answer(&self) -> policy::session::Answer<'_> {
        policy::session::Answer {
            status: self.status,
            content_type: find(&self.headers, "content-type"),
            session_id: find(&self.headers, "mcp-session-id"),
            body: &self.body,
        }
    }
}

pub mod shared {
    //! Shared data: one store per VM id, read and written by every worker thread.

    use super::*;

    pub fn get(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or_else(|s| {
            warn!("reading shared data {key}: {s:?}");
            (None, None)
        })
    }

    /// Writes with compare-and-swap; `false` when another worker wrote first.
    pub fn set(key: &str, value: &[u8], cas: Option<u32>) -> bool {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => true,
            Err(Status::CasMismatch) => false,
            Err(s) => {
                warn!("writing shared data {key}: {s:?}");
                false
            }
        }
    }
}
