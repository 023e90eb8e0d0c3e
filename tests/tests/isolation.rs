//! Callers isolated on the shared backend session (issue 8). The gateway keeps one backend
//! session per env for every caller, and independent callers reuse JSON-RPC ids (most start at
//! 0 or 1), so ids forwarded unchanged collide inside that session. These tests make them
//! collide on purpose, with raw HTTP and explicit ids, against server-everything (answering
//! SSE) and a stateful backend on the official Python SDK (answering JSON), and require that
//! every caller gets its own answer, with its own id, its own progress notifications, and
//! nobody else's; a cancellation touches only its sender's call; concurrent SDK clients each
//! answer their own elicitation and sampling requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::http::{self, Request, Response};
use tests::py_backend::PyJsonBackend;
use tests::sdk_everything;
use tests::{Backend, Gateway, result_text};

/// How long a raw call may wait for its answer before it counts as lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(12);

fn everything() -> anyhow::Result<(Gateway, Backend)> {
    let alpha = Backend::everything("Alpha").start()?;
    let gw = Gateway::builder().env("Alpha", &alpha).start()?;
    // Open the backend session first, so the races below share it from their first call.
    let warm = gw.call_tool("echo", json!({"env": "Alpha", "message": "warm"}))?;
    assert_eq!(result_text(&warm), "Echo: warm", "{warm:#}");
    Ok((gw, alpha))
}

/// POSTs a `tools/call` with exactly this `id` (and `_meta.progressToken` if given).
fn post_call(
    url: &str,
    id: &Value,
    tool: &str,
    arguments: Value,
    progress_token: Option<Value>,
) -> anyhow::Result<Response> {
    post_call_in(url, None, CALL_TIMEOUT, id, tool, arguments, progress_token)
}

/// Like [`post_call`], in the caller's gateway session (if it has one), waiting at most
/// `timeout`.
fn post_call_in(
    url: &str,
    session: Option<&str>,
    timeout: Duration,
    id: &Value,
    tool: &str,
    arguments: Value,
    progress_token: Option<Value>,
) -> anyhow::Result<Response> {
    let mut params = json!({"name": tool, "arguments": arguments});
    if let Some(token) = progress_token {
        params["_meta"] = json!({"progressToken": token});
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let mut request = Request::post(http::client_with_timeout(timeout)?, url, body.to_string());
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    request.send()
}

/// An initialize-era handshake by a raw caller: `initialize` (id 0, as most clients send it)
/// and `notifications/initialized`. Returns the session id the gateway gave, if any.
fn handshake(gw: &Gateway, name: &str) -> anyhow::Result<Option<String>> {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": name, "version": "1.0.0"}
        }
    });
    let resp = gw.post_json(&init.to_string())?;
    anyhow::ensure!(resp.result().is_ok(), "initialize failed: {}", resp.text());
    let session = resp.header("mcp-session-id").map(str::to_owned);
    let mut initialized = gw.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    if let Some(s) = &session {
        initialized = initialized
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let resp = initialized.send()?;
    anyhow::ensure!(
        resp.status == 202,
        "initialized: HTTP {}: {}",
        resp.status,
        resp.text()
    );
    Ok(session)
}

/// What one caller got: its JSON-RPC response (id and result text) and its progress
/// notifications, or why there was none.
struct Got {
    id: Value,
    text: String,
    progress: Vec<Value>,
    sse: bool,
    took: Duration,
}

fn got(resp: anyhow::Result<Response>, took: Duration) -> Result<Got, String> {
    let resp = resp.map_err(|e| format!("no answer after {took:.1?}: {e:#}"))?;
    if resp.status != 200 {
        return Err(format!("HTTP {}: {}", resp.status, resp.text()));
    }
    let messages = resp
        .messages()
        .map_err(|e| format!("unreadable answer: {e:#}"))?;
    let rpc = messages
        .iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .ok_or_else(|| {
            format!(
                "no JSON-RPC response after {took:.1?} (the stream ended without one): {}",
                resp.text()
            )
        })?;
    let progress = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"].clone())
        .collect();
    let text = match rpc.get("result") {
        Some(result) => result_text(result),
        None => format!("JSON-RPC error {}", rpc["error"]),
    };
    Ok(Got {
        id: rpc["id"].clone(),
        text,
        progress,
        sse: resp.is_sse(),
        took,
    })
}

/// One line for the test's output: when the answer came and its text, or why none came.
fn describe(outcome: &Result<Got, String>) -> String {
    match outcome {
        Ok(g) => format!("{:.2?} {:?}", g.took, g.text),
        Err(e) => format!("ERR {e}"),
    }
}

#[derive(Debug, Clone, Copy)]
struct Op {
    duration: f64,
    steps: u32,
}

