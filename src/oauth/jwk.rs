//! Verifying a JWS signature with a JSON Web Key (RFC 7517/7518): the
//! asymmetric algorithms only. `none` and the HMAC algorithms are never
//! accepted (a public key used as an HMAC secret is the classic confusion).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

/// The algorithms a signature may use.
pub const ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// base64url without padding (a stray `=` tolerated).
pub fn b64(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

/// The keys of a key set that may have made a signature with `kid` (all, when the JWS names none).
pub fn candidates<'a>(jwks: &'a Value, kid: Option<&'a str>) -> impl Iterator<Item = &'a Value> {
    jwks.get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |k| match kid {
            Some(kid) => k.get("kid").and_then(Value::as_str) == Some(kid),
            None => true,
        })
}

/// Whether `sig` over `message` verifies with `jwk` under `alg`. A key that
/// declares another `alg`, or is meant for encryption (`use: enc`), does not.
pub fn verifies(jwk: &Value, alg: &str, message: &[u8], sig: &[u8]) -> bool {
    let text = |k: &str| jwk.get(k).and_then(Value::as_str);
    let field = |k: &str| text(k).and_then(b64);
    if text("alg").is_some_and(|a| a != alg) || text("use").is_some_and(|u| u != "sig") {
        return false;
    }
    let rsa = |params: &'static signature::RsaParameters| match (field("n"), field("e")) {
        (Some(n), Some(e)) => RsaPublicKeyComponents { n, e }
            .verify(params, message, sig)
            .is_ok(),
        _ => false,
    };
    let ec = |crv: &str, size: usize, params: &'static signature::EcdsaVerificationAlgorithm| match (
        text("crv"),
        field("x"),
        field("y"),
    ) {
        (Some(c), Some(x), Some(y)) if c == crv && x.len() == size && y.len() == size => {
            let mut point = vec![0x04];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(params, point)
                .verify(message, sig)
                .is_ok()
        }
        _ => false,
    };
    match (alg, text("kty")) {
        ("RS256", Some("RSA")) => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        ("RS384", Some("RSA")) => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        ("RS512", Some("RSA")) => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        ("PS256", Some("RSA")) => rsa(&signature::RSA_PSS_2048_8192_SHA256),
        ("PS384", Some("RSA")) => rsa(&signature::RSA_PSS_2048_8192_SHA384),
        ("PS512", Some("RSA")) => rsa(&signature::RSA_PSS_2048_8192_SHA512),
        ("ES256", Some("EC")) => ec("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED),
        ("ES384", Some("EC")) => ec("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED),
        ("EdDSA", Some("OKP")) if text("crv") == Some("Ed25519") => match field("x") {
            Some(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    fn enc(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn ed25519_and_es256_verify_and_a_changed_message_does_not() {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let jwk = json!({"kty":"OKP","crv":"Ed25519","x": enc(ed.public_key().as_ref())});
        let sig = ed.sign(b"hello");
        assert!(verifies(&jwk, "EdDSA", b"hello", sig.as_ref()));
        assert!(!verifies(&jwk, "EdDSA", b"hellO", sig.as_ref()));
        // The same key under another algorithm, or declared for encryption: no.
        assert!(!verifies(&jwk, "ES256", b"hello", sig.as_ref()));
        let mut enc_key = jwk.clone();
        enc_key["use"] = json!("enc");
        assert!(!verifies(&enc_key, "EdDSA", b"hello", sig.as_ref()));

        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
        let point = ec.public_key().as_ref();
        let jwk = json!({"kty":"EC","crv":"P-256","x": enc(&point[1..33]),"y": enc(&point[33..])});
        let sig = ec.sign(&rng, b"hello").unwrap();
        assert!(verifies(&jwk, "ES256", b"hello", sig.as_ref()));
        assert!(!verifies(&jwk, "ES256", b"bye", sig.as_ref()));
    }

    #[test]
    fn none_and_hmac_never_verify() {
        let jwk = json!({"kty":"oct","k": enc(b"secret")});
        for alg in ["none", "HS256", "HS384", "HS512"] {
            assert!(!verifies(&jwk, alg, b"m", b""), "{alg}");
            assert!(!ALGORITHMS.contains(&alg));
        }
    }

    #[test]
    fn candidates_follow_the_kid() {
        let set = json!({"keys":[{"kid":"a"},{"kid":"b"},{}]});
        assert_eq!(candidates(&set, Some("b")).count(), 1);
        assert_eq!(candidates(&set, None).count(), 3);
        assert_eq!(candidates(&set, Some("z")).count(), 0);
        assert_eq!(candidates(&json!({}), None).count(), 0);
    }
}
