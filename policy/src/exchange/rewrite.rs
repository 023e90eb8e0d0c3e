//! Rewriting a forwarded call's answer on its way back, chunk by chunk, so that it is the
//! caller's again: the JSON-RPC id the gateway gave the call inside the shared backend session
//! becomes the caller's own id, a namespaced progress token becomes the caller's token, the
//! ids of requests the backend sends the caller (elicitation, sampling, roots) are namespaced
//! with the env (so the caller's answer can be routed back), and a 2026-07-28 caller's result
//! gains `resultType`.
//!
//! An `application/json` answer is one message: [`JsonRewrite`] edits its top-level `id` and
//! `result` in a single pass over the bytes, holding nothing back. An SSE answer is a series
//! of events, each one message: [`SseRewrite`] holds one event at a time (bounded by
//! [`MAX_EVENT_BYTES`]), edits it as a JSON value and writes it out.

use serde_json::{Map, Value};

use super::ids;
use crate::gateway::ResultEdit;

/// What to change in the messages of one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Edits {
    /// The env the call went to (server request ids are namespaced with it).
    pub env: String,
    /// The caller (`ids::caller`): only it may answer the server requests it is sent.
    pub bind: String,
    /// The caller's own id, restored on the response.
    pub original_id: Value,
    /// The id the call carried in the backend session (`None`: forwarded unchanged).
    pub forwarded_id: Option<String>,
    /// (namespaced, original) progress token.
    pub progress: Option<(String, Value)>,
    /// The caller speaks 2026-07-28: results need `resultType`.
    pub result_type: bool,
    /// The caller can be sent server requests on this stream (initialize era); otherwise the
    /// gateway answers them for it with an error.
    pub relay_server_requests: bool,
    /// A 2026-07-28 caller's declared `clientCapabilities` (`None` in the initialize era).
    pub capabilities: Option<Map<String, Value>>,
    /// A 2026-07-28 caller's `_meta` log level: log notifications below it (all, without
    /// one) are not for this caller.
    pub log_level: Option<String>,
    /// What the result needs besides `resultType` (a `resources/read`'s URIs, caching
    /// hints): a JSON answer is then held whole (up to [`MAX_EVENT_BYTES`]) and edited as a
    /// value.
    pub result: ResultEdit,
}

/// A server request the caller cannot take: the gateway answers it for the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub id: Value,
    pub method: String,
    /// The client capability the request needs that the caller did not declare.
    pub missing: Option<String>,
}

/// Largest SSE event the gateway holds while rewriting it.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Either framing, picked from the answer's content type.
#[derive(Debug)]
pub enum Rewrite {
    Json(JsonRewrite),
    /// A JSON answer whose result is edited as a value: held until it ends.
    Whole(Box<WholeJson>),
    Sse(Box<SseRewrite>),
}

impl Rewrite {
    pub fn new(edits: Edits, sse: bool) -> Self {
        if sse {
            Rewrite::Sse(Box::new(SseRewrite::new(edits)))
        } else if !edits.result.is_empty() {
            Rewrite::Whole(Box::new(WholeJson {
                held: Vec::new(),
                edits,
            }))
        } else {
            Rewrite::Json(JsonRewrite::new(edits))
        }
    }

    /// Rewrites the next chunk; `end` flushes what is held. Returns the bytes to send on and
    /// the server requests to refuse.
    pub fn feed(&mut self, chunk: &[u8], end: bool) -> (Vec<u8>, Vec<Refused>) {
        match self {
            Rewrite::Json(j) => (j.feed(chunk), Vec::new()),
            Rewrite::Whole(w) => match w.feed(chunk, end) {
                Ok(out) => (out, Vec::new()),
                Err(mut streaming) => {
                    // Too big to hold: the rest streams with only the id restored.
                    let out = streaming.feed(&std::mem::take(&mut w.held));
                    *self = Rewrite::Json(streaming);
                    (out, Vec::new())
                }
            },
            Rewrite::Sse(s) => s.feed(chunk, end),
        }
    }
}

