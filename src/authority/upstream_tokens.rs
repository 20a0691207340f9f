//! What the store keeps for upstreams protected by OAuth (`upstream_oauth`):
//! each user's tokens per route and the proxy's own registration per route,
//! sealed under a key derived from the proxy's secret key and the record's
//! key, so that the store alone gives none of them away.

use super::Authority;
use crate::federation;
use crate::secret::Secret;
use crate::store::{Namespace, StoreError, Update};

impl Authority {
    /// The secret stored under `key`, if any (and if this proxy sealed it).
    pub fn upstream_secret(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        let sealed: Option<Vec<u8>> =
            self.records
                .get(Namespace::UpstreamTokens, key, self.now())?;
        Ok(sealed.and_then(|s| federation::open_token(&self.signer, key, &s)))
    }

    /// Keeps `secret` under `key` until `until` (0: until replaced or deleted).
    pub fn keep_upstream_secret(
        &self,
        key: &str,
        secret: &Secret,
        until: u64,
    ) -> Result<(), StoreError> {
        let sealed = federation::seal_token(&self.signer, key, secret)
            .ok_or_else(|| StoreError::Backend("cannot seal an upstream token".into()))?;
        self.records
            .put(Namespace::UpstreamTokens, key, &sealed, until)
    }

    pub fn forget_upstream_secret(&self, key: &str) -> Result<(), StoreError> {
        self.records
            .0
            .update(Namespace::UpstreamTokens, key, self.now(), &mut |_| {
                Update::Delete
            })
    }
}
