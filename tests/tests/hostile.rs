//! The hostile-request corpus (`tests/corpus/hostile.json`) through real Envoy + the filter,
//! behind auth: every request gets the clear error the corpus expects, none reaches a backend,
//! and none restarts the wasm VM.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;
use serde_json::json;
use tests::auth::Issuer;
use tests::fixtures::AuthOps;
use tests::http::Request;
use tests::{Response, is_error, result_text};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    #[allow(dead_code)]
    about: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    class: String,
    name: String,
    #[serde(default = "post")]
    method: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_gen: Option<Generated>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    chunked: bool,
    #[serde(default = "admin", rename = "as")]
    caller: String,
    expect: Expect,
}

fn post() -> String {
    "POST".into()
}

fn admin() -> String {
    "admin".into()
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Generated {
    /// A `tools/call` whose `query` argument holds invalid UTF-8.
    InvalidUtf8,
    /// `depth` nested arrays.
    Nest { depth: usize },
    /// A `ping` whose `params` nest `depth` arrays.
    NestParams { depth: usize },
    /// A `tools/call` to Prod whose `query` argument nests `depth` objects.
    NestArguments { depth: usize },
    /// A valid `tools/call` just over the 1 MiB body limit.
    Oversize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: u16,
    /// The JSON-RPC error code of the answer.
    #[serde(default)]
    code: Option<i64>,
    /// The answer is a result with `isError: true` whose text contains this.
    #[serde(default)]
    tool_error: Option<String>,
    /// A 401 carrying the MCP `WWW-Authenticate` challenge.
    #[serde(default)]
    challenge: bool,
}

fn load() -> Result<Corpus> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/hostile.json");
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {path}"))
}

fn generate(g: &Generated) -> Vec<u8> {
    let call = |query: &[u8]| {
        let mut body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_logs","arguments":{"env":"Prod","query":"#.to_vec();
        body.extend_from_slice(query);
        body.extend_from_slice(b"}}}");
        body
    };
    match g {
        Generated::InvalidUtf8 => call(b"\"\xff\xfe\xc0\xaf\""),
        Generated::Nest { depth } => {
            let mut body = "[".repeat(*depth);
            body.push_str(&"]".repeat(*depth));
            body.into_bytes()
        }
        Generated::NestParams { depth } => {
            let mut body = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"#.to_owned();
            body.push_str(&"[".repeat(*depth));
            body.push_str(&"]".repeat(*depth));
            body.push_str("}}");
            body.into_bytes()
        }
        Generated::NestArguments { depth } => {
            let mut query = r#"{"a":"#.repeat(*depth);
            query.push('1');
            query.push_str(&"}".repeat(*depth));
            call(query.as_bytes())
        }
        Generated::Oversize => call(format!("\"{}\"", "x".repeat(1024 * 1024)).as_bytes()),
    }
}

/// The tokens the corpus' `as` names, made once per run.
struct Callers {
    tokens: BTreeMap<&'static str, Option<String>>,
}

impl Callers {
    fn new(auth: &AuthOps) -> Result<Self> {
        let issuer = &auth.issuer;
        let mut expired = issuer.claims("eve", &["admin"]);
        expired["iat"] = json!(expired["iat"].as_u64().unwrap() - 7200);
        expired["exp"] = json!(expired["iat"].as_u64().unwrap() + 600);
        let mut wrong_audience = issuer.claims("eve", &["admin"]);
        wrong_audience["aud"] = json!("https://other.example.com/mcp");
        let revoked = issuer.claims("mallory", &["admin"]);
        auth.authsvc.revoke(revoked["jti"].as_str().unwrap());
        let tokens = BTreeMap::from([
            ("admin", Some(issuer.token("root", &["admin"])?)),
            ("reader", Some(issuer.token("alice", &["staging-reader"])?)),
            ("no_roles", Some(issuer.token("nobody", &[])?)),
            ("none", None),
            (
                "unsigned",
                Some(Issuer::unsigned(&issuer.claims("eve", &["admin"]))),
            ),
            (
                "impostor",
                Some(issuer.sign_as_impostor(&issuer.claims("eve", &["admin"]))?),
            ),
            ("expired", Some(issuer.sign(&expired)?)),
            ("wrong_audience", Some(issuer.sign(&wrong_audience)?)),
            ("garbage", Some("not.a.jwt".to_owned())),
            ("revoked", Some(issuer.sign(&revoked)?)),
        ]);
        Ok(Callers { tokens })
    }

    fn token(&self, name: &str) -> Result<Option<&str>> {
        match self.tokens.get(name) {
            Some(token) => Ok(token.as_deref()),
            None => bail!("no caller {name:?} in the corpus harness"),
        }
    }
}

