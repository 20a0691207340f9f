//! Finding an upstream's authorization server: RFC 9728 protected-resource
//! metadata (from the upstream's 401 `resource_metadata`, or at its
//! well-known URL), then RFC 8414 metadata (or OpenID discovery) of the
//! server it names. The parsing is pure; `fetch` does the round trips.

use serde_json::Value;
use url::Url;

use super::UpstreamOAuthError;
use crate::federation::client::ProviderHttp;

/// What the proxy needs of an authorization server's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    /// Whether the token endpoint takes `client_secret_basic` (else the secret goes in the form).
    pub basic_auth: bool,
}

/// The `resource_metadata` parameter of a `WWW-Authenticate: Bearer` challenge.
pub fn resource_metadata_in(challenge: &str) -> Option<String> {
    let at = challenge.find("resource_metadata=")?;
    let rest = &challenge[at + "resource_metadata=".len()..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => rest.split([',', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_string())
}

/// RFC 9728 §3.1: `<origin>/.well-known/oauth-protected-resource<path>`, then the root form.
pub fn protected_resource_urls(upstream: &Url) -> Vec<String> {
    let origin = upstream.origin().ascii_serialization();
    let path = upstream.path().trim_end_matches('/');
    let mut urls = vec![format!(
        "{origin}/.well-known/oauth-protected-resource{path}"
    )];
    if !path.is_empty() {
        urls.push(format!("{origin}/.well-known/oauth-protected-resource"));
    }
    urls
}

/// The first authorization server a protected-resource document names.
pub fn authorization_server_in(prm: &Value) -> Option<String> {
    prm.get("authorization_servers")?
        .as_array()?
        .iter()
        .find_map(Value::as_str)
        .map(|s| s.trim_end_matches('/').to_string())
}

/// RFC 8414 §3.1 (the well-known part before the issuer's path), then the
/// OpenID forms (after it, and before it).
pub fn metadata_urls(issuer: &str) -> Option<Vec<String>> {
    let url = Url::parse(issuer).ok()?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Some(vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/openid-configuration{path}"),
    ])
}

/// An authorization server's metadata, if it is for `issuer` (exact string,
/// trailing slash aside) and has what the code flow with PKCE S256 needs.
pub fn parse_metadata(issuer: &str, doc: &Value) -> Result<ServerMetadata, UpstreamOAuthError> {
    let bad = |why: String| UpstreamOAuthError::Discovery(format!("{issuer}: {why}"));
    let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let stated = text("issuer").ok_or_else(|| bad("metadata without `issuer`".into()))?;
    if stated.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(bad(format!("metadata for another issuer ({stated})")));
    }
    let endpoint = |k: &str| -> Result<String, UpstreamOAuthError> {
        let v = text(k).ok_or_else(|| bad(format!("metadata without `{k}`")))?;
        usable_url(&v)
            .then_some(v)
            .ok_or_else(|| bad(format!("`{k}` is not an https URL (http only to loopback)")))
    };
    let list = |k: &str| -> Option<Vec<&str>> {
        doc.get(k)?
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
    };
    if let Some(methods) = list("code_challenge_methods_supported")
        && !methods.contains(&"S256")
    {
        return Err(bad("PKCE S256 is not supported".into()));
    }
    let registration_endpoint = match text("registration_endpoint") {
        Some(_) => Some(endpoint("registration_endpoint")?),
        None => None,
    };
    Ok(ServerMetadata {
        issuer: stated,
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        registration_endpoint,
        basic_auth: list("token_endpoint_auth_methods_supported")
            .is_none_or(|m| m.contains(&"client_secret_basic")),
    })
}

