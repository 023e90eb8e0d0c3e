//! Role-based access in seed 000's model: each role maps environment globs to tool globs;
//! allow-only, any of the caller's roles may allow, unknown roles grant nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::glob::{Glob, GlobError};

/// Role name → rules, as written in the config's `auth.roles`.
pub type Roles = BTreeMap<String, RoleRules>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRules {
    /// Environment glob → tool globs.
    pub allowed_envs: BTreeMap<String, Vec<String>>,
}

/// Who is calling, as far as the filter can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No authorization is configured: everything is allowed.
    Unrestricted,
    /// An authenticated caller holding these roles.
    Roles(Vec<String>),
}

/// Compiled roles.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    roles: BTreeMap<String, Vec<(Glob, Vec<Glob>)>>,
}

impl Policy {
    pub fn compile(roles: &Roles) -> Result<Self, (String, GlobError)> {
        let mut compiled = BTreeMap::new();
        for (name, rules) in roles {
            let mut entries = Vec::new();
            for (env, tools) in &rules.allowed_envs {
                let env_glob = Glob::new(env).map_err(|e| (env.clone(), e))?;
                let tool_globs = tools
                    .iter()
                    .map(|t| Glob::new(t).map_err(|e| (t.clone(), e)))
                    .collect::<Result<Vec<_>, _>>()?;
                entries.push((env_glob, tool_globs));
            }
            compiled.insert(name.clone(), entries);
        }
        Ok(Policy { roles: compiled })
    }

    /// Whether `caller` may call `tool` in `env`.
    pub fn allows(&self, caller: &Caller, env: &str, tool: &str) -> bool {
        match caller {
            Caller::Unrestricted => true,
            Caller::Roles(roles) => roles.iter().any(|role| {
                self.roles.get(role).is_some_and(|entries| {
                    entries
                        .iter()
                        .any(|(e, tools)| e.matches(env) && tools.iter().any(|t| t.matches(tool)))
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let roles: Roles = serde_json::from_value(serde_json::json!({
            "admin": {"allowed_envs": {"*": ["*"]}},
            "staging-reader": {"allowed_envs": {"Staging": ["*"]}},
            "prod-logs": {"allowed_envs": {"Prod": ["logs*"]}}
        }))
        .unwrap_or_default();
        Policy::compile(&roles).unwrap_or_default()
    }

    fn check(roles: &[&str], env: &str, tool: &str, expected: bool) {
        let caller = Caller::Roles(roles.iter().map(|r| r.to_string()).collect());
        assert_eq!(
            policy().allows(&caller, env, tool),
            expected,
            "{roles:?} {env} {tool}"
        );
    }

    #[test]
    fn seed_model() {
        check(&["admin"], "Prod", "anything", true);
        check(&["staging-reader"], "Staging", "get_user", true);
        check(&["staging-reader"], "Prod", "get_user", false);
        check(&["prod-logs"], "Prod", "logs_search", true);
        check(&["prod-logs"], "Prod", "get_user", false);
        check(&["prod-logs"], "Staging", "logs_search", false);
        check(
            &["prod-logs", "staging-reader"],
            "Staging",
            "get_user",
            true,
        );
        check(&["unknown"], "Prod", "logs_search", false);
        check(&[], "Prod", "logs_search", false);
        assert!(policy().allows(&Caller::Unrestricted, "Prod", "x"));
    }
}
