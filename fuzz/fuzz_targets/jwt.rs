//! Access token verification. The first byte picks how the token is made:
//!   0  the rest of the input is the token;
//!   1  a validly signed token with one of its three parts replaced by the rest;
//!   2  header and claims JSON from the input (split at a NUL byte; without one,
//!      the proxy's header and the input as claims), signed with the proxy's key;
//!   3  the same, signed with another key.
//! Nothing panics; a token verifies only if it is the exact token the key
//! signed (0, 1) or the key signed it (2), and then yields the signed claims.
#![no_main]
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use mcp_oauth_proxy::oauth::jwt::{Claims, SigningKey, TokenError};
use ring::signature::{Ed25519KeyPair, KeyPair};

const ISS: &str = "https://proxy.example";
const AUD: &str = "https://proxy.example/notes/mcp";
const NOW: u64 = 1_500;

struct Fixture {
    key: SigningKey,
    /// The same key as `key`, to sign what the fuzzer makes up.
    pair: Ed25519KeyPair,
    other: Ed25519KeyPair,
    header: String,
    claims: Claims,
    token: String,
}

/// PKCS#8 v2 for an Ed25519 seed, as `SigningKey::generate` makes them: a fixed
/// key, so a crash reproduces and seeds can carry its `kid`.
fn pkcs8(seed: [u8; 32]) -> Vec<u8> {
    let public = Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
    let mut der = vec![
        0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    der.extend_from_slice(&[0xa1, 0x23, 0x03, 0x21, 0x00]);
    der.extend_from_slice(public.public_key().as_ref());
    der
}

static F: LazyLock<Fixture> = LazyLock::new(|| {
    let der = pkcs8([0x42; 32]);
    let key = SigningKey::from_pkcs8(&der).expect("fuzz key");
    let pair = Ed25519KeyPair::from_pkcs8(&der).expect("fuzz key");
    let other = Ed25519KeyPair::from_seed_unchecked(&[0x07; 32]).expect("other key");
    let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#, key.kid());
    let claims = Claims {
        iss: ISS.into(),
        sub: "alice".into(),
        aud: AUD.into(),
        client_id: "c1".into(),
        scope: "notes:read".into(),
        exp: 2_000,
        iat: 1_000,
        jti: "j1".into(),
        groups: Vec::new(),
    };
    let token = key.sign(&claims);
    assert_eq!(key.verify(&token, ISS, AUD, NOW), Ok(claims.clone()));
    assert!(
        token.starts_with(&B64.encode(&header)),
        "header layout changed"
    );
    Fixture {
        key,
        pair,
        other,
        header,
        claims,
        token,
    }
});

/// Anything but the exact signed token is refused.
fn only_the_signed_token(token: &str) {
    let f = &*F;
    let sig = f.key.verify_signature(token);
    let full = f.key.verify(token, ISS, AUD, NOW);
    if token == f.token {
        assert_eq!(sig, Ok(f.claims.clone()));
        assert_eq!(full, Ok(f.claims.clone()));
    } else {
        assert!(sig.is_err(), "forged token verified: {token:?}");
        assert!(full.is_err(), "forged token verified: {token:?}");
    }
}

fn signed_by(pair: &Ed25519KeyPair, header: &[u8], claims: &[u8]) -> String {
    let mut token = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = pair.sign(token.as_bytes());
    token.push('.');
    token.push_str(&B64.encode(sig.as_ref()));
    token
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = &*F;
    match mode % 4 {
        0 => only_the_signed_token(&String::from_utf8_lossy(rest)),
        1 => {
            let mut parts: Vec<String> = f.token.split('.').map(str::to_string).collect();
            parts[usize::from(mode / 4) % 3] = String::from_utf8_lossy(rest).into_owned();
            only_the_signed_token(&parts.join("."));
        }
        m => {
            let (header, claims) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (f.header.as_bytes(), rest),
            };
            let pair = if m == 2 { &f.pair } else { &f.other };
            let token = signed_by(pair, header, claims);
            let result = f.key.verify_signature(&token);
            if m == 3 {
                assert!(result.is_err(), "token signed by another key verified");
                assert!(f.key.verify(&token, ISS, AUD, NOW).is_err());
                return;
            }
            // A header field by name, or by position: serde's derive also reads a
            // struct from an array of its fields, so `["EdDSA","at+jwt",kid]`
            // passes as a header too. Lossy: members the header ignores are
            // skipped without checking that they are UTF-8.
            let h: Option<serde_json::Value> =
                serde_json::from_str(&String::from_utf8_lossy(header)).ok();
            let field = |name: &str, i: usize| {
                let h = h.as_ref()?;
                h.get(name).or_else(|| h.get(i))?.as_str()
            };
            let kid_is_ours = field("kid", 2) == Some(f.key.kid());
            match result {
                Ok(got) => {
                    assert_eq!(field("alg", 0), Some("EdDSA"));
                    assert_eq!(field("typ", 1), Some("at+jwt"));
                    assert!(kid_is_ours);
                    let c: Claims = serde_json::from_slice(claims).expect("accepted claims");
                    assert_eq!(got, c, "claims other than the signed ones");
                    let full = f.key.verify(&token, ISS, AUD, NOW);
                    assert_eq!(full, c.check(ISS, AUD, NOW).map(|()| c.clone()));
                }
                Err(TokenError::BadSignature) => {
                    assert!(
                        !kid_is_ours,
                        "a token the key signed failed its signature check"
                    )
                }
                Err(_) => {}
            }
        }
    }
});
