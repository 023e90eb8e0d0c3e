//! A raw MCP-over-HTTP client for protocol-level cases: exact bodies, exact headers, and the
//! status, headers and body (JSON or SSE) that came back.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::sse;

/// An HTTP client with a bounded timeout, for loopback only.
pub fn client() -> Result<reqwest::blocking::Client> {
    client_with_timeout(Duration::from_secs(20))
}

/// An HTTP client whose requests give up after `timeout`.
pub fn client_with_timeout(timeout: Duration) -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .context("building the HTTP client")
}

/// A request being built; [`Request::send`] sends it.
pub struct Request {
    client: reqwest::blocking::Client,
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
}

impl Request {
    /// A POST carrying `body`, with the headers an MCP client sends
    /// (`Content-Type: application/json`, `Accept: application/json, text/event-stream`).
    pub fn post(client: reqwest::blocking::Client, url: &str, body: impl Into<Vec<u8>>) -> Self {
        Request {
            client,
            method: reqwest::Method::POST,
            url: url.to_owned(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (
                    "accept".into(),
                    "application/json, text/event-stream".into(),
                ),
            ],
            body: body.into(),
            chunked: false,
        }
    }

    /// Any method, no body, `Accept` as an MCP client sends it.
    pub fn new(client: reqwest::blocking::Client, method: &str, url: &str) -> Result<Self> {
        Ok(Request {
            client,
            method: reqwest::Method::from_bytes(method.as_bytes())
                .with_context(|| format!("bad HTTP method {method}"))?,
            url: url.to_owned(),
            headers: vec![(
                "accept".into(),
                "application/json, text/event-stream".into(),
            )],
            body: Vec::new(),
            chunked: false,
        })
    }

    /// Sets header `name` (replacing one of the same name).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Appends `?query` to the URL.
    pub fn query(mut self, query: &str) -> Self {
        self.url.push('?');
        self.url.push_str(query);
        self
    }

    /// Removes header `name`.
    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Sends the body with `Transfer-Encoding: chunked` (no `Content-Length`).
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    pub fn send(self) -> Result<Response> {
        let shown = format!("{} {}", self.method, self.url);
        let mut req = self.client.request(self.method, &self.url);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if self.chunked {
            req = req.body(reqwest::blocking::Body::new(std::io::Cursor::new(
                self.body,
            )));
        } else if !self.body.is_empty() {
            req = req.body(self.body);
        }
        let sent = Instant::now();
        let mut resp = req.send().with_context(|| format!("sending {shown}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        let mut arrivals = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = resp
                .read(&mut buf)
                .with_context(|| format!("reading the answer to {shown}"))?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(buf.get(..n).unwrap_or_default());
            arrivals.push((sent.elapsed(), body.len()));
        }
        Ok(Response {
            status,
            headers,
            body,
            arrivals,
        })
    }
}

/// A whole HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When each piece of the body arrived (since the request was sent), with the body's
    /// length so far: shows whether the answer streamed or came in one piece at the end.
    pub arrivals: Vec<(Duration, usize)>,
}

impl Response {
    /// When the body byte at `offset` had arrived.
    pub fn arrived_at(&self, offset: usize) -> Option<Duration> {
        self.arrivals
            .iter()
            .find(|(_, len)| *len > offset)
            .map(|(at, _)| *at)
    }

    /// When the last byte arrived.
    pub fn finished_at(&self) -> Option<Duration> {
        self.arrivals.last().map(|(at, _)| *at)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn is_sse(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.trim_start().starts_with("text/event-stream"))
    }

    /// The body as JSON (it must be `application/json`).
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the answer (HTTP {}, {:?}) is not JSON: {}",
                self.status,
                self.header("content-type"),
                self.text()
            )
        })
    }

    /// The SSE events of the body (it must be `text/event-stream`).
    pub fn events(&self) -> Result<Vec<sse::Event>> {
        if !self.is_sse() {
            bail!(
                "expected an SSE answer, got HTTP {} {:?}: {}",
                self.status,
                self.header("content-type"),
                self.text()
            );
        }
        Ok(sse::parse(&self.text()))
    }

    /// Every JSON-RPC message of the answer: the body itself, or each SSE event's data.
    pub fn messages(&self) -> Result<Vec<Value>> {
        if self.is_sse() {
            self.events()?
                .iter()
                .filter(|e| !e.data.is_empty())
                .map(sse::Event::json)
                .collect()
        } else {
            Ok(vec![self.json()?])
        }
    }

    /// The JSON-RPC response (the message with a `result` or an `error`).
    pub fn rpc(&self) -> Result<Value> {
        self.messages()?
            .into_iter()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .with_context(|| {
                format!(
                    "no JSON-RPC response in the answer (HTTP {}): {}",
                    self.status,
                    self.text()
                )
            })
    }

    /// The `result` of the JSON-RPC response; fails on a JSON-RPC error.
    pub fn result(&self) -> Result<Value> {
        let rpc = self.rpc()?;
        match rpc.get("result") {
            Some(r) => Ok(r.clone()),
            None => bail!("expected a result, got {rpc}"),
        }
    }

    /// The JSON-RPC error `(code, message)`; fails if the answer is a result.
    pub fn error(&self) -> Result<(i64, String)> {
        let rpc = self.rpc()?;
        let err = rpc
            .get("error")
            .with_context(|| format!("expected a JSON-RPC error, got {rpc}"))?;
        Ok((
            err.get("code").and_then(Value::as_i64).unwrap_or_default(),
            err.get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}

/// A JSON-RPC `tools/call` body.
pub fn tools_call(id: u64, name: &str, arguments: &Value) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments}
    })
    .to_string()
}
