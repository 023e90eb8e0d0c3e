//! Responses stream through the gateway untouched: an SSE answer with progress notifications
//! before the result arrives with every event, in order.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use tests::fixtures::everything_twice;
use tests::{OpsEnvs, TsClient, is_error, result_text};

fn call_with_progress(id: u64, name: &str, arguments: Value) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": {"progressToken": "p-1"}}
    })
    .to_string()
}

/// The progress values of the `notifications/progress` messages, in order.
fn progress_of(messages: &[Value]) -> Vec<f64> {
    messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .inspect(|m| assert_eq!(m["params"]["progressToken"], "p-1", "{m}"))
        .map(|m| m["params"]["progress"].as_f64().unwrap())
        .collect()
}

#[test]
fn a_backends_sse_progress_stream_arrives_whole_and_in_order() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let resp = ops.gw.post_json(&call_with_progress(
        7,
        "stream_progress",
        json!({"env": "Staging", "steps": 5}),
    ))?;

    assert_eq!(resp.status, 200);
    assert!(resp.is_sse(), "not SSE: {:?}", resp.headers);
    let messages = resp.messages()?;
    assert_eq!(
        progress_of(&messages),
        [1.0, 2.0, 3.0, 4.0, 5.0],
        "{messages:#?}"
    );
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 7, "the result must come last: {messages:#?}");
    let text = result_text(&last["result"]);
    assert!(text.starts_with("[Staging] stream_progress"), "{text}");
    assert!(text.ends_with("completed 5 steps"), "{text}");
    Ok(())
}

#[test]
fn a_long_sse_answer_streams_rather_than_arriving_at_the_end() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    // 60 steps of 20 ms each: the first progress event exists over a second before the end.
    let resp = ops.gw.post_json(&call_with_progress(
        9,
        "stream_progress",
        json!({"env": "Prod", "steps": 60}),
    ))?;

    assert_eq!(progress_of(&resp.messages()?).len(), 60);
    let first = resp
        .text()
        .find("notifications/progress")
        .and_then(|offset| resp.arrived_at(offset))
        .unwrap();
    let end = resp.finished_at().unwrap();
    eprintln!("first progress event at {first:?}, end of the answer at {end:?}");
    assert!(
        end.saturating_sub(first) > std::time::Duration::from_millis(600),
        "the gateway buffered the answer: first progress at {first:?}, end at {end:?}"
    );
    Ok(())
}

#[test]
fn the_typescript_client_sees_every_progress_notification() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let out = TsClient::new(&ops.gw.url())
        .call_with_progress("stream_progress", json!({"env": "Dev", "steps": 3}))
        .run()?;

    let result = &out["results"][0]["result"];
    assert!(!is_error(result), "{out:#}");
    assert!(
        result_text(result).ends_with("completed 3 steps"),
        "{out:#}"
    );
    let progress: Vec<f64> = out["progress"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(progress, [1.0, 2.0, 3.0], "{out:#}");
    Ok(())
}

#[test]
fn server_everythings_sse_progress_arrives_whole_and_in_order() -> anyhow::Result<()> {
    let (gw, _alpha, _beta) = everything_twice()?;

    let resp = gw.post_json(&call_with_progress(
        3,
        "trigger-long-running-operation",
        json!({"env": "Beta", "duration": 1, "steps": 4}),
    ))?;

    assert_eq!(resp.status, 200);
    assert!(resp.is_sse(), "not SSE: {:?} {}", resp.headers, resp.text());
    let messages = resp.messages()?;
    assert_eq!(
        progress_of(&messages),
        [1.0, 2.0, 3.0, 4.0],
        "{messages:#?}"
    );
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 3);
    assert!(
        result_text(&last["result"]).contains("Long running operation completed"),
        "{last:#}"
    );
    Ok(())
}
