//! Prompts, resources and resource templates in the merged catalog. Prompts are merged as
//! tools are: the same prompt in several envs of a server is one prompt, named like the
//! server's tools (`<server>__<prompt>`), with an `env` argument. Resources cannot take an
//! argument, so each backend's resources are listed apart, their URIs made unique across
//! backends by [`wrap_uri`] (reversibly: a read names its backend) whenever the gateway fronts
//! more than one backend; with a single backend they are served exactly as it names them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::manifest::{Diagnostic, OfferEnv, PromptEntry, ResourceEntry};
use crate::merge::ENV_PARAM;
use crate::servers::ServerSpec;

/// The scheme of a served resource URI that names its backend:
/// `meshmux://<backend>/<the backend's own URI>`.
pub const URI_SCHEME: &str = "meshmux";

const URI_PREFIX: &str = "meshmux://";

/// The served URI of a backend's resource (or URI template): unique across backends, and
/// still a URI (backend names are `[A-Za-z0-9_.-]`, a valid authority).
pub fn wrap_uri(backend: &str, uri: &str) -> String {
    format!("{URI_PREFIX}{backend}/{uri}")
}

/// The backend and its own URI in a served URI made by [`wrap_uri`].
pub fn unwrap_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix(URI_PREFIX)?;
    let (backend, original) = rest.split_once('/')?;
    (!backend.is_empty() && !original.is_empty()).then_some((backend, original))
}

/// What discovery listed on one backend besides tools.
#[derive(Debug, Clone, Copy)]
pub struct BackendOfferings<'a> {
    pub backend: &'a str,
    pub prompts: &'a [Value],
    pub resources: &'a [Value],
    pub templates: &'a [Value],
}

/// The catalog's prompts, resources and templates, and what kept some out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Offerings {
    pub prompts: Vec<PromptEntry>,
    pub resources: Vec<ResourceEntry>,
    pub templates: Vec<ResourceEntry>,
    pub warnings: Vec<Diagnostic>,
    pub errors: Vec<Diagnostic>,
}

