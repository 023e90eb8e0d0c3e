//! The only module that touches Envoy's dynamic-module C ABI (Envoy 1.40.0,
//! `source/extensions/dynamic_modules/abi/abi.h`): our own declarations of the few callbacks
//! and event hooks the filter needs, safe wrappers around them, and the exported hooks.
//!
//! Why `unsafe` is sound here, once for the whole module:
//! - Envoy owns every `*_envoy_ptr`. A filter pointer is valid from `on_http_filter_new` until
//!   `on_http_filter_destroy`, and is only used on the worker thread that called us, inside
//!   a hook (wrappers take a [`Filter`] built by the hook and never store it past the hook).
//! - Buffers Envoy hands out (header values, body chunks, callout answers) stay valid until
//!   the hook returns or we call a setter; every wrapper copies them out at once.
//! - Buffers we pass in point into Rust values that outlive the call.
//! - Module pointers are `Box::into_raw` of our own types, turned back into a `Box` exactly
//!   once, in the matching `*_destroy` hook.
//!
//! **Invariant:** no panic crosses into Envoy: every exported hook runs its body under
//! `catch_unwind` (the `.so` is built with `panic = "unwind"`, profile `native`); a panic fails
//! the request closed with a 500 and poisons that stream only.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use crate::root::Root;
use crate::stream::Stream;

/// `ENVOY_DYNAMIC_MODULES_ABI_VERSION` of Envoy 1.40.0. Envoy only warns on a mismatch.
const ABI_VERSION: &[u8] = b"v0.2.0\0";

// ----------------------------------------------------------------------------- types

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const c_char,
    length: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    ptr: *const c_char,
    length: usize,
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> Self {
        ModuleBuffer {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }
    fn null() -> Self {
        ModuleBuffer {
            ptr: ptr::null(),
            length: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

/// `envoy_dynamic_module_type_http_header_type`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMap {
    RequestHeaders = 0,
    ResponseHeaders = 2,
}

/// `envoy_dynamic_module_type_http_body_type`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    ReceivedRequest = 0,
    BufferedRequest = 1,
    ReceivedResponse = 2,
    BufferedResponse = 3,
}

#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)] // Envoy sets every level; we only log at some.
enum LogLevel {
    Trace = 0,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
    Off,
}

/// `envoy_dynamic_module_type_http_callout_init_result`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalloutInit {
    Success = 0,
    MissingRequiredHeaders,
    ClusterNotFound,
    DuplicateCalloutId,
    CannotCreateRequest,
}

impl CalloutInit {
    /// Read as a plain integer from Envoy, so an unknown value is not undefined behaviour.
    fn from_raw(raw: u32) -> Self {
        match raw {
            0 => CalloutInit::Success,
            1 => CalloutInit::MissingRequiredHeaders,
            2 => CalloutInit::ClusterNotFound,
            3 => CalloutInit::DuplicateCalloutId,
            _ => CalloutInit::CannotCreateRequest,
        }
    }
}

/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_OK: u32 = 0;

// Status codes returned from the hooks (`FilterHeadersStatus`, `FilterDataStatus`, ...).
const HEADERS_CONTINUE: u32 = 0;
const HEADERS_STOP: u32 = 1;
const DATA_CONTINUE: u32 = 0;
const DATA_STOP_AND_BUFFER: u32 = 1;
const TRAILERS_CONTINUE: u32 = 0;
const TRAILERS_STOP: u32 = 1;

// ------------------------------------------------------------------------- callbacks