impl Op {
    /// How server-everything reports this operation (JavaScript prints 3.0 as `3`).
    fn expected(self) -> String {
        format!(
            "Duration: {} seconds, Steps: {}.",
            self.duration, self.steps
        )
    }

    fn arguments(self) -> Value {
        json!({"env": "Alpha", "duration": self.duration, "steps": self.steps})
    }
}

/// Judges one caller's long-running call: its own result, its own id, and exactly its own
/// progress notifications (the same token as the other caller's, restored).
fn judge_long(who: &str, mine: Op, theirs: Op, outcome: Result<Got, String>) -> Option<String> {
    let got = match outcome {
        Ok(g) => g,
        Err(why) => return Some(format!("{who} ({mine:?}) lost its answer: {why}")),
    };
    if got.text.contains(&theirs.expected()) {
        return Some(format!(
            "{who} ({mine:?}) received the OTHER caller's answer after {:.1?}: {}",
            got.took, got.text
        ));
    }
    if !got.text.contains(&mine.expected()) {
        return Some(format!(
            "{who} ({mine:?}) got a wrong answer after {:.1?}: {}",
            got.took, got.text
        ));
    }
    if got.id != json!(1) {
        return Some(format!(
            "{who}'s answer has id {} instead of the 1 it sent",
            got.id
        ));
    }
    let mut problems = Vec::new();
    if got.progress.len() != mine.steps as usize {
        problems.push(format!(
            "{} progress notifications instead of {}",
            got.progress.len(),
            mine.steps
        ));
    }
    for p in &got.progress {
        if p["progressToken"] != json!(1) || p["total"] != json!(mine.steps) {
            problems.push(format!("a progress notification not its own: {p}"));
        }
    }
    (!problems.is_empty()).then(|| format!("{who} ({mine:?}): {}", problems.join("; ")))
}

#[test]
fn same_id_long_running_calls_from_two_callers_each_get_their_own_answer() -> anyhow::Result<()> {
    // The issue's race: A calls with id 1, B calls the same tool with id 1 half a second later;
    // with ids forwarded unchanged, B received A's answer and A nothing.
    let (gw, _alpha) = everything()?;
    let long = Op {
        duration: 3.0,
        steps: 3,
    };
    let short = Op {
        duration: 1.5,
        steps: 2,
    };
    let mut problems = Vec::new();
    let mut log = Vec::new();
    for round in 1..=3 {
        for (order, a, b) in [
            ("A long, B short", long, short),
            ("A short, B long", short, long),
        ] {
            let url = gw.url();
            let caller = move |op: Op| {
                let url = url.clone();
                thread::spawn(move || {
                    let start = Instant::now();
                    let resp = post_call(
                        &url,
                        &json!(1),
                        "trigger-long-running-operation",
                        op.arguments(),
                        Some(json!(1)),
                    );
                    got(resp, start.elapsed())
                })
            };
            let first = caller(a);
            // The race's stagger (B starts while A runs), not a readiness wait.
            thread::sleep(Duration::from_millis(500));
            let second = caller(b);
            let got_a = first.join().unwrap();
            let got_b = second.join().unwrap();
            log.push(format!(
                "round {round} ({order}): A {}, B {}",
                describe(&got_a),
                describe(&got_b),
            ));
            for (who, mine, theirs, outcome) in [("A", a, b, got_a), ("B", b, a, got_b)] {
                if let Some(p) = judge_long(who, mine, theirs, outcome) {
                    problems.push(format!("round {round} ({order}): {p}"));
                }
            }
        }
    }
    println!("{}", log.join("\n"));
    assert!(
        problems.is_empty(),
        "{} problem(s):\n- {}\n\nrounds:\n{}\nEnvoy log: {}",
        problems.len(),
        problems.join("\n- "),
        log.join("\n"),
        gw.log().display()
    );
    Ok(())
}

