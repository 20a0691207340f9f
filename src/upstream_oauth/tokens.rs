//! A user's tokens at an upstream's authorization server: read from a token
//! response, kept sealed, and whether they are still good to send (pure).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::UpstreamOAuthError;

/// Refresh this long before the access token expires, so that a request
/// never goes out with a token about to lapse on its way.
pub const REFRESH_AHEAD: u64 = 60;

/// A user's upstream tokens. Never printed: `Debug` shows only the expiry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds; `None`: the server said nothing of it.
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What to do with the tokens at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Send the access token.
    Fresh,
    /// Refresh first (the access token expires within [`REFRESH_AHEAD`], or has).
    Refresh,
    /// Expired (or about to) and nothing to refresh with: the user connects again.
    Expired,
}

impl UpstreamTokens {
    /// A successful token response (RFC 6749 §5.1). A refresh answer without a
    /// new refresh token keeps `previous_refresh` (the server did not rotate).
    pub fn from_response(
        body: &Value,
        now: u64,
        previous_refresh: Option<&str>,
    ) -> Result<Self, UpstreamOAuthError> {
        let bad = |why: &str| UpstreamOAuthError::Refused(format!("token response: {why}"));
        let access_token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("no access_token"))?;
        if http::HeaderValue::from_str(&format!("Bearer {access_token}")).is_err() {
            return Err(bad("the access token cannot go in a header"));
        }
        match body.get("token_type").and_then(Value::as_str) {
            Some(t) if !t.eq_ignore_ascii_case("bearer") => {
                return Err(bad("token_type is not Bearer"));
            }
            _ => {}
        }
        let expires_in = body.get("expires_in").and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        });
        let refresh_token = body
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .or(previous_refresh)
            .map(str::to_string);
        Ok(UpstreamTokens {
            access_token: access_token.to_string(),
            refresh_token,
            expires_at: expires_in.map(|s| now.saturating_add(s)),
        })
    }

    pub fn freshness(&self, now: u64) -> Freshness {
        match self.expires_at {
            Some(exp) if now.saturating_add(REFRESH_AHEAD) >= exp => {
                if self.refresh_token.is_some() {
                    Freshness::Refresh
                } else if now < exp {
                    // Nothing to refresh with: use it while it lasts.
                    Freshness::Fresh
                } else {
                    Freshness::Expired
                }
            }
            _ => Freshness::Fresh,
        }
    }

    /// Until when the store keeps them: as long as a refresh token may work
    /// (the server says nothing of that: until replaced or deleted), else until
    /// the access token expires.
    pub fn keep_until(&self) -> u64 {
        match (&self.refresh_token, self.expires_at) {
            (None, Some(exp)) => exp,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_token_response_gives_tokens_with_their_expiry() {
        let t = UpstreamTokens::from_response(
            &json!({"access_token": "at", "token_type": "bearer", "expires_in": 3600, "refresh_token": "rt"}),
            100,
            None,
        )
        .unwrap();
        assert_eq!(t.expires_at, Some(3700));
        assert_eq!(t.refresh_token.as_deref(), Some("rt"));
        // Not rotated: the old refresh token stays; `expires_in` as a string (seen in the wild).
        let t = UpstreamTokens::from_response(
            &json!({"access_token": "at2", "expires_in": "60"}),
            100,
            Some("rt"),
        )
        .unwrap();
        assert_eq!(
            (t.refresh_token.as_deref(), t.expires_at),
            (Some("rt"), Some(160))
        );
        for bad in [
            json!({"token_type": "Bearer"}),
            json!({"access_token": ""}),
            json!({"access_token": "a", "token_type": "DPoP"}),
            json!({"access_token": "a\nb"}),
        ] {
            assert!(
                UpstreamTokens::from_response(&bad, 0, None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn tokens_are_refreshed_a_minute_before_expiry_or_the_user_connects_again() {
        let mut t = UpstreamTokens {
            access_token: "a".into(),
            refresh_token: Some("r".into()),
            expires_at: Some(1000),
        };
        assert_eq!(t.freshness(1000 - REFRESH_AHEAD - 1), Freshness::Fresh);
        assert_eq!(t.freshness(1000 - REFRESH_AHEAD), Freshness::Refresh);
        assert_eq!(t.freshness(5000), Freshness::Refresh);
        assert_eq!(t.keep_until(), 0);
        t.refresh_token = None;
        assert_eq!(t.freshness(999), Freshness::Fresh);
        assert_eq!(t.freshness(1000), Freshness::Expired);
        assert_eq!(t.keep_until(), 1000);
        t.expires_at = None;
        assert_eq!(t.freshness(u64::MAX), Freshness::Fresh);
    }

    #[test]
    fn debug_shows_no_token() {
        let t = UpstreamTokens {
            access_token: "secret-at".into(),
            refresh_token: Some("secret-rt".into()),
            expires_at: Some(1),
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
