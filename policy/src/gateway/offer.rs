//! Prompts, resources and completions: listed locally from the manifest (narrowed to what the
//! caller's roles allow, as tools are), and `prompts/get`, `resources/read`, subscriptions and
//! `completion/complete` sent to the one backend they name. Roles match a prompt's served
//! name and a resource's URI as its backend names it, in the env (or server) that offers it.

use serde_json::{Map, Value, json};

use super::{Caller, ForwardKind, Gateway, Outcome};
use crate::manifest::{EnvEntry, OfferEnv, PromptEntry};
use crate::merge::ENV_PARAM;
use crate::offerings::{env_argument, unwrap_uri};
use crate::reply::{self, LocalReply};
use crate::rpc::code;

impl Gateway {
    pub(super) fn offers_prompts(&self) -> bool {
        !self.config.manifest.prompts.is_empty()
    }

    pub(super) fn offers_resources(&self) -> bool {
        let m = &self.config.manifest;
        !m.resources.is_empty() || !m.resource_templates.is_empty()
    }

    pub(super) fn offers_completions(&self) -> bool {
        self.offers_prompts() || !self.config.manifest.resource_templates.is_empty()
    }

    /// The env label roles match for a backend.
    fn label_of<'a>(&'a self, backend: &'a str) -> &'a str {
        self.config
            .manifest
            .env(backend)
            .map_or(backend, EnvEntry::label)
    }

