use policy::config::Format;
use serde_json::json;

use super::*;

fn config(prod_url: &str) -> Config {
    let text = format!(
        r#"{{"environments": {{
        "Prod": {{"description": "Production", "url": "{prod_url}"}},
        "Staging": {{"description": "Staging", "url": "http://127.0.0.1:2/mcp"}}}}}}"#
    );
    Config::parse(&text, Format::Json, "ops.json", &|_| None).unwrap()
}

fn listed(tools: &[&str]) -> Result<Discovered, String> {
    Ok(Discovered {
        protocol_version: "2025-11-25".into(),
        server_info: None,
        tools: tools.iter().map(|t| json!({"name": t})).collect(),
        requires: Default::default(),
        offered: Default::default(),
    })
}

fn results(
    prod: Result<Discovered, String>,
    staging: Result<Discovered, String>,
) -> Vec<EnvResult> {
    vec![
        EnvResult {
            name: "Prod".into(),
            outcome: prod,
        },
        EnvResult {
            name: "Staging".into(),
            outcome: staging,
        },
    ]
}

#[test]
fn a_failing_env_keeps_its_last_good_tools_and_one_never_seen_stays_unreachable() {
    let config = config("http://127.0.0.1:1/mcp");
    let mut state = State::default();
    let (first, stale) = state.apply(
        &config,
        results(listed(&["a", "b"]), Err("refused".into())),
        "2026-01-01T00:00:00Z",
    );
    assert!(stale.is_empty());
    assert!(first[1].outcome.is_err(), "never seen: unreachable");

    let (second, stale) = state.apply(
        &config,
        results(Err("timed out".into()), Err("refused".into())),
        "2026-01-01T00:01:00Z",
    );
    assert_eq!(second[0].outcome, listed(&["a", "b"]));
    assert_eq!(
        stale.get("Prod"),
        Some(&Stale {
            reason: "timed out".into(),
            since: "2026-01-01T00:01:00Z".into(),
            listed_at: "2026-01-01T00:00:00Z".into(),
        })
    );
    assert!(second[1].outcome.is_err());

    // Still down a minute later: `since` is when the outage began.
    let (_, stale) = state.apply(
        &config,
        results(Err("timed out".into()), Err("refused".into())),
        "2026-01-01T00:02:00Z",
    );
    assert_eq!(stale["Prod"].since, "2026-01-01T00:01:00Z");

    // Back, with the same list: listed_at unchanged, not stale any more.
    let (_, stale) = state.apply(
        &config,
        results(listed(&["a", "b"]), Err("refused".into())),
        "2026-01-01T00:03:00Z",
    );
    assert!(stale.is_empty());
    let prod = &state.envs["Prod"];
    assert_eq!(prod.down_since, None);
    assert_eq!(
        prod.last_good.as_ref().unwrap().listed_at,
        "2026-01-01T00:00:00Z"
    );
}

#[test]
fn the_state_survives_a_restart_and_an_unchanged_cycle_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = config("http://127.0.0.1:1/mcp");
    let mut state = State::default();
    state.apply(
        &config,
        results(listed(&["a"]), listed(&["b"])),
        "2026-01-01T00:00:00Z",
    );
    assert_eq!(state.save(dir.path()).unwrap(), Written::Created);
    state.apply(
        &config,
        results(listed(&["a"]), listed(&["b"])),
        "2026-01-01T00:05:00Z",
    );
    assert_eq!(state.save(dir.path()).unwrap(), Written::Unchanged);

    let (mut restarted, warning) = State::load(dir.path());
    assert_eq!(warning, None);
    let (merged, stale) = restarted.apply(
        &config,
        results(listed(&["a"]), Err("refused".into())),
        "2026-01-02T00:00:00Z",
    );
    assert_eq!(merged[1].outcome, listed(&["b"]));
    assert_eq!(stale["Staging"].listed_at, "2026-01-01T00:00:00Z");
}

#[test]
fn a_new_url_or_a_removed_env_forgets_the_old_list() {
    let mut state = State::default();
    state.apply(
        &config("http://127.0.0.1:1/mcp"),
        results(listed(&["a"]), listed(&["b"])),
        "t0",
    );
    let moved = config("http://127.0.0.1:9/mcp");
    let (merged, stale) = state.apply(&moved, results(Err("refused".into()), listed(&["b"])), "t1");
    assert!(merged[0].outcome.is_err(), "{merged:?}");
    assert!(stale.is_empty());

    let only_staging = Config::parse(
        r#"{"environments": {"Staging": {"description": "S", "url": "http://127.0.0.1:2/mcp"}}}"#,
        Format::Json,
        "x.json",
        &|_| None,
    )
    .unwrap();
    state.apply(
        &only_staging,
        vec![EnvResult {
            name: "Staging".into(),
            outcome: listed(&["b"]),
        }],
        "t2",
    );
    assert_eq!(state.envs.keys().collect::<Vec<_>>(), vec!["Staging"]);
}

#[test]
fn a_corrupt_or_foreign_state_is_ignored_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
    let (state, warning) = State::load(dir.path());
    assert_eq!(state, State::default());
    assert!(warning.unwrap().contains(STATE_FILE));
    std::fs::write(dir.path().join(STATE_FILE), r#"{"format": 99}"#).unwrap();
    let (_, warning) = State::load(dir.path());
    assert!(warning.unwrap().contains("format 99"));
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_795_340_000), "2026-11-22T09:33:20Z");
}
