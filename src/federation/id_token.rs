//! OpenID Connect ID token validation (Core §3.1.3.7), as pure functions:
//! the signature against the provider's key set, then `iss`, `aud`, `azp`,
//! `exp`, `iat` and `nonce`.

use serde::Deserialize;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::oauth::jwk;

/// How far the provider's clock may be from ours, in seconds.
pub const SKEW: u64 = 60;

/// Why an ID token is refused: one variant per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is not a signed JWT")]
    Malformed,
    #[error("the ID token's algorithm is not one the provider announced")]
    AlgorithmNotAllowed,
    #[error("the ID token is signed with a key the provider does not publish")]
    UnknownKey,
    #[error("the ID token's signature does not verify")]
    BadSignature,
    #[error("the ID token was issued by someone else (iss)")]
    WrongIssuer,
    #[error("the ID token is not for this client (aud)")]
    WrongAudience,
    #[error("the ID token was issued to another party (azp)")]
    WrongAuthorizedParty,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the ID token's nonce is not this sign-in's")]
    WrongNonce,
    #[error("the ID token has no subject")]
    NoSubject,
    #[error("the ID token is for another person than before (sub)")]
    OtherSubject,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

/// A JWS in compact form, split but not yet trusted.
pub struct Unverified<'a> {
    alg: String,
    kid: Option<String>,
    /// The header's `typ` (explicit typing, RFC 8725).
    pub typ: Option<String>,
    message: &'a [u8],
    signature: Vec<u8>,
    claims: Map<String, Value>,
}

impl<'a> Unverified<'a> {
    pub fn parse(token: &'a str) -> Result<Self, IdTokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdTokenError::Malformed);
        };
        let decode = |p: &str| jwk::b64(p).ok_or(IdTokenError::Malformed);
        let header: Header =
            serde_json::from_slice(&decode(h)?).map_err(|_| IdTokenError::Malformed)?;
        let claims = match serde_json::from_slice(&decode(c)?) {
            Ok(Value::Object(m)) => m,
            _ => return Err(IdTokenError::Malformed),
        };
        Ok(Unverified {
            alg: header.alg,
            kid: header.kid,
            typ: header.typ,
            message: &token.as_bytes()[..h.len() + 1 + c.len()],
            signature: decode(s)?,
            claims,
        })
    }

    /// Whether the key set has a key this token names (or any key, if it names none).
    pub fn key_known(&self, jwks: &Value) -> bool {
        jwk::candidates(jwks, self.kid.as_deref()).next().is_some()
    }

    /// The algorithm must be one the provider announced and an asymmetric one.
    pub fn check_algorithm(&self, allowed: &[String]) -> Result<(), IdTokenError> {
        if jwk::ALGORITHMS.contains(&self.alg.as_str()) && allowed.contains(&self.alg) {
            Ok(())
        } else {
            Err(IdTokenError::AlgorithmNotAllowed)
        }
    }

    /// The claims, once the signature verifies with a key of `jwks`.
    pub fn verify(self, jwks: &Value) -> Result<Map<String, Value>, IdTokenError> {
        if !self.key_known(jwks) {
            return Err(IdTokenError::UnknownKey);
        }
        if jwk::candidates(jwks, self.kid.as_deref())
            .any(|k| jwk::verifies(k, &self.alg, self.message, &self.signature))
        {
            Ok(self.claims)
        } else {
            Err(IdTokenError::BadSignature)
        }
    }
}

/// What the claims must say.
#[derive(Debug)]
pub struct Expected<'a> {
    /// The provider's issuer; `{tenantid}` in it stands for the token's `tid`
    /// (Microsoft Entra ID's multi-tenant endpoints).
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The sign-in's nonce; `None` for a token from a refresh (no nonce then).
    pub nonce: Option<&'a str>,
    /// At a refresh: the person must be the one who signed in.
    pub subject: Option<&'a str>,
    pub now: u64,
}

fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

fn seconds(claims: &Map<String, Value>, name: &str) -> Option<u64> {
    let v = claims.get(name)?;
    v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
}

