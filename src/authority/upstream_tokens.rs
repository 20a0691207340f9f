//! What the store keeps for upstreams protected by OAuth (`upstream_oauth`):
//! each user's tokens per route and the proxy's own registration per route,
//! sealed under a key derived from the proxy's secret key and the record's
//! key, so that the store alone gives none of them away.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Authority;
use crate::federation;
use crate::secret::Secret;
use crate::store::{Namespace, StoreError, Update};

/// Grants (user, resource) revoked (by revocation, reuse detection or an
/// administrator) and not yet handed to `upstream_oauth`: a flag read with one
/// atomic load on the MCP path, and the list behind it.
#[derive(Default)]
pub(super) struct EndedGrants {
    pending: AtomicBool,
    list: Mutex<Vec<(String, String)>>,
}

/// The most grants remembered between two looks (a flood of revocations
/// keeps the first ones; the rest is found by the next look at the store
/// records' owners: their upstream tokens stay until refused or replaced).
const MAX_ENDED: usize = 10_000;

impl EndedGrants {
    pub(super) fn push(&self, user: &str, resource: &str) {
        if user.is_empty() {
            return;
        }
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() < MAX_ENDED {
            list.push((user.to_string(), resource.to_string()));
        }
        self.pending.store(true, Ordering::Release);
    }

    fn take(&self) -> Vec<(String, String)> {
        // A load first: the MCP path asks on every cache miss, and a swap is a write.
        if !self.pending.load(Ordering::Acquire) || !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.list.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Authority {
    /// The grants (user, resource) revoked since the last call; usually none
    /// (one atomic load).
    pub fn take_ended_grants(&self) -> Vec<(String, String)> {
        self.ended_grants.take()
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_grants_are_handed_out_once_and_anonymous_families_are_skipped() {
        let e = EndedGrants::default();
        assert!(e.take().is_empty());
        e.push("alice", "https://p.example/gh/mcp");
        e.push("", "https://p.example/gh/mcp"); // a tombstone family: nobody's
        assert_eq!(
            e.take(),
            [("alice".to_string(), "https://p.example/gh/mcp".to_string())]
        );
        assert!(e.take().is_empty());
    }
}
