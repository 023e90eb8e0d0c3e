//! Metrics on real Envoy: after a scripted set of calls (successes over SSE and JSON, a denial,
//! tool errors, a JSON-RPC error from a backend, a backend that is down) the Prometheus text
//! served on the gateway's metrics path has exactly the expected count for every tool × env
//! label set, and only that admin page is reachable through the listener.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::auth::{BASE_URL, FakeAuthsvc, Issuer};
use tests::fixtures::test_roles;
use tests::prometheus::Samples;
use tests::{Backend, Gateway, Response, http, is_error, logs};

/// A tool whose name has a dot (the label must keep it whole); the demo backend lists it from
/// its catalog and answers calls to it.
const DOTTED_TOOL: &str = "ops.restart";

fn dotted_tool_catalog(remove: &[&str]) -> String {
    json!({
        "add": [{
            "name": DOTTED_TOOL,
            "description": "Restart a service.",
            "inputSchema": {"type": "object", "properties": {"service": {"type": "string"}}}
        }],
        "remove": remove
    })
    .to_string()
}

fn get(url: &str) -> Response {
    let client = http::client().unwrap();
    tests::http::Request::new(client, "GET", url)
        .unwrap()
        .send()
        .unwrap()
}

type Counts = BTreeMap<Vec<String>, f64>;

fn counts(entries: &[(&[&str], f64)]) -> Counts {
    entries
        .iter()
        .map(|(k, v)| (k.iter().map(|s| (*s).to_owned()).collect(), *v))
        .collect()
}

