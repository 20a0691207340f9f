//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document,
//! MCP 2025-11-25): a `client_id` that is an https URL names a JSON document
//! describing the client. These are the rules for the URL and the document;
//! fetching lives in `fetch`.

use serde::Deserialize;

use super::CimdError;
use crate::oauth::client::{AuthMethod, ClientRecord};
use crate::oauth::error::OAuthError;
use crate::oauth::redirect;

/// Whether a `client_id` is a metadata document URL (rather than a registered id).
/// `allow_http` admits `http://` too (test setups with `cimd.allow_private_networks`).
pub fn is_document_url(client_id: &str, allow_http: bool) -> bool {
    client_id.starts_with("https://") || (allow_http && client_id.starts_with("http://"))
}

/// The URL must be https with a path, and carry no fragment, credentials or dot segments.
pub fn check_url(client_id: &str, allow_http: bool) -> Result<url::Url, CimdError> {
    let url = url::Url::parse(client_id).map_err(|_| CimdError::NotAUrl)?;
    let scheme_ok = url.scheme() == "https" || (allow_http && url.scheme() == "http");
    if !scheme_ok {
        return Err(CimdError::NotHttps);
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(CimdError::NoPath);
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(CimdError::FragmentOrCredentials);
    }
    if url.as_str() != client_id || client_id.contains("/./") || client_id.contains("/../") {
        return Err(CimdError::NotNormalForm);
    }
    Ok(url)
}

#[derive(Deserialize)]
struct Document {
    client_id: Option<String>,
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    scope: Option<String>,
    software_id: Option<String>,
    software_version: Option<String>,
}

/// Turns a fetched document into the client it describes.
pub fn parse_document(client_id: &str, body: &[u8], now: u64) -> Result<ClientRecord, CimdError> {
    let doc: Document =
        serde_json::from_slice(body).map_err(|e| CimdError::NotJson(e.to_string()))?;
    if doc.client_id.as_deref() != Some(client_id) {
        return Err(CimdError::OtherClientId);
    }
    let redirect_uris = doc
        .redirect_uris
        .filter(|r| !r.is_empty())
        .ok_or(CimdError::NoRedirectUris)?;
    for uri in &redirect_uris {
        redirect::classify(uri).map_err(CimdError::RedirectUri)?;
    }
    let auth_method = match doc.token_endpoint_auth_method.as_deref() {
        None | Some("none") => AuthMethod::None,
        Some("private_key_jwt") => {
            if doc.jwks.is_none() && doc.jwks_uri.is_none() {
                return Err(CimdError::NoKeys);
            }
            AuthMethod::PrivateKeyJwt
        }
        Some(other) => return Err(CimdError::AuthMethod(other.to_string())),
    };
    if let Some(uri) = &doc.jwks_uri
        && !uri.starts_with("https://")
        && !uri.starts_with("http://")
    {
        return Err(CimdError::JwksUriNotAUrl);
    }
    let grant_types = doc
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    Ok(ClientRecord {
        client_id: client_id.to_string(),
        secret_hash: None,
        auth_method,
        redirect_uris,
        client_name: doc.client_name,
        client_uri: doc.client_uri,
        logo_uri: doc.logo_uri,
        grant_types,
        application_type: "web".into(),
        scope: doc.scope,
        software_id: doc.software_id,
        software_version: doc.software_version,
        issued_at: now,
        jwks: doc.jwks,
        jwks_uri: doc.jwks_uri,
    })
}

/// How long a fetched document may be used: `Cache-Control: max-age`, within bounds.
pub fn cache_seconds(cache_control: Option<&str>) -> u64 {
    const DEFAULT: u64 = 300;
    const MIN: u64 = 30;
    const MAX: u64 = 24 * 3600;
    let Some(cc) = cache_control else {
        return DEFAULT;
    };
    let mut max_age = None;
    for directive in cc.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN;
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<u64>().ok();
        }
    }
    max_age.unwrap_or(DEFAULT).clamp(MIN, MAX)
}

/// The error shown when a document cannot be used: the broken rule, but not
/// what the network did (whether an address answered, refused or timed out
/// would map internal networks for whoever asks); that goes to the log only.
pub fn unusable(reason: &CimdError) -> OAuthError {
    OAuthError::invalid_client(format!(
        "the client's metadata document cannot be used: {}",
        shown(reason)
    ))
}