fn send(auth: &AuthOps, callers: &Callers, case: &Case) -> Result<Response> {
    let gw = auth.gw();
    let body = match (&case.body, &case.body_gen) {
        (Some(body), None) => body.clone().into_bytes(),
        (None, Some(g)) => generate(g),
        _ => bail!("give exactly one of body and body_gen"),
    };
    let mut req = if case.method == "POST" {
        gw.post(body)
    } else {
        gw.request(&case.method)?
    };
    if let Some(protocol) = &case.protocol {
        req = req.header("mcp-protocol-version", protocol);
    }
    for (name, value) in &case.headers {
        req = req.header(name, value);
    }
    if let Some(token) = callers.token(&case.caller)? {
        req = req.header("authorization", &format!("Bearer {token}"));
    }
    if let Some(query) = &case.query {
        let admin = callers.token("admin")?.unwrap_or_default();
        req = req.query(&query.replace("ADMIN", admin));
    }
    if case.chunked {
        req = req.chunked();
    }
    Request::send(req)
}

/// Whether `resp` is the answer `expect` describes; the reason when it is not.
fn check(resp: &Response, expect: &Expect) -> std::result::Result<(), String> {
    if resp.status != expect.status {
        return Err(format!("HTTP {} (wanted {})", resp.status, expect.status));
    }
    if expect.challenge {
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        if !challenge.starts_with("Bearer ") || !challenge.contains("resource_metadata=") {
            return Err(format!("no MCP challenge: {challenge:?}"));
        }
    }
    if let Some(code) = expect.code {
        let (got, message) = resp
            .error()
            .map_err(|e| format!("no JSON-RPC error: {e}"))?;
        if got != code || message.trim().is_empty() {
            return Err(format!("error {got} {message:?} (wanted {code})"));
        }
    }
    if let Some(fragment) = &expect.tool_error {
        let result = resp.result().map_err(|e| format!("no result: {e}"))?;
        let text = result_text(&result);
        if !is_error(&result) || !text.contains(fragment.as_str()) {
            return Err(format!(
                "result {result} (wanted isError naming {fragment:?})"
            ));
        }
    }
    Ok(())
}

/// Envoy's counters and gauges whose name says they are about wasm VMs.
fn vm_stats(auth: &AuthOps) -> Result<BTreeMap<String, String>> {
    Ok(auth
        .gw()
        .stats()?
        .lines()
        .filter(|l| l.starts_with("wasm.") && !l.contains("wasmcustom"))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[test]
fn the_hostile_corpus_gets_clear_errors_reaches_no_backend_and_restarts_no_vm() -> Result<()> {
    let corpus = load()?;
    let auth = AuthOps::start()?;
    let callers = Callers::new(&auth)?;
    // The revocation list the gateway polls must hold the revoked token before the corpus.
    let polled = auth.authsvc.requests_of("/internal/revocations");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while auth.authsvc.requests_of("/internal/revocations") < polled + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the filter never fetched the list"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let before = vm_stats(&auth)?;
    assert!(
        before.keys().any(|k| k.ends_with(".created")),
        "no wasm VM stats: {before:?}"
    );

    let mut failures = Vec::new();
    for case in &corpus.cases {
        let resp = send(&auth, &callers, case)
            .with_context(|| format!("{}: {}", case.class, case.name))?;
        if let Err(why) = check(&resp, &case.expect) {
            failures.push(format!(
                "[{}] {}: {why}\n    body: {}",
                case.class,
                case.name,
                resp.text().chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus requests were not answered as expected:\n{}",
        failures.len(),
        corpus.cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        auth.ops.calls_received()?,
        0,
        "a hostile request reached a backend"
    );
    assert_eq!(vm_stats(&auth)?, before, "the wasm VM restarted");

    // The same gateway still serves a caller who may: the recorders see that call.
    let admin = callers.token("admin")?.unwrap_or_default();
    let ok = auth.gw().call_with(
        admin,
        "search_logs",
        json!({"env": "Prod", "query": "after"}),
    )?;
    let ok = ok.result()?;
    assert!(!is_error(&ok), "{ok:#}");
    assert_eq!(auth.ops.prod.wait_for_records(1)?.len(), 1);
    Ok(())
}

#[test]
fn the_corpus_covers_every_class_of_bad_input() -> Result<()> {
    let corpus = load()?;
    let classes: std::collections::BTreeSet<&str> =
        corpus.cases.iter().map(|c| c.class.as_str()).collect();
    for class in [
        "method",
        "framing",
        "duplicate keys",
        "content",
        "protocol",
        "tool",
        "env",
        "rbac",
        "token",
    ] {
        assert!(classes.contains(class), "no {class} case in the corpus");
    }
    for case in &corpus.cases {
        assert!(
            case.body.is_some() != case.body_gen.is_some(),
            "{}: give exactly one of body and body_gen",
            case.name
        );
    }
    Ok(())
}
