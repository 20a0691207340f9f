//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect
//! Core §9): a JWT the client signs with a key from its metadata document.

use std::collections::{BTreeSet, HashMap};

use super::jwk;
use serde::Deserialize;
use serde_json::Value;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest assertion id accepted (ids are commonly UUIDs, 36 bytes).
pub const MAX_JTI: usize = 256;
/// The longest an assertion may live (RFC 7523 §3 lets the server refuse one
/// expiring "unreasonably far in the future").
const MAX_LIFETIME: u64 = 3600;
/// Assertion ids remembered at most (each ~150 bytes whatever the id's length:
/// its 32-byte hash, its expiry, twice, with the maps' bookkeeping; ~15 MB in
/// all). When all are still unexpired, new assertions are refused: forgetting
/// one before it expires would let it be replayed.
pub const MAX_SEEN: usize = 100_000;

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    exp: Option<u64>,
    jti: Option<String>,
}

/// Why a client assertion is refused: one variant per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("the client assertion is not a JWT")]
    NotAJwt,
    #[error("the client assertion has an unreadable header")]
    UnreadableHeader,
    #[error("the client assertion cannot be checked: the client has no key set")]
    NoKeySet,
    #[error("the client assertion signature does not verify with the client's keys")]
    BadSignature,
    #[error("the client assertion has unreadable claims")]
    UnreadableClaims,
    #[error("the client assertion must have iss and sub equal to the client_id")]
    NotTheClient,
    #[error("the client assertion is not addressed to this server (aud)")]
    WrongAudience,
    #[error("the client assertion has no exp")]
    NoExpiry,
    #[error("the client assertion has expired")]
    Expired,
    #[error("the client assertion lives too long (more than an hour)")]
    TooLong,
    #[error("the client assertion has no jti")]
    NoJti,
    #[error("the client assertion's jti is longer than 256 bytes")]
    JtiTooLong,
}

/// What a verified assertion tells: its id and expiry, to refuse a replay.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub jti: String,
    pub exp: u64,
}

fn b64(part: &str) -> Result<Vec<u8>, AssertionError> {
    jwk::b64(part).ok_or(AssertionError::NotAJwt)
}

/// The `iss` of an assertion, read without verifying (to find the client).
pub fn issuer(assertion: &str) -> Option<String> {
    let claims = assertion.split('.').nth(1)?;
    serde_json::from_slice::<Claims>(&b64(claims).ok()?)
        .ok()?
        .iss
}

/// Verifies a client assertion against the client's key set: signature (RS256,
/// ES256 or EdDSA), `iss` = `sub` = the client, `aud` naming this server, and a
/// short, unexpired lifetime.
pub fn verify(
    assertion: &str,
    jwks: &Value,
    client_id: &str,
    audiences: &[&str],
    now: u64,
) -> Result<Verified, AssertionError> {
    use AssertionError as E;
    let mut parts = assertion.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(E::NotAJwt);
    };
    let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| E::UnreadableHeader)?;
    let sig = b64(s)?;
    let message = &assertion.as_bytes()[..h.len() + 1 + c.len()];
    if !jwks.get("keys").is_some_and(Value::is_array) {
        return Err(E::NoKeySet);
    }
    if !jwk::candidates(jwks, header.kid.as_deref())
        .any(|k| jwk::verifies(k, &header.alg, message, &sig))
    {
        return Err(E::BadSignature);
    }
    let claims: Claims = serde_json::from_slice(&b64(c)?).map_err(|_| E::UnreadableClaims)?;
    if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
        return Err(E::NotTheClient);
    }
    let aud_ok = match &claims.aud {
        Some(Value::String(a)) => audiences.contains(&a.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.contains(&a)),
        _ => false,
    };
    if !aud_ok {
        return Err(E::WrongAudience);
    }
    let exp = claims.exp.ok_or(E::NoExpiry)?;
    if now >= exp {
        return Err(E::Expired);
    }
    if exp > now + MAX_LIFETIME {
        return Err(E::TooLong);
    }
    let jti = claims.jti.filter(|j| !j.is_empty()).ok_or(E::NoJti)?;
    if jti.len() > MAX_JTI {
        return Err(E::JtiTooLong);
    }
    Ok(Verified { jti, exp })
}

