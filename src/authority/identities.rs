//! Users of identity providers as the store keeps them: when the provider
//! last confirmed them (see `federation`), and the refresh-token family a
//! refresh is about, read before the provider is asked again.

use super::{Authority, store_error};
use crate::federation::IdentityRecord;
use crate::oauth::OAuthError;
use crate::oauth::refresh::{self, Family, Presented};
use crate::oauth::seal;
use crate::store::Namespace;

impl Authority {
    /// A provider's user as last confirmed.
    pub fn identity(&self, user: &str) -> Result<Option<IdentityRecord>, OAuthError> {
        self.records
            .get(Namespace::Identities, user, self.now())
            .map_err(store_error)
    }

    /// Keeps a provider's user until `until` (past it, their refreshes end).
    pub fn remember_identity(
        &self,
        user: &str,
        record: &IdentityRecord,
        until: u64,
    ) -> Result<(), OAuthError> {
        self.records
            .put(Namespace::Identities, user, record, until)
            .map_err(store_error)
    }

    /// The family whose current refresh token this is: what a refresh with it
    /// would rotate. `None` for anything else (the refresh itself says why).
    pub fn family_to_rotate(&self, token: &str, grace: u64) -> Result<Option<Family>, OAuthError> {
        let Some(id) = refresh::family_id(token) else {
            return Ok(None);
        };
        let t = self.now();
        let family: Option<Family> = self
            .records
            .get(Namespace::Families, id, t)
            .map_err(store_error)?;
        Ok(family.filter(|f| f.check(&seal::hash(token), t, grace) == Presented::Rotate))
    }
}
