//! Access tokens: JWTs (RFC 9068 `at+jwt`) signed with Ed25519 (`EdDSA`).
//!
//! The proxy is both the issuer and the only verifier, so the format is fixed:
//! header `{"alg":"EdDSA","typ":"at+jwt","kid":…}`, nothing else accepted.
//! Expiry is exact (no leeway): one clock issues and verifies.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    /// Space-separated granted scopes (may be empty).
    pub scope: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// The user's groups when the token was issued (for `upstream_auth` rules and
    /// identity headers); absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl Claims {
    /// Issuer, expiry (`now < exp`, exactly: no leeway) and audience.
    pub fn check(&self, issuer: &str, audience: &str, now: u64) -> Result<(), TokenError> {
        if self.iss != issuer {
            return Err(TokenError::WrongIssuer);
        }
        if now >= self.exp {
            return Err(TokenError::Expired);
        }
        if self.aud != audience {
            return Err(TokenError::WrongAudience);
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// Why a token was refused. Never says more than the client may know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token signature is invalid")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token was not issued for this resource")]
    WrongAudience,
    #[error("the access token was not issued by this server")]
    WrongIssuer,
    #[error("the access token has been revoked")]
    Revoked,
}

/// The proxy's signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key as a PKCS#8 document, to be stored.
    pub fn generate() -> Result<Vec<u8>, ring::error::Unspecified> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map(|d| d.as_ref().to_vec())
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, ring::error::KeyRejected> {
        let pair = Ed25519KeyPair::from_pkcs8(der)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, pair.public_key().as_ref());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        Ok(Self { pair, kid })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign(&self, claims: &Claims) -> String {
        self.sign_typed("at+jwt", claims)
    }

    /// Signs any claims with this key, under JWT type `typ`.
    pub fn sign_typed(&self, typ: &str, claims: &impl Serialize) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            typ: typ.into(),
            kid: self.kid.clone(),
        };
        let mut token = String::with_capacity(512);
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default()));
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default()));
        let sig = self.pair.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        token
    }

    /// The public key as a JWK (RFC 8037), for `/oauth/jwks`.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref()),
        })
    }

    /// Checks signature, issuer, audience and expiry (`now < exp`, exactly).
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: u64,
    ) -> Result<Claims, TokenError> {
        let claims = self.verify_signature(token)?;
        claims.check(issuer, audience, now)?;
        Ok(claims)
    }

    /// Checks only the format and signature, returning the claims.
    pub fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        verify_signature(token, |kid| (kid == self.kid).then_some(self))
    }
}

/// Checks only the format and the signature, with the key the header's `kid`
/// names (`key_for` finds it among the keys still trusted), returning the claims.
/// An unknown `kid` is a bad signature.
pub fn verify_signature<'k>(
    token: &str,
    key_for: impl FnOnce(&str) -> Option<&'k SigningKey>,
) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = decode_json(h)?;
    if header.alg != "EdDSA" || header.typ != "at+jwt" {
        return Err(TokenError::Malformed);
    }
    let key = key_for(&header.kid).ok_or(TokenError::BadSignature)?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed)?;
    let signed = &token[..h.len() + 1 + c.len()];
    UnparsedPublicKey::new(&ED25519, key.pair.public_key().as_ref())
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| TokenError::BadSignature)?;
    decode_json(c)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate().unwrap()).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            iss: "https://proxy.example".into(),
            sub: "alice".into(),
            aud: "https://proxy.example/notes/mcp".into(),
            client_id: "c1".into(),
            scope: "notes:read".into(),
            exp: 2_000,
            iat: 1_000,
            jti: "j1".into(),
            groups: Vec::new(),
        }
    }

    fn check(k: &SigningKey, t: &str, now: u64) -> Result<Claims, TokenError> {
        k.verify(
            t,
            "https://proxy.example",
            "https://proxy.example/notes/mcp",
            now,
        )
    }

    #[test]
    fn round_trip_and_exact_expiry() {
        let k = key();
        let t = k.sign(&claims());
        assert_eq!(check(&k, &t, 1_999), Ok(claims()));
        assert_eq!(check(&k, &t, 2_000), Err(TokenError::Expired), "no leeway");
    }

    #[test]
    fn audience_issuer_and_signature_are_checked() {
        let k = key();
        let t = k.sign(&claims());
        assert_eq!(
            k.verify(
                &t,
                "https://proxy.example",
                "https://proxy.example/other/mcp",
                1_500
            ),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            k.verify(
                &t,
                "https://evil.example",
                "https://proxy.example/notes/mcp",
                1_500
            ),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            check(&key(), &t, 1_500),
            Err(TokenError::BadSignature),
            "another key"
        );
        let mut tampered = t.clone();
        tampered.replace_range(
            t.len() - 5..t.len() - 4,
            if t.ends_with('A') { "B" } else { "A" },
        );
        let payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: "mallory".into(),
                ..claims()
            })
            .unwrap(),
        );
        let parts: Vec<&str> = t.split('.').collect();
        let swapped = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(check(&k, &swapped, 1_500), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_and_junk_are_malformed() {
        let k = key();
        let t = k.sign(&claims());
        let parts: Vec<&str> = t.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
            k.kid()
        ));
        assert_eq!(
            check(&k, &format!("{none}.{}.", parts[1]), 1_500),
            Err(TokenError::Malformed)
        );
        for junk in ["", "a", "a.b", "a.b.c", "a.b.c.d", "....", "ééé.b.c"] {
            assert_eq!(check(&k, junk, 1_500), Err(TokenError::Malformed), "{junk}");
        }
    }

    #[test]
    fn the_key_named_by_kid_verifies_and_an_unknown_kid_is_refused() {
        let (old, new) = (key(), key());
        let by_kid = |kid: &str| [&old, &new].into_iter().find(|k| k.kid() == kid);
        let signed_by_old = old.sign(&claims());
        assert_eq!(verify_signature(&signed_by_old, by_kid), Ok(claims()));
        assert_eq!(verify_signature(&new.sign(&claims()), by_kid), Ok(claims()));
        assert_eq!(
            verify_signature(&key().sign(&claims()), by_kid),
            Err(TokenError::BadSignature),
            "a key not in the set"
        );
        let parts: Vec<&str> = signed_by_old.split('.').collect();
        let relabelled = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#,
            new.kid()
        ));
        assert_eq!(
            verify_signature(&format!("{relabelled}.{}.{}", parts[1], parts[2]), by_kid),
            Err(TokenError::BadSignature),
            "a signature is checked with the key its kid names"
        );
    }

    #[test]
    fn debug_does_not_show_the_private_key() {
        let k = key();
        assert!(format!("{k:?}").contains(k.kid()));
        assert!(!format!("{k:?}").contains("pair"));
    }
}