/// Builds the served prompts, resources and templates of every server from what its
/// backends listed. `wrap`: the gateway fronts several backends, so URIs name theirs.
pub fn assemble(servers: &[ServerSpec], found: &[BackendOfferings<'_>], wrap: bool) -> Offerings {
    let mut out = Offerings::default();
    for server in servers {
        let listed: Vec<(&str, &str, &BackendOfferings<'_>)> = server
            .envs
            .iter()
            .filter_map(|env| {
                let b = found.iter().find(|b| b.backend == env.backend)?;
                Some((env.label.as_str(), env.backend.as_str(), b))
            })
            .collect();
        merge_prompts(server, &listed, &mut out);
        for (_, backend, b) in &listed {
            out.resources
                .extend(resources(backend, b.resources, "uri", wrap));
            out.templates
                .extend(resources(backend, b.templates, "uriTemplate", wrap));
        }
    }
    drop_prompt_collisions(servers, &mut out);
    out
}

/// A prompt as one env offers it: (env label, backend, definition).
type Offered<'a> = (&'a str, &'a str, &'a Map<String, Value>);

/// One server's prompts, the same name in several envs merged into one.
fn merge_prompts(
    server: &ServerSpec,
    listed: &[(&str, &str, &BackendOfferings<'_>)],
    out: &mut Offerings,
) {
    // Prompt name → where it is offered, in config order.
    let mut by_name: BTreeMap<&str, Vec<Offered<'_>>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (label, backend, b) in listed {
        for prompt in b.prompts {
            let Some(def) = prompt.as_object() else {
                continue;
            };
            let Some(name) = def
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            if !by_name.contains_key(name) {
                order.push(name);
            }
            by_name.entry(name).or_default().push((label, backend, def));
        }
    }
    let context = |message: String| {
        if server.name.is_empty() {
            message
        } else {
            format!("server `{}`: {message}", server.name)
        }
    };
    for name in order {
        let Some(defs) = by_name.get(name) else {
            continue;
        };
        let Some(&(_, _, first)) = defs.first() else {
            continue;
        };
        let served = server.served(name);
        let mut prompt = first.clone();
        prompt.insert("name".into(), Value::String(served.clone()));
        let mut arguments: Vec<Value> = first
            .get("arguments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut differs = false;
        for (_, _, def) in defs.iter().skip(1) {
            differs |= def.get("description") != first.get("description");
            for arg in def
                .get("arguments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let known = arguments
                    .iter()
                    .any(|a| a.get("name").is_some() && a.get("name") == arg.get("name"));
                if !known {
                    differs = true;
                    arguments.push(arg.clone());
                }
            }
        }
        let labels: Vec<&str> = defs.iter().map(|(label, _, _)| *label).collect();
        if defs.len() > 1 {
            if arguments
                .iter()
                .any(|a| a.get("name").and_then(Value::as_str) == Some(ENV_PARAM))
            {
                out.errors.push(Diagnostic {
                    tool: served,
                    message: context(format!(
                        "prompt offered in several envs ({}) already has an argument `{ENV_PARAM}`, which the gateway would add to choose the env; not served",
                        labels.join(", ")
                    )),
                });
                continue;
            }
            arguments.push(env_argument(&labels));
            if differs {
                out.warnings.push(Diagnostic {
                    tool: served.clone(),
                    message: context(format!(
                        "prompt differs between envs ({}); serving the first env's description and every env's arguments",
                        labels.join(", ")
                    )),
                });
            }
        }
        if !arguments.is_empty() {
            prompt.insert("arguments".into(), Value::Array(arguments));
        }
        out.prompts.push(PromptEntry {
            prompt,
            envs: defs
                .iter()
                .map(|(label, backend, _)| OfferEnv {
                    env: (*label).to_owned(),
                    backend: (label != backend).then(|| (*backend).to_owned()),
                })
                .collect(),
            upstream: (served != name).then(|| name.to_owned()),
        });
    }
}

/// The `env` argument of a prompt offered in `envs`.
pub fn env_argument(envs: &[&str]) -> Value {
    json!({
        "name": ENV_PARAM,
        "description": format!("Environment to get this prompt from. One of: {}", envs.join(", ")),
        "required": true,
    })
}

/// One backend's resources (or templates: `key` is `uriTemplate`), URIs wrapped if asked.
fn resources(backend: &str, listed: &[Value], key: &str, wrap: bool) -> Vec<ResourceEntry> {
    listed
        .iter()
        .filter_map(|r| {
            let mut resource = r.as_object()?.clone();
            let uri = resource.get(key).and_then(Value::as_str)?.to_owned();
            let upstream = wrap.then(|| {
                resource.insert(key.into(), Value::String(wrap_uri(backend, &uri)));
                uri
            });
            Some(ResourceEntry {
                resource,
                backend: backend.to_owned(),
                upstream,
            })
        })
        .collect()
}

/// Leaves out every prompt whose served name more than one server uses, naming them.
fn drop_prompt_collisions(servers: &[ServerSpec], out: &mut Offerings) {
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &out.prompts {
        let server = p
            .envs
            .first()
            .and_then(|e| {
                servers
                    .iter()
                    .find(|s| s.envs.iter().any(|se| se.backend == e.backend()))
            })
            .map_or_else(String::new, |s| s.name.clone());
        owners.entry(p.name().to_owned()).or_default().push(server);
    }
    for (name, servers) in owners.into_iter().filter(|(_, s)| s.len() > 1) {
        out.prompts.retain(|p| p.name() != name);
        out.errors.push(Diagnostic {
            tool: name,
            message: format!(
                "prompt served by more than one server ({}); give one a `prefix`",
                crate::servers::named(&servers)
            ),
        });
    }
}

#[cfg(test)]
#[path = "offerings_tests.rs"]
pub(crate) mod tests;
