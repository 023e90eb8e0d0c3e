//! `meshmux bridge` on real processes: `@modelcontextprotocol/server-everything` over stdio
//! and in its legacy SSE mode behind the bridge, called by real clients (the TypeScript SDK's
//! every-tool run with sampling, elicitation, roots and progress; rmcp for resources and
//! prompts); the child's environment; a child that dies; the `Supervisor` `meshmux up` uses.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use tests::process::Proc;
use tests::rmcp_client::RmcpClient;
use tests::sdk_everything::{self, Sdk};
use tests::{logs, ports, prereq};

/// In the bridge's own environment only: the child must never see it.
const SECRET: (&str, &str) = ("MESHMUX_BRIDGE_TEST_SECRET", "hush-6c1f0e");

fn everything_js() -> Result<PathBuf> {
    prereq::node_module_file("@modelcontextprotocol/server-everything/dist/index.js")
}

/// Waits for `file` to hold a port; fails with the log if `proc` exits first.
fn wait_port(proc: &mut Proc, file: &std::path::Path) -> Result<u16> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(port) = text.trim().parse()
        {
            return Ok(port);
        }
        if let Some(status) = proc.exited() {
            bail!(
                "{} exited ({status}):\n{}",
                proc.name(),
                logs::tail(proc.log(), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{} wrote no port file:\n{}",
        proc.name(),
        logs::tail(proc.log(), 30)
    )
}

/// `meshmux bridge` in front of `server-everything stdio`, named `everything`.
fn stdio_bridge() -> Result<(Proc, String)> {
    let port_file = logs::unique_path("bridge", ".port")?;
    let mut cmd = Command::new(prereq::meshmux()?);
    cmd.args(["bridge", "--listen", "127.0.0.1:0", "--name", "everything"])
        .arg("--port-file")
        .arg(&port_file)
        .args(["--env", "MESHMUX_TEST_ENV=Alpha", "--env", "PASSED_ON"])
        .env(SECRET.0, SECRET.1)
        .env("PASSED_ON", "from-the-bridge")
        .arg("--")
        .arg(prereq::node()?)
        .arg(everything_js()?)
        .arg("stdio");
    let mut proc = Proc::spawn("bridge-stdio", &mut cmd)?.graceful();
    let port = wait_port(&mut proc, &port_file)?;
    Ok((proc, format!("http://127.0.0.1:{port}/mcp")))
}

/// The bridge's children (its stdio servers).
fn children(bridge: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .arg("-P")
        .arg(bridge.to_string())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} within {timeout:?}")
}

fn run_everything(url: &str) -> Result<sdk_everything::Summary> {
    let summary = sdk_everything::run(Sdk::TsV1, url, "Alpha", "Alpha", Duration::from_secs(15))?;
    let problems = summary.problems();
    assert!(problems.is_empty(), "{problems:#?}\n{}", summary.table());
    Ok(summary)
}

fn text_of(call: &Value) -> String {
    call.get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Resources and prompts (which the every-tool run does not touch) through rmcp.
fn resources_and_prompts(url: &str) -> Result<()> {
    let client = RmcpClient::connect(url)?;
    let resources = client.list_all_resources()?;
    let uri = resources
        .iter()
        .find_map(|r| r.get("uri").and_then(Value::as_str))
        .context("no resource listed")?
        .to_owned();
    let read = client.read_resource(&uri)?;
    assert_eq!(read.pointer("/contents/0/uri"), Some(&json!(uri)), "{read}");
    let prompts = client.list_all_prompts()?;
    assert!(
        prompts
            .iter()
            .any(|p| p.get("name") == Some(&json!("simple-prompt"))),
        "{prompts:?}"
    );
    let prompt = client.get_prompt("simple-prompt", json!({}))?;
    assert!(
        prompt
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|m| !m.is_empty()),
        "{prompt}"
    );
    Ok(())
}

#[test]
fn a_stdio_server_behind_the_bridge_serves_every_feature_to_a_real_client() -> Result<()> {
    let (_bridge, url) = stdio_bridge()?;
    // Tools, sampling, elicitation, roots and progress (the TypeScript SDK's callbacks).
    let summary = run_everything(&url)?;
    // The child's environment: its --env variables, nothing else of the bridge's.
    let env = summary
        .calls()
        .iter()
        .find(|c| c.get("tool") == Some(&json!("get-env")))
        .map(text_of)
        .context("get-env was not called")?;
    assert!(env.contains("\"MESHMUX_TEST_ENV\": \"Alpha\""), "{env}");
    assert!(env.contains("\"PASSED_ON\": \"from-the-bridge\""), "{env}");
    assert!(env.contains("\"PATH\""), "{env}");
    assert!(!env.contains(SECRET.0) && !env.contains(SECRET.1), "{env}");
    resources_and_prompts(&url)
}

#[test]
fn a_legacy_sse_server_behind_the_bridge_serves_every_feature_to_a_real_client() -> Result<()> {
    let sse_port = ports::free_port()?;
    let mut server = Command::new(prereq::node()?);
    server
        .arg(everything_js()?)
        .arg("sse")
        .env("PORT", sse_port.to_string())
        .env("MESHMUX_TEST_ENV", "Alpha");
    let _server = Proc::spawn("everything-sse", &mut server)?;
    wait_for(
        "server-everything listening",
        Duration::from_secs(20),
        || ports::is_listening(sse_port),
    )?;
    let port_file = logs::unique_path("bridge-sse", ".port")?;
    let mut cmd = Command::new(prereq::meshmux()?);
    cmd.args(["bridge", "--listen", "127.0.0.1:0"])
        .arg("--port-file")
        .arg(&port_file)
        .arg("--sse-url")
        .arg(format!("http://127.0.0.1:{sse_port}/sse"))
        .args(["--header", "X-Bridge-Test: 1"]);
    let mut bridge = Proc::spawn("bridge-sse", &mut cmd)?.graceful();
    let port = wait_port(&mut bridge, &port_file)?;
    let url = format!("http://127.0.0.1:{port}/mcp");
    run_everything(&url)?;
    resources_and_prompts(&url)
}

