//! Discovery declares the client capabilities the gateway bridges (elicitation in form mode,
//! sampling, roots), so a server that registers tools only for capable clients
//! (`server-everything`) has them in the catalog, and the manifest records, per tool and env,
//! the capabilities it was listed for.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use tests::{Backend, Config, gateway};

fn tool<'a>(manifest: &'a Value, name: &str) -> Option<&'a Value> {
    manifest["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool"]["name"] == name)
}

#[test]
fn capability_gated_tools_of_server_everything_are_in_the_catalog_with_their_needs()
-> anyhow::Result<()> {
    let alpha = Backend::everything("Alpha").start()?;
    let beta = Backend::everything("Beta").start()?;
    let config = Config::new().env("Alpha", &alpha).env("Beta", &beta);

    let found = gateway::discover(&config)?;

    let text = std::fs::read_to_string(found.out.join("manifest.json"))?;
    let manifest: Value = serde_json::from_str(&text)?;
    for (name, needs) in [
        ("trigger-elicitation-request", "elicitation"),
        ("trigger-sampling-request", "sampling"),
    ] {
        let entry = tool(&manifest, name).unwrap_or_else(|| panic!("{name} is not listed"));
        assert_eq!(
            entry["envs"],
            json!([
                {"env": "Alpha", "params": entry["envs"][0]["params"], "requires": [needs]},
                {"env": "Beta", "params": entry["envs"][1]["params"], "requires": [needs]}
            ]),
            "{name}"
        );
    }
    // Tools every client sees record nothing (and manifests without gated tools keep their
    // old form and hash).
    let echo = tool(&manifest, "echo").unwrap();
    assert!(echo["envs"][0].get("requires").is_none(), "{echo:#}");
    // URL-mode elicitation and roots are not declared (roots are asked for outside any
    // call, where the gateway cannot answer): those tools stay out.
    assert!(tool(&manifest, "trigger-url-elicitation").is_none());
    assert!(tool(&manifest, "get-roots-list").is_none());
    Ok(())
}
