//! Seed 002's `users.json` (`auth.users_file`): a whitelist of people by email, each with a
//! display name, roles, and `allowed_tools` (`*`, or `<server>:<tool glob>`). Each listed
//! user gets one synthesized role, `user:<email>`, whose rules allow exactly those tools under
//! the names the gateway serves them. Pure: the caller reads the file and passes its text.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

use crate::glob::Glob;
use crate::rbac::RoleRules;
use crate::servers::{SEPARATOR, ServerSpec};

/// The synthesized role of a listed user is this followed by the lower-cased email.
pub const ROLE_PREFIX: &str = "user:";

/// What can be wrong with a users file, naming the file and the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsersError {
    #[error("{file}: not valid JSON: {message}")]
    Json { file: String, message: String },
    #[error("{file}: {message}")]
    Shape { file: String, message: String },
    #[error("{file}: user {email:?}: {message}")]
    Entry {
        file: String,
        email: String,
        message: String,
    },
}

/// One listed user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The email as written in the file.
    pub email: String,
    /// `name`: the display name put in the user's tokens.
    pub name: Option<String>,
    /// `roles`, as written (only roles configured in `auth.roles` grant anything).
    pub roles: Vec<String>,
    /// The rules of the user's synthesized role (`allowed_tools` translated).
    pub rules: RoleRules,
}

impl User {
    /// The user's synthesized role: `user:<email, lower-cased>`.
    pub fn role(&self) -> String {
        role_of(&self.email)
    }

    /// The roles a token of this user carries from the file: `roles`, then `user:<email>`.
    pub fn granted_roles(&self) -> Vec<String> {
        let mut roles = self.roles.clone();
        roles.push(self.role());
        roles
    }
}

/// The synthesized role of `email`.
pub fn role_of(email: &str) -> String {
    format!("{ROLE_PREFIX}{}", email.to_lowercase())
}

/// A parsed, validated users file: users by lower-cased email.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Users {
    by_email: BTreeMap<String, User>,
}

/// One entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    allowed_tools: Vec<String>,
}

/// The top-level object's entries in file order, duplicates kept (a map would drop them).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of email → user")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Users {
    /// Parses and validates the text of users file `file` against the config's `servers`
    /// (every `allowed_tools` entry must name one of them).
    pub fn parse(text: &str, file: &str, servers: &[ServerSpec]) -> Result<Users, UsersError> {
        let entries: Entries = serde_json::from_str(text).map_err(|e| {
            if e.is_data() {
                UsersError::Shape {
                    file: file.to_owned(),
                    message: format!(
                        "must be a JSON object of email → {{\"name\", \"roles\", \"allowed_tools\"}} ({e})"
                    ),
                }
            } else {
                UsersError::Json {
                    file: file.to_owned(),
                    message: e.to_string(),
                }
            }
        })?;
        let mut by_email = BTreeMap::new();
        for (email, value) in entries.0 {
            let entry = |message: String| UsersError::Entry {
                file: file.to_owned(),
                email: email.clone(),
                message,
            };
            if email.trim().is_empty()
                || email.trim() != email
                || email.chars().any(char::is_control)
            {
                return Err(entry(
                    "an email must be non-empty, without surrounding spaces or control characters"
                        .into(),
                ));
            }
            let raw: RawUser = serde_json::from_value(value).map_err(|e| entry(e.to_string()))?;
            let mut rules = RoleRules {
                allowed_envs: BTreeMap::new(),
            };
            for tools in &raw.allowed_tools {
                for (env, tool) in translate(tools, servers)
                    .map_err(|why| entry(format!("allowed_tools {tools:?}: {why}")))?
                {
                    let globs = rules.allowed_envs.entry(env).or_default();
                    if !globs.contains(&tool) {
                        globs.push(tool);
                    }
                }
            }
            let user = User {
                email: email.clone(),
                name: raw.name,
                roles: raw.roles,
                rules,
            };
            if let Some(earlier) = by_email.insert(email.to_lowercase(), user) {
                return Err(entry(format!(
                    "listed twice (also as {:?}; emails are compared ignoring case)",
                    earlier.email
                )));
            }
        }
        Ok(Users { by_email })
    }

    /// The user listed under `email` (compared ignoring case).
    pub fn get(&self, email: &str) -> Option<&User> {
        self.by_email.get(&email.to_lowercase())
    }

    pub fn len(&self) -> usize {
        self.by_email.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_email.is_empty()
    }

    /// Every user's synthesized role and its rules, for the filter's roles.
    pub fn roles(&self) -> impl Iterator<Item = (String, RoleRules)> + '_ {
        self.by_email.values().map(|u| (u.role(), u.rules.clone()))
    }
}

/// One `allowed_tools` entry as (env glob, tool glob) rules. `*` is every tool everywhere.
/// `<server>:<glob>` is that server's tools whose name in the server (after any `tools`
/// rename, before the prefix) matches `glob`: the glob over the served names (`<prefix>__`
/// put before it, unless `prefix: never`), in each of the server's envs (its name for a
/// server without `environments`), so another server's tools never match.
pub fn translate(entry: &str, servers: &[ServerSpec]) -> Result<Vec<(String, String)>, String> {
    if entry == "*" {
        return Ok(vec![("*".into(), "*".into())]);
    }
    let Some((server, glob)) = entry.split_once(':') else {
        return Err(
            "write `*` (every tool) or `<server>:<tool glob>` (e.g. `filesystem:*`)".into(),
        );
    };
    if glob.is_empty() {
        return Err("names no tool glob after `:` (use `*` for every tool of the server)".into());
    }
    Glob::new(glob).map_err(|e| format!("{glob:?}: {e}"))?;
    let Some(spec) = servers
        .iter()
        .find(|s| !s.name.is_empty() && s.name == server)
    else {
        let known: Vec<&str> = servers
            .iter()
            .filter(|s| !s.name.is_empty())
            .map(|s| s.name.as_str())
            .collect();
        return Err(format!(
            "names server `{server}`, which is not in the config's mcpServers ({})",
            if known.is_empty() {
                "it has none".to_owned()
            } else {
                format!("it has {}", known.join(", "))
            }
        ));
    };
    let tool = match &spec.prefix {
        Some(prefix) => format!("{prefix}{SEPARATOR}{glob}"),
        None => glob.to_owned(),
    };
    Ok(spec
        .envs
        .iter()
        .map(|env| (env.label.clone(), tool.clone()))
        .collect())
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
