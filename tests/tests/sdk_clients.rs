//! The official SDK clients, which nobody here wrote, calling every `server-everything` tool
//! through meshmux (issue 8): the Python SDK (PyPI `mcp`) in the initialize era, in its default
//! `auto` mode and pinned to 2026-07-28; the TypeScript SDK v1 (initialize era) and the v2
//! client pinned to 2026-07-28. Each has elicitation, sampling and roots callbacks, lists the
//! tools through the gateway and calls each one on env `Alpha` (with `env` added), then
//! `get-env` on `Beta`. The judgement is `tests::sdk_everything::Summary::problems`: every
//! tool listed (those server-everything registers only for capable clients too), every answer
//! right, progress delivered, and a tool that asks the client something either round-trips
//! through the caller's callback or, for a 2026-07-28 caller, is refused at once with a clear
//! tool error; never a hang.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use tests::fixtures::everything_twice;
use tests::sdk_everything::{self, Sdk};

/// How long one tool call may take: the slowest tool takes 1 s directly.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

fn calls_every_tool(sdk: Sdk) -> anyhow::Result<()> {
    let (gw, _alpha, _beta) = everything_twice()?;
    let started = Instant::now();

    let summary = sdk_everything::run(sdk, &gw.url(), "Alpha", "Beta", CALL_TIMEOUT)?;

    let table = summary.table();
    println!("{table}(took {:?})", started.elapsed());
    let mut problems = summary.problems();
    if let Sdk::Python(_) = sdk
        && summary.value["sdkVersion"] != "2.3.0"
    {
        problems.push(format!("mcp is {}, not 2.3.0", summary.value["sdkVersion"]));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with {sdk:?} through meshmux:\n- {}\n\n{table}\nEnvoy log: {}",
        problems.len(),
        problems.join("\n- "),
        gw.log().display()
    );
    Ok(())
}

#[test]
fn python_sdk_initialize_era_calls_every_tool() -> anyhow::Result<()> {
    calls_every_tool(Sdk::Python("legacy"))
}

#[test]
fn python_sdk_default_auto_mode_calls_every_tool() -> anyhow::Result<()> {
    calls_every_tool(Sdk::Python("auto"))
}

#[test]
fn python_sdk_2026_07_28_calls_every_tool() -> anyhow::Result<()> {
    calls_every_tool(Sdk::Python(sdk_everything::MODERN))
}

#[test]
fn typescript_sdk_v1_initialize_era_calls_every_tool() -> anyhow::Result<()> {
    calls_every_tool(Sdk::TsV1)
}

#[test]
fn typescript_client_v2_2026_07_28_calls_every_tool() -> anyhow::Result<()> {
    calls_every_tool(Sdk::TsV2(sdk_everything::MODERN))
}