/// Polls the gateway's metrics until `done` holds (the last stream's `on_log` may run just
/// after its client got the answer, and Envoy merges histograms every few seconds).
fn settled(gw: &Gateway, done: impl Fn(&Samples) -> bool) -> (String, Samples) {
    let url = format!("http://127.0.0.1:{}/metrics", gw.port());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = get(&url);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let text = resp.text();
        let samples = Samples::parse(&text).unwrap();
        if done(&samples) || Instant::now() > deadline {
            return (text, samples);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn tool_calls_are_counted_per_tool_and_env_in_prometheus() -> anyhow::Result<()> {
    let issuer = Issuer::new(BASE_URL)?;
    let authsvc = FakeAuthsvc::start(&issuer)?;
    let prod = Backend::demo("Prod").catalog().start()?;
    prod.set_catalog(&dotted_tool_catalog(&[]))?;
    let mut staging = Backend::demo("Staging").json_response().start()?;
    let mut dev = Backend::demo("Dev").start()?;
    let gw = Gateway::builder()
        .env("Prod", &prod)
        .env("Staging", &staging)
        .env("Dev", &dev)
        .auth(&authsvc.url(), test_roles())
        .metrics(json!({"user_level_metrics": true}))
        .start()?;
    let alice = issuer.token("alice@example.com", &["admin"])?;
    let bot = issuer.token("bot:ci.runner", &["staging-reader"])?;
    let call = |token: &str, tool: &str, args: Value| -> Value {
        let resp = gw.call_with(token, tool, args).unwrap();
        assert_eq!(resp.status, 200, "{tool}: {}", resp.text());
        resp.rpc().unwrap()
    };
    let ok = |v: &Value| v.get("result").is_some_and(|r| !is_error(r));
    let tool_error = |v: &Value| v.get("result").is_some_and(is_error);

    // Successes: SSE answers from Prod, JSON answers from Staging.
    for _ in 0..2 {
        let r = call(&alice, "search_logs", json!({"env": "Prod", "query": "x"}));
        assert!(ok(&r), "{r:#}");
    }
    let r = call(
        &alice,
        "search_logs",
        json!({"env": "Staging", "query": "x"}),
    );
    assert!(ok(&r), "{r:#}");
    let r = call(&bot, "search_logs", json!({"env": "Staging", "query": "x"}));
    assert!(ok(&r), "{r:#}");
    // A denial: the bot may only use Staging.
    let r = call(&bot, "search_logs", json!({"env": "Prod", "query": "x"}));
    assert!(tool_error(&r), "{r:#}");
    let r = call(
        &alice,
        DOTTED_TOOL,
        json!({"env": "Prod", "service": "api"}),
    );
    assert!(ok(&r), "{r:#}");
    // Tool errors from the backend (`isError: true`), over SSE and over JSON.
    let r = call(
        &alice,
        "stream_progress",
        json!({"env": "Prod", "steps": 0}),
    );
    assert!(tool_error(&r), "{r:#}");
    let r = call(
        &bot,
        "stream_progress",
        json!({"env": "Staging", "steps": 0}),
    );
    assert!(tool_error(&r), "{r:#}");
    // A JSON-RPC error: the backend dropped a tool the manifest still lists.
    prod.set_catalog(&dotted_tool_catalog(&["list_deployments"]))?;
    let r = call(
        &alice,
        "list_deployments",
        json!({"env": "Prod", "service": "api"}),
    );
    assert!(r.get("error").is_some(), "{r:#}");
    // A restarted backend: the call is retried in a new session and succeeds.
    staging.restart()?;
    let r = call(
        &alice,
        "search_logs",
        json!({"env": "Staging", "query": "x"}),
    );
    assert!(ok(&r), "{r:#}");
    // A backend that is down.
    dev.stop();
    let r = call(&alice, "search_logs", json!({"env": "Dev", "query": "x"}));
    assert!(tool_error(&r), "{r:#}");

    let requests = counts(&[
        (&["Prod", "search_logs"], 3.0),
        (&["Staging", "search_logs"], 3.0),
        (&["Prod", "stream_progress"], 1.0),
        (&["Staging", "stream_progress"], 1.0),
        (&["Prod", DOTTED_TOOL], 1.0),
        (&["Prod", "list_deployments"], 1.0),
        (&["Dev", "search_logs"], 1.0),
    ]);
    let (text, m) = settled(&gw, |m| {
        m.by("meshmux_tool_request_duration_ms_count", &["env", "tool"]) == requests
            && m.by("meshmux_tool_requests_in_flight", &["env", "tool"])
                .values()
                .all(|v| *v == 0.0)
    });
    let path = logs::test_dir()?.join("prometheus.txt");
    std::fs::write(&path, &text)?;
    // meshmux's own series alone (with their HELP/TYPE lines), for reading.
    let ours: String = text
        .lines()
        .filter(|l| {
            l.starts_with("meshmux_")
                || l.starts_with("# TYPE meshmux_")
                || l.starts_with("# HELP meshmux_")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path.with_file_name("prometheus-meshmux.txt"), ours)?;
    println!("Prometheus text of the scripted run: {}", path.display());

    let et = ["env", "tool"];
    assert_eq!(m.by("meshmux_tool_requests_total", &et), requests, "{text}");
    assert_eq!(
        m.by("meshmux_tool_request_success_total", &et),
        counts(&[
            (&["Prod", "search_logs"], 2.0),
            (&["Staging", "search_logs"], 3.0),
            (&["Prod", DOTTED_TOOL], 1.0),
        ]),
        "{text}"
    );
    assert_eq!(
        m.by(
            "meshmux_tool_request_errors_total",
            &["env", "tool", "error_type"]
        ),
        counts(&[
            (&["Prod", "search_logs", "denied"], 1.0),
            (&["Prod", "stream_progress", "tool"], 1.0),
            (&["Staging", "stream_progress", "tool"], 1.0),
            (&["Prod", "list_deployments", "jsonrpc"], 1.0),
            (&["Dev", "search_logs", "upstream"], 1.0),
        ]),
        "{text}"
    );
    let zero: Counts = requests.keys().map(|k| (k.clone(), 0.0)).collect();
    assert_eq!(m.by("meshmux_tool_requests_in_flight", &et), zero, "{text}");
    assert_eq!(
        m.by("meshmux_tool_request_duration_ms_count", &et),
        requests
    );
    assert_eq!(
        m.by("meshmux_tool_response_size_bytes_count", &et),
        requests
    );
    // Every answer had a body: the size histogram's sum is positive for every series.
    for (k, v) in m.by("meshmux_tool_response_size_bytes_sum", &et) {
        assert!(v > 0.0, "{k:?} has no response bytes:\n{text}");
    }
    assert_eq!(
        m.by("meshmux_user_tool_calls_total", &["principal"]),
        counts(&[(&["alice@example.com"], 8.0), (&["bot:ci.runner"], 3.0)]),
        "{text}"
    );
    // The labels are all there is: no meshmux metric kept a raw stat name.
    assert_eq!(
        m.names("meshmux"),
        [
            "meshmux_tool_request_duration_ms_bucket",
            "meshmux_tool_request_duration_ms_count",
            "meshmux_tool_request_duration_ms_sum",
            "meshmux_tool_request_errors_total",
            "meshmux_tool_request_success_total",
            "meshmux_tool_requests_in_flight",
            "meshmux_tool_requests_total",
            "meshmux_tool_response_size_bytes_bucket",
            "meshmux_tool_response_size_bytes_count",
            "meshmux_tool_response_size_bytes_sum",
            "meshmux_user_tool_calls_total",
        ],
        "{text}"
    );

    // Envoy's admin serves the same series.
    let admin = Samples::parse(&get(&format!("{}/stats/prometheus", gw.admin_url())).text())?;
    assert_eq!(admin.by("meshmux_tool_requests_total", &et), requests);

    // Only that admin page is reachable through the listener, and without a token.
    let base = format!("http://127.0.0.1:{}", gw.port());
    for path in [
        "/stats",
        "/stats/prometheus",
        "/config_dump",
        "/clusters",
        "/server_info",
        "/metrics/../config_dump",
        "/metrics/%2e%2e/config_dump",
        "/metrics%2f..%2fconfig_dump",
        "/metrics/x",
        "/ready",
    ] {
        let resp = get(&format!("{base}{path}"));
        assert_eq!(
            resp.status,
            404,
            "{path} through the listener: {}",
            resp.text()
        );
    }
    let client = http::client()?;
    for (method, path) in [("POST", "/metrics"), ("POST", "/quitquitquit")] {
        let resp =
            tests::http::Request::new(client.clone(), method, &format!("{base}{path}"))?.send()?;
        assert_eq!(resp.status, 404, "{method} {path}: {}", resp.text());
    }
    assert_eq!(get(&format!("{}/ready", gw.admin_url())).status, 200);
    Ok(())
}

#[test]
fn metrics_can_be_turned_off_or_moved() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let off = Gateway::builder()
        .env("Prod", &prod)
        .metrics(json!({"enabled": false}))
        .start()?;
    let r = off.call_tool("search_logs", json!({"env": "Prod", "query": "x"}))?;
    assert!(!is_error(&r), "{r:#}");
    let resp = get(&format!("http://127.0.0.1:{}/metrics", off.port()));
    assert_eq!(resp.status, 404, "{}", resp.text());
    let admin = get(&format!("{}/stats/prometheus", off.admin_url())).text();
    assert!(
        !admin.contains("meshmux_tool"),
        "counted with metrics off:\n{admin}"
    );
    drop(off);

    let moved = Gateway::builder()
        .env("Prod", &prod)
        .metrics(json!({"path": "/internal/prom"}))
        .start()?;
    let r = moved.call_tool("search_logs", json!({"env": "Prod", "query": "x"}))?;
    assert!(!is_error(&r), "{r:#}");
    let base = format!("http://127.0.0.1:{}", moved.port());
    assert_eq!(get(&format!("{base}/metrics")).status, 404);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(&format!("{base}/internal/prom")).text();
        let m = Samples::parse(&text)?;
        let requests = m.by("meshmux_tool_requests_total", &["env", "tool"]);
        if requests == counts(&[(&["Prod", "search_logs"], 1.0)]) {
            // No per-user series unless asked for.
            assert!(
                m.series("meshmux_user_tool_calls_total").is_empty(),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(moved);

    // Per-user series without an `auth` block: every caller is `anonymous`.
    let anonymous = Gateway::builder()
        .env("Prod", &prod)
        .metrics(json!({"user_level_metrics": true}))
        .start()?;
    for _ in 0..2 {
        let r = anonymous.call_tool("search_logs", json!({"env": "Prod", "query": "x"}))?;
        assert!(!is_error(&r), "{r:#}");
    }
    let text = get(&format!("http://127.0.0.1:{}/metrics", anonymous.port())).text();
    assert_eq!(
        Samples::parse(&text)?.by("meshmux_user_tool_calls_total", &["principal"]),
        counts(&[(&["anonymous"], 2.0)]),
        "{text}"
    );
    Ok(())
}
