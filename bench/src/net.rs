//! One-shot HTTP/1.1 requests for checks and readiness (the load itself comes from wrk).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;

/// One request on a fresh connection: (status, body with any chunked encoding removed).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        let Some(chunk) = after.get(..size) else {
            out.push_str(after);
            break;
        };
        out.push_str(chunk);
        rest = after
            .get(size..)
            .unwrap_or_default()
            .trim_start_matches("\r\n");
    }
    out
}

/// The JSON-RPC message in an answer, whether sent as JSON or as one SSE `data:` event.
pub fn json_payload(body: &str) -> Result<Value> {
    let text = body.trim();
    if text.starts_with('{') {
        return serde_json::from_str(text).context("answer is not JSON");
    }
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .with_context(|| format!("answer is neither JSON nor an SSE data event: {text:.200}"))?;
    serde_json::from_str(data.trim()).context("SSE data is not JSON")
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        let body = "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
        assert_eq!(dechunk(body), "hello, world");
    }

    #[test]
    fn sse_and_json_answers_give_the_same_message() -> Result<()> {
        let json = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let sse = format!("event: message\r\ndata: {json}\r\n\r\n");
        assert_eq!(json_payload(json)?, json_payload(&sse)?);
        assert!(json_payload("<html>502</html>").is_err());
        Ok(())
    }
}
