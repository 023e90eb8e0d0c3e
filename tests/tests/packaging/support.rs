//! Reading compose.yaml and the Dockerfile the way Docker would, enough to check them: the
//! services (merge keys applied), their command lines and mounts, and the Dockerfile's stages
//! and instructions.

use std::path::PathBuf;

use serde_json::Value;
use tests::{mesh, prereq};

pub const COMPOSE: &str = "compose.yaml";

pub fn root() -> PathBuf {
    prereq::root()
}

/// compose.yaml, merge keys (`<<: *anchor`) applied.
pub fn compose() -> Value {
    let mut docs = mesh::docs(COMPOSE).unwrap();
    assert_eq!(docs.len(), 1, "compose.yaml holds one document");
    docs.remove(0)
}

pub fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let svc = &compose["services"][name];
    assert!(svc.is_object(), "compose.yaml has no service `{name}`");
    svc
}

pub fn services(compose: &Value) -> Vec<(String, Value)> {
    compose["services"]
        .as_object()
        .expect("compose.yaml has services")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub const CONFIG_IN_CONTAINER: &str = "/etc/meshmux/config.yaml";

/// A Fernet key for these tests only: compose.yaml has none (issue 9: a default key in a
/// public file protects nothing), so the tests pass one in as a user does.
pub const TEST_FERNET_KEY: &str = "dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhISE=";

/// A Redis password for these tests only (compose.yaml requires one, with no default).
pub const TEST_REDIS_PASSWORD: &str = "test-only-redis-password";

/// Asserts that compose.yaml gives `svc` the secret `var` only from the environment, with no
/// default (`${VAR:?message}`).
pub fn assert_required(svc: &Value, var: &str) {
    let raw = svc["environment"][var]
        .as_str()
        .unwrap_or_else(|| panic!("{var} is not set for {svc}"));
    assert!(
        raw.starts_with(&format!("${{{var}:?")) && raw.ends_with('}'),
        "compose.yaml must require {var}, with no default: {raw}"
    );
}

/// The key compose.yaml gives `svc`: it must be required from the environment, with no
/// default (`${MESHMUX_FERNET_KEY:?message}`); the tests then use [`TEST_FERNET_KEY`].
pub fn fernet_default(svc: &Value) -> String {
    assert_required(svc, "MESHMUX_FERNET_KEY");
    TEST_FERNET_KEY.to_owned()
}

/// The host file mounted at the config path of `svc`, relative to the repository root.
pub fn config_source(svc: &Value) -> String {
    let m = mount_at(svc, CONFIG_IN_CONTAINER);
    assert!(
        m.bind && m.read_only,
        "{m:?}: the config is a read-only bind mount"
    );
    m.source.trim_start_matches("./").to_owned()
}

pub fn load_config(relative: &str, fernet: &str) -> policy::config::Config {
    let text = std::fs::read_to_string(root().join(relative)).unwrap();
    let lookup = |var: &str| match var {
        "MESHMUX_FERNET_KEY" => Some(fernet.to_owned()),
        "MESHMUX_REDIS_PASSWORD" => Some(TEST_REDIS_PASSWORD.to_owned()),
        _ => None,
    };
    policy::config::Config::parse(&text, policy::config::Format::Yaml, relative, &lookup)
        .unwrap_or_else(|e| panic!("{relative} does not load: {e}"))
}

/// The services that run `meshmux demo-backend`: service name → (env, port, bind).
pub fn demo_backends(compose: &Value) -> Vec<(String, String, u16, String)> {
    services(compose)
        .into_iter()
        .filter_map(|(name, svc)| {
            let cmd = command(&svc);
            (cmd.get(1).map(String::as_str) == Some("demo-backend")).then(|| {
                (
                    name,
                    flag(&cmd, "--env").unwrap().to_owned(),
                    flag(&cmd, "--port").unwrap().parse().unwrap(),
                    flag(&cmd, "--bind").unwrap_or("127.0.0.1").to_owned(),
                )
            })
        })
        .collect()
}

/// A service's command as a list of arguments (the exec form; a string command would go
/// through a shell, which the images are not meant to need).
pub fn command(svc: &Value) -> Vec<String> {
    let list = svc["command"]
        .as_array()
        .unwrap_or_else(|| panic!("command is not a list: {}", svc["command"]));
    list.iter()
        .map(|a| {
            a.as_str()
                .unwrap_or_else(|| panic!("argument {a} is not a string (quote numbers)"))
                .to_owned()
        })
        .collect()
}

/// The value after `--name` in `args`.
pub fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// `args` with `--name <value>` replaced by `--name <new>` (`None`: both removed).
pub fn with_flag(args: &[String], name: &str, new: Option<&str>) -> Vec<String> {
    let i = args
        .iter()
        .position(|a| a == name)
        .unwrap_or_else(|| panic!("{name} is not in {args:?}"));
    let mut out = args.to_vec();
    match new {
        Some(v) => out[i + 1] = v.to_owned(),
        None => {
            out.drain(i..i + 2);
        }
    }
    out
}

/// One entry of a service's `volumes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// A host path (bind) or a named volume.
    pub source: String,
    pub target: String,
    pub bind: bool,
    pub read_only: bool,
}

pub fn mounts(svc: &Value) -> Vec<Mount> {
    svc["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match m {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                assert!(parts.len() >= 2, "volume `{s}` has no target");
                Mount {
                    source: parts[0].to_owned(),
                    target: parts[1].to_owned(),
                    bind: parts[0].starts_with('.') || parts[0].starts_with('/'),
                    read_only: parts.get(2) == Some(&"ro"),
                }
            }
            long => Mount {
                source: long["source"].as_str().unwrap().to_owned(),
                target: long["target"].as_str().unwrap().to_owned(),
                bind: long["type"] == "bind",
                read_only: long["read_only"] == true,
            },
        })
        .collect()
}

/// The mount of `svc` at `target`.
pub fn mount_at(svc: &Value, target: &str) -> Mount {
    mounts(svc)
        .into_iter()
        .find(|m| target == m.target || target.starts_with(&format!("{}/", m.target)))
        .unwrap_or_else(|| panic!("nothing is mounted at {target} in {svc}"))
}

/// One Dockerfile stage: its base and its instructions (keyword upper-cased, arguments with
/// line continuations joined).
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: Option<String>,
    pub from: String,
    pub instructions: Vec<(String, String)>,
}

impl Stage {
    pub fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.instructions
            .iter()
            .filter(move |(k, _)| k == keyword)
            .map(|(_, args)| args.as_str())
    }
}

pub fn dockerfile(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim().to_owned();
        if keyword == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                _ => None,
            };
            stages.push(Stage {
                name,
                from: words[0].to_owned(),
                instructions: Vec::new(),
            });
        } else {
            let stage = stages.last_mut().expect("an instruction before FROM");
            stage.instructions.push((keyword, args));
        }
    }
    stages
}

/// A COPY's `--from` stage (if any), sources and destination.
pub fn copy_parts(args: &str) -> (Option<String>, Vec<String>, String) {
    let words: Vec<&str> = args.split_whitespace().collect();
    let from = words
        .iter()
        .find_map(|w| w.strip_prefix("--from="))
        .map(str::to_owned);
    let paths: Vec<String> = words
        .iter()
        .filter(|w| !w.starts_with("--"))
        .map(|w| (*w).to_owned())
        .collect();
    let (dest, sources) = paths.split_last().expect("COPY without a destination");
    (from, sources.to_vec(), dest.clone())
}
