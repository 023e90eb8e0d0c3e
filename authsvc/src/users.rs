//! `auth.users_file` as a whitelist: a person signs in only if the email their IdP vouched
//! for is listed; their tokens then carry the IdP's roles, the file's roles (those configured
//! in `auth.roles`) and their own `user:<email>` role. The file is re-read when it changes
//! (its modification time or size), so an edit applies at the next sign-in or refresh.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use policy::servers::ServerSpec;
use policy::users::Users;

use crate::config::{Settings, UsersSettings};
use crate::tokens::Identity;

/// The users file and the last good version of it.
pub struct Whitelist {
    path: PathBuf,
    servers: Vec<ServerSpec>,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    /// Modification time and size of the file when `users` was read (or last failed to be).
    stamp: Option<(SystemTime, u64)>,
    users: Arc<Users>,
}

impl Whitelist {
    pub fn new(settings: &UsersSettings) -> Whitelist {
        let stamp = stamp_of(&settings.path);
        Whitelist {
            path: settings.path.clone(),
            servers: settings.servers.clone(),
            loaded: Mutex::new(Loaded {
                stamp,
                users: Arc::new(settings.users.clone()),
            }),
        }
    }

    /// The users as the file says now: re-read if it changed since the last look. A file
    /// that no longer reads or validates is logged (once per change) and the last good
    /// list stays in force.
    pub fn current(&self) -> Arc<Users> {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stamp = stamp_of(&self.path);
        if stamp == loaded.stamp {
            return loaded.users.clone();
        }
        loaded.stamp = stamp;
        let name = self.path.display().to_string();
        match std::fs::read_to_string(&self.path)
            .map_err(|e| format!("reading {name}: {e}"))
            .and_then(|text| Users::parse(&text, &name, &self.servers).map_err(|e| e.to_string()))
        {
            Ok(users) => {
                tracing::info!(file = %name, users = users.len(), "users file re-read");
                loaded.users = Arc::new(users);
            }
            Err(why) => {
                crate::metrics::global().error("users_file");
                tracing::error!(
                    "auth.users_file: {why}; the last good list of {} users stays in force",
                    loaded.users.len()
                );
            }
        }
        loaded.users.clone()
    }

    /// `identity` as the users file admits it: the file's roles configured in `auth.roles`
    /// and `user:<email>` added (recorded in `listed_roles`), its name if the file gives
    /// one. `Err` (why, for the person) when the email is not listed.
    pub fn admit(&self, settings: &Settings, identity: Identity) -> Result<Identity, String> {
        let mut identity = without_listed_roles(identity);
        let users = self.current();
        let Some(email) = identity.email.clone() else {
            return Err(
                "Your identity provider did not give an email address, and this gateway only \
                 admits the people listed in its users file."
                    .into(),
            );
        };
        let Some(user) = users.get(&email) else {
            return Err(format!(
                "{email} is not on this gateway's list of users, so no token was issued. \
                 Ask its administrator to add you."
            ));
        };
        for role in user.granted_roles() {
            let grants = settings.roles.contains(&role) || role == user.role();
            if grants && !identity.roles.contains(&role) {
                identity.roles.push(role.clone());
                identity.listed_roles.push(role);
            }
        }
        if let Some(name) = &user.name {
            identity.name.clone_from(name);
        }
        Ok(identity)
    }
}

/// `identity` without the roles the users file added: what the IdP gave.
pub fn without_listed_roles(mut identity: Identity) -> Identity {
    let listed = std::mem::take(&mut identity.listed_roles);
    identity.roles.retain(|r| !listed.contains(r));
    identity
}

fn stamp_of(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn settings(dir: &std::path::Path, users: &str) -> Settings {
        let config = serde_json::json!({
            "mcpServers": {"fs": {"url": "http://127.0.0.1:1/mcp"}, "time": {"url": "http://127.0.0.1:2/mcp"}},
            "auth": {"dev": {"users": {}}, "base_url": "http://127.0.0.1:3", "signing_key_file": "k.pem",
                     "users_file": "users.json", "roles": {"admin": {"allowed_envs": {"*": ["*"]}}}}
        });
        let path = dir.join("config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        std::fs::write(dir.join("users.json"), users).unwrap();
        Settings::load(&path).unwrap()
    }

    fn person(email: &str, roles: &[&str]) -> Identity {
        Identity {
            sub: format!("dev:{email}"),
            name: email.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            upstream_refresh: None,
            email: Some(email.into()),
            listed_roles: Vec::new(),
        }
    }

    #[test]
    fn listed_people_get_the_files_roles_and_their_own_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(
            dir.path(),
            r#"{"user@example.com": {"name": "User Name", "roles": ["admin"], "allowed_tools": ["*"]},
                "friend@example.com": {"name": "Friend", "roles": ["user"], "allowed_tools": ["fs:*"]}}"#,
        );
        let list = Whitelist::new(settings.users.as_ref().unwrap());

        let friend = list
            .admit(&settings, person("Friend@Example.com", &["admin"]))
            .unwrap();
        assert_eq!(
            friend.roles,
            ["admin", "user:friend@example.com"],
            "the IdP's roles stay; `user` is not configured"
        );
        assert_eq!(friend.listed_roles, ["user:friend@example.com"]);
        assert_eq!(friend.name, "Friend");
        let user = list
            .admit(&settings, person("user@example.com", &[]))
            .unwrap();
        assert_eq!(user.roles, ["admin", "user:user@example.com"]);
        // Admitted again (a refresh): the same, not doubled.
        let again = list.admit(&settings, user.clone()).unwrap();
        assert_eq!(again.roles, user.roles);

        let why = list
            .admit(&settings, person("stranger@example.com", &["admin"]))
            .unwrap_err();
        assert!(why.contains("stranger@example.com is not on this gateway's list of users"));
        let mut anonymous = person("x", &[]);
        anonymous.email = None;
        assert!(list.admit(&settings, anonymous).is_err());

        // Edited: friend removed, stranger added; a broken file keeps the last good list.
        std::fs::write(
            dir.path().join("users.json"),
            r#"{"stranger@example.com": {"allowed_tools": ["time:*"]}}"#,
        )
        .unwrap();
        assert!(list.admit(&settings, friend).is_err());
        let stranger = list
            .admit(&settings, person("stranger@example.com", &[]))
            .unwrap();
        assert_eq!(stranger.roles, ["user:stranger@example.com"]);
        std::fs::write(
            dir.path().join("users.json"),
            r#"{"stranger@example.com": {"allowed_tools": ["missing:*"]}}"#,
        )
        .unwrap();
        assert!(
            list.admit(&settings, person("stranger@example.com", &[]))
                .is_ok()
        );
    }
}
