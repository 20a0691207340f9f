//! API keys (`api_keys: {enabled: true}`): created, listed and revoked by an
//! admin (`authority/admin.rs`), checked on the hot path from memory. The
//! in-memory table is loaded at start and again at every sweep, so a key
//! created or revoked through another instance (or on the store of a stopped
//! proxy) is known within one sweep; through this instance, at once.

use std::sync::Arc;

use dashmap::DashMap;

use super::Authority;
use crate::config::{Config, Route};
use crate::login::LoginUser;
use crate::oauth::api_key::{self, ApiKeyRecord};
use crate::oauth::jwt::{Claims, TokenError};
use crate::oauth::scope;
use crate::store::{Namespace, Records, StoreError};

pub(super) fn load(
    records: &Records,
    now: u64,
) -> Result<DashMap<String, ApiKeyRecord>, StoreError> {
    Ok(records
        .all::<ApiKeyRecord>(Namespace::ApiKeys, now)?
        .into_iter()
        .map(|k| (k.id.clone(), k))
        .collect())
}

/// Why a key cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API keys are off: set `api_keys: {{enabled: true}}` in the config")]
    Disabled,
    #[error("no route named {0:?}")]
    NoRoute(String),
    #[error("{user} is not allowed on route {route} (its `allow`)")]
    NotAllowed { user: String, route: String },
    #[error("route {route} defines no scope {scope:?}")]
    NoScope { route: String, scope: String },
    #[error("no API key {0}")]
    NoKey(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Authority {
    /// A new key for `user` on `route` with `scopes` (the route's defaults when
    /// none), for `ttl` seconds or until revoked: its record and the key itself,
    /// which is not kept.
    pub fn create_api_key(
        &self,
        config: &Config,
        user: &str,
        route: &str,
        scopes: &[String],
        ttl: Option<u64>,
    ) -> Result<(ApiKeyRecord, String), ApiKeyError> {
        if !config.api_keys {
            return Err(ApiKeyError::Disabled);
        }
        let r = config
            .routes
            .iter()
            .find(|r| r.name == route)
            .ok_or_else(|| ApiKeyError::NoRoute(route.to_string()))?;
        let groups = config
            .users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.groups.clone())
            .unwrap_or_default();
        let login = LoginUser {
            name: user.to_string(),
            groups,
        };
        if !login.allowed_on(r) {
            return Err(ApiKeyError::NotAllowed {
                user: user.to_string(),
                route: r.name.clone(),
            });
        }
        if let Some(s) = scopes
            .iter()
            .find(|s| !r.scopes.iter().flatten().any(|(n, _)| n == *s))
        {
            return Err(ApiKeyError::NoScope {
                route: r.name.clone(),
                scope: s.clone(),
            });
        }
        let scopes = scope::grant(scopes, r.scopes.as_deref(), &r.default_scopes);
        let t = self.now();
        let (id, key, hash) = api_key::new_key();
        let record = ApiKeyRecord {
            id: id.clone(),
            hash,
            user: user.to_string(),
            groups: login.groups,
            route: r.name.clone(),
            resource: r.resource.clone(),
            scopes,
            created_at: t,
            expires_at: ttl.map(|s| t + s),
        };
        self.records.put(
            Namespace::ApiKeys,
            &id,
            &record,
            record.expires_at.unwrap_or(0),
        )?;
        self.api_keys.insert(id, record.clone());
        Ok((record, key))
    }

    /// The live keys, oldest first.
    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut keys = self
            .records
            .all::<ApiKeyRecord>(Namespace::ApiKeys, self.now())?;
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    /// Deletes a key: refused from the next request on (on this instance).
    pub fn revoke_api_key(&self, id: &str) -> Result<ApiKeyRecord, ApiKeyError> {
        let t = self.now();
        let record: Option<ApiKeyRecord> = self.records.get(Namespace::ApiKeys, id, t)?;
        let record = record.ok_or_else(|| ApiKeyError::NoKey(id.to_string()))?;
        self.records.delete(Namespace::ApiKeys, id, t)?;
        self.api_keys.remove(id);
        Ok(record)
    }

    /// The hot path for a key: a map lookup and a hash.
    pub(super) fn verify_api_key(
        &self,
        route: &Route,
        token: &str,
    ) -> Result<Arc<Claims>, TokenError> {
        let (id, secret) = api_key::parse(token).ok_or(TokenError::Malformed)?;
        let record = self.api_keys.get(id).ok_or(TokenError::BadSignature)?;
        record
            .claims(secret, &route.resource, self.now())
            .map(Arc::new)
            .ok_or(TokenError::BadSignature)
    }

    /// Reads the keys again (what other instances or a stopped-proxy command changed).
    pub(super) fn reload_api_keys(&self, now: u64) {
        match load(&self.records, now) {
            Ok(keys) => {
                self.api_keys.retain(|id, _| keys.contains_key(id));
                for (id, k) in keys {
                    self.api_keys.insert(id, k);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reload the API keys"),
        }
    }
}
