//! Values that may be used once across all instances (consent tickets,
//! provider sign-in states, client assertion ids): `SET … NX EX`.

use super::{PREFIX, Redis};
use crate::store::StoreError;

impl Redis {
    /// Marks `id` of this kind used until `expires_at`; false if it already was.
    pub fn first_use(
        &self,
        kind: &str,
        id: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let key = format!("{PREFIX}used:{kind}:{id}");
        let ttl = expires_at.saturating_sub(now).max(1);
        let set: Option<String> = self.with(|c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl)
                .query(c)
        })?;
        Ok(set.is_some())
    }
}
