//! A sign-in at an identity provider, bound to the browser that started it:
//! `state`, `nonce` and the PKCE verifier live in an encrypted, authenticated
//! cookie that only this browser holds, for ten minutes. The callback must
//! bring the same `state` back with the cookie; each attempt counts once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::oauth::pkce;
use crate::oauth::seal::{self, Signer};

/// How long a sign-in at the provider may take.
pub const ATTEMPT_TTL: u64 = 10 * 60;
const PURPOSE: &str = "provider-attempt";

/// What the cookie holds (sealed: the browser can neither read nor change it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// Where to continue after signing in: the authorization request, or "".
    pub next: String,
    pub exp: u64,
}

impl Attempt {
    pub fn new(provider: &str, next: &str, now: u64) -> Self {
        Attempt {
            provider: provider.to_string(),
            state: seal::random_token(24),
            nonce: seal::random_token(24),
            verifier: seal::random_token(32),
            next: next.to_string(),
            exp: now + ATTEMPT_TTL,
        }
    }

    /// The PKCE challenge (S256) for the authorization request.
    pub fn challenge(&self) -> String {
        pkce::s256(&self.verifier)
    }

    /// The cookie's value: sealed under a key derived from the proxy's secret key.
    pub fn seal(&self, signer: &Signer) -> String {
        let plain = serde_json::to_vec(self).unwrap_or_default();
        let sealed = seal::seal(&key(signer), PURPOSE, &plain).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// The attempt in `cookie`, if the proxy signed it, it is for `provider`,
    /// it has not expired, and `state` is its state.
    pub fn open(
        signer: &Signer,
        cookie: Option<&str>,
        provider: &str,
        state: Option<&str>,
        now: u64,
    ) -> Option<Attempt> {
        let sealed = URL_SAFE_NO_PAD.decode(cookie?).ok()?;
        let plain = seal::open(&key(signer), PURPOSE, &sealed)?;
        let attempt: Attempt = serde_json::from_slice(&plain).ok()?;
        let state_ok = bool::from(attempt.state.as_bytes().ct_eq(state?.as_bytes()));
        (attempt.provider == provider && now < attempt.exp && state_ok).then_some(attempt)
    }
}

fn key(signer: &Signer) -> String {
    signer.mac("provider-attempt-key", b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000;

    #[test]
    fn an_attempt_comes_back_only_to_its_provider_with_its_state_in_time() {
        let signer = Signer::new(b"k");
        let a = Attempt::new("corp", "/oauth/authorize?x=1", NOW);
        let cookie = a.seal(&signer);
        let open = |cookie: Option<&str>, provider, state: Option<&str>, now| {
            Attempt::open(&signer, cookie, provider, state, now)
        };
        assert_eq!(
            open(Some(&cookie), "corp", Some(&a.state), NOW + 1),
            Some(a.clone())
        );
        assert_eq!(open(Some(&cookie), "gh", Some(&a.state), NOW), None);
        assert_eq!(open(Some(&cookie), "corp", Some("other"), NOW), None);
        assert_eq!(open(Some(&cookie), "corp", None, NOW), None);
        assert_eq!(open(None, "corp", Some(&a.state), NOW), None);
        assert_eq!(
            open(Some(&cookie), "corp", Some(&a.state), NOW + ATTEMPT_TTL),
            None
        );
        // Another proxy's (or a tampered) cookie.
        let forged = a.seal(&Signer::new(b"other"));
        assert_eq!(open(Some(&forged), "corp", Some(&a.state), NOW), None);
        let mut flipped = cookie.clone().into_bytes();
        flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(open(Some(&flipped), "corp", Some(&a.state), NOW), None);
        // The browser cannot read the state, nonce or verifier.
        assert!(!cookie.contains(&a.verifier) && !cookie.contains("corp"));
    }

    #[test]
    fn each_attempt_has_fresh_secrets_and_an_s256_challenge() {
        let a = Attempt::new("corp", "", NOW);
        let b = Attempt::new("corp", "", NOW);
        assert_ne!(a.state, b.state);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.challenge(), pkce::s256(&a.verifier));
        assert_eq!(a.challenge().len(), 43);
    }
}
