//! Durable state: clients, authorization codes, refresh-token families and
//! keys. The [`Store`] trait is a small key-value interface with expiry and
//! atomic read-modify-write, implemented by the embedded store (redb, one
//! instance) and by Redis (shared by several instances); [`Records`] puts
//! typed records on top of it.

#[cfg(test)]
mod conformance;
mod embedded;
pub mod migrate;
pub mod redis;
/// A `redis-server` of a test's own.
#[cfg(test)]
#[path = "../../tests/support/redis_server.rs"]
#[allow(dead_code)]
pub(crate) mod test_redis;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use embedded::Embedded;
pub use redis::Redis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Clients,
    Codes,
    Families,
    Keys,
    /// Revoked access tokens (by jti) until they expire.
    Denied,
    /// Which user allowed which client (by an HMAC of both), until the refresh TTL.
    Consents,
    /// Users of identity providers (by user name): when the provider last
    /// confirmed them, their groups, and the provider's token, sealed.
    Identities,
    /// API keys (by id): their hash, user, route, scopes and expiry.
    ApiKeys,
    /// Each user's tokens at upstreams protected by OAuth (by route and user),
    /// and the proxy's registrations there (by route); sealed.
    UpstreamTokens,
}

impl Namespace {
    /// Its name in the store: the embedded store's table, a part of Redis keys.
    pub fn name(self) -> &'static str {
        match self {
            Namespace::Clients => "clients",
            Namespace::Codes => "codes",
            Namespace::Families => "families",
            Namespace::Keys => "keys",
            Namespace::Denied => "denied",
            Namespace::Consents => "consents",
            Namespace::Identities => "identities",
            Namespace::ApiKeys => "api_keys",
            Namespace::UpstreamTokens => "upstream_tokens",
        }
    }

    pub const ALL: [Namespace; 9] = [
        Namespace::Clients,
        Namespace::Codes,
        Namespace::Families,
        Namespace::Keys,
        Namespace::Denied,
        Namespace::Consents,
        Namespace::Identities,
        Namespace::ApiKeys,
        Namespace::UpstreamTokens,
    ];
}

/// What an atomic update does with the record it was shown.
pub enum Update {
    Keep,
    Put { value: Vec<u8>, expires_at: u64 },
    Delete,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Backend(String),
    #[error("store: a record could not be decoded: {0}")]
    Corrupt(String),
    /// The embedded store's file is locked by another process (a running proxy).
    #[error("store: {} is in use by another process", .0.display())]
    InUse(std::path::PathBuf),
    /// The shared store cannot be reached (or did not answer in time): the
    /// operation did not happen; try again later.
    #[error("store: the shared store does not answer: {0}")]
    Unavailable(String),
}

/// A record as the backends keep it: 8 bytes of big-endian expiry (Unix
/// seconds, 0 for never) followed by the value.
fn encode(value: &[u8], expires_at: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&expires_at.to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// The value of a stored record, if it has not expired at `now`.
fn decode(stored: &[u8], now: u64) -> Option<&[u8]> {
    let (exp, value) = stored.split_at_checked(8)?;
    let exp = u64::from_be_bytes(exp.try_into().ok()?);
    (exp == 0 || now < exp).then_some(value)
}

/// Expiry is in Unix seconds; 0 means never. Expired records read as absent.
pub trait Store: Send + Sync {
    fn get(&self, ns: Namespace, key: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Runs `f` on the current record (None if absent or expired) and applies its
    /// answer, in one transaction: concurrent updates of one key are serialised.
    /// `f` may run more than once (a shared store runs it again when another
    /// instance changed the record meanwhile); only its last run is applied.
    fn update(
        &self,
        ns: Namespace,
        key: &str,
        now: u64,
        f: &mut dyn FnMut(Option<&[u8]>) -> Update,
    ) -> Result<(), StoreError>;
    /// Deletes expired records; returns how many.
    fn sweep(&self, now: u64) -> Result<usize, StoreError>;
    /// Every live value of a namespace.
    fn scan(&self, ns: Namespace, now: u64) -> Result<Vec<Vec<u8>>, StoreError>;
    /// The Redis server behind this store, for what several instances must
    /// share besides records (single-use ids, counters, session owners,
    /// revocation announcements); `None` for the embedded store.
    fn redis(&self) -> Option<Redis> {
        None
    }
}

/// Typed records over a [`Store`], as JSON.
#[derive(Clone)]
pub struct Records(pub Arc<dyn Store>);

impl Records {
    pub fn get<T: DeserializeOwned>(
        &self,
        ns: Namespace,
        key: &str,
        now: u64,
    ) -> Result<Option<T>, StoreError> {
        match self.0.get(ns, key, now)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }

    pub fn put<T: Serialize>(
        &self,
        ns: Namespace,
        key: &str,
        value: &T,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.0.put(ns, key, &bytes, expires_at)
    }

    /// Atomically updates one typed record. `f` returns the new record (with its
    /// expiry) or `None` to leave it as it is, and a result passed back out.
    pub fn update<T, R>(
        &self,
        ns: Namespace,
        key: &str,
        now: u64,
        mut f: impl FnMut(Option<T>) -> (Option<(T, u64)>, R),
    ) -> Result<R, StoreError>
    where
        T: Serialize + DeserializeOwned,
    {
        let mut out = None;
        let mut decode_error = None;
        self.0.update(ns, key, now, &mut |current| {
            decode_error = None;
            let record = match current.map(serde_json::from_slice::<T>) {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => {
                    decode_error = Some(e.to_string());
                    return Update::Keep;
                }
            };
            let (new, result) = f(record);
            out = Some(result);
            match new.map(|(v, exp)| (serde_json::to_vec(&v), exp)) {
                None => Update::Keep,
                Some((Ok(value), expires_at)) => Update::Put { value, expires_at },
                Some((Err(e), _)) => {
                    decode_error = Some(e.to_string());
                    Update::Keep
                }
            }
        })?;
        if let Some(e) = decode_error {
            return Err(StoreError::Corrupt(e));
        }
        out.ok_or_else(|| StoreError::Backend("update did not run".into()))
    }

    /// The value stored under `name` in the key namespace; `candidate` becomes it the first time.
    pub fn key_material(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let mut value = Vec::new();
        self.0
            .update(Namespace::Keys, name, 0, &mut |current| match current {
                Some(v) => {
                    value = v.to_vec();
                    Update::Keep
                }
                None => {
                    value = candidate.clone();
                    Update::Put {
                        value: candidate.clone(),
                        expires_at: 0,
                    }
                }
            })?;
        Ok(value)
    }

    /// Deletes a record; whether there was a live one.
    pub fn delete(&self, ns: Namespace, key: &str, now: u64) -> Result<bool, StoreError> {
        let mut found = false;
        self.0.update(ns, key, now, &mut |current| {
            found = current.is_some();
            if found { Update::Delete } else { Update::Keep }
        })?;
        Ok(found)
    }

    /// Deletes expired records.
    pub fn sweep(&self, now: u64) -> Result<usize, StoreError> {
        self.0.sweep(now)
    }

    /// Every live record of a namespace (for loading small sets at start).
    pub fn all<T: DeserializeOwned>(&self, ns: Namespace, now: u64) -> Result<Vec<T>, StoreError> {
        self.0
            .scan(ns, now)?
            .into_iter()
            .map(|b| serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }
}
