//! Issue 9, finding 1: the dev sign-in (`auth.dev`: anyone who reaches it signs in as any
//! dev user, admin included) is refused behind a listener other machines can reach, by
//! `meshmux up` (before it starts anything) and by `meshmux discover`, with a message that
//! says why and what to do; on loopback both work as before.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::Command;
use std::time::Duration;

use tests::process::Proc;
use tests::{Gateway, logs, ports, prereq};

/// Runs `cmd` to its end (at most 60 s); its exit code and output.
fn run(name: &str, cmd: &mut Command) -> anyhow::Result<(Option<i32>, String)> {
    let mut proc = Proc::spawn(name, cmd)?;
    let status = proc.wait_exit(Duration::from_secs(60))?;
    Ok((status.code(), std::fs::read_to_string(proc.log())?))
}

fn assert_refused(what: &str, code: Option<i32>, out: &str) {
    assert_eq!(code, Some(3), "{what}: {out}");
    for part in ["dev sign-in", "auth.dev", "--bind 0.0.0.0", "loopback"] {
        assert!(out.contains(part), "{what}: `{part}` missing from {out}");
    }
}

#[test]
fn up_refuses_the_dev_sign_in_on_a_public_address() -> anyhow::Result<()> {
    let dir = logs::unique_path("up", "")?;
    let mut cmd = Command::new(prereq::meshmux()?);
    cmd.args(["up", "--bind", "0.0.0.0"])
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--envoy")
        .arg(prereq::envoy()?)
        .args(prereq::filter_args()?)
        .args(["--port", &ports::free_port()?.to_string()])
        .args(["--admin-port", &ports::free_port()?.to_string()]);
    let (code, out) = run("meshmux-up", &mut cmd)?;
    assert_refused("up --bind 0.0.0.0", code, &out);
    assert!(!out.contains("meshmux is up"), "{out}");
    Ok(())
}

#[test]
fn discover_refuses_the_dev_sign_in_on_a_public_address_and_allows_it_on_loopback()
-> anyhow::Result<()> {
    let dir = logs::unique_path("discover", "")?;
    let config = Gateway::builder()
        .env_url("Prod", "http://127.0.0.1:1/mcp")
        .auth("http://127.0.0.1:8090", tests::fixtures::test_roles());
    let config_path = config.write(&dir)?;
    let discover = |bind: &str, out: &str, extra: &[&str]| -> anyhow::Result<_> {
        let mut cmd = Command::new(prereq::meshmux()?);
        cmd.arg("discover")
            .arg("--config")
            .arg(&config_path)
            .arg("--out")
            .arg(dir.join(out))
            .args(prereq::filter_args()?)
            .args(["--bind", bind])
            .args(extra);
        run("meshmux-discover", &mut cmd)
    };

    let (code, out) = discover("0.0.0.0", "public", &[])?;
    assert_refused("discover --bind 0.0.0.0", code, &out);
    assert!(!dir.join("public/lds.yaml").exists(), "it wrote a config");

    // Loopback, or compose's container port published on the host's loopback: written
    // (exit 2: the one backend is unreachable, which is not what this is about).
    let (code, out) = discover("127.0.0.1", "loopback", &[])?;
    assert_eq!(code, Some(2), "{out}");
    assert!(dir.join("loopback/lds.yaml").exists(), "{out}");
    let (code, out) = discover(
        "0.0.0.0",
        "published",
        &["--dev-sign-in-published-on-loopback"],
    )?;
    assert_eq!(code, Some(2), "{out}");
    assert!(dir.join("published/lds.yaml").exists(), "{out}");
    Ok(())
}
