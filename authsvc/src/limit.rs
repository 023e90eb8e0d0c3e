//! Per-source rate limits (dynamic registration), in this process's memory: each replica
//! counts on its own. The source is the TCP peer, or, when the peer is a proxy on loopback
//! (Envoy in front of authsvc), the last `X-Forwarded-For` entry, the one that proxy
//! appended (meshmux's Envoy sets `use_remote_address`, so a client cannot choose it).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// Keys tracked at once; when full, expired windows go, then the oldest.
const MAX_KEYS: usize = 10_000;

/// At most `limit` events per `window` per key (a fixed window from the key's first event).
pub struct RateLimit {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimit {
    pub fn new(limit: u32, window: Duration) -> RateLimit {
        RateLimit {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event for `key`: `Ok` if allowed, else `Err(seconds until the window ends)`.
    pub fn check(&self, key: IpAddr, now: Instant) -> Result<(), u64> {
        let Ok(mut windows) = self.windows.lock() else {
            return Err(self.window.as_secs());
        };
        let expired = |start: Instant| now.saturating_duration_since(start) >= self.window;
        if windows.len() >= MAX_KEYS && !windows.contains_key(&key) {
            windows.retain(|_, (start, _)| !expired(*start));
            while windows.len() >= MAX_KEYS {
                let Some(oldest) = windows.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k)
                else {
                    break;
                };
                windows.remove(&oldest);
            }
        }
        let entry = windows.entry(key).or_insert((now, 0));
        if expired(entry.0) {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let left = self
                .window
                .saturating_sub(now.saturating_duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The address a request comes from (see the module comment). `None` without a peer
/// (in-process tests) and no forwarded address.
pub fn source(peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let forwarded = || {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|last| last.trim().parse::<IpAddr>().ok())
    };
    match peer {
        Some(p) if p.ip().is_loopback() => forwarded().or(Some(p.ip())),
        Some(p) => Some(p.ip()),
        None => forwarded(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_window_per_source() {
        let limit = RateLimit::new(2, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t = Instant::now();
        assert_eq!(limit.check(a, t), Ok(()));
        assert_eq!(limit.check(a, t), Ok(()));
        assert_eq!(limit.check(a, t + Duration::from_secs(20)), Err(40));
        assert_eq!(limit.check(b, t), Ok(()));
        assert_eq!(limit.check(a, t + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn bounded_keys() {
        let limit = RateLimit::new(1, Duration::from_secs(60));
        let t = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 50) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(i));
            assert_eq!(
                limit.check(ip, t + Duration::from_millis(u64::from(i))),
                Ok(())
            );
        }
        assert!(limit.windows.lock().unwrap().len() <= MAX_KEYS);
    }

    #[test]
    fn the_source_address() {
        let mut h = HeaderMap::new();
        let envoy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        assert_eq!(source(Some(envoy), &h), Some(envoy.ip()));
        h.append("x-forwarded-for", "10.9.9.9, 198.51.100.7".parse().unwrap());
        // Behind a loopback proxy: the entry it appended (the last), not the client's own.
        assert_eq!(
            source(Some(envoy), &h),
            Some("198.51.100.7".parse().unwrap())
        );
        // A direct peer's own header is not believed.
        assert_eq!(source(Some(remote), &h), Some(remote.ip()));
        assert_eq!(source(None, &HeaderMap::new()), None);
    }
}