/// What may be shown of a reason: a fetch failure only as such.
pub fn shown(reason: &CimdError) -> std::borrow::Cow<'_, str> {
    match reason {
        CimdError::Fetch(_) => "it could not be fetched".into(),
        other => other.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "https://app.example.com/oauth/client.json";

    #[test]
    fn document_urls() {
        assert!(check_url(ID, false).is_ok());
        for bad in [
            "http://app.example.com/c.json",
            "https://app.example.com",
            "https://app.example.com/",
            "https://u:p@app.example.com/c",
            "https://app.example.com/c#f",
            "https://app.example.com/a/../c",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert_eq!(
            check_url("https://app.example.com/", false),
            Err(CimdError::NoPath)
        );
        assert_eq!(
            check_url("http://app.example.com/c.json", false)
                .unwrap_err()
                .to_string(),
            "the client_id URL must use https"
        );
        assert!(check_url("http://127.0.0.1:5000/c.json", true).is_ok());
        assert!(is_document_url(ID, false) && !is_document_url("abc123", false));
    }

    #[test]
    fn documents_must_name_themselves_and_list_redirects() {
        let good = format!(
            r#"{{"client_id":"{ID}","client_name":"App","redirect_uris":["https://app.example.com/cb"]}}"#
        );
        let c = parse_document(ID, good.as_bytes(), 1).unwrap();
        assert_eq!(c.client_name.as_deref(), Some("App"));
        assert_eq!(c.auth_method, AuthMethod::None);

        let other = r#"{"client_id":"https://evil.example/c.json","redirect_uris":["https://app.example.com/cb"]}"#;
        assert_eq!(
            parse_document(ID, other.as_bytes(), 1).unwrap_err(),
            CimdError::OtherClientId
        );
        let no_redirects = format!(r#"{{"client_id":"{ID}"}}"#);
        assert_eq!(
            parse_document(ID, no_redirects.as_bytes(), 1).unwrap_err(),
            CimdError::NoRedirectUris
        );
        let bad_redirect =
            format!(r#"{{"client_id":"{ID}","redirect_uris":["http://evil.example/cb"]}}"#);
        assert!(matches!(
            parse_document(ID, bad_redirect.as_bytes(), 1),
            Err(CimdError::RedirectUri(_))
        ));
        let secret = format!(
            r#"{{"client_id":"{ID}","redirect_uris":["https://a/cb"],"token_endpoint_auth_method":"client_secret_basic"}}"#
        );
        let e = parse_document(ID, secret.as_bytes(), 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"token_endpoint_auth_method "client_secret_basic" cannot be used with a metadata document"#
        );
        let pkjwt_no_keys = format!(
            r#"{{"client_id":"{ID}","redirect_uris":["https://a/cb"],"token_endpoint_auth_method":"private_key_jwt"}}"#
        );
        assert_eq!(
            parse_document(ID, pkjwt_no_keys.as_bytes(), 1).unwrap_err(),
            CimdError::NoKeys
        );
        assert!(matches!(
            parse_document(ID, b"<html>", 1),
            Err(CimdError::NotJson(_))
        ));
    }

    #[test]
    fn cache_lifetimes() {
        assert_eq!(cache_seconds(None), 300);
        assert_eq!(cache_seconds(Some("public, max-age=3600")), 3600);
        assert_eq!(cache_seconds(Some("max-age=5")), 30);
        assert_eq!(cache_seconds(Some("max-age=99999999")), 86400);
        assert_eq!(cache_seconds(Some("no-store")), 30);
    }

    #[test]
    fn a_fetch_failure_is_shown_only_as_such() {
        use super::super::FetchError;
        for e in [
            FetchError::Status(http::StatusCode::FORBIDDEN),
            FetchError::Unreachable("connection refused".into()),
            FetchError::PrivateAddress,
            FetchError::Timeout,
        ] {
            assert_eq!(
                unusable(&CimdError::Fetch(e)).description,
                "the client's metadata document cannot be used: it could not be fetched"
            );
        }
        assert_eq!(
            unusable(&CimdError::OtherClientId).description,
            "the client's metadata document cannot be used: the document's client_id is not the URL it was fetched from",
            "a broken rule is the document's own: shown"
        );
    }
}
