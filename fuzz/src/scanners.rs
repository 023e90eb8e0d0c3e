//! The streaming readers of a forwarded call's answer: `policy::outcome_scan` (success / error
//! verdict) and the response rewrite (`policy::exchange::rewrite`, JSON and SSE). Their
//! contract is that a chunk boundary changes nothing: the body whole, byte by byte and cut at
//! fuzzer-chosen points give the same verdict and the same output. On top of that, every
//! JSON-RPC response the caller gets carries the caller's own id, never the gateway's.
//!
//! Input: byte 0 picks the framing (`j` JSON, `s` SSE, `n` sniffed; otherwise its low bits),
//! byte 1 the edits (bits 0-3) and the cut pattern (bits 4-7), the rest is the body.

use policy::exchange::rewrite::{Edits, Refused, Rewrite};
use policy::outcome_scan::OutcomeScan;
use serde_json::{Map, Value};

/// The gateway's id for the call inside the backend session.
pub const FORWARDED_ID: &str = "mmx-1-5";

pub fn edits(flags: u8) -> Edits {
    Edits {
        env: "Prod".into(),
        bind: "c0ffee".into(),
        original_id: if flags & 0x80 != 0 {
            Value::from(7)
        } else {
            Value::from("client-7")
        },
        forwarded_id: Some(FORWARDED_ID.into()),
        progress: Some((format!("{FORWARDED_ID}.p"), Value::from("tok"))),
        result_type: flags & 1 != 0,
        relay_server_requests: flags & 2 != 0,
        capabilities: (flags & 4 != 0).then(|| {
            let mut caps = Map::new();
            caps.insert("sampling".into(), Value::Object(Map::new()));
            caps
        }),
        log_level: (flags & 8 != 0).then(|| "warning".into()),
        result: Default::default(),
    }
}

/// Three ways to cut `body`: whole, one byte at a time (then an empty end), and a pattern.
fn cuts(body: &[u8], seed: u8) -> [Vec<&[u8]>; 3] {
    let whole = vec![body];
    let mut bytes: Vec<&[u8]> = body.chunks(1).collect();
    bytes.push(&[]);
    let mut pattern = Vec::new();
    let mut rest = body;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = ((usize::from(seed) * 7 + i * 13) % 11 + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        pattern.push(a);
        rest = b;
        i += 1;
    }
    [whole, bytes, pattern]
}

fn rewrite(edits: &Edits, sse: bool, chunks: &[&[u8]]) -> (Vec<u8>, Vec<Refused>) {
    let mut r = Rewrite::new(edits.clone(), sse);
    let mut out = Vec::new();
    let mut refused = Vec::new();
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in chunks.iter().enumerate() {
        let (o, f) = r.feed(chunk, i == last);
        out.extend(o);
        refused.extend(f);
    }
    if chunks.is_empty() {
        let (o, f) = r.feed(&[], true);
        out.extend(o);
        refused.extend(f);
    }
    (out, refused)
}

fn scan(make: fn() -> OutcomeScan, chunks: &[&[u8]]) -> Option<policy::outcome_scan::Verdict> {
    let mut s = make();
    for chunk in chunks {
        s.feed(chunk);
    }
    s.verdict()
}

pub fn check(data: &[u8]) {
    let [mode, flags, body @ ..] = data else {
        return;
    };
    let sse = match mode {
        b'j' | b'n' => false,
        b's' => true,
        m => m & 1 == 1,
    };
    let make: fn() -> OutcomeScan = match (mode, sse) {
        (b'n', _) => OutcomeScan::sniffing,
        (m, _) if m & 2 == 2 && *m != b'j' && *m != b's' => OutcomeScan::sniffing,
        (_, true) => OutcomeScan::sse,
        (_, false) => OutcomeScan::json,
    };
    let edits = edits(*flags);
    let cuts = cuts(body, flags >> 4);

    let verdicts: Vec<_> = cuts.iter().map(|c| scan(make, c)).collect();
    assert!(
        verdicts.iter().all(|v| *v == verdicts[0]),
        "outcome scan depends on the cuts: {verdicts:?}"
    );

    let outputs: Vec<_> = cuts.iter().map(|c| rewrite(&edits, sse, c)).collect();
    for (i, o) in outputs.iter().enumerate().skip(1) {
        assert!(
            *o == outputs[0],
            "rewrite depends on the cuts (cut {i}):\n whole: {:?}\n cut:   {:?}",
            String::from_utf8_lossy(&outputs[0].0),
            String::from_utf8_lossy(&o.0)
        );
    }
    let (out, _) = &outputs[0];
    if sse {
        check_sse(&edits, out);
    } else {
        check_json(&edits, body, out);
    }
}

/// A JSON answer that parses comes out as the same message with the caller's id (and
/// `resultType` for a 2026-07-28 caller).
fn check_json(edits: &Edits, body: &[u8], out: &[u8]) {
    let Ok(Value::Object(mut expected)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if expected.contains_key("id") {
        expected.insert("id".into(), edits.original_id.clone());
    }
    if edits.result_type
        && let Some(Value::Object(result)) = expected.get_mut("result")
        && !result.contains_key("resultType")
    {
        result.insert("resultType".into(), Value::from("complete"));
    }
    let got = serde_json::from_slice::<Value>(out);
    assert!(
        matches!(&got, Ok(Value::Object(got)) if *got == expected),
        "JSON answer rewritten wrong:\n in:  {}\n out: {}\n expected: {}",
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(out),
        Value::Object(expected)
    );
}

/// Every event of the rewritten stream, read as a client reads SSE (CR, LF and CRLF all end
/// a line): a JSON-RPC response in it carries the caller's id.
fn check_sse(edits: &Edits, out: &[u8]) {
    for data in sse_events(out) {
        let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(&data) else {
            continue;
        };
        if message.contains_key("method") {
            continue;
        }
        assert_eq!(
            message.get("id"),
            Some(&edits.original_id),
            "a response with another id reaches the caller:\n out: {}",
            String::from_utf8_lossy(out)
        );
    }
}

/// The `data` of each event a client dispatches (WHATWG SSE parsing).
pub fn sse_events(stream: &[u8]) -> Vec<Vec<u8>> {
    // A client drops one byte-order mark at the start of the stream.
    let stream = stream.strip_prefix(b"\xef\xbb\xbf").unwrap_or(stream);
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut i = 0;
    while let Some(&b) = stream.get(i) {
        match b {
            b'\r' => {
                lines.push(std::mem::take(&mut line));
                if stream.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => lines.push(std::mem::take(&mut line)),
            _ => line.push(b),
        }
        i += 1;
    }
    // An unterminated last line is never dispatched.
    let mut events = Vec::new();
    let mut data = Vec::new();
    for line in lines {
        if line.is_empty() {
            if data.pop().is_some() {
                events.push(std::mem::take(&mut data));
            }
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => continue,
            Some(p) => {
                let (f, v) = line.split_at(p);
                let v = v.get(1..).unwrap_or_default();
                (f, v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        if field == b"data" {
            data.extend_from_slice(value);
            data.push(b'\n');
        }
    }
    events
}
