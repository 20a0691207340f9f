//! Local accounts from the config file.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::Route;
use crate::password;

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginUser {
    pub name: String,
    pub groups: Vec<String>,
}

impl LoginUser {
    /// Whether a route's `allow` lets this user get tokens for it.
    pub fn allowed_on(&self, route: &Route) -> bool {
        match &route.allow {
            None => true,
            Some(a) => {
                a.users.contains(&self.name) || a.groups.iter().any(|g| self.groups.contains(g))
            }
        }
    }
}

/// A hash of a password nobody has, checked when the user name is unknown so
/// that an unknown name takes as long as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Xfk6uYDD2JB6vz2bGsVPUh7Wfzm2EBB/TJ0TxEHzAdo";

/// Checks a user name and password. CPU-heavy (argon2): runs on the blocking pool.
pub async fn check(config: &Config, name: &str, password: &str) -> Option<LoginUser> {
    let user = config.users.iter().find(|u| u.name == name);
    let hash = user.map_or(DUMMY_HASH.to_string(), |u| {
        u.password_hash.expose().to_string()
    });
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(u) if ok => Some(LoginUser {
            name: u.name.clone(),
            groups: u.groups.clone(),
        }),
        _ => None,
    }
}

/// A logged-in user as the config knows them now (groups may have changed,
/// the account may be gone). A user of an identity provider (`<provider>:<id>`)
/// keeps the groups the provider last confirmed, while that provider is configured.
pub fn current(config: &Config, user: &LoginUser) -> Option<LoginUser> {
    if let Some((provider, _)) = user.name.split_once(':') {
        return config.provider(provider).map(|_| user.clone());
    }
    config
        .users
        .iter()
        .find(|u| u.name == user.name)
        .map(|u| LoginUser {
            name: u.name.clone(),
            groups: u.groups.clone(),
        })
}
