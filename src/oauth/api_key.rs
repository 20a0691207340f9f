//! API keys for scripts and tools that only know a static key: `mop_<id>_<secret>`,
//! created by an admin for one user, one route and some scopes, stored as the
//! SHA-256 of the secret. A key works as a bearer token on its route with the
//! same policy as an access token. Pure: format, parsing, checks.

use serde::{Deserialize, Serialize};

use super::jwt::Claims;
use super::seal;

/// Every key starts with this (so a key is recognised without a lookup, and
/// secret scanners can find leaked ones).
pub const PREFIX: &str = "mop_";
/// The longest key read (anything longer is not one).
const MAX_LEN: usize = 128;

/// An API key as stored (by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    /// SHA-256 of the secret part, base64url.
    pub hash: String,
    pub user: String,
    pub groups: Vec<String>,
    pub route: String,
    /// The route's resource (the token audience).
    pub resource: String,
    pub scopes: Vec<String>,
    pub created_at: u64,
    /// `None`: until revoked.
    pub expires_at: Option<u64>,
}

/// A new key: its id, the whole key (shown once) and the hash to store.
pub fn new_key() -> (String, String, String) {
    let id = seal::random_token(9).replace(['-', '_'], "x");
    let secret = seal::random_token(32);
    (
        id.clone(),
        format!("{PREFIX}{id}_{secret}"),
        seal::hash(&secret),
    )
}

/// The id and secret of something that looks like a key.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    if token.len() > MAX_LEN {
        return None;
    }
    let rest = token.strip_prefix(PREFIX)?;
    rest.split_once('_')
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

impl ApiKeyRecord {
    /// The claims the MCP pipeline sees for this key when it is `secret`, for
    /// `resource`, unexpired at `now`.
    pub fn claims(&self, secret: &str, resource: &str, now: u64) -> Option<Claims> {
        let same = seal::hash(secret);
        let same = same.len() == self.hash.len()
            && same
                .bytes()
                .zip(self.hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same || self.resource != resource || self.expires_at.is_some_and(|e| now >= e) {
            return None;
        }
        Some(Claims {
            iss: String::new(),
            sub: self.user.clone(),
            aud: self.resource.clone(),
            client_id: format!("api-key:{}", self.id),
            scope: self.scopes.join(" "),
            exp: self.expires_at.unwrap_or(u64::MAX),
            iat: self.created_at,
            jti: format!("api-key:{}", self.id),
            groups: self.groups.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: String, expires_at: Option<u64>) -> ApiKeyRecord {
        ApiKeyRecord {
            id: "k1".into(),
            hash,
            user: "alice".into(),
            groups: vec!["staff".into()],
            route: "notes".into(),
            resource: "https://p/notes/mcp".into(),
            scopes: vec!["notes:read".into()],
            created_at: 100,
            expires_at,
        }
    }

    #[test]
    fn a_new_key_parses_back_to_its_id_and_its_secret_matches_the_hash() {
        let (id, key, hash) = new_key();
        let (pid, secret) = parse(&key).unwrap();
        assert_eq!(pid, id);
        assert!(!id.contains('_'));
        let r = record(hash, Some(1000));
        let c = r.claims(secret, "https://p/notes/mcp", 999).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.scope.as_str(), c.client_id.as_str()),
            ("alice", "notes:read", "api-key:k1")
        );
        assert_eq!(c.groups, ["staff"]);
    }

    #[test]
    fn a_wrong_secret_another_route_or_an_expired_key_gives_nothing() {
        let (_, key, hash) = new_key();
        let (_, secret) = parse(&key).unwrap();
        let r = record(hash, Some(1000));
        assert!(r.claims("nope", "https://p/notes/mcp", 1).is_none());
        assert!(r.claims(secret, "https://p/other/mcp", 1).is_none());
        assert!(r.claims(secret, "https://p/notes/mcp", 1000).is_none());
        assert!(parse("mop_").is_none() && parse("mop_x_").is_none() && parse("eyJ.a.b").is_none());
        assert!(parse(&format!("mop_a_{}", "x".repeat(200))).is_none());
    }
}
