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
/// Documents cached at once; the oldest goes first when a new one does not fit.
pub const CACHE_MAX: usize = 1000;
/// The longest `client_id` we look up (a metadata URL or a registered id).
pub const MAX_CLIENT_ID: usize = 2048;
/// What every refused or failed metadata document answers, whatever the reason: the reason
/// (an address class, a DNS answer, a port that refused) is logged, never told to the caller,
/// so the fetch is no oracle for the network behind authsvc.
pub const DOCUMENT_REFUSED: &str = "The client ID metadata document at this URL cannot be used: it must be served over https from a public address, be valid JSON of at most 16 KiB, name this URL as its client_id and list valid redirect_uris.";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Digest of the client secret (confidential registered clients only).
    pub secret_digest: Option<String>,
}

/// Fetched metadata documents, by URL: each kept `CACHE_FOR`, at most `CACHE_MAX` of them.
#[derive(Default)]
pub struct MetadataCache(Mutex<HashMap<String, (Instant, ClientInfo)>>);

impl MetadataCache {
    pub fn get(&self, url: &str, now: Instant) -> Option<ClientInfo> {
        let mut cache = self.0.lock().ok()?;
        match cache.get(url) {
            Some((at, info)) if now.saturating_duration_since(*at) < CACHE_FOR => {
                Some(info.clone())
            }
            Some(_) => {
                cache.remove(url);
                None
            }
            None => None,
        }
    }

    /// Inserts, first dropping expired entries when full, then the oldest if still full
    /// (a linear pass only when the cache is full, bounded by `CACHE_MAX`).
    pub fn insert(&self, url: &str, info: ClientInfo, now: Instant) {
        let Ok(mut cache) = self.0.lock() else {
            return;
        };
        if cache.len() >= CACHE_MAX && !cache.contains_key(url) {
            cache.retain(|_, (at, _)| now.saturating_duration_since(*at) < CACHE_FOR);
            while cache.len() >= CACHE_MAX {
                let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                cache.remove(&oldest);
            }
        }
        cache.insert(url.to_owned(), (now, info));
    }

