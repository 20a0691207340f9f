//! The proxy's own URL paths, in one place: the router serves them and the
//! config refuses routes that would shadow them.

pub const HEALTHZ: &str = "/healthz";
pub const WELL_KNOWN: &str = "/.well-known/";
pub const PRM: &str = "/.well-known/oauth-protected-resource";
pub const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
pub const OAUTH_PREFIX: &str = "/oauth/";
pub const REGISTER: &str = "/oauth/register";
pub const AUTHORIZE: &str = "/oauth/authorize";
pub const TOKEN: &str = "/oauth/token";
pub const REVOKE: &str = "/oauth/revoke";
pub const JWKS: &str = "/oauth/jwks";
pub const LOGIN: &str = "/oauth/login";
pub const CONSENT: &str = "/oauth/consent";
/// `/oauth/login/<provider>`: starts a sign-in at an identity provider.
pub const PROVIDER_LOGIN_PREFIX: &str = "/oauth/login/";
/// `/oauth/callback/<provider>`: where the provider sends the browser back.
pub const CALLBACK_PREFIX: &str = "/oauth/callback/";
/// `/oauth/connect/<route>`: a signed-in user connects their account at an
/// upstream protected by OAuth; the upstream's server answers at `…/callback`.
pub const CONNECT_PREFIX: &str = "/oauth/connect/";
pub const CONNECT_CALLBACK_SUFFIX: &str = "/callback";
/// 2025-03-26 clients without metadata fall back to these at the origin.
pub const FALLBACKS: [&str; 3] = ["/authorize", "/token", "/register"];

/// Whether a route path would collide with a path the proxy serves itself.
pub fn is_reserved(path: &str) -> bool {
    let under = |prefix: &str| path == prefix.trim_end_matches('/') || path.starts_with(prefix);
    path == HEALTHZ || FALLBACKS.contains(&path) || under(WELL_KNOWN) || under(OAUTH_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths() {
        for p in ["/healthz", "/oauth", "/oauth/x", "/.well-known/a", "/token"] {
            assert!(is_reserved(p), "{p}");
        }
        for p in ["/mcp", "/notes/mcp", "/oauthx", "/tokens"] {
            assert!(!is_reserved(p), "{p}");
        }
    }
}