/// A JSON answer held whole, then edited as a value (like one SSE event).
#[derive(Debug)]
pub struct WholeJson {
    held: Vec<u8>,
    edits: Edits,
}

impl WholeJson {
    /// The edited answer once it ended (nothing before); `Err` with the streaming rewriter
    /// to hand the held bytes and the rest to when the answer is larger than
    /// [`MAX_EVENT_BYTES`].
    fn feed(&mut self, chunk: &[u8], end: bool) -> Result<Vec<u8>, JsonRewrite> {
        self.held.extend_from_slice(chunk);
        if self.held.len() > MAX_EVENT_BYTES {
            return Err(JsonRewrite::new(self.edits.clone()));
        }
        if !end {
            return Ok(Vec::new());
        }
        let held = std::mem::take(&mut self.held);
        match serde_json::from_slice::<Value>(&held) {
            Ok(mut message) => {
                edit_message(&self.edits, &mut message);
                Ok(serde_json::to_vec(&message).unwrap_or(held))
            }
            // Not JSON after all: the id cannot be found either; the caller gets it as sent.
            Err(_) => Ok(held),
        }
    }
}

// ---------------------------------------------------------------------------------------
// application/json: one pass over the bytes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Result,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Not skipping.
    No,
    /// Before the replaced value (whitespace).
    Start,
    /// Inside a replaced string value.
    Str { escape: bool },
    /// Inside a replaced number / literal.
    Scalar,
    /// Inside a replaced object or array (a backend's id should be neither, but it must
    /// still go whole): its nesting depth, and whether a string is open.
    Nested {
        depth: u32,
        string: bool,
        escape: bool,
    },
}

/// Bytes of a depth-1 key kept while it is read: enough for `result` written with escapes.
const KEY_MAX: usize = 48;

/// Streams one JSON-RPC response, replacing its top-level `id` value and opening its
/// top-level `result` object with `"resultType":"complete"` when asked.
#[derive(Debug)]
pub struct JsonRewrite {
    id: Vec<u8>,
    result_type: bool,
    depth: u32,
    in_string: bool,
    escape: bool,
    /// At depth 1, the next string is a key.
    expect_key: bool,
    /// The key string being read at depth 1 (bounded).
    key: Option<Vec<u8>>,
    last_key: Option<Key>,
    skip: Skip,
    /// `"resultType":"complete"` was written; a comma follows unless the object closes.
    pending_comma: bool,
}

