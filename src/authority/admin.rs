//! What an operator can do to the grants and clients (`mcp-oauth-proxy admin …`):
//! list them, revoke grants, delete a client. One entry point,
//! [`Authority::admin`], serves the admin API of a running proxy and the
//! commands acting on a stopped proxy's store; each action leaves an
//! `admin_action` audit event.
//!
//! A grant is a refresh-token family. Revoking one goes through
//! `revoke_family`: the family is marked revoked (its refresh tokens then get
//! `invalid_grant`) and its live access tokens go to the deny list, in the store
//! and in memory, so the next MCP request with one of them is refused.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Authority;
use super::api_keys::ApiKeyError;
use crate::config::Config;
use crate::oauth::OAuthError;
use crate::oauth::api_key::ApiKeyRecord;
use crate::oauth::client::ClientRecord;
use crate::oauth::refresh::Family;
use crate::store::{Namespace, StoreError};
use crate::telemetry::audit::{self, Event};

/// What an admin asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Every client: registered ones and those (metadata documents) with a live grant.
    Clients,
    /// The live grants, of one user and/or one client if given.
    Grants {
        user: Option<String>,
        client: Option<String>,
    },
    Revoke(Selector),
    /// Deletes a registration and revokes the client's grants.
    DeleteClient(String),
    /// A new API key (`api_keys.enabled`): for `user` on `route` with `scopes`,
    /// for `expires_in` seconds or until revoked.
    CreateApiKey {
        user: String,
        route: String,
        scopes: Vec<String>,
        expires_in: Option<u64>,
    },
    ApiKeys,
    RevokeApiKey(String),
}

/// Which grants to revoke; as JSON `{"user": "alice"}`, `{"client": "…"}` or `{"grant": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Selector {
    User(String),
    Client(String),
    Grant(String),
}

impl Selector {
    /// `user`, `client` or `grant`, and the name or id.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Selector::User(u) => ("user", u),
            Selector::Client(c) => ("client", c),
            Selector::Grant(g) => ("grant", g),
        }
    }

    fn matches(&self, f: &Family) -> bool {
        match self {
            Selector::User(u) => f.user == *u,
            Selector::Client(c) => f.client_id == *c,
            Selector::Grant(g) => f.id == *g,
        }
    }
}

/// How a client came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Dynamic client registration (RFC 7591): a record in the store.
    Registered,
    /// A client ID metadata document: no record, known here by its grants.
    MetadataDocument,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client_id: String,
    pub kind: ClientKind,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Unix seconds; `None` for a metadata-document client.
    pub registered_at: Option<u64>,
    /// When one of its grants was last created or refreshed (Unix seconds).
    pub last_used: Option<u64>,
    /// Its live grants.
    pub grants: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    pub id: String,
    pub user: String,
    pub client_id: String,
    /// The route's name, or the token audience when no route has it any more.
    pub route: String,
    pub scopes: Vec<String>,
    pub created_at: u64,
    /// The grant's newest refresh (or its creation), Unix seconds.
    pub last_used: u64,
}

/// What an action did, as the admin API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Outcome {
    Clients {
        clients: Vec<ClientInfo>,
    },
    Grants {
        grants: Vec<GrantInfo>,
    },
    // Before `Revoked`: read back untagged, its JSON has `revoked` too.
    Deleted(DeletedClient),
    Revoked {
        revoked: Vec<GrantInfo>,
    },
    /// The key is shown here once and never again.
    ApiKeyCreated {
        api_key: String,
        key: ApiKeyInfo,
    },
    ApiKeys {
        api_keys: Vec<ApiKeyInfo>,
    },
    ApiKeyRevoked {
        revoked_api_key: ApiKeyInfo,
    },
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub user: String,
    pub route: String,
    pub scopes: Vec<String>,
    pub created_at: u64,
    pub expires_at: Option<u64>,
}