/// Why a verified assertion is still refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeenError {
    #[error("the client assertion was already used")]
    Replayed,
    #[error("too many client assertions are in use; try again in a few minutes")]
    Full,
    /// The shared store, where assertions are remembered, does not answer.
    #[error("the server cannot check client assertions at the moment; try again later")]
    Unavailable,
}

/// The assertions seen and not yet expired, so that none is accepted twice:
/// at most [`MAX_SEEN`], kept by the hash of client and id (the same id from
/// two clients is two assertions).
#[derive(Debug, Default)]
pub struct Seen {
    /// Hash → expiry.
    ids: HashMap<[u8; 32], u64>,
    /// The same, earliest expiry first: expired ones are forgotten without a scan.
    by_expiry: BTreeSet<(u64, [u8; 32])>,
}

impl Seen {
    /// Records an assertion of `client_id` until `exp`; refused if it was seen
    /// before, or if [`MAX_SEEN`] unexpired ones are remembered.
    pub fn first_use(
        &mut self,
        client_id: &str,
        jti: &str,
        exp: u64,
        now: u64,
    ) -> Result<(), SeenError> {
        self.forget_expired(now);
        let id = Self::id(client_id, jti);
        if self.ids.contains_key(&id) {
            return Err(SeenError::Replayed);
        }
        if self.ids.len() >= MAX_SEEN {
            return Err(SeenError::Full);
        }
        self.ids.insert(id, exp);
        self.by_expiry.insert((exp, id));
        Ok(())
    }

