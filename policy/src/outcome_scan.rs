//! Reads a forwarded `tools/call` answer as it streams past, chunk by chunk, and says whether
//! it was a success, a JSON-RPC error or a tool error, without buffering it: a byte-level state
//! machine whose whole state survives chunk boundaries (a key cut in two is carried over in an
//! eight-byte buffer), for `application/json` bodies and for SSE streams alike.
//!
//! The rule: only the JSON-RPC *response* counts, i.e. a top-level object with a `result` or
//! an `error` member (SSE notifications and server requests before it are skipped).
//! - a top-level `"error"` whose value is an object → [`Verdict::JsonRpcError`];
//! - a top-level `"result"` object whose own `"isError"` member is `true` →
//!   [`Verdict::ToolError`];
//! - a top-level `"result"` otherwise → [`Verdict::Success`], decided when it closes.
//!
//! Strings are skipped, so `"isError": true` inside a tool's text output never counts, and
//! neither does an `isError` key nested deeper than the result object itself (in
//! `structuredContent`, say). Keys written with escapes (`"is\u0045rror"`) are not
//! recognized. The first verdict is final; later bytes are ignored.

/// What the answer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    JsonRpcError,
    ToolError,
}

/// A scanner for one response body.
#[derive(Debug, Clone)]
pub struct OutcomeScan {
    json: Json,
    /// `None`: the body is one JSON document; `Some`: SSE framing around JSON `data`.
    sse: Option<Sse>,
    /// The framing is not known yet: the first byte that is not whitespace decides.
    sniffing: bool,
}

impl OutcomeScan {
    /// A scanner for a body of this content type; `None` when it is neither JSON nor SSE (such
    /// an answer is no MCP answer at all).
    pub fn for_content_type(content_type: Option<&str>) -> Option<Self> {
        let media = content_type?.split(';').next()?.trim();
        if media.eq_ignore_ascii_case("application/json") {
            Some(Self::json())
        } else if media.eq_ignore_ascii_case("text/event-stream") {
            Some(Self::sse())
        } else {
            None
        }
    }

    pub fn json() -> Self {
        OutcomeScan {
            json: Json::default(),
            sse: None,
            sniffing: false,
        }
    }

    pub fn sse() -> Self {
        OutcomeScan {
            json: Json::default(),
            sse: Some(Sse::default()),
            sniffing: false,
        }
    }

    /// A scanner that tells the framing from the body itself, which saves the filter a
    /// header lookup: a JSON-RPC answer starts with `{` (or `[`), an SSE stream with a field
    /// name, a comment (`:`) or a blank line. Leading whitespace is skipped either way.
    pub fn sniffing() -> Self {
        OutcomeScan {
            sniffing: true,
            ..Self::json()
        }
    }

    /// The verdict, once the answer has said enough.
    pub fn verdict(&self) -> Option<Verdict> {
        self.json.verdict
    }

    /// Reads the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.json.verdict.is_some() {
            return;
        }
        let mut chunk = chunk;
        if self.sniffing {
            let Some(start) = chunk.iter().position(|b| !b.is_ascii_whitespace()) else {
                return;
            };
            chunk = chunk.get(start..).unwrap_or_default();
            self.sniffing = false;
            if !matches!(chunk.first(), Some(b'{' | b'[')) {
                self.sse = Some(Sse::default());
            }
        }
        match &mut self.sse {
            None => self.json.feed(chunk),
            Some(sse) => sse.feed(chunk, &mut self.json),
        }
    }
}

/// The key just read, waiting for its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Key {
    #[default]
    None,
    Result,
    Error,
    IsError,
    Other,
}

const KEY_MAX: usize = 8;

#[derive(Debug, Clone, Default)]
struct Json {
    /// Nesting depth: 1 inside the top-level object.
    depth: u32,
    /// Bit `d - 1` set: the container at depth `d` is an array (depths beyond 64 are never
    /// looked at, only counted).
    arrays: u64,
    in_string: bool,
    escaped: bool,
    /// The current string is a key at depth 1 or 2, being captured into `key`.
    capturing: bool,
    key: [u8; KEY_MAX],
    /// Bytes of the key seen (may exceed `KEY_MAX`: then it is no key we look for).
    key_len: usize,
    /// In an object, after `{` or `,`: the next string is a key.
    expect_key: bool,
    pending: Key,
    /// Inside the top-level `result` object (depth 2 and deeper).
    in_result: bool,
    saw_result: bool,
    verdict: Option<Verdict>,
}

impl Json {
    fn in_array(&self) -> bool {
        self.depth >= 1 && self.depth <= 64 && self.arrays & (1 << (self.depth - 1)) != 0
    }

    fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if self.verdict.is_some() {
                return;
            }
            if self.in_string {
                if !self.capturing && !self.escaped {
                    // Skip to the next byte that can end or escape the string.
                    match bytes
                        .get(i..)
                        .and_then(|rest| rest.iter().position(|&c| c == b'"' || c == b'\\'))
                    {
                        Some(n) => i += n,
                        None => return,
                    }
                    let Some(&c) = bytes.get(i) else { return };
                    self.string_byte(c);
                } else {
                    self.string_byte(b);
                }
            } else {
                self.structural(b);
            }
            i += 1;
        }
    }

    fn string_byte(&mut self, b: u8) {
        if self.escaped {
            self.escaped = false;
            self.capture(b);
            return;
        }
        match b {
            b'\\' => {
                self.escaped = true;
                // An escaped key is never one of ours: make it too long to match.
                self.key_len = KEY_MAX + 1;
            }
            b'"' => {
                self.in_string = false;
                if self.capturing {
                    self.capturing = false;
                    self.key_done();
                }
            }
            _ => self.capture(b),
        }
    }

    fn capture(&mut self, b: u8) {
        if self.capturing {
            if let Some(slot) = self.key.get_mut(self.key_len) {
                *slot = b;
            }
            self.key_len = self.key_len.saturating_add(1);
        }
    }

    fn key_done(&mut self) {
        let key = self.key.get(..self.key_len).unwrap_or_default();
        self.pending = match (self.depth, key) {
            (1, b"result") => Key::Result,
            (1, b"error") => Key::Error,
            (2, b"isError") if self.in_result => Key::IsError,
            _ => Key::Other,
        };
        self.expect_key = false;
    }

    fn structural(&mut self, b: u8) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b':' => {}
            b',' => self.expect_key = !self.in_array(),
            b'"' => {
                self.in_string = true;
                let is_key = self.expect_key && !self.in_array() && self.depth >= 1;
                self.capturing = is_key && self.depth <= 2;
                self.key_len = 0;
                if !is_key {
                    self.value_starts(b);
                }
            }
            b'{' | b'[' => {
                let result_opens = self.depth == 1 && self.pending == Key::Result && b == b'{';
                self.value_starts(b);
                self.depth = self.depth.saturating_add(1);
                if self.depth <= 64 {
                    let bit = 1u64 << (self.depth - 1);
                    if b == b'[' {
                        self.arrays |= bit;
                    } else {
                        self.arrays &= !bit;
                    }
                }
                self.expect_key = b == b'{';
                if result_opens {
                    self.in_result = true;
                }
            }
            b'}' | b']' => {
                self.pending = Key::None;
                self.expect_key = false;
                if self.depth == 2 && self.in_result {
                    // The result object closed without `isError: true`.
                    self.in_result = false;
                    self.verdict = Some(Verdict::Success);
                }
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.message_ends();
                }
            }
            _ => self.value_starts(b),
        }
    }

    /// The first byte of a value: acts on the key it belongs to.
    fn value_starts(&mut self, b: u8) {
        match std::mem::take(&mut self.pending) {
            Key::Error if b == b'{' => self.verdict = Some(Verdict::JsonRpcError),
            Key::IsError if b == b't' => self.verdict = Some(Verdict::ToolError),
            Key::Result => self.saw_result = true,
            _ => {}
        }
    }

    /// A top-level message ended: a response whose `result` was no object still succeeded.
    fn message_ends(&mut self) {
        if self.saw_result && self.verdict.is_none() {
            self.verdict = Some(Verdict::Success);
        }
        self.reset();
    }

    /// Forgets the document read so far (an SSE event ended, complete or not).
    fn reset(&mut self) {
        *self = Json {
            verdict: self.verdict,
            ..Json::default()
        };
    }
}

/// Where the SSE reader is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Line {
    /// At the start of a line.
    #[default]
    Start,
    /// Reading the field name (its first bytes kept in `field`).
    Field,
    /// After `data:`, before the value (one leading space is dropped).
    DataColon,
    /// In a `data` value: bytes go to the JSON reader.
    Data,
    /// Any other field or a comment: ignored to the end of the line.
    Skip,
}

#[derive(Debug, Clone, Default)]
struct Sse {
    line: Line,
    field: [u8; 4],
    field_len: usize,
    /// The previous byte was `\r` (a following `\n` belongs to the same line end).
    after_cr: bool,
    /// The current event has had a `data` line (later ones are joined with `\n`).
    event_has_data: bool,
}

impl Sse {
    fn feed(&mut self, bytes: &[u8], json: &mut Json) {
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if json.verdict.is_some() {
                return;
            }
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    i += 1;
                    continue;
                }
            }
            if b == b'\r' || b == b'\n' {
                self.after_cr = b == b'\r';
                self.line_ends(json);
                i += 1;
                continue;
            }
            match self.line {
                Line::Data => {
                    // Hand the JSON reader the rest of the line at once.
                    let rest = bytes.get(i..).unwrap_or_default();
                    let n = rest
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(rest.len());
                    json.feed(rest.get(..n).unwrap_or_default());
                    i += n;
                    continue;
                }
                Line::Skip => {}
                Line::Start | Line::Field => {
                    if b == b':' {
                        self.line = if self.line == Line::Field && self.is_data() {
                            Line::DataColon
                        } else {
                            Line::Skip
                        };
                    } else {
                        if self.line == Line::Start {
                            self.field_len = 0;
                        }
                        self.line = Line::Field;
                        if let Some(slot) = self.field.get_mut(self.field_len) {
                            *slot = b;
                        }
                        self.field_len = self.field_len.saturating_add(1);
                    }
                }
                Line::DataColon => {
                    self.data_starts(json);
                    if b != b' ' {
                        continue;
                    }
                }
            }
            i += 1;
        }
    }

    fn is_data(&self) -> bool {
        self.field_len == 4 && &self.field == b"data"
    }

    fn data_starts(&mut self, json: &mut Json) {
        if self.event_has_data {
            json.feed(b"\n");
        }
        self.event_has_data = true;
        self.line = Line::Data;
    }

    fn line_ends(&mut self, json: &mut Json) {
        match self.line {
            // A blank line ends the event: the next one starts a fresh JSON document.
            Line::Start => {
                if self.event_has_data {
                    json.reset();
                }
                self.event_has_data = false;
            }
            // `data` with no colon is a data line with an empty value.
            Line::Field if self.is_data() => self.data_starts(json),
            Line::DataColon => self.data_starts(json),
            _ => {}
        }
        self.line = Line::Start;
    }
}

#[cfg(test)]
#[path = "outcome_scan_tests.rs"]
mod tests;