unsafe extern "C" {
    fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    fn envoy_dynamic_module_callback_http_get_header(
        filter: *mut c_void,
        map: HeaderMap,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: *mut c_void,
        map: HeaderMap,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: *mut c_void,
        map: HeaderMap,
        result: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: *mut c_void,
        map: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_send_response(
        filter: *mut c_void,
        status: u32,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_get_body_size(filter: *mut c_void, body: Body) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: *mut c_void,
        body: Body,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: *mut c_void,
        body: Body,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_append_body(
        filter: *mut c_void,
        body: Body,
        data: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_drain_body(
        filter: *mut c_void,
        body: Body,
        bytes: usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: *mut c_void,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_response_body(
        filter: *mut c_void,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: *mut c_void,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: *mut c_void,
        callout_id_out: *mut u64,
        cluster: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_get_worker_index(filter: *mut c_void) -> u32;

    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        labels: *mut ModuleBuffer,
        labels_length: usize,
        id_out: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: *mut c_void,
        name: ModuleBuffer,
        labels: *mut ModuleBuffer,
        labels_length: usize,
        id_out: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: *mut c_void,
        name: ModuleBuffer,
        labels: *mut ModuleBuffer,
        labels_length: usize,
        id_out: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: *mut c_void,
        id: usize,
        labels: *mut ModuleBuffer,
        labels_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: *mut c_void,
        id: usize,
        labels: *mut ModuleBuffer,
        labels_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_gauge(
        filter: *mut c_void,
        id: usize,
        labels: *mut ModuleBuffer,
        labels_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_decrement_gauge(
        filter: *mut c_void,
        id: usize,
        labels: *mut ModuleBuffer,
        labels_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: *mut c_void,
        id: usize,
        labels: *mut ModuleBuffer,
        labels_length: usize,
        value: u64,
    ) -> u32;
}

// ------------------------------------------------------------------- safe wrappers

/// Copies an Envoy-owned buffer (valid for the current hook) into a `Vec`.
fn copy(buf: EnvoyBuffer) -> Vec<u8> {
    if buf.ptr.is_null() || buf.length == 0 {
        return Vec::new();
    }
    // SAFETY: Envoy guarantees `ptr` points at `length` readable bytes until the hook returns
    // or a setter runs; we copy them now.
    unsafe { std::slice::from_raw_parts(buf.ptr.cast::<u8>(), buf.length) }.to_vec()
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn module_headers(headers: &[(&str, &str)]) -> Vec<ModuleHeader> {
    headers
        .iter()
        .map(|(k, v)| ModuleHeader {
            key_ptr: k.as_ptr().cast(),
            key_length: k.len(),
            value_ptr: v.as_ptr().cast(),
            value_length: v.len(),
        })
        .collect()
}

fn envoy_headers(headers: *const EnvoyHeader, size: usize) -> Vec<(String, String)> {
    if headers.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: Envoy hands `size` headers valid until the hook returns; copied at once.
    let slice = unsafe { std::slice::from_raw_parts(headers, size) };
    slice
        .iter()
        .map(|h| {
            (
                text(copy(EnvoyBuffer {
                    ptr: h.key_ptr,
                    length: h.key_length,
                })),
                text(copy(EnvoyBuffer {
                    ptr: h.value_ptr,
                    length: h.value_length,
                })),
            )
        })
        .collect()
}

fn envoy_chunks(chunks: *const EnvoyBuffer, count: usize) -> Vec<u8> {
    if chunks.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: as for `envoy_headers`.
    let slice = unsafe { std::slice::from_raw_parts(chunks, count) };
    slice.iter().flat_map(|c| copy(*c)).collect()
}

/// Logs through Envoy (component `dynamic_modules`).
pub fn log_warn(message: &str) {
    log(LogLevel::Warn, message);
}

pub fn log_info(message: &str) {
    log(LogLevel::Info, message);
}

fn log(level: LogLevel, message: &str) {
    // SAFETY: plain value arguments; the message outlives the call.
    unsafe {
        if envoy_dynamic_module_callback_log_enabled(level) {
            envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes()));
        }
    }
}

/// An answer to a side call, as Envoy delivered it.
pub struct CalloutAnswer {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CalloutAnswer {
    fn read(
        result: u32,
        headers: *const EnvoyHeader,
        headers_size: usize,
        chunks: *const EnvoyBuffer,
        chunks_size: usize,
    ) -> Self {
        let headers = envoy_headers(headers, headers_size);
        let status = (result == 0)
            .then(|| {
                headers
                    .iter()
                    .find(|(k, _)| k == ":status")
                    .and_then(|(_, v)| v.trim().parse().ok())
            })
            .flatten();
        CalloutAnswer {
            status,
            headers,
            body: envoy_chunks(chunks, chunks_size),
        }
    }
}

fn callout_error(cluster: &str, init: CalloutInit) -> String {
    match init {
        CalloutInit::ClusterNotFound => format!("the gateway has no cluster `{cluster}`"),
        CalloutInit::CannotCreateRequest => format!(
            "Envoy could not start a request to cluster `{cluster}` (usually: no healthy host, \
             i.e. the backend fails its health checks; see /readyz)"
        ),
        other => format!("Envoy could not start a request to cluster `{cluster}` ({other:?})"),
    }
}

/// One stream's Envoy filter, valid for the duration of the hook that made it.
#[derive(Clone, Copy)]
pub struct Filter(*mut c_void);

impl Filter {
    /// One header value (the first), lossily decoded.
    pub fn header(self, map: HeaderMap, name: &str) -> Option<String> {
        let mut out = EnvoyBuffer {
            ptr: ptr::null(),
            length: 0,
        };
        let mut count = 0usize;
        // SAFETY: valid filter pointer (module docs); `out` and `count` outlive the call.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.0,
                map,
                ModuleBuffer::of(name.as_bytes()),
                &mut out,
                0,
                &mut count,
            )
        };
        (ok && count > 0).then(|| text(copy(out)))
    }

    /// Every header of `map`.
    pub fn headers(self, map: HeaderMap) -> Vec<(String, String)> {
        // SAFETY: valid filter pointer.
        let n = unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.0, map) };
        if n == 0 {
            return Vec::new();
        }
        let mut out = vec![
            EnvoyHeader {
                key_ptr: ptr::null(),
                key_length: 0,
                value_ptr: ptr::null(),
                value_length: 0,
            };
            n
        ];
        // SAFETY: `out` has room for the `n` headers Envoy said it holds.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_headers(self.0, map, out.as_mut_ptr())
        };
        if ok {
            envoy_headers(out.as_ptr(), n)
        } else {
            Vec::new()
        }
    }

    /// Sets (`Some`) or removes (`None`) a header; `false` when Envoy no longer holds the map.
    pub fn set_header(self, map: HeaderMap, name: &str, value: Option<&str>) -> bool {
        let value = value.map_or_else(ModuleBuffer::null, |v| ModuleBuffer::of(v.as_bytes()));
        // SAFETY: valid filter pointer; the buffers outlive the call.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                map,
                ModuleBuffer::of(name.as_bytes()),
                value,
            )
        }
    }

    pub fn send_response(self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut headers = module_headers(headers);
        // SAFETY: valid filter pointer; the header and body buffers outlive the call.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.0,
                u32::from(status),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(b"meshmux"),
            );
        }
    }

    pub fn body_size(self, body: Body) -> usize {
        // SAFETY: valid filter pointer.
        unsafe { envoy_dynamic_module_callback_http_get_body_size(self.0, body) }
    }

    /// The whole of one body buffer.
    pub fn body(self, body: Body) -> Vec<u8> {
        // SAFETY: valid filter pointer.
        let n = unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self.0, body) };
        if n == 0 {
            return Vec::new();
        }
        let mut out = vec![
            EnvoyBuffer {
                ptr: ptr::null(),
                length: 0,
            };
            n
        ];
        // SAFETY: `out` has room for the `n` chunks Envoy said it holds.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_body_chunks(self.0, body, out.as_mut_ptr())
        };
        if ok {
            envoy_chunks(out.as_ptr(), n)
        } else {
            Vec::new()
        }
    }

    pub fn drain_body(self, body: Body, bytes: usize) -> bool {
        // SAFETY: valid filter pointer.
        unsafe { envoy_dynamic_module_callback_http_drain_body(self.0, body, bytes) }
    }

    pub fn append_body(self, body: Body, data: &[u8]) -> bool {
        // SAFETY: valid filter pointer; `data` outlives the call.
        unsafe {
            envoy_dynamic_module_callback_http_append_body(self.0, body, ModuleBuffer::of(data))
        }
    }

    /// Whether the body just received is what an earlier filter buffered (then it is the
    /// whole body, and the buffered body is the same bytes).
    pub fn received_is_buffered(self, request: bool) -> bool {
        // SAFETY: valid filter pointer.
        unsafe {
            if request {
                envoy_dynamic_module_callback_http_received_buffered_request_body(self.0)
            } else {
                envoy_dynamic_module_callback_http_received_buffered_response_body(self.0)
            }
        }
    }

    /// Sets a string filter-state object (routes match on it).
    pub fn set_filter_state(self, key: &str, value: &str) -> bool {
        // SAFETY: valid filter pointer; the buffers outlive the call.
        unsafe {
            envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.0,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        }
    }

    pub fn clear_route_cache(self) {
        // SAFETY: valid filter pointer.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.0) }
    }

    pub fn continue_request(self) {
        // SAFETY: valid filter pointer; called from a hook, never re-entrantly from Envoy.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self.0) }
    }

    pub fn continue_response(self) {
        // SAFETY: as for `continue_request`.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_encoding(self.0) }
    }

    pub fn worker_index(self) -> u32 {
        // SAFETY: valid filter pointer.
        unsafe { envoy_dynamic_module_callback_http_filter_get_worker_index(self.0) }
    }

    /// Starts a side call; the answer comes to this stream's `on_side_call_answer`.
    pub fn callout(
        self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, String> {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut headers = module_headers(&pairs);
        let mut id = 0u64;
        // SAFETY: valid filter pointer; every buffer outlives the call.
        let init = unsafe {
            envoy_dynamic_module_callback_http_filter_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        match CalloutInit::from_raw(init) {
            CalloutInit::Success => Ok(id),
            other => Err(callout_error(cluster, other)),
        }
    }

    fn metric(
        self,
        f: unsafe extern "C" fn(*mut c_void, usize, *mut ModuleBuffer, usize, u64) -> u32,
        id: usize,
        labels: &[&str],
        value: u64,
    ) {
        let mut labels: Vec<ModuleBuffer> = labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        // SAFETY: valid filter pointer; the label buffers outlive the call; `id` was defined
        // on the config that made this filter, with as many labels.
        let r = unsafe { f(self.0, id, labels.as_mut_ptr(), labels.len(), value) };
        if r != METRICS_OK {
            log_warn(&format!("updating metric {id}: result {r}"));
        }
    }

    pub fn add_counter(self, id: usize, labels: &[&str], value: u64) {
        self.metric(
            envoy_dynamic_module_callback_http_filter_increment_counter,
            id,
            labels,
            value,
        );
    }

    pub fn add_gauge(self, id: usize, labels: &[&str], delta: i64) {
        if delta >= 0 {
            self.metric(
                envoy_dynamic_module_callback_http_filter_increment_gauge,
                id,
                labels,
                delta.unsigned_abs(),
            );
        } else {
            self.metric(
                envoy_dynamic_module_callback_http_filter_decrement_gauge,
                id,
                labels,
                delta.unsigned_abs(),
            );
        }
    }

    pub fn record(self, id: usize, labels: &[&str], value: u64) {
        self.metric(
            envoy_dynamic_module_callback_http_filter_record_histogram_value,
            id,
            labels,
            value,
        );
    }
}

/// Envoy's side of a filter configuration, valid on the main thread while the config lives.
#[derive(Clone, Copy)]
pub struct Config(*mut c_void);

/// What a metric counts.
#[derive(Clone, Copy)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl Config {
    /// Defines a metric with labels; its id, or `None` (logged) when Envoy refused it.
    pub fn define(self, kind: MetricKind, name: &str, labels: &[&str]) -> Option<usize> {
        let mut labels: Vec<ModuleBuffer> = labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        let f = match kind {
            MetricKind::Counter => envoy_dynamic_module_callback_http_filter_config_define_counter,
            MetricKind::Gauge => envoy_dynamic_module_callback_http_filter_config_define_gauge,
            MetricKind::Histogram => {
                envoy_dynamic_module_callback_http_filter_config_define_histogram
            }
        };
        let mut id = 0usize;
        // SAFETY: valid config pointer (called from `on_http_filter_config_new`); buffers
        // outlive the call.
        let r = unsafe {
            f(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                labels.as_mut_ptr(),
                labels.len(),
                &mut id,
            )
        };
        if r == METRICS_OK {
            Some(id)
        } else {
            log_warn(&format!("defining metric {name}: result {r}"));
            None
        }
    }

    /// Sets a gauge defined on this configuration to `value` (a main-thread, per-config
    /// value, such as the pinning drift of a new manifest).
    pub fn set_gauge(self, id: usize, labels: &[&str], value: u64) {
        let mut labels: Vec<ModuleBuffer> = labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        // SAFETY: valid config pointer (called from `on_http_filter_config_new`); `id` was
        // defined on it with as many labels; the label buffers outlive the call.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_set_gauge(
                self.0,
                id,
                labels.as_mut_ptr(),
                labels.len(),
                value,
            )
        };
        if r != METRICS_OK {
            log_warn(&format!("setting gauge {id}: result {r}"));
        }
    }
}