impl JsonRewrite {
    pub fn new(edits: Edits) -> Self {
        JsonRewrite {
            id: serde_json::to_vec(&edits.original_id).unwrap_or_else(|_| b"null".to_vec()),
            result_type: edits.result_type,
            depth: 0,
            in_string: false,
            escape: false,
            expect_key: false,
            key: None,
            last_key: None,
            skip: Skip::No,
            pending_comma: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + self.id.len() + 32);
        for &b in chunk {
            self.byte(b, &mut out);
        }
        out
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.skip {
            Skip::No => {}
            Skip::Start if b.is_ascii_whitespace() => return,
            Skip::Start if b == b'"' => {
                self.skip = Skip::Str { escape: false };
                return;
            }
            Skip::Start if b == b'{' || b == b'[' => {
                self.skip = Skip::Nested {
                    depth: 1,
                    string: false,
                    escape: false,
                };
                return;
            }
            Skip::Nested {
                depth,
                string,
                escape,
            } => {
                self.skip = match (string, escape, b) {
                    (true, true, _) => Skip::Nested {
                        depth,
                        string,
                        escape: false,
                    },
                    (true, false, b'\\') => Skip::Nested {
                        depth,
                        string,
                        escape: true,
                    },
                    (true, false, b'"') | (false, _, b'"') => Skip::Nested {
                        depth,
                        string: !string,
                        escape: false,
                    },
                    (false, _, b'{' | b'[') => Skip::Nested {
                        depth: depth.saturating_add(1),
                        string,
                        escape,
                    },
                    (false, _, b'}' | b']') if depth <= 1 => Skip::No,
                    (false, _, b'}' | b']') => Skip::Nested {
                        depth: depth - 1,
                        string,
                        escape,
                    },
                    _ => self.skip,
                };
                return;
            }
            Skip::Start | Skip::Scalar => {
                if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                    self.skip = Skip::No;
                } else {
                    self.skip = Skip::Scalar;
                    return;
                }
            }
            Skip::Str { escape } => {
                self.skip = match (escape, b) {
                    (true, _) => Skip::Str { escape: false },
                    (false, b'\\') => Skip::Str { escape: true },
                    (false, b'"') => Skip::No,
                    _ => Skip::Str { escape: false },
                };
                return;
            }
        }
        if self.in_string {
            out.push(b);
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
                if let Some(k) = self.key.take() {
                    self.last_key = Some(key_kind(&k));
                }
                return;
            }
            if let Some(k) = &mut self.key {
                if k.len() < KEY_MAX {
                    k.push(b);
                } else {
                    // Longer than any key we look for.
                    k.clear();
                    k.extend_from_slice(b"\0long");
                }
            }
            return;
        }
        if self.pending_comma && !b.is_ascii_whitespace() {
            self.pending_comma = false;
            if b != b'}' {
                out.push(b',');
            }
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 && self.expect_key {
                    self.key = Some(Vec::new());
                    self.expect_key = false;
                }
                out.push(b);
            }
            b'{' | b'[' => {
                self.depth = self.depth.saturating_add(1);
                out.push(b);
                if self.depth == 1 && b == b'{' {
                    self.expect_key = true;
                } else if self.depth == 2
                    && b == b'{'
                    && self.result_type
                    && self.last_key == Some(Key::Result)
                {
                    out.extend_from_slice(br#""resultType":"complete""#);
                    self.pending_comma = true;
                }
                if self.depth == 2 {
                    self.last_key = None;
                }
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                out.push(b);
            }
            b':' if self.depth == 1 => {
                out.push(b);
                if self.last_key == Some(Key::Id) {
                    out.extend_from_slice(&self.id);
                    self.skip = Skip::Start;
                    self.last_key = None;
                }
            }
            b',' if self.depth == 1 => {
                out.push(b);
                self.expect_key = true;
                self.last_key = None;
            }
            _ => out.push(b),
        }
    }
}

