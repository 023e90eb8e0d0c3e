//! The Dockerfile against compose.yaml and the workspace: what the builds read exists and is
//! in the context, images are pinned and run unprivileged, the filter is built for wasm32.

use std::collections::BTreeSet;

use super::support::{compose, copy_parts, dockerfile, mounts, root, service, services};

#[test]
fn every_file_compose_and_the_dockerfile_name_exists() {
    let compose = compose();
    let mut built = 0;
    for (name, svc) in services(&compose) {
        if let Some(build) = svc.get("build") {
            let context = root().join(build["context"].as_str().unwrap());
            assert!(
                context.is_dir(),
                "{name}: no build context {}",
                context.display()
            );
            let file = context.join(build["dockerfile"].as_str().unwrap());
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{name}: {}: {e}", file.display()));
            let stages = dockerfile(&text);
            let target = build["target"].as_str().unwrap();
            assert!(
                stages.iter().any(|s| s.name.as_deref() == Some(target)),
                "{name}: the Dockerfile has no stage `{target}`"
            );
            // Every file the build copies from the context is there.
            for stage in &stages {
                for copy in stage.all("COPY") {
                    let (from, sources, _) = copy_parts(copy);
                    if from.is_none() {
                        for src in sources {
                            assert!(context.join(&src).exists(), "COPY {src}: no such file");
                        }
                    }
                }
            }
            built += 1;
        }
        for m in mounts(&svc).into_iter().filter(|m| m.bind) {
            assert!(
                root().join(&m.source).exists(),
                "{name}: mounts {}",
                m.source
            );
        }
    }
    assert!(built >= 2, "the meshmux and authsvc images are built here");
}

/// The `[workspace] members` list of the root Cargo.toml (kept on one line there; the tests
/// crate has no TOML parser).
fn workspace_members(text: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("Cargo.toml lists workspace members on one line");
    let list = line.split_once('[').unwrap().1.split_once(']').unwrap().0;
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn the_build_stage_gets_every_workspace_member_and_nothing_ignored() {
    let text = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
    let stages = dockerfile(&text);
    let copied: Vec<String> = stages[0]
        .all("COPY")
        .map(copy_parts)
        .filter(|(from, ..)| from.is_none())
        .flat_map(|(_, sources, _)| sources)
        .collect();
    // Cargo refuses a workspace with a member missing, so a new crate needs a COPY.
    let members = workspace_members(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap());
    assert!(members.len() >= 5, "{members:?}");
    for member in &members {
        assert!(
            copied.contains(member),
            "docker/Dockerfile does not COPY workspace member {member}"
        );
    }
    for file in ["Cargo.toml", "Cargo.lock"] {
        assert!(copied.iter().any(|c| c == file), "the build needs {file}");
    }
    // .dockerignore keeps build output out of the context, never a source the build copies.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for pattern in ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let pattern = pattern.trim_end_matches('/').trim_start_matches("**/");
        for src in &copied {
            let first = src.split('/').next().unwrap();
            assert_ne!(
                first, pattern,
                ".dockerignore excludes {src}, which the build copies"
            );
        }
    }
}

#[test]
fn images_are_pinned_and_run_unprivileged() {
    let compose = compose();
    let text = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
    let stages = dockerfile(&text);
    let names: BTreeSet<_> = stages.iter().filter_map(|s| s.name.clone()).collect();
    let pinned = |image: &str| {
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        tag.chars().any(|c| c.is_ascii_digit()) && !tag.contains("latest")
    };
    for stage in &stages {
        if !names.contains(&stage.from) {
            assert!(pinned(&stage.from), "FROM {} is not pinned", stage.from);
        }
    }
    for (name, svc) in services(&compose) {
        if svc.get("build").is_none() {
            let image = svc["image"].as_str().unwrap();
            assert!(pinned(image), "{name}: image {image} is not pinned");
        }
    }
    // The images compose runs end unprivileged, and Envoy runs as their user: the generated
    // lds.yaml and ecds.yaml are owner-only.
    for target in ["meshmux", "authsvc"] {
        let stage = stages
            .iter()
            .find(|s| s.name.as_deref() == Some(target))
            .unwrap();
        let user = stage.all("USER").last().expect("a USER");
        assert!(
            !["root", "0", "0:0"].contains(&user),
            "{target} runs as {user}"
        );
        let envoy_user = service(&compose, "envoy")["user"].as_str().unwrap();
        assert_eq!(envoy_user, user, "Envoy runs as the meshmux images' user");
    }
    // The filter is built for wasm32 in the image, with the target rustup provides there.
    let build = &stages[0];
    let runs: Vec<&str> = build.all("RUN").collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("rustup target add wasm32-unknown-unknown"))
    );
    assert!(
        runs.iter()
            .any(|r| r.contains("-p filter --target wasm32-unknown-unknown"))
    );
}