// --------------------------------------------------------------------- event hooks

/// Runs `f`, turning a panic into `None` (logged) instead of unwinding into Envoy.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    caught(f)
        .map_err(|msg| log_warn(&format!("meshmux: a panic in {what} was caught: {msg}")))
        .ok()
}

/// Runs `f`; a panic becomes `Err` with its message.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|cause| {
        cause
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| cause.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

/// The stream behind a module pointer.
///
/// # Safety
/// `module` is a pointer `on_http_filter_new` returned and `on_http_filter_destroy` has not
/// yet received; Envoy calls one hook of a stream at a time, on its worker thread.
unsafe fn stream<'a>(module: *const c_void) -> Option<&'a mut Stream> {
    // SAFETY: per the function's contract.
    unsafe { module.cast::<Stream>().cast_mut().as_mut() }
}

/// # Safety
/// `module` is a pointer `on_http_filter_config_new` returned, not yet destroyed.
unsafe fn root<'a>(module: *const c_void) -> Option<&'a Root> {
    // SAFETY: per the function's contract.
    unsafe { module.cast::<Root>().as_ref() }
}

/// Runs a stream hook under `guarded`; a panic poisons the stream and fails it closed.
fn on_stream<T>(
    envoy: *mut c_void,
    module: *const c_void,
    what: &str,
    poisoned: T,
    f: impl FnOnce(&mut Stream, Filter) -> T,
) -> T {
    // SAFETY: Envoy passes the module pointer of this stream (see `stream`).
    let Some(s) = (unsafe { stream(module) }) else {
        return poisoned;
    };
    if s.poisoned() {
        return poisoned;
    }
    let filter = Filter(envoy);
    match guarded(what, || f(s, filter)) {
        Some(v) => v,
        None => {
            s.poison(filter);
            poisoned
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    if cfg!(panic = "abort") {
        // Built with the workspace's release profile: a panic would abort Envoy. Refuse to
        // load (Envoy then rejects the configuration) rather than run without the guard.
        log(
            LogLevel::Error,
            "meshmux: libmeshmux_native.so was built with panic = \"abort\"; build it with \
             `cargo xtask build-native` (cargo profile `native`)",
        );
        return ptr::null();
    }
    ABI_VERSION.as_ptr().cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let made = guarded("on_http_filter_config_new", || {
        Root::new(Config(config_envoy), &copy(name), &copy(config))
    });
    match made.flatten() {
        Some(root) => Box::into_raw(Box::new(root)).cast_const().cast(),
        // Envoy rejects the configuration and keeps the previous one.
        None => ptr::null(),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(module: *const c_void) {
    if module.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::into_raw` in `config_new`; Envoy destroys it once.
    let root = unsafe { Box::from_raw(module.cast::<Root>().cast_mut()) };
    guarded("on_http_filter_config_destroy", move || drop(root));
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy: *mut c_void,
    module: *const c_void,
    event: u64,
) {
    // SAFETY: a live config pointer (see `root`).
    if let Some(root) = unsafe { root(module) } {
        guarded("on_http_filter_config_scheduled", || {
            root.on_scheduled(Config(config_envoy), event);
        });
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: *mut c_void,
    module: *const c_void,
    callout: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) {
    // SAFETY: a live config pointer (see `root`).
    if let Some(root) = unsafe { root(module) } {
        guarded("on_http_filter_config_http_callout_done", || {
            let answer = CalloutAnswer::read(result, headers, headers_size, chunks, chunks_size);
            root.on_callout_answer(callout, &answer);
        });
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _envoy: *mut c_void,
) -> *const c_void {
    // SAFETY: a live config pointer (see `root`).
    let Some(root) = (unsafe { root(config) }) else {
        return ptr::null();
    };
    match guarded("on_http_filter_new", || Stream::new(root)) {
        Some(s) => Box::into_raw(Box::new(s)).cast_const().cast(),
        // Envoy closes the stream.
        None => ptr::null(),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: *const c_void) {
    if module.is_null() {
        return;
    }
    // SAFETY: from `Box::into_raw` in `filter_new`; Envoy destroys it once.
    let s = unsafe { Box::from_raw(module.cast::<Stream>().cast_mut()) };
    guarded("on_http_filter_destroy", move || drop(s));
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: *mut c_void,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    on_stream(envoy, module, "request headers", HEADERS_STOP, |s, f| {
        if s.on_request_headers(f, end_of_stream) {
            HEADERS_CONTINUE
        } else {
            HEADERS_STOP
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: *mut c_void,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    on_stream(
        envoy,
        module,
        "request body",
        DATA_STOP_AND_BUFFER,
        |s, f| {
            if s.on_request_body(f, end_of_stream) {
                DATA_CONTINUE
            } else {
                DATA_STOP_AND_BUFFER
            }
        },
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    envoy: *mut c_void,
    module: *const c_void,
) -> u32 {
    on_stream(envoy, module, "request trailers", TRAILERS_STOP, |s, f| {
        if s.on_request_trailers(f) {
            TRAILERS_CONTINUE
        } else {
            TRAILERS_STOP
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: *mut c_void,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    on_stream(envoy, module, "response headers", HEADERS_STOP, |s, f| {
        if s.on_response_headers(f, end_of_stream) {
            HEADERS_CONTINUE
        } else {
            HEADERS_STOP
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    envoy: *mut c_void,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    on_stream(
        envoy,
        module,
        "response body",
        DATA_STOP_AND_BUFFER,
        |s, f| {
            if s.on_response_body(f, end_of_stream) {
                DATA_CONTINUE
            } else {
                DATA_STOP_AND_BUFFER
            }
        },
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: *mut c_void,
    _module: *const c_void,
) -> u32 {
    TRAILERS_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    envoy: *mut c_void,
    module: *const c_void,
) {
    on_stream(envoy, module, "stream end", (), |s, f| s.on_end(f));
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy: *mut c_void,
    module: *const c_void,
    callout: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) {
    on_stream(envoy, module, "side call answer", (), |s, f| {
        let answer = CalloutAnswer::read(result, headers, headers_size, chunks, chunks_size);
        s.on_side_call_answer(f, callout, &answer);
    });
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _envoy: *mut c_void,
    _module: *const c_void,
    _status: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> u32 {
    0 // Continue: send the local reply.
}

// Hooks this filter has no use for. Envoy 1.40 resolves them when it loads the module, so
// they exist and do nothing.

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    ptr::null() // No per-route configuration: refused.
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    _config: *const c_void,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _envoy: *mut c_void,
    _module: *const c_void,
    _event: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: *mut c_void,
    _module: *const c_void,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: *mut c_void,
    _module: *const c_void,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _headers: *const EnvoyHeader,
    _size: usize,
    _end: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _data: *const EnvoyBuffer,
    _count: usize,
    _end: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _trailers: *const EnvoyHeader,
    _size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _reason: u32,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _headers: *const EnvoyHeader,
    _size: usize,
    _end: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _data: *const EnvoyBuffer,
    _count: usize,
    _end: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _trailers: *const EnvoyHeader,
    _size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _reason: u32,
) {
}
