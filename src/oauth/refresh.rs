//! Refresh-token families: rotation on every use, a grace window for retries,
//! and revocation of the whole family when an old token comes back later.
//!
//! A refresh token is `<family id>.<secret>`; the store keeps only SHA-256
//! hashes. Within `refresh_grace` after a rotation, the old token gets the
//! very answer the first request got (sealed with a key derived from the old
//! token, so the store never holds a usable token). After the window, the old
//! token is reuse: the family is revoked.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Family {
    pub id: String,
    pub client_id: String,
    pub user: String,
    pub groups: Vec<String>,
    pub resource: String,
    pub scope: Vec<String>,
    pub created_at: u64,
    pub revoked: bool,
    pub tokens: Vec<IssuedRefresh>,
    /// Access tokens issued in this family and not yet expired, to deny on revocation.
    pub access: Vec<IssuedAccess>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedRefresh {
    pub hash: String,
    pub expires_at: u64,
    pub rotated_at: Option<u64>,
    /// The token response this token's rotation produced, sealed with the token itself.
    pub answer: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedAccess {
    pub jti: String,
    pub exp: u64,
}

/// What an identity provider said of the person at a refresh of their grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityVerdict {
    /// Still a member, with these groups (the route's `allow` is applied to them).
    Confirmed { groups: Vec<String> },
    /// Gone, or no longer allowed: the family ends.
    Refused,
}

/// What presenting a refresh token means.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    /// The current token: rotate it.
    Rotate,
    /// Rotated moments ago: answer again with the sealed response.
    Replay(&'a [u8]),
    /// Rotated longer ago than the grace window: a stolen or leaked token.
    Reused,
    Expired,
    Revoked,
    Unknown,
}

