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
        let (access, issued) = self.mint_access(config, user, client_id, resource, scopes, t);
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

/// The identity token an upstream may get (`routes[].identity_token`): who
/// calls, signed with the proxy's access-token key (published at `/oauth/jwks`),
/// for that upstream only, for 60 seconds.
#[derive(serde::Serialize)]
struct IdentityClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    scope: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    iat: u64,
    exp: u64,
    jti: String,
}

/// The JWT type of identity tokens (not an access token: `at+jwt` is refused for it).
pub const IDENTITY_TOKEN_TYPE: &str = "mcp-identity+jwt";
const IDENTITY_TOKEN_TTL: u64 = 60;

impl Authority {
    pub fn identity_token(
        &self,
        config: &Config,
        upstream: &str,
        claims: &crate::oauth::jwt::Claims,
    ) -> String {
        let t = self.now();
        let identity = IdentityClaims {
            iss: config.public_url.as_str(),
            sub: &claims.sub,
            aud: upstream,
            client_id: &claims.client_id,
            scope: &claims.scope,
            groups: &claims.groups,
            iat: t,
            exp: t + IDENTITY_TOKEN_TTL,
            jti: seal::random_token(12),
        };
        self.keys
            .load()
            .sign_typed(IDENTITY_TOKEN_TYPE, t, &identity)
    }
}