    pub fn len(&self) -> usize {
        self.0.lock().map(|c| c.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a client could not be resolved (shown to the person, never redirected).
pub type ClientError = String;

/// Resolves a client; `Ok(Err(..))` is "no such client" with the reason.
pub async fn resolve(app: &App, client_id: &str) -> Result<Result<ClientInfo, ClientError>> {
    if client_id.len() > MAX_CLIENT_ID {
        return Ok(Err("The client_id is too long.".into()));
    }
    if is_metadata_url(client_id) {
        return Ok(metadata_document(app, client_id).await);
    }
    Ok(app
        .db
        .get::<ClientInfo>(ns::CLIENT, client_id)
        .await?
        .ok_or_else(|| format!("Unknown client {client_id:?}. Register it first.")))
}

/// A `client_id` that names a metadata document (else it is a registered one).
pub fn is_metadata_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Stores a registered client for `registration_ttl` from now (every token grant calls this
/// again, so a client in use keeps its registration and an abandoned one goes).
pub async fn save(app: &App, client: &ClientInfo) -> Result<()> {
    app.db
        .put(
            ns::CLIENT,
            &client.client_id,
            client,
            Some(app.settings.registration_ttl),
        )
        .await
}

async fn metadata_document(app: &App, url: &str) -> Result<ClientInfo, ClientError> {
    if let Some(info) = app.client_metadata.get(url, Instant::now()) {
        return Ok(info);
    }
    let info = fetch(url, app.settings.allow_loopback_client_metadata)
        .await
        .map_err(|why| {
            tracing::info!(client_id = %url, %why, "client metadata document refused");
            DOCUMENT_REFUSED.to_owned()
        })?;
    app.client_metadata
        .insert(url, info.clone(), Instant::now());
    Ok(info)
}

/// Fetches and checks a client ID metadata document. The `Err` is the reason for the log;
/// callers answer `DOCUMENT_REFUSED`.
pub async fn fetch(client_id: &str, allow_loopback: bool) -> Result<ClientInfo, ClientError> {
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
    // An address literal is checked as it is (a lookup of `[::1]` with its brackets fails).
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        _ => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("resolving {host} timed out"))?
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect(),
    };
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
    let client_name = doc
        .get("client_name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    check_metadata(client_name.as_deref(), &redirect_uris)?;
    Ok(ClientInfo {
        client_id: client_id.to_owned(),
        client_name,
        redirect_uris,
        secret_digest: None,
    })
}

/// The most a registration or a metadata document may carry (RFC 7591 sets no limits;
/// these are far above what real clients send).
pub const MAX_CLIENT_NAME: usize = 200;
pub const MAX_REDIRECT_URIS: usize = 10;
pub const MAX_REDIRECT_URI: usize = 2000;

/// Bounds on what a client tells us about itself, shared by `/register` and metadata
/// documents: the name is copied into every login and shown on the consent page.
pub fn check_metadata(client_name: Option<&str>, redirect_uris: &[String]) -> Result<(), String> {
    if let Some(name) = client_name {
        if name.chars().count() > MAX_CLIENT_NAME {
            return Err(format!(
                "client_name is longer than {MAX_CLIENT_NAME} characters"
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("client_name contains control characters".into());
        }
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris are accepted"
        ));
    }
    if redirect_uris.iter().any(|u| u.len() > MAX_REDIRECT_URI) {
        return Err(format!(
            "a redirect URI is longer than {MAX_REDIRECT_URI} bytes"
        ));
    }
    Ok(())
}

/// Public unicast addresses only: no private, loopback, link-local, CGNAT, ULA, multicast,
/// documentation, benchmarking, IETF-protocol or unspecified ranges, and no IPv6 form that
/// carries an IPv4 address a gateway would translate (NAT64, 6to4, IPv4-compatible,
/// IPv4-mapped: refused whole, or checked as the IPv4 address for the mapped form).
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
        || (a == 192 && b == 0 && ip.octets().get(2) == Some(&0))
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    let high_96_zero = ip.segments().iter().take(6).all(|s| *s == 0);
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // IPv4-compatible ::a.b.c.d (deprecated; ::/96 holds nothing public).
        || high_96_zero
        // NAT64: 64:ff9b::/96 (well-known) and 64:ff9b:1::/48 (local use).
        || (first == 0x0064 && second == 0xff9b)
        // 6to4.
        || first == 0x2002
        // ULA fc00::/7, link-local fe80::/10, site-local fec0::/10 (deprecated).
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32; Teredo 2001::/32 and ORCHID/benchmarking 2001:2::/48,
        // 2001:10::/28 are IETF-protocol space under 2001::/23.
        || (first == 0x2001 && second == 0x0db8)
        || (first == 0x2001 && second < 0x0200))
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
            ("::ffff:8.8.8.8", true),
            // Issue 9: gateways that translate to IPv4, and the ranges left out before.
            ("64:ff9b::a00:1", false),
            ("64:ff9b::808:808", false),
            ("64:ff9b:1::1", false),
            ("2002:a00:1::1", false),
            ("2002:808:808::1", false),
            ("::10.0.0.1", false),
            ("::8.8.8.8", false),
            ("192.0.0.1", false),
            ("192.0.0.170", false),
            ("192.0.1.1", true),
            ("fec0::1", false),
            ("feff::1", false),
            ("2001::1", false),
            ("2001:db8::1", false),
            ("2a00:1450:4001::1", true),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    fn info(id: &str) -> ClientInfo {
        ClientInfo {
            client_id: id.into(),
            client_name: None,
            redirect_uris: vec!["https://a.example/cb".into()],
            secret_digest: None,
        }
    }

    /// Issue 9: the cache kept every document it ever fetched.
    #[test]
    fn the_metadata_cache_expires_and_is_bounded() {
        let cache = MetadataCache::default();
        let t = Instant::now();
        cache.insert("https://a.example/c", info("a"), t);
        assert!(cache.get("https://a.example/c", t).is_some());
        assert!(cache.get("https://a.example/c", t + CACHE_FOR).is_none());
        assert!(cache.is_empty(), "an expired entry read is dropped");
        for i in 0..(CACHE_MAX + 25) {
            let at = t + Duration::from_millis(i as u64);
            cache.insert(&format!("https://a.example/{i}"), info("x"), at);
        }
        assert_eq!(cache.len(), CACHE_MAX);
        let late = t + Duration::from_millis(CACHE_MAX as u64 + 25);
        // The oldest went first; the newest are there.
        assert!(cache.get("https://a.example/0", late).is_none());
        assert!(
            cache
                .get(&format!("https://a.example/{}", CACHE_MAX + 24), late)
                .is_some()
        );
    }

    /// Every refusal reads the same to the caller, whatever the reason (no network oracle).
    #[tokio::test]
    async fn every_refused_document_gets_one_text() {
        let app = crate::App::new(
            crate::config::Settings::from_config(
                &policy::config::Config::parse(
                    r#"{"environments": {"P": {"description": "p", "url": "http://127.0.0.1:1/mcp"}},
                       "auth": {"dev": {"users": {}}, "base_url": "http://127.0.0.1:1",
                                "signing_key_file": "/nonexistent", "roles": {"r": {"allowed_envs": {"*": ["*"]}}}}}"#,
                    policy::config::Format::Json,
                    "t.json",
                    &|_| None,
                )
                .unwrap(),
            )
            .unwrap(),
            crate::keys::KeyRing {
                current: crate::keys::SigningKey::generate().unwrap(),
                previous: None,
            },
            crate::store::Db::memory(),
        )
        .unwrap();
        for url in [
            "http://example.com/client.json",
            "https://10.0.0.1/client.json",
            "https://127.0.0.1:1/client.json",
            "https://[64:ff9b::a00:1]/client.json",
            "https://[2002:a00:1::1]/client.json",
            "https://[::10.0.0.1]/client.json",
            "https://192.0.0.8/client.json",
            "https://[fec0::1]/client.json",
            "https://[::ffff:169.254.169.254]/client.json",
            "https://example.com/",
        ] {
            let e = resolve(&app, url).await.unwrap().unwrap_err();
            assert_eq!(e, DOCUMENT_REFUSED, "{url}");
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