#[test]
fn a_server_request_during_two_calls_is_refused_not_sent_to_a_guess() -> Result<()> {
    let (_bridge, url) = stdio_bridge()?;
    // server-everything lists trigger-sampling-request only to a client that can sample.
    let client = RmcpClient::connect_declaring(&url, json!({"sampling": {}}))?;
    let (slow, asked) = std::thread::scope(|s| {
        let slow = s.spawn(|| {
            client.call_tool(
                "trigger-long-running-operation",
                json!({"duration": 3, "steps": 3}),
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let asked = client.call_tool(
            "trigger-sampling-request",
            json!({"prompt": "hi", "maxTokens": 5}),
        );
        (slow.join(), asked)
    });
    let slow = slow.map_err(|_| anyhow::anyhow!("the calling thread panicked"))?;
    assert!(slow.is_ok(), "{slow:?}");
    let asked = match asked {
        Ok(result) => result.to_string(),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        asked.contains("cannot tell which of the 2 requests in flight"),
        "{asked}"
    );
    Ok(())
}

#[test]
fn a_child_that_dies_fails_its_calls_by_name_and_a_new_session_gets_a_fresh_one() -> Result<()> {
    let (mut bridge, url) = stdio_bridge()?;
    let bridge_pid = bridge.id().context("the bridge has no pid")?;
    let client = RmcpClient::connect(&url)?;
    client.call_tool("echo", json!({"message": "hi"}))?;
    let kids = children(bridge_pid);
    assert_eq!(kids.len(), 1, "one child per session: {kids:?}");
    let call = std::thread::spawn(move || {
        let result = client.call_tool(
            "trigger-long-running-operation",
            json!({"duration": 10, "steps": 5}),
        );
        (client, result)
    });
    std::thread::sleep(Duration::from_secs(1));
    for k in &kids {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(k.to_string())
            .status();
    }
    let (client, result) = call
        .join()
        .map_err(|_| anyhow::anyhow!("the calling thread panicked"))?;
    let error = format!(
        "{:#}",
        result.err().context("the call survived its server")?
    );
    assert!(
        error.contains("MCP server `everything` is gone") && error.contains("exited"),
        "{error}"
    );
    assert!(bridge.exited().is_none(), "the bridge must keep running");
    // That session is over; a new one starts a fresh child.
    wait_for("the dead session closed", Duration::from_secs(10), || {
        client
            .call_tool("echo", json!({"message": "again"}))
            .is_err()
    })?;
    drop(client);
    let fresh = RmcpClient::connect(&url)?;
    let echoed = fresh.call_tool("echo", json!({"message": "fresh"}))?;
    assert!(echoed.to_string().contains("Echo: fresh"), "{echoed}");
    // Closing the session (rmcp sends DELETE) stops its child.
    drop(fresh);
    wait_for("no child left", Duration::from_secs(10), || {
        children(bridge_pid).is_empty()
    })
}

#[test]
fn the_supervisor_serves_restarts_a_dead_bridge_on_its_port_and_stops_it() -> Result<()> {
    use discovery::bridge::{BridgeBackend, BridgeSpec, Supervisor};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let log_dir = logs::test_dir()?.join("bridges");
    let spec = BridgeSpec::new(
        "every thing",
        BridgeBackend::Stdio {
            command: prereq::node()?.display().to_string(),
            args: vec![everything_js()?.display().to_string(), "stdio".into()],
            env: [("MESHMUX_TEST_ENV".to_owned(), "Alpha".to_owned())].into(),
        },
        "127.0.0.1:0".parse()?,
    );
    let sup = rt.block_on(Supervisor::start(&prereq::meshmux()?, spec, &log_dir))?;
    let url = sup.url();
    let env = RmcpClient::connect(&url)?.call_tool("get-env", json!({}))?;
    assert!(env.to_string().contains("MESHMUX_TEST_ENV"), "{env}");
    assert!(
        sup.log().ends_with("bridge-every_thing.log"),
        "{}",
        sup.log().display()
    );
    // The bridge dies: it comes back on the same port.
    let first = sup.pid();
    Command::new("kill")
        .arg("-KILL")
        .arg(first.to_string())
        .status()?;
    wait_for(
        "a restarted bridge serving",
        Duration::from_secs(20),
        || {
            sup.restarts() == 1
                && RmcpClient::connect(&url)
                    .and_then(|c| c.call_tool("echo", json!({"message": "back"})))
                    .is_ok()
        },
    )?;
    assert_ne!(sup.pid(), first);
    // Stopping it stops the stdio server of a session still open.
    let open = RmcpClient::connect(&url)?;
    open.call_tool("echo", json!({"message": "open"}))?;
    let kids = children(sup.pid());
    assert_eq!(kids.len(), 1, "{kids:?}");
    let port = sup.addr().port();
    rt.block_on(sup.shutdown());
    assert!(!ports::is_listening(port), "the bridge still listens");
    for k in kids {
        assert!(
            !PathBuf::from(format!("/proc/{k}")).exists(),
            "the stdio server {k} outlived its bridge"
        );
    }
    drop(open);
    Ok(())
}