/// Which key the raw bytes between a depth-1 key's quotes name: one written with escapes
/// (`"i\u0064"`) is the same key to every JSON parser, so it is decoded first.
fn key_kind(raw: &[u8]) -> Key {
    let decoded;
    let key = if raw.contains(&b'\\') {
        let mut quoted = Vec::with_capacity(raw.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(raw);
        quoted.push(b'"');
        match serde_json::from_slice::<String>(&quoted) {
            Ok(k) => {
                decoded = k;
                decoded.as_bytes()
            }
            Err(_) => return Key::Other,
        }
    } else {
        raw
    };
    match key {
        b"id" => Key::Id,
        b"result" => Key::Result,
        _ => Key::Other,
    }
}

// ---------------------------------------------------------------------------------------
// text/event-stream: one event at a time.

#[derive(Debug)]
pub struct SseRewrite {
    edits: Edits,
    /// The incomplete line at the end of the last chunk.
    line: Vec<u8>,
    /// The lines of the event being read (without their line ends).
    event: Vec<Vec<u8>>,
    held: usize,
    /// An event outgrew [`MAX_EVENT_BYTES`]: an error was written, the rest is dropped.
    overflowed: bool,
    /// The last line ended with CR: an LF right after it belongs to that line end.
    after_cr: bool,
    /// No line has ended yet (a byte-order mark at the start of the stream is dropped, as
    /// clients drop it).
    first_line: bool,
}

impl SseRewrite {
    pub fn new(edits: Edits) -> Self {
        SseRewrite {
            edits,
            line: Vec::new(),
            event: Vec::new(),
            held: 0,
            overflowed: false,
            after_cr: false,
            first_line: true,
        }
    }

    pub fn feed(&mut self, chunk: &[u8], end: bool) -> (Vec<u8>, Vec<Refused>) {
        let mut out = Vec::with_capacity(chunk.len() + 64);
        let mut refused = Vec::new();
        if self.overflowed {
            return (out, refused);
        }
        for &b in chunk {
            // A line ends at CR, LF or CRLF, as the clients' SSE parsers end it.
            let after_cr = std::mem::take(&mut self.after_cr);
            if b == b'\n' && after_cr {
                continue;
            }
            if b == b'\n' || b == b'\r' {
                self.after_cr = b == b'\r';
                let mut line = std::mem::take(&mut self.line);
                if std::mem::take(&mut self.first_line) && line.starts_with(BOM) {
                    line.drain(..BOM.len());
                }
                if line.is_empty() {
                    self.flush_event(&mut out, &mut refused);
                } else {
                    self.held = self.held.saturating_add(line.len());
                    self.event.push(line);
                }
            } else {
                self.line.push(b);
            }
            if self.held.saturating_add(self.line.len()) > MAX_EVENT_BYTES {
                self.overflow(&mut out);
                return (out, refused);
            }
        }
        if end {
            if !self.line.is_empty() {
                let mut line = std::mem::take(&mut self.line);
                if std::mem::take(&mut self.first_line) && line.starts_with(BOM) {
                    line.drain(..BOM.len());
                }
                self.event.push(line);
            }
            self.flush_event(&mut out, &mut refused);
        }
        (out, refused)
    }

    fn overflow(&mut self, out: &mut Vec<u8>) {
        self.overflowed = true;
        self.event.clear();
        self.line.clear();
        let error = serde_json::json!({
            "jsonrpc": "2.0",
            "id": self.edits.original_id,
            "error": {
                "code": crate::rpc::code::INTERNAL_ERROR,
                "message": format!(
                    "Environment `{}` sent an event larger than the gateway's limit of {MAX_EVENT_BYTES} bytes",
                    self.edits.env
                ),
            },
        });
        write_event(out, &[], &error);
    }

    fn flush_event(&mut self, out: &mut Vec<u8>, refused: &mut Vec<Refused>) {
        let lines = std::mem::take(&mut self.event);
        self.held = 0;
        if lines.is_empty() {
            return;
        }
        let mut data: Vec<u8> = Vec::new();
        let mut others: Vec<&[u8]> = Vec::new();
        for line in &lines {
            if let Some(rest) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
            } else {
                others.push(line);
            }
        }
        let parsed = (!data.is_empty())
            .then(|| serde_json::from_slice::<Value>(&data).ok())
            .flatten();
        let Some(mut message) = parsed else {
            // Comments, keep-alives and non-JSON data pass as they came.
            for line in &lines {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            out.push(b'\n');
            return;
        };
        match edit_message(&self.edits, &mut message) {
            Edited::Keep => write_event(out, &others, &message),
            Edited::Drop(r) => refused.extend(r),
        }
    }
}

/// UTF-8 byte-order mark.
const BOM: &[u8] = b"\xef\xbb\xbf";

fn write_event(out: &mut Vec<u8>, others: &[&[u8]], message: &Value) {
    for line in others {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&serde_json::to_vec(message).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
}

enum Edited {
    Keep,
    /// Not for this caller: a server request it cannot take (answered for it), or a log line
    /// it did not ask for.
    Drop(Option<Refused>),
}

/// The client capability a server request needs.
fn needed_capability(method: &str) -> Option<&'static str> {
    match method {
        "elicitation/create" => Some("elicitation"),
        "sampling/createMessage" => Some("sampling"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// MCP's log levels (RFC 5424's), least severe first.
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Log notifications only at or above the caller's level: a 2026-07-28 request's `_meta`
/// level (none: no log notifications at all), or a legacy caller's `logging/setLevel`.
fn wanted_log(requested: Option<&str>, level: Option<&str>) -> bool {
    const LEVELS: [&str; 8] = LOG_LEVELS;
    let rank = |l: &str| LEVELS.iter().position(|x| *x == l);
    match (requested.and_then(rank), level.and_then(rank)) {
        (Some(min), Some(l)) => l >= min,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Edits one message of the answer stream in place.
fn edit_message(edits: &Edits, message: &mut Value) -> Edited {
    let Some(object) = message.as_object_mut() else {
        return Edited::Keep;
    };
    let method = object
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match (method, object.contains_key("id")) {
        (Some(method), true) => {
            // A request from the backend to the caller.
            let id = object.get("id").cloned().unwrap_or(Value::Null);
            if !edits.relay_server_requests {
                let missing = needed_capability(&method)
                    .filter(|c| {
                        edits
                            .capabilities
                            .as_ref()
                            .is_some_and(|caps| !caps.contains_key(*c))
                    })
                    .map(str::to_owned);
                return Edited::Drop(Some(Refused {
                    id,
                    method,
                    missing,
                }));
            }
            object.insert(
                "id".into(),
                Value::String(ids::server_request(&edits.env, &edits.bind, &id)),
            );
        }
        (Some(method), false) => {
            if method == "notifications/message"
                && (edits.capabilities.is_some() || edits.log_level.is_some())
            {
                let level = object
                    .get("params")
                    .and_then(|p| p.get("level"))
                    .and_then(Value::as_str);
                if !wanted_log(edits.log_level.as_deref(), level) {
                    return Edited::Drop(None);
                }
            }
            let params = object.get_mut("params").and_then(Value::as_object_mut);
            if let Some(params) = params {
                edit_notification(edits, &method, params);
            }
        }
        (None, _) => {
            object.insert("id".into(), edits.original_id.clone());
            if let Some(result) = object.get_mut("result").and_then(Value::as_object_mut) {
                if edits.result_type && !result.contains_key("resultType") {
                    result.insert("resultType".into(), Value::String("complete".into()));
                }
                edit_result(&edits.result, result);
            }
        }
    }
    Edited::Keep
}

/// A result's URIs as the caller knows them, and the caching hints a 2026-07-28 caller's
/// cacheable result must carry (the initialize-era backend sends none: nothing is promised).
fn edit_result(edit: &ResultEdit, result: &mut Map<String, Value>) {
    if let Some(backend) = &edit.wrap_uris {
        let contents = result.get_mut("contents").and_then(Value::as_array_mut);
        for content in contents.into_iter().flatten() {
            if let Some(uri) = content.get_mut("uri")
                && let Some(original) = uri.as_str()
            {
                *uri = Value::String(crate::offerings::wrap_uri(backend, original));
            }
        }
    }
    if edit.caching {
        result.entry("ttlMs").or_insert(Value::from(0));
        result
            .entry("cacheScope")
            .or_insert(Value::String("private".into()));
    }
}

fn edit_notification(edits: &Edits, method: &str, params: &mut Map<String, Value>) {
    match method {
        "notifications/progress" => {
            if let Some((namespaced, original)) = &edits.progress
                && params.get("progressToken").and_then(Value::as_str) == Some(namespaced)
            {
                params.insert("progressToken".into(), original.clone());
            }
        }
        "notifications/cancelled" => {
            // The backend gave up on one of its own requests to the caller.
            if let Some(id) = params.get("requestId").cloned() {
                params.insert(
                    "requestId".into(),
                    Value::String(ids::server_request(&edits.env, &edits.bind, &id)),
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
