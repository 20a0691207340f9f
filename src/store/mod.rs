//! Durable state: clients, authorization codes, refresh-token families and
//! keys. The [`Store`] trait is a small key-value interface with expiry and
//! atomic read-modify-write, so that a shared backend can implement it too;
//! [`Records`] puts typed records on top of it.

mod embedded;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use embedded::Embedded;

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