    /// The envs of `prompt` this caller may use, in manifest order.
    fn prompt_envs<'p>(&self, prompt: &'p PromptEntry, caller: &Caller) -> Vec<&'p OfferEnv> {
        prompt
            .envs
            .iter()
            .filter(|e| self.policy.allows(caller, &e.env, prompt.name()))
            .collect()
    }

    pub(super) fn prompts_list(
        &self,
        id: &Value,
        params: Option<&Map<String, Value>>,
        caller: &Caller,
        modern: bool,
    ) -> LocalReply {
        if let Some(r) = cursor_refusal(id, params) {
            return r;
        }
        let prompts: Vec<Value> = self
            .config
            .manifest
            .prompts
            .iter()
            .filter_map(|p| {
                let allowed = self.prompt_envs(p, caller);
                if allowed.is_empty() {
                    return None;
                }
                let mut prompt = p.prompt.clone();
                if p.takes_env() && allowed.len() < p.envs.len() {
                    let labels: Vec<&str> = allowed.iter().map(|e| e.env.as_str()).collect();
                    narrow_env_argument(&mut prompt, &labels);
                }
                Some(Value::Object(prompt))
            })
            .collect();
        reply::result(id, &list_result("prompts", prompts, modern))
    }

    /// `resources/list`, or `resources/templates/list` when `templates`.
    pub(super) fn resources_list(
        &self,
        id: &Value,
        params: Option<&Map<String, Value>>,
        caller: &Caller,
        modern: bool,
        templates: bool,
    ) -> LocalReply {
        if let Some(r) = cursor_refusal(id, params) {
            return r;
        }
        let m = &self.config.manifest;
        let (entries, key) = if templates {
            (&m.resource_templates, "resourceTemplates")
        } else {
            (&m.resources, "resources")
        };
        let visible: Vec<Value> = entries
            .iter()
            .filter(|r| {
                self.policy
                    .allows(caller, self.label_of(&r.backend), r.upstream_uri())
            })
            .map(|r| Value::Object(r.resource.clone()))
            .collect();
        reply::result(id, &list_result(key, visible, modern))
    }

    pub(super) fn prompts_get(
        &self,
        modern: bool,
        id: Value,
        mut object: Map<String, Value>,
        caller: &Caller,
    ) -> Outcome {
        let params = object.get("params").and_then(Value::as_object);
        let Some(name) = params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return invalid(&id, "`params.name` must be a string naming the prompt");
        };
        let mut arguments = match params.and_then(|p| p.get("arguments")) {
            None | Some(Value::Null) => None,
            Some(Value::Object(a)) => Some(a.clone()),
            Some(_) => return invalid(&id, "`params.arguments` must be an object"),
        };
        let (prompt, env) = match self.choose_prompt_env(&name, arguments.as_mut(), caller) {
            Ok(found) => found,
            Err(message) => return invalid(&id, &message),
        };
        let Some(entry) = self.config.manifest.env(env.backend()) else {
            return invalid(&id, &format!("Unknown prompt: {name}"));
        };
        if let Some(params) = object.get_mut("params").and_then(Value::as_object_mut) {
            params.insert(
                "name".into(),
                Value::String(prompt.upstream_name().to_owned()),
            );
            if let Some(arguments) = arguments {
                params.insert("arguments".into(), Value::Object(arguments));
            }
        }
        let fwd = self.forward_to(entry, ForwardKind::Request, name, id, object, modern);
        Outcome::Forward(Box::new(fwd))
    }

    /// The prompt `name` and the env a request for it goes to: its only env, or the one its
    /// `env` argument names (taken out of `arguments`). Errors are the caller's to read.
    fn choose_prompt_env<'p>(
        &'p self,
        name: &str,
        arguments: Option<&mut Map<String, Value>>,
        caller: &Caller,
    ) -> Result<(&'p PromptEntry, &'p OfferEnv), String> {
        let unknown = || format!("Unknown prompt: {name}");
        let prompt = self
            .config
            .manifest
            .prompts
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(unknown)?;
        let allowed = self.prompt_envs(prompt, caller);
        // Hidden from this caller's prompts/list, so it looks unknown here too.
        let first = *allowed.first().ok_or_else(unknown)?;
        if !prompt.takes_env() {
            return Ok((prompt, first));
        }
        let choices: Vec<&str> = allowed.iter().map(|e| e.env.as_str()).collect();
        let choices = choices.join(", ");
        let chosen = arguments.and_then(|a| a.remove(ENV_PARAM));
        let env = match chosen {
            Some(Value::String(env)) => env,
            None => {
                return Err(format!(
                    "Missing required argument `env` for prompt `{name}`. Valid envs: {choices}."
                ));
            }
            Some(other) => {
                return Err(format!(
                    "Argument `env` must be a string, got {other}. Valid envs for prompt `{name}`: {choices}."
                ));
            }
        };
        match allowed.iter().find(|e| e.env == env) {
            Some(e) => Ok((prompt, e)),
            None if prompt.envs.iter().any(|e| e.env == env) => Err(format!(
                "Access denied: you may not get prompt `{name}` in env `{env}`. Valid envs for you: {choices}."
            )),
            None => Err(format!(
                "Unknown env `{env}` for prompt `{name}`. Valid envs: {choices}."
            )),
        }
    }

    /// `resources/read`, `resources/subscribe` and `resources/unsubscribe`: to the backend
    /// the URI names, with the backend's own URI.
    pub(super) fn resource_request(
        &self,
        modern: bool,
        id: Value,
        mut object: Map<String, Value>,
        caller: &Caller,
    ) -> Outcome {
        let Some(uri) = object
            .get("params")
            .and_then(|p| p.get("uri"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return invalid(&id, "`params.uri` must be a string naming the resource");
        };
        let Some((entry, original)) = self.resolve_uri(&uri, caller) else {
            return not_found(&id, &uri);
        };
        let wrapped = original != uri;
        let read = object.get("method").and_then(Value::as_str) == Some("resources/read");
        if let Some(params) = object.get_mut("params").and_then(Value::as_object_mut) {
            params.insert("uri".into(), Value::String(original));
        }
        let mut fwd = self.forward_to(entry, ForwardKind::Request, uri, id, object, modern);
        fwd.result.wrap_uris = (wrapped && read).then(|| entry.name.clone());
        fwd.result.caching = modern && read;
        Outcome::Forward(Box::new(fwd))
    }

    /// The backend a served URI (or URI template) belongs to and its own URI there, when
    /// the caller may use it. With one backend, URIs are served as it names them.
    fn resolve_uri(&self, uri: &str, caller: &Caller) -> Option<(&EnvEntry, String)> {
        let envs = &self.config.manifest.envs;
        let (entry, original) = match envs.as_slice() {
            [only] => (only, uri),
            _ => {
                let (backend, original) = unwrap_uri(uri)?;
                (self.config.manifest.env(backend)?, original)
            }
        };
        self.policy
            .allows(caller, entry.label(), original)
            .then(|| (entry, original.to_owned()))
    }

    /// `completion/complete`: the values of a prompt's `env` argument are the gateway's own;
    /// everything else is the backend's to complete.
    pub(super) fn complete(
        &self,
        modern: bool,
        id: Value,
        mut object: Map<String, Value>,
        caller: &Caller,
    ) -> Outcome {
        let params = object.get("params").and_then(Value::as_object);
        let reference = params.and_then(|p| p.get("ref")).and_then(Value::as_object);
        let kind = reference
            .and_then(|r| r.get("type"))
            .and_then(Value::as_str);
        let argument = params
            .and_then(|p| p.get("argument"))
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str);
        match kind {
            Some("ref/prompt") => {
                let Some(name) = reference
                    .and_then(|r| r.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    return invalid(&id, "`params.ref.name` must be a string naming the prompt");
                };
                let takes_env = self
                    .config
                    .manifest
                    .prompts
                    .iter()
                    .any(|p| p.name() == name && p.takes_env());
                if takes_env && argument == Some(ENV_PARAM) {
                    return self.complete_env(&id, &name, params, caller);
                }
                // The env the other arguments are completed in: the one chosen so far, else
                // the first the caller may use (completions are suggestions).
                let mut context = params
                    .and_then(|p| p.get("context"))
                    .and_then(|c| c.get("arguments"))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let chosen = context.contains_key(ENV_PARAM);
                let found = if chosen || !takes_env {
                    self.choose_prompt_env(&name, Some(&mut context), caller)
                } else {
                    self.first_prompt_env(&name, caller)
                };
                let (prompt, env) = match found {
                    Ok(found) => found,
                    Err(message) => return invalid(&id, &message),
                };
                let Some(entry) = self.config.manifest.env(env.backend()) else {
                    return invalid(&id, &format!("Unknown prompt: {name}"));
                };
                if let Some(params) = object.get_mut("params").and_then(Value::as_object_mut) {
                    if let Some(r) = params.get_mut("ref").and_then(Value::as_object_mut) {
                        r.insert(
                            "name".into(),
                            Value::String(prompt.upstream_name().to_owned()),
                        );
                    }
                    if let Some(c) = params.get_mut("context").and_then(Value::as_object_mut)
                        && c.contains_key("arguments")
                    {
                        c.insert("arguments".into(), Value::Object(context));
                    }
                }
                let fwd = self.forward_to(entry, ForwardKind::Request, name, id, object, modern);
                Outcome::Forward(Box::new(fwd))
            }
            Some("ref/resource") => {
                let Some(uri) = reference
                    .and_then(|r| r.get("uri"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    return invalid(&id, "`params.ref.uri` must be a string");
                };
                let Some((entry, original)) = self.resolve_uri(&uri, caller) else {
                    return not_found(&id, &uri);
                };
                if let Some(r) = object
                    .get_mut("params")
                    .and_then(|p| p.get_mut("ref"))
                    .and_then(Value::as_object_mut)
                {
                    r.insert("uri".into(), Value::String(original));
                }
                let fwd = self.forward_to(entry, ForwardKind::Request, uri, id, object, modern);
                Outcome::Forward(Box::new(fwd))
            }
            _ => invalid(
                &id,
                "`params.ref.type` must be `ref/prompt` or `ref/resource`",
            ),
        }
    }

    /// The prompt and the first env the caller may use it in.
    fn first_prompt_env<'p>(
        &'p self,
        name: &str,
        caller: &Caller,
    ) -> Result<(&'p PromptEntry, &'p OfferEnv), String> {
        let prompt = self
            .config
            .manifest
            .prompts
            .iter()
            .find(|p| p.name() == name);
        prompt
            .and_then(|p| self.prompt_envs(p, caller).first().map(|e| (p, *e)))
            .ok_or_else(|| format!("Unknown prompt: {name}"))
    }

    /// The envs this caller may get prompt `name` from, those starting with the typed value.
    fn complete_env(
        &self,
        id: &Value,
        name: &str,
        params: Option<&Map<String, Value>>,
        caller: &Caller,
    ) -> Outcome {
        let typed = params
            .and_then(|p| p.get("argument"))
            .and_then(|a| a.get("value"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let allowed = match self
            .config
            .manifest
            .prompts
            .iter()
            .find(|p| p.name() == name)
        {
            Some(prompt) => self.prompt_envs(prompt, caller),
            None => Vec::new(),
        };
        if allowed.is_empty() {
            return invalid(id, &format!("Unknown prompt: {name}"));
        }
        let values: Vec<&str> = allowed
            .into_iter()
            .map(|e| e.env.as_str())
            .filter(|env| env.starts_with(typed))
            .collect();
        Outcome::Reply(reply::result(
            id,
            &json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}),
        ))
    }
}

