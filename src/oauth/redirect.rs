//! Redirect URIs: which ones a client may register, and when a presented one
//! matches a registered one (exact string, except the loopback port, RFC 8252 §7.3).

use url::{Host, Url};

use super::error::OAuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    Https,
    /// `http://127.0.0.1`, `http://[::1]` or `http://localhost`, any port.
    Loopback,
    /// A private-use scheme such as `cursor://` or `com.example.app:` (RFC 8252 §7.1).
    PrivateUse,
}

const FORBIDDEN_SCHEMES: [&str; 7] = [
    "javascript",
    "data",
    "file",
    "vbscript",
    "about",
    "blob",
    "ftp",
];

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// What kind of redirect URI this is, or why it cannot be registered.
pub fn classify(uri: &str) -> Result<RedirectKind, OAuthError> {
    let bad = |why: &str| OAuthError::invalid_redirect_uri(format!("redirect URI {uri:?} {why}"));
    let url = Url::parse(uri).map_err(|_| bad("is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(RedirectKind::Https),
        "http" if is_loopback_host(&url) => Ok(RedirectKind::Loopback),
        "http" => Err(bad("uses plain http on a non-loopback host; use https")),
        "https" => Err(bad("has no host")),
        s if FORBIDDEN_SCHEMES.contains(&s) => Err(bad("uses a forbidden scheme")),
        _ => Ok(RedirectKind::PrivateUse),
    }
}

/// Whether `presented` matches `registered`: the same string, or two loopback
/// http URIs that differ only in the port.
pub fn matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    r.scheme() == "http"
        && p.scheme() == "http"
        && is_loopback_host(&r)
        && r.host() == p.host()
        && r.path() == p.path()
        && r.query() == p.query()
        && r.fragment().is_none()
        && p.fragment().is_none()
        && r.username() == p.username()
        && r.password().is_none()
        && p.password().is_none()
}

/// The host a person should see on the consent page for a redirect URI.
pub fn display_host(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(u) => match u.host_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => format!("{}:", u.scheme()),
        },
        Err(_) => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_kinds() {
        assert_eq!(
            classify("https://claude.ai/api/mcp/auth_callback"),
            Ok(RedirectKind::Https)
        );
        assert_eq!(
            classify("http://127.0.0.1:33418/callback"),
            Ok(RedirectKind::Loopback)
        );
        assert_eq!(classify("http://[::1]/cb"), Ok(RedirectKind::Loopback));
        assert_eq!(
            classify("http://localhost:6274/oauth/callback"),
            Ok(RedirectKind::Loopback)
        );
        assert_eq!(
            classify("cursor://anysphere.cursor-retrieval/oauth/callback"),
            Ok(RedirectKind::PrivateUse)
        );
        assert_eq!(
            classify("vscode://vscode.github-authentication/did-authenticate"),
            Ok(RedirectKind::PrivateUse)
        );
        assert_eq!(
            classify("com.example.app:/oauth2redirect"),
            Ok(RedirectKind::PrivateUse)
        );
    }

    #[test]
    fn refused_kinds() {
        for uri in [
            "http://example.com/cb",
            "http://127.0.0.1.evil.com/cb",
            "https://example.com/cb#frag",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "/relative/cb",
            "",
        ] {
            assert!(classify(uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn exact_match_except_loopback_port() {
        assert!(matches("https://a.example/cb", "https://a.example/cb"));
        assert!(!matches("https://a.example/cb", "https://a.example/cb/"));
        assert!(!matches(
            "https://a.example/cb",
            "https://a.example:8443/cb"
        ));
        assert!(!matches("https://a.example/cb", "https://A.example/cb"));
        assert!(matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:51234/callback"
        ));
        assert!(matches(
            "http://127.0.0.1:1000/callback",
            "http://127.0.0.1:2000/callback"
        ));
        assert!(matches("http://[::1]:1/cb", "http://[::1]:2/cb"));
        assert!(matches("http://localhost:1/cb", "http://localhost:2/cb"));
        assert!(!matches(
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1:2/other"
        ));
        assert!(!matches("http://127.0.0.1:1/cb", "http://localhost:1/cb"));
        assert!(!matches(
            "http://127.0.0.1:1/cb?a=1",
            "http://127.0.0.1:2/cb?a=2"
        ));
        assert!(!matches("cursor://x/cb", "cursor://x/cb2"));
    }

    #[test]
    fn consent_shows_the_host() {
        assert_eq!(display_host("https://claude.ai/cb"), "claude.ai");
        assert_eq!(display_host("http://127.0.0.1:5000/cb"), "127.0.0.1");
        assert_eq!(
            display_host("cursor://anysphere.cursor-retrieval/cb"),
            "anysphere.cursor-retrieval"
        );
        assert_eq!(display_host("com.example.app:/cb"), "com.example.app:");
    }
}
