//! The client side of the legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp 3 no longer
//! ships: `GET <sse url>` opens an event stream whose first `endpoint` event names the URL to
//! POST every client message to; the server's messages arrive as `message` events. One stream
//! per bridge session. The POST endpoint must have the SSE URL's origin (scheme, host, port):
//! the configured headers (often credentials) are never sent anywhere else.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use url::Url;

/// How long the server gets to send its `endpoint` event.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(15);

/// Messages buffered from the stream before the reader waits for the bridge.
const CHANNEL: usize = 64;

/// Parses `Name: value` (as `--header` takes it) into a header pair.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue)> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("header {text:?} is not `Name: value`"))?;
    let name = HeaderName::try_from(name.trim())
        .with_context(|| format!("{:?} is not a header name", name.trim()))?;
    let value = HeaderValue::try_from(value.trim())
        .with_context(|| format!("the value of header {name} is not a valid header value"))?;
    Ok((name, value))
}

/// One open legacy SSE session, as an rmcp client transport.
pub struct SseTransport {
    http: reqwest::Client,
    endpoint: Url,
    headers: HeaderMap,
    rx: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    stop: CancellationToken,
}

impl SseTransport {
    /// Opens the stream and waits for the `endpoint` event. `ended` receives why the stream
    /// ended (server gone, bad event) once it has.
    pub async fn connect(
        url: &Url,
        headers: HeaderMap,
        ended: watch::Sender<Option<String>>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let response = http
            .get(url.clone())
            .headers(headers.clone())
            .header(http::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {url} answered {status}");
        }
        let mut events = sse_stream::SseStream::from_bytes_stream(response.bytes_stream());
        let endpoint = tokio::time::timeout(ENDPOINT_TIMEOUT, async {
            while let Some(event) = events.next().await {
                let event = event.map_err(|e| anyhow!("reading the event stream: {e}"))?;
                if event.event.as_deref() == Some("endpoint") {
                    return Ok(event.data.unwrap_or_default());
                }
            }
            bail!("the event stream ended before its `endpoint` event")
        })
        .await
        .map_err(|_| anyhow!("no `endpoint` event within {ENDPOINT_TIMEOUT:?}"))??;
        let endpoint = url
            .join(endpoint.trim())
            .with_context(|| format!("the endpoint {endpoint:?} is not a URL"))?;
        if endpoint.origin() != url.origin() {
            bail!("the server named a POST endpoint on another origin ({endpoint}); refused");
        }
        let (tx, rx) = mpsc::channel(CHANNEL);
        let stop = CancellationToken::new();
        let reader_stop = stop.clone();
        tokio::spawn(async move {
            let why = tokio::select! {
                why = read_events(&mut events, &tx) => why,
                () = reader_stop.cancelled() => "closed by the bridge".to_owned(),
            };
            let _ = ended.send(Some(why));
        });
        Ok(Self {
            http,
            endpoint,
            headers,
            rx,
            stop,
        })
    }
}

/// Forwards `message` events until the stream ends; returns why it ended.
async fn read_events<S>(events: &mut S, tx: &mpsc::Sender<RxJsonRpcMessage<RoleClient>>) -> String
where
    S: futures_util::Stream<Item = Result<sse_stream::Sse, sse_stream::Error>> + Unpin,
{
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => return format!("its event stream failed: {e}"),
        };
        if !matches!(event.event.as_deref(), None | Some("message")) {
            continue;
        }
        let Some(data) = event.data else { continue };
        match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(&data) {
            Ok(message) => {
                if tx.send(message).await.is_err() {
                    return "closed by the bridge".to_owned();
                }
            }
            Err(e) => tracing::warn!("ignoring an SSE message that is not JSON-RPC: {e}"),
        }
    }
    "its event stream ended".to_owned()
}

impl Transport<RoleClient> for SseTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let post = self
            .http
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .json(&item);
        async move {
            let response = post.send().await.map_err(std::io::Error::other)?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "the SSE server answered {status} to a POST"
                )))
            }
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.rx.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.stop.cancel();
        self.rx.close();
        Ok(())
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_bad_ones_are_refused() {
        let (n, v) = parse_header("X-Api-Key: abc def").unwrap();
        assert_eq!(n.as_str(), "x-api-key");
        assert_eq!(v, "abc def");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: v").is_err());
        assert!(parse_header("X: a\nb").is_err());
    }
}