/// A request whose params the gateway cannot act on (the caller's to fix).
fn invalid(id: &Value, message: &str) -> Outcome {
    Outcome::Reply(reply::error(200, id, code::INVALID_PARAMS, message))
}

/// A URI no backend the caller may use serves (the same answer whether it exists or not).
fn not_found(id: &Value, uri: &str) -> Outcome {
    Outcome::Reply(reply::error(
        200,
        id,
        code::RESOURCE_NOT_FOUND,
        &format!("Resource not found: {uri}"),
    ))
}

/// The gateway answers every list in one page.
fn cursor_refusal(id: &Value, params: Option<&Map<String, Value>>) -> Option<LocalReply> {
    params
        .and_then(|p| p.get("cursor"))
        .is_some_and(|c| !c.is_null())
        .then(|| {
            reply::error(
                200,
                id,
                code::INVALID_PARAMS,
                "Invalid cursor: this gateway returns every entry in one page",
            )
        })
}

/// A list result; a 2026-07-28 caller's carries the caching hints (lists are per caller).
fn list_result(key: &str, entries: Vec<Value>, modern: bool) -> Value {
    let mut result = Map::new();
    result.insert(key.into(), Value::Array(entries));
    if modern {
        result.insert("resultType".into(), json!("complete"));
        result.insert("ttlMs".into(), json!(0));
        result.insert("cacheScope".into(), json!("private"));
    }
    Value::Object(result)
}

/// Replaces a prompt's `env` argument with one listing only `envs`.
fn narrow_env_argument(prompt: &mut Map<String, Value>, envs: &[&str]) {
    let arguments = prompt.get_mut("arguments").and_then(Value::as_array_mut);
    for arg in arguments.into_iter().flatten() {
        if arg.get("name").and_then(Value::as_str) == Some(ENV_PARAM) {
            *arg = env_argument(envs);
        }
    }
}
