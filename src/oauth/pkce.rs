//! PKCE (RFC 7636), S256 only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use subtle::ConstantTimeEq;

use super::error::OAuthError;

/// Checks the challenge of an authorization request: method S256, 43 base64url characters.
pub fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<String, OAuthError> {
    let challenge = challenge
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("code_challenge is required (PKCE S256)"))?;
    match method {
        Some("S256") => {}
        Some("plain") => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method plain is not allowed; use S256",
            ));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method is required and must be S256",
            ));
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
    }
    let ok = challenge.len() == 43 && challenge.bytes().all(is_base64url);
    if !ok {
        return Err(OAuthError::invalid_request(
            "code_challenge must be the base64url SHA-256 of the verifier",
        ));
    }
    Ok(challenge.to_string())
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// RFC 7636 §4.1: 43–128 characters from the unreserved set.
fn is_valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// Verifies a token request's `code_verifier` against the stored challenge.
pub fn verify(verifier: Option<&str>, challenge: &str) -> Result<(), OAuthError> {
    let verifier =
        verifier.ok_or_else(|| OAuthError::invalid_request("code_verifier is required"))?;
    if !is_valid_verifier(verifier) {
        return Err(OAuthError::invalid_grant("code_verifier is malformed"));
    }
    if bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::ErrorCode;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_example_verifies() {
        assert_eq!(s256(VERIFIER), CHALLENGE);
        assert_eq!(verify(Some(VERIFIER), CHALLENGE), Ok(()));
    }

    #[test]
    fn wrong_or_missing_verifier_is_refused() {
        let other = "x".repeat(43);
        assert_eq!(
            verify(Some(&other), CHALLENGE).unwrap_err().code,
            ErrorCode::InvalidGrant
        );
        assert_eq!(
            verify(Some("short"), CHALLENGE).unwrap_err().code,
            ErrorCode::InvalidGrant
        );
        assert_eq!(
            verify(None, CHALLENGE).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn only_s256_challenges_are_accepted() {
        assert!(check_challenge(Some(CHALLENGE), Some("S256")).is_ok());
        for (c, m) in [
            (Some(CHALLENGE), Some("plain")),
            (Some(CHALLENGE), None),
            (None, Some("S256")),
            (Some(""), Some("S256")),
            (Some("tooshort"), Some("S256")),
            (Some(CHALLENGE), Some("s256")),
        ] {
            assert_eq!(
                check_challenge(c, m).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{c:?} {m:?}"
            );
        }
    }
}