impl Family {
    pub fn check(&self, hash: &str, now: u64, grace: u64) -> Presented<'_> {
        if self.revoked {
            return Presented::Revoked;
        }
        let Some(t) = self.tokens.iter().find(|t| t.hash == hash) else {
            return Presented::Unknown;
        };
        match (t.rotated_at, &t.answer) {
            (Some(at), Some(answer)) if now <= at + grace => Presented::Replay(answer),
            (Some(_), _) => Presented::Reused,
            (None, _) if now >= t.expires_at => Presented::Expired,
            (None, _) => Presented::Rotate,
        }
    }

    /// Marks `old` rotated (keeping its sealed answer for the grace window) and adds `new`.
    pub fn rotate(
        &mut self,
        old: &str,
        sealed_answer: Vec<u8>,
        new: IssuedRefresh,
        access: IssuedAccess,
        now: u64,
        grace: u64,
    ) {
        if let Some(t) = self.tokens.iter_mut().find(|t| t.hash == old) {
            t.rotated_at = Some(now);
            t.answer = Some(sealed_answer);
        }
        self.tokens.push(new);
        self.access.push(access);
        self.prune(now, grace);
    }

    /// Drops what can no longer matter: expired access tokens, expired current
    /// tokens, and sealed answers past the grace window (the hash stays, so a
    /// late reuse is still recognised).
    pub fn prune(&mut self, now: u64, grace: u64) {
        self.access.retain(|a| a.exp > now);
        for t in &mut self.tokens {
            if t.rotated_at.is_some_and(|at| now > at + grace) {
                t.answer = None;
            }
        }
        // Keep a bounded history of rotated hashes for reuse detection.
        const HISTORY: usize = 32;
        let rotated = self
            .tokens
            .iter()
            .filter(|t| t.rotated_at.is_some())
            .count();
        if rotated > HISTORY {
            let mut drop = rotated - HISTORY;
            self.tokens.retain(|t| {
                if drop > 0 && t.rotated_at.is_some() {
                    drop -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Revokes the family; returns the access tokens to deny until they expire.
    pub fn revoke(&mut self) -> Vec<IssuedAccess> {
        self.revoked = true;
        for t in &mut self.tokens {
            t.answer = None;
        }
        std::mem::take(&mut self.access)
    }

    /// When the store may forget this family.
    /// When the last of its tokens (refresh or access) expires.
    pub fn expires_at(&self) -> u64 {
        self.tokens
            .iter()
            .map(|t| t.expires_at)
            .chain(self.access.iter().map(|a| a.exp))
            .max()
            .unwrap_or(self.created_at)
    }
}

/// Splits `<family id>.<secret>`.
pub fn family_id(token: &str) -> Option<&str> {
    let (id, secret) = token.split_once('.')?;
    (!id.is_empty() && !secret.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: u64 = 10;

    fn family() -> Family {
        Family {
            id: "f".into(),
            client_id: "c".into(),
            user: "alice".into(),
            groups: vec![],
            resource: "https://p/notes/mcp".into(),
            scope: vec!["notes:read".into()],
            created_at: 100,
            revoked: false,
            tokens: vec![IssuedRefresh {
                hash: "h1".into(),
                expires_at: 1_000,
                rotated_at: None,
                answer: None,
            }],
            access: vec![IssuedAccess {
                jti: "a1".into(),
                exp: 200,
            }],
        }
    }

    fn next(hash: &str) -> IssuedRefresh {
        IssuedRefresh {
            hash: hash.into(),
            expires_at: 2_000,
            rotated_at: None,
            answer: None,
        }
    }

    #[test]
    fn current_token_rotates_and_the_old_one_replays_within_grace() {
        let mut f = family();
        assert_eq!(f.check("h1", 150, GRACE), Presented::Rotate);
        f.rotate(
            "h1",
            b"sealed".to_vec(),
            next("h2"),
            IssuedAccess {
                jti: "a2".into(),
                exp: 300,
            },
            150,
            GRACE,
        );
        assert_eq!(f.check("h2", 151, GRACE), Presented::Rotate);
        assert_eq!(f.check("h1", 150, GRACE), Presented::Replay(b"sealed"));
        assert_eq!(
            f.check("h1", 160, GRACE),
            Presented::Replay(b"sealed"),
            "the window's last second"
        );
        assert_eq!(f.check("h1", 161, GRACE), Presented::Reused);
    }

    #[test]
    fn reuse_after_grace_revokes_everything() {
        let mut f = family();
        f.rotate(
            "h1",
            b"s".to_vec(),
            next("h2"),
            IssuedAccess {
                jti: "a2".into(),
                exp: 300,
            },
            150,
            GRACE,
        );
        f.prune(170, GRACE);
        assert_eq!(
            f.check("h1", 170, GRACE),
            Presented::Reused,
            "pruning keeps the hash"
        );
        let denied = f.revoke();
        assert_eq!(denied.len(), 2, "{denied:?}");
        assert_eq!(f.check("h2", 171, GRACE), Presented::Revoked);
    }

    #[test]
    fn expired_and_unknown_tokens() {
        let f = family();
        assert_eq!(f.check("h1", 1_000, GRACE), Presented::Expired);
        assert_eq!(f.check("nope", 150, GRACE), Presented::Unknown);
    }

    #[test]
    fn history_is_bounded() {
        let mut f = family();
        let mut cur = "h1".to_string();
        for i in 0..100u64 {
            let new = format!("n{i}");
            f.rotate(
                &cur,
                vec![],
                next(&new),
                IssuedAccess {
                    jti: new.clone(),
                    exp: 0,
                },
                200 + i,
                GRACE,
            );
            cur = new;
        }
        assert!(f.tokens.len() <= 33, "{}", f.tokens.len());
        assert_eq!(f.check(&cur, 400, GRACE), Presented::Rotate);
        assert!(f.access.is_empty(), "expired access tokens are pruned");
    }

    #[test]
    fn token_format() {
        assert_eq!(family_id("fam.secret"), Some("fam"));
        assert_eq!(family_id("nodot"), None);
        assert_eq!(family_id(".x"), None);
        assert_eq!(family_id("x."), None);
    }
}