impl From<&ApiKeyRecord> for ApiKeyInfo {
    fn from(k: &ApiKeyRecord) -> Self {
        ApiKeyInfo {
            id: k.id.clone(),
            user: k.user.clone(),
            route: k.route.clone(),
            scopes: k.scopes.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedClient {
    pub client_id: String,
    /// Whether a registration was deleted (a metadata-document client has none).
    pub registration_deleted: bool,
    pub revoked: Vec<GrantInfo>,
}

/// Why an admin action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no live grant {0}")]
    NoGrant(String),
    #[error("no client {0} (no registration and no live grant)")]
    NoClient(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    ApiKey(#[from] ApiKeyError),
    /// Revoking a grant failed in the store (logged where it happened).
    #[error("{}", .0.description)]
    Revoke(OAuthError),
}

/// When a grant was last used: its newest rotation, or its creation.
fn last_used(f: &Family) -> u64 {
    f.tokens
        .iter()
        .filter_map(|t| t.rotated_at)
        .fold(f.created_at, u64::max)
}

fn grant_info(config: &Config, f: &Family) -> GrantInfo {
    GrantInfo {
        id: f.id.clone(),
        user: f.user.clone(),
        client_id: f.client_id.clone(),
        route: config
            .route_name(&f.resource)
            .unwrap_or(&f.resource)
            .to_string(),
        scopes: f.scope.clone(),
        created_at: f.created_at,
        last_used: last_used(f),
    }
}

impl Authority {
    /// Does `action` and writes its audit event (`ip`: the admin's address, when
    /// it came through the admin API).
    pub fn admin(
        &self,
        config: &Config,
        action: &Action,
        ip: Option<IpAddr>,
    ) -> Result<Outcome, AdminError> {
        let outcome = match action {
            Action::Clients => Outcome::Clients {
                clients: self.list_clients()?,
            },
            Action::Grants { user, client } => Outcome::Grants {
                grants: self.live_grants(config, |f| {
                    user.as_ref().is_none_or(|u| f.user == *u)
                        && client.as_ref().is_none_or(|c| f.client_id == *c)
                })?,
            },
            Action::Revoke(selector) => {
                let revoked = self.revoke_grants(config, selector)?;
                if revoked.is_empty()
                    && let Selector::Grant(id) = selector
                {
                    return Err(AdminError::NoGrant(id.clone()));
                }
                Outcome::Revoked { revoked }
            }
            Action::DeleteClient(client_id) => {
                let revoked = self.revoke_grants(config, &Selector::Client(client_id.clone()))?;
                let registration_deleted =
                    self.records
                        .delete(Namespace::Clients, client_id, self.now())?;
                if !registration_deleted && revoked.is_empty() {
                    return Err(AdminError::NoClient(client_id.clone()));
                }
                Outcome::Deleted(DeletedClient {
                    client_id: client_id.clone(),
                    registration_deleted,
                    revoked,
                })
            }
            Action::CreateApiKey {
                user,
                route,
                scopes,
                expires_in,
            } => {
                let (record, key) =
                    self.create_api_key(config, user, route, scopes, *expires_in)?;
                Outcome::ApiKeyCreated {
                    api_key: key,
                    key: (&record).into(),
                }
            }
            Action::ApiKeys => Outcome::ApiKeys {
                api_keys: self.list_api_keys()?.iter().map(Into::into).collect(),
            },
            Action::RevokeApiKey(id) => Outcome::ApiKeyRevoked {
                revoked_api_key: (&self.revoke_api_key(id)?).into(),
            },
        };
        audit::event(audit_event(action, &outcome, ip));
        Ok(outcome)
    }

    /// The grants not revoked that `keep` selects, by user, client and age.
    fn live_grants(
        &self,
        config: &Config,
        keep: impl Fn(&Family) -> bool,
    ) -> Result<Vec<GrantInfo>, StoreError> {
        let mut grants: Vec<GrantInfo> = self
            .records
            .all::<Family>(Namespace::Families, self.now())?
            .iter()
            .filter(|f| !f.revoked && keep(f))
            .map(|f| grant_info(config, f))
            .collect();
        grants.sort_by(|a, b| {
            (&a.user, &a.client_id, a.created_at, &a.id).cmp(&(
                &b.user,
                &b.client_id,
                b.created_at,
                &b.id,
            ))
        });
        Ok(grants)
    }

    /// Revokes the live grants `selector` names; returns them.
    fn revoke_grants(
        &self,
        config: &Config,
        selector: &Selector,
    ) -> Result<Vec<GrantInfo>, AdminError> {
        let grants = self.live_grants(config, |f| selector.matches(f))?;
        for g in &grants {
            self.revoke_family(&g.id, false)
                .map_err(AdminError::Revoke)?;
        }
        Ok(grants)
    }

    /// Registered clients, and the clients of live grants that have no
    /// registration (metadata documents), by client id.
    fn list_clients(&self) -> Result<Vec<ClientInfo>, StoreError> {
        let now = self.now();
        // Client id → (live grants, last use of any grant, revoked ones too).
        let mut usage: HashMap<String, (usize, u64)> = HashMap::new();
        for f in self.records.all::<Family>(Namespace::Families, now)? {
            if f.client_id.is_empty() {
                continue; // a tombstone of a replayed code
            }
            let entry = usage.entry(f.client_id.clone()).or_default();
            entry.0 += usize::from(!f.revoked);
            entry.1 = entry.1.max(last_used(&f));
        }
        let mut clients: Vec<ClientInfo> = self
            .records
            .all::<ClientRecord>(Namespace::Clients, now)?
            .into_iter()
            .map(|r| {
                let (grants, last) = usage.remove(&r.client_id).unwrap_or_default();
                ClientInfo {
                    client_id: r.client_id,
                    kind: ClientKind::Registered,
                    name: r.client_name,
                    redirect_uris: r.redirect_uris,
                    registered_at: Some(r.issued_at),
                    last_used: (last > 0).then_some(last),
                    grants,
                }
            })
            .collect();
        clients.extend(
            usage
                .into_iter()
                .filter(|(_, (grants, _))| *grants > 0)
                .map(|(client_id, (grants, last))| ClientInfo {
                    client_id,
                    kind: ClientKind::MetadataDocument,
                    name: None,
                    redirect_uris: Vec::new(),
                    registered_at: None,
                    last_used: Some(last),
                    grants,
                }),
        );
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(clients)
    }
}

/// The audit event of an action that was done: what, on what, how many grants.
fn audit_event<'a>(action: &'a Action, outcome: &'a Outcome, ip: Option<IpAddr>) -> Event<'a> {
    let revoked = match outcome {
        Outcome::Revoked { revoked } => Some(revoked),
        Outcome::Deleted(d) => Some(&d.revoked),
        _ => None,
    };
    // A single grant revoked names its user and client.
    let only = revoked.and_then(|r| match r.as_slice() {
        [one] => Some(one),
        _ => None,
    });
    let (name, target, user, client) = match action {
        Action::Clients => ("list_clients", None, None, None),
        Action::Grants { user, client } => {
            ("list_grants", None, user.as_deref(), client.as_deref())
        }
        Action::Revoke(s) => {
            let (kind, value) = s.parts();
            let user = match s {
                Selector::User(u) => Some(u.as_str()),
                _ => only.map(|g| g.user.as_str()),
            };
            let client = match s {
                Selector::Client(c) => Some(c.as_str()),
                _ => only.map(|g| g.client_id.as_str()),
            };
            ("revoke", Some((kind, value)), user, client)
        }
        Action::DeleteClient(c) => (
            "delete_client",
            Some(("client", c.as_str())),
            None,
            Some(c.as_str()),
        ),
        Action::CreateApiKey { user, .. } => {
            let id = match outcome {
                Outcome::ApiKeyCreated { key, .. } => key.id.as_str(),
                _ => "",
            };
            (
                "create_api_key",
                Some(("api_key", id)),
                Some(user.as_str()),
                None,
            )
        }
        Action::ApiKeys => ("list_api_keys", None, None, None),
        Action::RevokeApiKey(id) => {
            let user = match outcome {
                Outcome::ApiKeyRevoked { revoked_api_key } => Some(revoked_api_key.user.as_str()),
                _ => None,
            };
            ("revoke_api_key", Some(("api_key", id.as_str())), user, None)
        }
    };
    Event::AdminAction {
        action: name,
        target,
        user,
        client,
        grants: revoked.map(Vec::len),
        ip,
    }
}
