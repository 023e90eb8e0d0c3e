//! Who a `client_id` is: a dynamically registered client (from the store), or a client ID
//! metadata document (the `client_id` is an https URL we fetch, with SSRF guards, and cache).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::App;
use crate::config::is_loopback_host;
use crate::error::Result;
use crate::store::ns;

const MAX_DOCUMENT: usize = 16 * 1024;
const CACHE_FOR: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Digest of the client secret (confidential registered clients only).
    pub secret_digest: Option<String>,
}

#[derive(Default)]
pub struct MetadataCache(Mutex<HashMap<String, (Instant, ClientInfo)>>);

/// Why a client could not be resolved (shown to the person, never redirected).
pub type ClientError = String;

/// Resolves a client; `Ok(Err(..))` is "no such client" with the reason.
pub async fn resolve(app: &App, client_id: &str) -> Result<Result<ClientInfo, ClientError>> {
    if client_id.starts_with("https://") || client_id.starts_with("http://") {
        return Ok(metadata_document(app, client_id).await);
    }
    Ok(app
        .db
        .get::<ClientInfo>(ns::CLIENT, client_id)
        .await?
        .ok_or_else(|| format!("Unknown client {client_id:?}. Register it first.")))
}

async fn metadata_document(app: &App, url: &str) -> Result<ClientInfo, ClientError> {
    let cached = app.client_metadata.0.lock().ok().and_then(|cache| {
        cache
            .get(url)
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, info)| info.clone())
    });
    if let Some(info) = cached {
        return Ok(info);
    }
    let info = fetch(url, app.settings.allow_loopback_client_metadata).await?;
    if let Ok(mut cache) = app.client_metadata.0.lock() {
        cache.insert(url.to_owned(), (Instant::now(), info.clone()));
    }
    Ok(info)
}

async fn fetch(client_id: &str, allow_loopback: bool) -> Result<ClientInfo, ClientError> {
    let url = url::Url::parse(client_id).map_err(|e| format!("client_id is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let loopback_ok = allow_loopback && is_loopback_host(&host);
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback_ok) {
        return Err("client ID metadata documents must be served over https".into());
    }
    if url.path() == "/"
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err("a client ID metadata URL needs a path and no fragment or credentials".into());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let Some(addr) = addrs.first().copied() else {
        return Err(format!("{host} has no address"));
    };
    if let Some(bad) = addrs
        .iter()
        .find(|a| !(is_public(a.ip()) || (loopback_ok && a.ip().is_loopback())))
    {
        return Err(format!(
            "{host} resolves to a non-public address ({})",
            bad.ip()
        ));
    }
    // Pin the checked address so a second DNS answer cannot point elsewhere.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .resolve(&host, addr)
        .build()
        .map_err(|e| e.to_string())?;
    let mut response = http
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("fetching the client metadata failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "the client metadata URL answered {}",
            response.status()
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err("the client metadata document is too large".into());
        }
    }
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|_| "the client metadata document is not JSON".to_string())?;
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err("the document's client_id does not equal its URL".into());
    }
    if doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .is_some_and(|m| m != "none")
    {
        return Err(
            "only public clients (token_endpoint_auth_method none) may use metadata documents"
                .into(),
        );
    }
    let redirect_uris: Vec<String> = doc
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if redirect_uris.is_empty() || !redirect_uris.iter().all(|u| valid_redirect_uri(u)) {
        return Err("the document needs valid redirect_uris".into());
    }
    Ok(ClientInfo {
        client_id: client_id.to_owned(),
        client_name: doc
            .get("client_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        redirect_uris,
        secret_digest: None,
    })
}

/// Public unicast addresses only: no private, loopback, link-local, CGNAT, ULA, multicast,
/// documentation or unspecified ranges.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments().first().copied().unwrap_or(0);
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments().get(1) == Some(&0x0db8))
}

/// https; http only to a loopback host; or a native app's own scheme. Never a fragment,
/// never `javascript:`/`data:`/`file:`.
pub fn valid_redirect_uri(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if url.fragment().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.host_str().is_some(),
        "http" => url.host_str().is_some_and(is_loopback_host),
        "javascript" | "data" | "file" | "blob" | "about" | "vbscript" | "ftp" | "ws" | "wss" => {
            false
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("127.0.0.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("2606:4700::1111", true),
            ("::1", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:10.0.0.1", false),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[test]
    fn redirect_uris() {
        for (uri, ok) in [
            ("https://app.example.com/cb", true),
            ("http://127.0.0.1:3000/cb", true),
            ("http://localhost/cb", true),
            ("http://app.example.com/cb", false),
            ("https://app.example.com/cb#frag", false),
            ("javascript:alert(1)", false),
            ("cursor://anysphere.cursor-mcp/oauth/callback", true),
            ("not a uri", false),
        ] {
            assert_eq!(valid_redirect_uri(uri), ok, "{uri}");
        }
    }
}
