//! The gateway's readiness answer (`GET /readyz`), built from the plugin configuration the
//! filter has loaded: ready once a manifest is loaded and at least one env's tools are known
//! (`stale` envs, served from an earlier discovery, count as known).
//! Liveness (`/healthz`) needs no filter: the listener answers it directly.

use serde_json::{Value, json};

use crate::manifest::FilterConfig;
use crate::reply::LocalReply;

/// The readiness path on the gateway listener.
pub const READY_PATH: &str = "/readyz";
/// The liveness path on the gateway listener.
pub const LIVE_PATH: &str = "/healthz";

/// Whether a request is a readiness probe (`GET` or `HEAD` on [`READY_PATH`], any query).
pub fn is_ready_probe(method: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    path == READY_PATH
        && (method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD"))
}

/// 200 with the envs and their state when the gateway can serve; 503 while no configuration
/// is loaded, or when discovery reached no env at all.
pub fn readiness(config: Option<&FilterConfig>) -> LocalReply {
    let Some(config) = config else {
        return answer(
            503,
            &json!({
                "status": "starting",
                "reason": "the meshmux filter has not loaded a configuration yet"
            }),
        );
    };
    let m = &config.manifest;
    let envs: Vec<Value> = m
        .envs
        .iter()
        .map(|e| match (&e.unreachable, &e.stale) {
            (Some(reason), _) => {
                json!({ "name": e.name, "state": "unreachable", "reason": reason })
            }
            (None, Some(stale)) => json!({
                "name": e.name,
                "state": "stale",
                "reason": stale.reason,
                "since": stale.since
            }),
            (None, None) => json!({ "name": e.name, "state": "ok" }),
        })
        .collect();
    let reachable = m.envs.iter().any(|e| e.unreachable.is_none());
    let mut body = json!({
        "status": if reachable { "ready" } else { "not_ready" },
        "manifest": m.hash,
        "tools": m.tools.len(),
        "envs": envs,
    });
    if !reachable && let Some(obj) = body.as_object_mut() {
        obj.insert(
            "reason".into(),
            json!("discovery reached no env; run `meshmux check` to see why"),
        );
    }
    answer(if reachable { 200 } else { 503 }, &body)
}

fn answer(status: u16, body: &Value) -> LocalReply {
    let mut bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes.push(b'\n');
    LocalReply {
        status,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        body: bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{EnvEntry, MANIFEST_FORMAT, Manifest, ServerInfo};

    fn env(name: &str, unreachable: Option<&str>) -> EnvEntry {
        EnvEntry {
            name: name.into(),
            description: String::new(),
            cluster: format!("env_{name}"),
            url: "http://127.0.0.1:1/mcp".into(),
            authority: "127.0.0.1:1".into(),
            path: "/mcp".into(),
            protocol_version: "2025-06-18".into(),
            server_info: None,
            unreachable: unreachable.map(str::to_owned),
            stale: None,
            server: None,
            label: None,
        }
    }

    fn config(envs: Vec<EnvEntry>) -> FilterConfig {
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            hash: String::new(),
            server: ServerInfo {
                name: "m".into(),
                version: "1".into(),
                instructions: None,
                env_descriptions: Default::default(),
                tool_exposure: Default::default(),
            },
            envs,
            tools: vec![],
            warnings: vec![],
            errors: vec![],
            pinning: None,
            prompts: vec![],
            resources: vec![],
            resource_templates: vec![],
        }
        .seal();
        serde_json::from_value(json!({ "manifest": manifest })).unwrap()
    }

    fn body(r: &LocalReply) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn starting_without_configuration() {
        let r = readiness(None);
        assert_eq!(r.status, 503);
        assert_eq!(body(&r)["status"], "starting");
    }

    #[test]
    fn ready_lists_envs_and_their_state() {
        let mut staging = env("Staging", None);
        staging.stale = Some(crate::manifest::Stale {
            reason: "timed out".into(),
            since: "2026-11-22T06:00:00Z".into(),
            listed_at: "2026-11-22T05:00:00Z".into(),
        });
        let c = config(vec![
            env("Prod", None),
            staging,
            env("Dev", Some("connection refused")),
        ]);
        let r = readiness(Some(&c));
        assert_eq!(r.status, 200);
        let b = body(&r);
        assert_eq!(b["status"], "ready");
        assert_eq!(b["manifest"], c.manifest.hash.as_str());
        assert_eq!(
            b["envs"],
            json!([
                {"name": "Prod", "state": "ok"},
                {"name": "Staging", "state": "stale", "reason": "timed out", "since": "2026-11-22T06:00:00Z"},
                {"name": "Dev", "state": "unreachable", "reason": "connection refused"}
            ])
        );
    }

    #[test]
    fn no_reachable_env_is_not_ready() {
        let r = readiness(Some(&config(vec![env("Dev", Some("down"))])));
        assert_eq!(r.status, 503);
        assert_eq!(body(&r)["status"], "not_ready");
    }

    #[test]
    fn probes() {
        assert!(is_ready_probe("GET", "/readyz"));
        assert!(is_ready_probe("head", "/readyz?verbose"));
        assert!(!is_ready_probe("POST", "/readyz"));
        assert!(!is_ready_probe("GET", "/readyz/x"));
    }
}
