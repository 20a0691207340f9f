//! Grants that give an access token and no refresh token: `client_credentials`
//! (a machine client for itself) and the JWT bearer grant with an identity
//! provider's ID-JAG (a person, decided by the organisation's provider). Each
//! token still belongs to a family, so that revoking the client or the person
//! denies it like any other.

use super::{Authority, TokenResponse, store_error};
use crate::config::Config;
use crate::login::LoginUser;
use crate::oauth::refresh::Family;
use crate::oauth::{OAuthError, scope, seal};
use crate::store::Namespace;

impl Authority {
    /// An access token for `user` (a person, or a machine client's name) on
    /// `resource`, with `scopes`, issued to `client_id`; no refresh token.
    pub fn issue_access(
        &self,
        config: &Config,
        client_id: &str,
        user: &LoginUser,
        resource: &str,
        scopes: &[String],
    ) -> Result<TokenResponse, OAuthError> {
        self.room_for_tokens()?;
        let t = self.now();
        let (access, issued) = self.mint_access(config, &user.name, client_id, resource, scopes, t);
        let family = Family {
            id: seal::random_token(16),
            client_id: client_id.to_string(),
            user: user.name.clone(),
            groups: user.groups.clone(),
            resource: resource.to_string(),
            scope: scopes.to_vec(),
            created_at: t,
            revoked: false,
            tokens: Vec::new(),
            access: vec![issued],
        };
        self.records
            .put(
                Namespace::Families,
                &family.id,
                &family,
                family.expires_at(),
            )
            .map_err(store_error)?;
        Ok(TokenResponse {
            access_token: access,
            token_type: "Bearer".into(),
            expires_in: config.access_ttl(client_id).as_secs(),
            refresh_token: None,
            scope: scope::join(scopes),
            user: user.name.clone(),
            resource: resource.to_string(),
        })
    }
}