    /// Forgets the assertions expired at `now`: `verify` refuses them anyway.
    pub fn forget_expired(&mut self, now: u64) {
        while let Some(&(exp, id)) = self.by_expiry.first()
            && exp <= now
        {
            self.by_expiry.pop_first();
            self.ids.remove(&id);
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// What an assertion is remembered by: a hash of client and id.
    pub fn id(client_id: &str, jti: &str) -> [u8; 32] {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        h.update(&(client_id.len() as u64).to_be_bytes());
        h.update(client_id.as_bytes());
        h.update(jti.as_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(h.finish().as_ref());
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    const CLIENT: &str = "https://chatgpt.example/client.json";
    const AUD: &str = "https://proxy.example/oauth/token";

    fn jwt(alg: &str, kid: &str, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let h = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let msg = format!("{h}.{c}");
        let sig = URL_SAFE_NO_PAD.encode(sign(msg.as_bytes()));
        format!("{msg}.{sig}")
    }

    fn claims(exp: u64) -> Value {
        serde_json::json!({"iss": CLIENT, "sub": CLIENT, "aud": [AUD], "exp": exp, "jti": "j1"})
    }

    #[test]
    fn es256_and_eddsa_assertions_verify() {
        let rng = SystemRandom::new();
        let ec_doc =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            ec_doc.as_ref(),
            &rng,
        )
        .unwrap();
        let public = ec.public_key().as_ref();
        let ec_jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec1", "x": URL_SAFE_NO_PAD.encode(&public[1..33]), "y": URL_SAFE_NO_PAD.encode(&public[33..65])});
        let ed_doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(ed_doc.as_ref()).unwrap();
        let ed_jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref())});
        let jwks = serde_json::json!({"keys": [ec_jwk, ed_jwk]});

        let es = jwt("ES256", "ec1", claims(1_100), |m| {
            ec.sign(&rng, m).unwrap().as_ref().to_vec()
        });
        assert_eq!(
            verify(&es, &jwks, CLIENT, &[AUD], 1_000),
            Ok(Verified {
                jti: "j1".into(),
                exp: 1_100
            })
        );
        let eddsa = jwt("EdDSA", "ed1", claims(1_100), |m| {
            ed.sign(m).as_ref().to_vec()
        });
        assert!(verify(&eddsa, &jwks, CLIENT, &[AUD], 1_000).is_ok());
        assert_eq!(issuer(&eddsa).as_deref(), Some(CLIENT));

        // Wrong key id, expired, too long, wrong audience, other client, tampered.
        let wrong_kid = jwt("EdDSA", "ec1", claims(1_100), |m| {
            ed.sign(m).as_ref().to_vec()
        });
        assert_eq!(
            verify(&wrong_kid, &jwks, CLIENT, &[AUD], 1_000),
            Err(AssertionError::BadSignature)
        );
        assert_eq!(
            verify(&eddsa, &jwks, CLIENT, &[AUD], 1_100),
            Err(AssertionError::Expired)
        );
        let long = jwt("EdDSA", "ed1", claims(9_999), |m| {
            ed.sign(m).as_ref().to_vec()
        });
        assert_eq!(
            verify(&long, &jwks, CLIENT, &[AUD], 1_000),
            Err(AssertionError::TooLong)
        );
        assert_eq!(
            verify(
                &eddsa,
                &jwks,
                CLIENT,
                &["https://other.example/token"],
                1_000
            ),
            Err(AssertionError::WrongAudience)
        );
        assert_eq!(
            verify(&eddsa, &jwks, "https://other.example/c.json", &[AUD], 1_000),
            Err(AssertionError::NotTheClient)
        );
        let mut tampered = eddsa.clone();
        tampered.pop();
        tampered.push(if eddsa.ends_with('A') { 'B' } else { 'A' });
        // (The changed last character may make the base64 itself invalid.)
        assert!(matches!(
            verify(&tampered, &jwks, CLIENT, &[AUD], 1_000),
            Err(AssertionError::BadSignature | AssertionError::NotAJwt)
        ));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            eddsa.split('.').nth(1).unwrap()
        );
        assert_eq!(
            verify(&none, &jwks, CLIENT, &[AUD], 1_000),
            Err(AssertionError::BadSignature)
        );
        assert_eq!(
            verify("a.b", &jwks, CLIENT, &[AUD], 1_000)
                .unwrap_err()
                .to_string(),
            "the client assertion is not a JWT"
        );
        assert_eq!(
            verify(&eddsa, &serde_json::json!({}), CLIENT, &[AUD], 1_000)
                .unwrap_err()
                .to_string(),
            "the client assertion cannot be checked: the client has no key set"
        );
    }

    #[test]
    fn assertion_ids_longer_than_256_bytes_are_refused() {
        let ed_doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(ed_doc.as_ref()).unwrap();
        let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref())}]});
        let with_jti = |jti: &str| {
            let c = serde_json::json!({"iss": CLIENT, "sub": CLIENT, "aud": AUD, "exp": 1_100, "jti": jti});
            jwt("EdDSA", "ed1", c, |m| ed.sign(m).as_ref().to_vec())
        };
        let longest = "j".repeat(MAX_JTI);
        assert!(verify(&with_jti(&longest), &jwks, CLIENT, &[AUD], 1_000).is_ok());
        assert_eq!(
            verify(
                &with_jti(&format!("{longest}j")),
                &jwks,
                CLIENT,
                &[AUD],
                1_000
            ),
            Err(AssertionError::JtiTooLong)
        );
    }

    #[test]
    fn an_assertion_is_accepted_once_per_client_until_it_expires() {
        let mut seen = Seen::default();
        assert_eq!(seen.first_use(CLIENT, "j1", 1_100, 1_000), Ok(()));
        assert_eq!(
            seen.first_use(CLIENT, "j1", 1_100, 1_099),
            Err(SeenError::Replayed)
        );
        assert_eq!(
            seen.first_use("https://other.example/c.json", "j1", 1_100, 1_000),
            Ok(()),
            "another client's j1"
        );
        seen.forget_expired(1_100);
        assert!(seen.is_empty(), "expired: verify refuses it anyway");
    }

    #[test]
    fn a_flood_of_assertions_is_bounded_and_refused_rather_than_forgotten() {
        let mut seen = Seen::default();
        let long = "x".repeat(MAX_JTI - 10);
        for i in 0..MAX_SEEN {
            let exp = 1_000 + 60 + (i % 3_000) as u64;
            assert_eq!(
                seen.first_use(CLIENT, &format!("{long}{i}"), exp, 1_000),
                Ok(())
            );
        }
        // What an entry holds does not grow with the id: a 32-byte hash and the expiry.
        assert_eq!(std::mem::size_of::<([u8; 32], u64)>(), 40);
        for i in 0..1_000 {
            assert_eq!(
                seen.first_use(CLIENT, &format!("new{i}"), 1_500, 1_000),
                Err(SeenError::Full)
            );
        }
        assert_eq!(seen.len(), MAX_SEEN);
        assert_eq!(
            seen.first_use(CLIENT, &format!("{long}0"), 1_060, 1_000),
            Err(SeenError::Replayed),
            "a full memory still knows every unexpired id"
        );
        // A minute later the earliest have expired: room again.
        assert_eq!(seen.first_use(CLIENT, "new0", 1_500, 1_061), Ok(()));
        assert!(seen.len() < MAX_SEEN);
    }
}