/// `waves` × `callers` calls, each wave released at once, every call with the same JSON-RPC id
/// 1 (number for even callers, string "1" for odd ones) and its own argument. Returns the
/// problems: lost answers, crossed answers, ids not restored, and the wrong answer form.
fn same_id_bursts(
    url: &str,
    waves: usize,
    callers: usize,
    tool: &'static str,
    arguments: fn(&str) -> Value,
    expected: fn(&str) -> String,
    sse: bool,
) -> (Vec<String>, String) {
    let mut problems = Vec::new();
    let (mut lost, mut crossed, mut ok) = (0, 0, 0);
    let started = Instant::now();
    for wave in 0..waves {
        let barrier = Arc::new(Barrier::new(callers));
        let handles: Vec<_> = (0..callers)
            .map(|i| {
                let url = url.to_owned();
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    // Bracketed, so that no message is a prefix of another (caller1 / caller10).
                    let message = format!("[wave{wave}-caller{i}]");
                    let id = if i % 2 == 0 { json!(1) } else { json!("1") };
                    barrier.wait();
                    let start = Instant::now();
                    let resp = post_call(&url, &id, tool, arguments(&message), None);
                    (message, id, got(resp, start.elapsed()))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let all: Vec<String> = results.iter().map(|(m, _, _)| m.clone()).collect();
        for (message, id, outcome) in results {
            match outcome {
                Err(why) => {
                    lost += 1;
                    problems.push(format!("{message} (id {id}) lost its answer: {why}"));
                }
                Ok(g) => {
                    let foreign: Vec<&String> = all
                        .iter()
                        .filter(|m| **m != message && g.text.contains(&expected(m)))
                        .collect();
                    if !foreign.is_empty() {
                        crossed += 1;
                        problems.push(format!(
                            "{message} (id {id}) received {foreign:?}'s answer: {}",
                            g.text
                        ));
                    } else if !g.text.contains(&expected(&message)) {
                        problems.push(format!(
                            "{message} (id {id}) got a wrong answer: {}",
                            g.text
                        ));
                    } else if g.id != id {
                        problems.push(format!(
                            "{message} sent id {id} and got its answer with id {}",
                            g.id
                        ));
                    } else if g.sse != sse {
                        problems.push(format!(
                            "{message}: answered as {} where the backend answers {}",
                            if g.sse { "SSE" } else { "JSON" },
                            if sse { "SSE" } else { "JSON" }
                        ));
                    } else {
                        ok += 1;
                    }
                }
            }
        }
    }
    let summary = format!(
        "{} calls to {tool} in {:.1?}: {ok} right, {lost} lost, {crossed} crossed, {} other problems",
        waves * callers,
        started.elapsed(),
        problems.len() - lost - crossed
    );
    (problems, summary)
}

fn assert_no_problems(problems: &[String], summary: &str, gw: &Gateway) {
    println!("{summary}");
    let shown: Vec<&String> = problems.iter().take(30).collect();
    assert!(
        problems.is_empty(),
        "{summary}\n- {}\n{}Envoy log: {}",
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n- "),
        if problems.len() > shown.len() {
            format!("(and {} more)\n", problems.len() - shown.len())
        } else {
            String::new()
        },
        gw.log().display()
    );
}

#[test]
fn many_concurrent_same_id_calls_to_server_everything_are_neither_lost_nor_crossed_sse()
-> anyhow::Result<()> {
    let (gw, _alpha) = everything()?;

    // Instant calls (`echo`, a distinct message each): server-everything answers each before
    // it reads the next request, so collisions are rare here...
    let (mut problems, echo) = same_id_bursts(
        &gw.url(),
        5,
        20,
        "echo",
        |m| json!({"env": "Alpha", "message": m}),
        |m| format!("Echo: {m}"),
        true,
    );
    // ...and calls that overlap (0.3 s each, a distinct step count per caller) collide always.
    let (overlapping, long) = same_id_bursts(
        &gw.url(),
        3,
        20,
        "trigger-long-running-operation",
        |m| json!({"env": "Alpha", "duration": 0.3, "steps": caller_steps(m)}),
        |m| format!("Duration: 0.3 seconds, Steps: {}.", caller_steps(m)),
        true,
    );
    problems.extend(overlapping);

    assert_no_problems(&problems, &format!("{echo}\n{long}"), &gw);
    Ok(())
}

/// A step count unique to each caller of a burst: its index (from `[wave<w>-caller<i>]`) + 1.
fn caller_steps(message: &str) -> u32 {
    message
        .rsplit("caller")
        .next()
        .and_then(|rest| rest.trim_end_matches(']').parse::<u32>().ok())
        .map_or(1, |i| i + 1)
}

#[test]
fn many_concurrent_same_id_calls_to_a_json_answering_backend_are_neither_lost_nor_crossed()
-> anyhow::Result<()> {
    // server-everything only answers SSE (and the rmcp demo backend answers JSON only when
    // stateless); a stateful backend on the official Python SDK with `json_response=True`
    // answers the same calls as plain JSON bodies within one shared session.
    let alpha = PyJsonBackend::start()?;
    let gw = Gateway::builder().env_url("Alpha", &alpha.url()).start()?;
    let warm = gw.call("slow_echo", json!({"env": "Alpha", "message": "warm"}))?;
    assert!(!warm.is_sse(), "the backend answered SSE: {}", warm.text());
    assert_eq!(
        result_text(&warm.result()?),
        "Echo: warm",
        "{}",
        warm.text()
    );

    let (problems, summary) = same_id_bursts(
        &gw.url(),
        5,
        20,
        "slow_echo",
        |m| json!({"env": "Alpha", "message": m, "delay_ms": 200}),
        |m| format!("Echo: {m}"),
        false,
    );

    assert_no_problems(&problems, &summary, &gw);
    Ok(())
}

#[test]
fn a_cancellation_reaches_only_the_call_of_the_caller_that_sent_it() -> anyhow::Result<()> {
    // A and B (each after its own initialize handshake) both call with id 1; B then cancels
    // its request 1. A's call must finish with its own answer; B's call must be cancelled at
    // the backend (server-everything then never answers it), and B must never see A's answer.
    let (gw, _alpha) = everything()?;
    let session_a = handshake(&gw, "caller-a")?;
    let session_b = handshake(&gw, "caller-b")?;
    let a = Op {
        duration: 2.0,
        steps: 2,
    };
    let b = Op {
        duration: 2.5,
        steps: 5,
    };
    let url = gw.url();
    let start_call = |op: Op, session: Option<String>, timeout: Duration| {
        let url = url.clone();
        thread::spawn(move || {
            let start = Instant::now();
            let resp = post_call_in(
                &url,
                session.as_deref(),
                timeout,
                &json!(1),
                "trigger-long-running-operation",
                op.arguments(),
                None,
            );
            got(resp, start.elapsed())
        })
    };
    let first = start_call(a, session_a.clone(), CALL_TIMEOUT);
    // Stagger the callers, then let B's call start before it is cancelled.
    thread::sleep(Duration::from_millis(300));
    // B's answer would come at 2.5 s; waiting 5 s shows whether it was cancelled.
    let second = start_call(b, session_b.clone(), Duration::from_secs(5));
    thread::sleep(Duration::from_millis(400));
    let cancel = json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 1, "reason": "caller B gave up"}
    });
    let mut request = gw.post(cancel.to_string());
    if let Some(s) = &session_b {
        request = request
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let cancelled = request.send()?;
    let got_a = first.join().unwrap();
    let got_b = second.join().unwrap();

    println!(
        "sessions: A {session_a:?}, B {session_b:?}; cancel: HTTP {}; A: {}; B: {}",
        cancelled.status,
        describe(&got_a),
        describe(&got_b),
    );
    assert_eq!(cancelled.status, 202, "{}", cancelled.text());
    let got_a = got_a.map_err(|e| anyhow::anyhow!("A lost its answer to B's cancellation: {e}"))?;
    assert!(
        got_a.text.contains(&a.expected()) && got_a.id == json!(1),
        "A (not cancelled) got {:?} with id {} after {:.1?}",
        got_a.text,
        got_a.id,
        got_a.took
    );
    if let Ok(got_b) = &got_b {
        assert!(
            !got_b.text.contains(&a.expected()),
            "B received A's answer: {}",
            got_b.text
        );
        assert!(
            !got_b.text.contains(&b.expected()),
            "B's cancellation never reached its backend request: B got its result after {:.1?}",
            got_b.took
        );
    }
    Ok(())
}

