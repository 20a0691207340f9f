//! Random identifiers, hashes of secrets, and sealing data with a key derived
//! from a secret (ChaCha20-Poly1305 under HKDF-SHA256).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// `n` random bytes, base64url: ids, codes, secrets.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if SystemRandom::new().fill(&mut buf).is_err() {
        // Without randomness every code, token and key would be guessable: stop.
        eprintln!("mcp-oauth-proxy: the operating system's random number generator failed");
        std::process::abort();
    }
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of a high-entropy secret, base64url: how codes, refresh tokens and client secrets are stored.
pub fn hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.as_bytes(),
    ))
}

struct Len;
impl ring::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        32
    }
}

fn derive(secret: &str, context: &str) -> Option<LessSafeKey> {
    let prk = Salt::new(HKDF_SHA256, b"mcp-oauth-proxy seal v1").extract(secret.as_bytes());
    let info = [context.as_bytes()];
    let okm = prk.expand(&info, Len).ok()?;
    let mut key = [0u8; 32];
    okm.fill(&mut key).ok()?;
    UnboundKey::new(&CHACHA20_POLY1305, &key)
        .ok()
        .map(LessSafeKey::new)
}

/// Encrypts `plain` so that only someone holding `secret` can read it.
pub fn seal(secret: &str, context: &str, plain: &[u8]) -> Option<Vec<u8>> {
    let key = derive(secret, context)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).ok()?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Some(out)
}

pub fn open(secret: &str, context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let key = derive(secret, context)?;
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = body.to_vec();
    let plain = key.open_in_place(nonce, Aad::empty(), &mut buf).ok()?;
    Some(plain.to_vec())
}

/// HMAC-SHA256 signatures for values the proxy hands out and takes back
/// (session cookies, CSRF tokens, consent tickets).
pub struct Signer(hmac::Key);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    pub fn mac(&self, purpose: &str, data: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(data);
        URL_SAFE_NO_PAD.encode(ctx.sign())
    }

    /// `base64url(data).mac`
    pub fn sign(&self, purpose: &str, data: &[u8]) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(data),
            self.mac(purpose, data)
        )
    }

    /// The data of a value made by [`Signer::sign`] for the same purpose.
    pub fn verify(&self, purpose: &str, signed: &str) -> Option<Vec<u8>> {
        let (data, mac) = signed.split_once('.')?;
        let data = URL_SAFE_NO_PAD.decode(data).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let mut msg = purpose.as_bytes().to_vec();
        msg.push(0);
        msg.extend_from_slice(&data);
        hmac::verify(&self.0, &msg, &mac).ok()?;
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_secret_and_context() {
        let sealed = seal("token-a", "fam1", b"answer").unwrap();
        assert_eq!(
            open("token-a", "fam1", &sealed).as_deref(),
            Some(&b"answer"[..])
        );
        assert_eq!(open("token-b", "fam1", &sealed), None);
        assert_eq!(open("token-a", "fam2", &sealed), None);
        assert_eq!(open("token-a", "fam1", &sealed[..5]), None);
    }

    #[test]
    fn signatures_bind_purpose_and_data() {
        let s = Signer::new(b"k");
        let v = s.sign("session", b"alice");
        assert_eq!(s.verify("session", &v).as_deref(), Some(&b"alice"[..]));
        assert_eq!(s.verify("csrf", &v), None);
        assert_eq!(Signer::new(b"other").verify("session", &v), None);
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(b"mallory"),
            v.split_once('.').unwrap().1
        );
        assert_eq!(s.verify("session", &forged), None);
        assert_eq!(s.verify("session", "junk"), None);
    }

    #[test]
    fn random_tokens_differ_and_hashes_are_stable() {
        assert_ne!(random_token(32), random_token(32));
        assert_eq!(random_token(32).len(), 43);
        assert_eq!(hash("x"), hash("x"));
        assert_ne!(hash("x"), hash("y"));
    }
}