/// Checks the claims of a verified ID token; returns its `sub`.
pub fn check_claims<'c>(
    claims: &'c Map<String, Value>,
    expected: &Expected,
) -> Result<&'c str, IdTokenError> {
    use IdTokenError as E;
    let issuer = if expected.issuer.contains("{tenantid}") {
        let tid = text(claims, "tid").filter(|t| !t.is_empty() && !t.contains(['{', '/']));
        expected
            .issuer
            .replace("{tenantid}", tid.ok_or(E::WrongIssuer)?)
    } else {
        expected.issuer.to_string()
    };
    if text(claims, "iss") != Some(issuer.as_str()) {
        return Err(E::WrongIssuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(E::WrongAudience);
    }
    let azp = text(claims, "azp");
    let azp_required = audiences.len() > 1;
    if azp.is_some_and(|a| a != expected.client_id) || (azp_required && azp.is_none()) {
        return Err(E::WrongAuthorizedParty);
    }
    match seconds(claims, "exp") {
        Some(exp) if exp + SKEW > expected.now => {}
        _ => return Err(E::Expired),
    }
    if seconds(claims, "iat").is_some_and(|iat| iat > expected.now + SKEW) {
        return Err(E::IssuedInFuture);
    }
    if let Some(nonce) = expected.nonce {
        let given = text(claims, "nonce").unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(E::WrongNonce);
        }
    }
    let sub = text(claims, "sub")
        .filter(|s| !s.is_empty())
        .ok_or(E::NoSubject)?;
    if expected.subject.is_some_and(|s| s != sub) {
        return Err(E::OtherSubject);
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn expected() -> Expected<'static> {
        Expected {
            issuer: "https://idp.example",
            client_id: "proxy",
            nonce: Some("n-1"),
            subject: None,
            now: NOW,
        }
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({"iss":"https://idp.example","aud":"proxy","sub":"u1","exp":NOW+300,"iat":NOW,"nonce":"n-1"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base.as_object().unwrap().clone()
    }

    #[test]
    fn good_claims_pass_and_give_the_subject() {
        assert_eq!(check_claims(&claims(json!({})), &expected()), Ok("u1"));
        // An audience list with us in it, and azp naming us.
        let c = claims(json!({"aud":["proxy","other"],"azp":"proxy"}));
        assert_eq!(check_claims(&c, &expected()), Ok("u1"));
        // Clocks a little apart: expired 30 s ago, issued 30 s ahead.
        let c = claims(json!({"exp":NOW-30,"iat":NOW+30}));
        assert_eq!(check_claims(&c, &expected()), Ok("u1"));
    }

    #[test]
    fn each_claim_check_refuses() {
        use IdTokenError as E;
        let cases = [
            (json!({"iss":"https://idp.example/"}), E::WrongIssuer),
            (json!({"iss":null}), E::WrongIssuer),
            (json!({"aud":"other"}), E::WrongAudience),
            (json!({"aud":["other"]}), E::WrongAudience),
            (json!({"aud":null}), E::WrongAudience),
            (json!({"azp":"other"}), E::WrongAuthorizedParty),
            (json!({"aud":["proxy","other"]}), E::WrongAuthorizedParty),
            (json!({"exp":NOW-61}), E::Expired),
            (json!({"exp":null}), E::Expired),
            (json!({"iat":NOW+61}), E::IssuedInFuture),
            (json!({"nonce":"n-2"}), E::WrongNonce),
            (json!({"nonce":null}), E::WrongNonce),
            (json!({"sub":""}), E::NoSubject),
        ];
        for (extra, error) in cases {
            assert_eq!(
                check_claims(&claims(extra.clone()), &expected()),
                Err(error),
                "{extra}"
            );
        }
    }

    #[test]
    fn a_refresh_needs_no_nonce_but_the_same_subject() {
        let mut e = expected();
        e.nonce = None;
        e.subject = Some("u1");
        assert_eq!(check_claims(&claims(json!({"nonce":null})), &e), Ok("u1"));
        e.subject = Some("u2");
        assert_eq!(
            check_claims(&claims(json!({})), &e),
            Err(IdTokenError::OtherSubject)
        );
    }

    #[test]
    fn a_tenant_template_issuer_takes_the_tokens_tenant() {
        let e = Expected {
            issuer: "https://login.microsoftonline.com/{tenantid}/v2.0",
            ..expected()
        };
        let c = claims(json!({"iss":"https://login.microsoftonline.com/t1/v2.0","tid":"t1"}));
        assert_eq!(check_claims(&c, &e), Ok("u1"));
        let c = claims(json!({"iss":"https://login.microsoftonline.com/t1/v2.0","tid":"t2"}));
        assert_eq!(check_claims(&c, &e), Err(IdTokenError::WrongIssuer));
        let c = claims(json!({"iss":"https://login.microsoftonline.com/{tenantid}/v2.0"}));
        assert_eq!(check_claims(&c, &e), Err(IdTokenError::WrongIssuer));
    }

    fn signed(key: &Ed25519KeyPair, header: Value, claims: Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let message = format!("{}.{}", enc(&header), enc(&claims));
        let sig = key.sign(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn key() -> (Ed25519KeyPair, Value) {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let jwk = json!({"kty":"OKP","crv":"Ed25519","kid":"k1","x":URL_SAFE_NO_PAD.encode(key.public_key().as_ref())});
        (key, json!({"keys":[jwk]}))
    }

    #[test]
    fn signatures_verify_only_with_the_providers_key() {
        let (key, jwks) = key();
        let (other, _) = key_pair_other();
        let token = signed(&key, json!({"alg":"EdDSA","kid":"k1"}), json!({"sub":"u1"}));
        let t = Unverified::parse(&token).unwrap();
        assert!(t.check_algorithm(&["EdDSA".into()]).is_ok());
        assert_eq!(t.verify(&jwks).unwrap()["sub"], "u1");

        let forged = signed(
            &other,
            json!({"alg":"EdDSA","kid":"k1"}),
            json!({"sub":"u1"}),
        );
        assert_eq!(
            Unverified::parse(&forged).unwrap().verify(&jwks).err(),
            Some(IdTokenError::BadSignature)
        );
        let rotated = signed(&key, json!({"alg":"EdDSA","kid":"k2"}), json!({"sub":"u1"}));
        let t = Unverified::parse(&rotated).unwrap();
        assert!(!t.key_known(&jwks));
        assert_eq!(t.verify(&jwks).err(), Some(IdTokenError::UnknownKey));
    }

    fn key_pair_other() -> (Ed25519KeyPair, Value) {
        key()
    }

    #[test]
    fn algorithms_outside_the_announced_asymmetric_ones_are_refused() {
        let (key, _) = key();
        for alg in ["none", "HS256", "RS256"] {
            let token = signed(&key, json!({"alg":alg}), json!({}));
            let t = Unverified::parse(&token).unwrap();
            // RS256 is asymmetric but not announced here; none/HS256 are never allowed.
            assert_eq!(
                t.check_algorithm(&["EdDSA".into(), "none".into(), "HS256".into()]),
                Err(IdTokenError::AlgorithmNotAllowed),
                "{alg}"
            );
        }
        for bad in ["a.b", "a.b.c.d", "!!.e30.x", "e30.bm90IGpzb24.x"] {
            assert!(matches!(
                Unverified::parse(bad),
                Err(IdTokenError::Malformed)
            ));
        }
    }
}