#[test]
fn concurrent_sdk_clients_each_answer_their_own_elicitation_and_sampling() -> anyhow::Result<()> {
    // Four TypeScript SDK clients (initialize era) ask server-everything to elicit and sample
    // at the same moment, over the one backend session: each backend request must reach the
    // caller whose call sent it, and each caller's answer must reach that call.
    let (gw, _alpha) = everything()?;

    let out = sdk_everything::run_concurrent(&gw.url(), "Alpha", 4, Duration::from_secs(15))?;

    let results = out["results"].as_array().cloned().unwrap_or_default();
    let lines: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "caller {} {:<28} {:<8} {:>6}s {}",
                r["client"],
                r["tool"].as_str().unwrap_or("?"),
                r["verdict"].as_str().unwrap_or("?"),
                r["seconds"],
                r["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    println!("{}\ncallbacks: {}", lines.join("\n"), out["callbacks"]);
    let bad: Vec<&String> = lines
        .iter()
        .zip(&results)
        .filter(|(_, r)| r["verdict"] != "pass")
        .map(|(l, _)| l)
        .collect();
    assert!(
        out["error"].is_null(),
        "the clients failed: {}",
        out["error"]
    );
    assert_eq!(results.len(), 8, "{out:#}");
    assert!(
        bad.is_empty(),
        "{} of 8 calls did not round-trip their own answer:\n{}\ncallbacks: {}\nEnvoy log: {}",
        bad.len(),
        lines.join("\n"),
        out["callbacks"],
        gw.log().display()
    );
    Ok(())
}