/// https, or http to a loopback host.
fn usable_url(s: &str) -> bool {
    match Url::parse(s) {
        Ok(u) if u.scheme() == "https" => u.host().is_some(),
        Ok(u) if u.scheme() == "http" => match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// The upstream's authorization server: the configured one, or the one its
/// protected-resource metadata names (at the well-known URLs, then where its
/// 401 says).
pub async fn issuer_of(
    http: &ProviderHttp,
    upstream: &Url,
    configured: Option<&str>,
) -> Result<String, UpstreamOAuthError> {
    if let Some(issuer) = configured {
        return Ok(issuer.to_string());
    }
    for url in protected_resource_urls(upstream) {
        if let Some(issuer) = prm_at(http, &url).await? {
            return Ok(issuer);
        }
    }
    let challenge = http
        .challenge(upstream.as_str())
        .await
        .map_err(|e| UpstreamOAuthError::Unavailable(e.to_string()))?;
    if let Some(url) = challenge.as_deref().and_then(resource_metadata_in)
        && usable_url(&url)
        && let Some(issuer) = prm_at(http, &url).await?
    {
        return Ok(issuer);
    }
    Err(UpstreamOAuthError::Discovery(format!(
        "{upstream} names no authorization server (no protected-resource metadata): set `authorization_server`"
    )))
}

async fn prm_at(http: &ProviderHttp, url: &str) -> Result<Option<String>, UpstreamOAuthError> {
    match http
        .get(
            url,
            crate::federation::client::Auth::None,
            "application/json",
        )
        .await
    {
        Ok(a) if a.status.is_success() => match authorization_server_in(&a.body) {
            Some(issuer) if !usable_url(&issuer) => Err(UpstreamOAuthError::Discovery(format!(
                "{url} names {issuer}: not an https URL (http only to loopback)"
            ))),
            found => Ok(found),
        },
        Ok(_) => Ok(None),
        Err(e) if e.is_unavailable() => Err(UpstreamOAuthError::Unavailable(e.to_string())),
        Err(_) => Ok(None),
    }
}

/// The server's metadata, from the first well-known URL that has it.
pub async fn metadata(
    http: &ProviderHttp,
    issuer: &str,
) -> Result<ServerMetadata, UpstreamOAuthError> {
    let urls = metadata_urls(issuer)
        .ok_or_else(|| UpstreamOAuthError::Discovery(format!("{issuer} is not a URL")))?;
    let mut last = None;
    for url in urls {
        match http
            .get(
                &url,
                crate::federation::client::Auth::None,
                "application/json",
            )
            .await
        {
            Ok(a) if a.status.is_success() => return parse_metadata(issuer, &a.body),
            Ok(a) => last = Some(format!("{url} answered {}", a.status)),
            Err(e) if e.is_unavailable() => {
                return Err(UpstreamOAuthError::Unavailable(e.to_string()));
            }
            Err(e) => last = Some(format!("{url}: {e}")),
        }
    }
    Err(UpstreamOAuthError::Discovery(format!(
        "no authorization server metadata for {issuer} ({})",
        last.unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_metadata_url_is_read_from_a_challenge_quoted_or_not() {
        let h = r#"Bearer error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(
            resource_metadata_in(h).as_deref(),
            Some("https://mcp.example/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            resource_metadata_in("Bearer resource_metadata=https://a.example/x, scope=\"s\"")
                .as_deref(),
            Some("https://a.example/x")
        );
        assert_eq!(resource_metadata_in("Bearer realm=\"x\""), None);
        assert_eq!(resource_metadata_in("Bearer resource_metadata=\"\""), None);
        assert_eq!(
            resource_metadata_in("Bearer resource_metadata=\"open"),
            None
        );
    }

    #[test]
    fn well_known_urls_put_the_path_after_the_well_known_part() {
        let u = Url::parse("https://api.githubcopilot.com/mcp/").unwrap();
        assert_eq!(
            protected_resource_urls(&u),
            [
                "https://api.githubcopilot.com/.well-known/oauth-protected-resource/mcp",
                "https://api.githubcopilot.com/.well-known/oauth-protected-resource"
            ]
        );
        let root = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            protected_resource_urls(&root),
            ["http://127.0.0.1:9/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            metadata_urls("https://github.com/login/oauth").unwrap(),
            [
                "https://github.com/.well-known/oauth-authorization-server/login/oauth",
                "https://github.com/login/oauth/.well-known/openid-configuration",
                "https://github.com/.well-known/openid-configuration/login/oauth",
            ]
        );
        assert_eq!(
            authorization_server_in(&json!({"authorization_servers": ["https://as.example/"]})),
            Some("https://as.example".into())
        );
        assert_eq!(authorization_server_in(&json!({"resource": "x"})), None);
    }

    fn doc() -> Value {
        json!({
            "issuer": "https://as.example",
            "authorization_endpoint": "https://as.example/authorize",
            "token_endpoint": "https://as.example/token",
            "registration_endpoint": "https://as.example/register",
            "code_challenge_methods_supported": ["S256"],
        })
    }

    #[test]
    fn metadata_must_be_the_issuers_with_https_endpoints_and_s256() {
        let m = parse_metadata("https://as.example/", &doc()).unwrap();
        assert_eq!(m.token_endpoint, "https://as.example/token");
        assert_eq!(
            m.registration_endpoint.as_deref(),
            Some("https://as.example/register")
        );
        assert!(m.basic_auth);

        let refused = |change: &dyn Fn(&mut Value)| {
            let mut d = doc();
            change(&mut d);
            parse_metadata("https://as.example", &d).unwrap_err()
        };
        assert!(matches!(
            refused(&|d| d["issuer"] = json!("https://evil.example")),
            UpstreamOAuthError::Discovery(_)
        ));
        refused(&|d| d["token_endpoint"] = json!("http://as.example/token"));
        refused(&|d| d["code_challenge_methods_supported"] = json!(["plain"]));
        refused(&|d| {
            d.as_object_mut().unwrap().remove("authorization_endpoint");
        });
        refused(&|d| d["registration_endpoint"] = json!("ftp://x"));

        let mut local = doc();
        local["token_endpoint"] = json!("http://127.0.0.1:4000/token");
        local["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
        let m = parse_metadata("https://as.example", &local).unwrap();
        assert!(!m.basic_auth);
    }
}
