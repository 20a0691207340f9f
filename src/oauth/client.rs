//! OAuth clients: dynamic registration (RFC 7591) and client authentication
//! at the token and revocation endpoints.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::error::OAuthError;
use super::redirect::{self, RedirectKind};
use super::seal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    None,
    ClientSecretPost,
    ClientSecretBasic,
    /// Only for clients described by a metadata document (RFC 7523 client assertions).
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// A registered client as stored. The secret is kept only as a hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub secret_hash: Option<String>,
    pub auth_method: AuthMethod,
    pub redirect_uris: Vec<String>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub grant_types: Vec<String>,
    pub application_type: String,
    pub scope: Option<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub issued_at: u64,
    /// The keys of a `private_key_jwt` client (from its metadata document).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// The registration request fields the proxy reads; others are ignored (RFC 7591 §2).
#[derive(Debug, Default, Deserialize)]
pub struct RegistrationRequest {
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub scope: Option<String>,
    pub application_type: Option<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
}

const MAX_REDIRECT_URIS: usize = 20;
const MAX_FIELD: usize = 2048;

fn optional_text(v: Option<String>, field: &str) -> Result<Option<String>, OAuthError> {
    match v {
        Some(s) if s.len() > MAX_FIELD => Err(OAuthError::invalid_client_metadata(format!(
            "{field} is too long"
        ))),
        Some(s) if s.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Validates a registration. Returns the record and, for confidential clients, the secret to hand out once.
pub fn register(
    req: RegistrationRequest,
    now: u64,
) -> Result<(ClientRecord, Option<String>), OAuthError> {
    let redirect_uris = req.redirect_uris.unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(OAuthError::invalid_redirect_uri(
            "redirect_uris must list at least one URI",
        ));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::invalid_redirect_uri("too many redirect_uris"));
    }
    // Only an explicit "web" restricts the redirect kinds: most MCP clients send no
    // application_type, and they use all three kinds.
    let explicit_web = match req.application_type.as_deref() {
        None | Some("native") => false,
        Some("web") => true,
        Some(_) => {
            return Err(OAuthError::invalid_client_metadata(
                "application_type must be \"web\" or \"native\"",
            ));
        }
    };
    let mut native_kinds = false;
    for uri in &redirect_uris {
        if uri.len() > MAX_FIELD {
            return Err(OAuthError::invalid_redirect_uri("redirect URI is too long"));
        }
        let kind = redirect::classify(uri)?;
        native_kinds |= kind != RedirectKind::Https;
        // A web client returns to a web page; private-use schemes belong to native apps.
        if explicit_web && kind == RedirectKind::PrivateUse {
            return Err(OAuthError::invalid_redirect_uri(format!(
                "{uri:?}: a web client cannot use a private-use scheme"
            )));
        }
    }
    let auth_method = match req.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => AuthMethod::ClientSecretBasic,
        Some("client_secret_post") => AuthMethod::ClientSecretPost,
        Some("none") => AuthMethod::None,
        Some(other) => {
            return Err(OAuthError::invalid_client_metadata(format!(
                "token_endpoint_auth_method {other:?} is not supported (none, client_secret_post, client_secret_basic)"
            )));
        }
    };
    let grant_types = req.grant_types.unwrap_or_else(|| {
        vec![
            "authorization_code".to_string(),
            "refresh_token".to_string(),
        ]
    });
    if let Some(g) = grant_types.iter().find(|g| {
        !matches!(
            g.as_str(),
            "authorization_code" | "refresh_token" | super::metadata::JWT_BEARER
        )
    }) {
        return Err(OAuthError::invalid_client_metadata(format!(
            "grant type {g:?} is not supported"
        )));
    }
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(OAuthError::invalid_client_metadata(
            "grant_types must include authorization_code",
        ));
    }
    if let Some(rt) = &req.response_types
        && rt.iter().any(|r| r != "code")
    {
        return Err(OAuthError::invalid_client_metadata(
            "only the \"code\" response type is supported",
        ));
    }
    let secret = (auth_method != AuthMethod::None).then(|| seal::random_token(32));
    let record = ClientRecord {
        client_id: seal::random_token(16),
        secret_hash: secret.as_deref().map(seal::hash),
        auth_method,
        redirect_uris,
        client_name: optional_text(req.client_name, "client_name")?,
        client_uri: optional_text(req.client_uri, "client_uri")?,
        logo_uri: optional_text(req.logo_uri, "logo_uri")?,
        grant_types,
        // Unsaid, it follows from the redirect URIs: loopback or private-use ones belong to native apps.
        application_type: req
            .application_type
            .unwrap_or_else(|| if native_kinds { "native" } else { "web" }.to_string()),
        scope: optional_text(req.scope, "scope")?,
        software_id: optional_text(req.software_id, "software_id")?,
        software_version: optional_text(req.software_version, "software_version")?,
        issued_at: now,
        jwks: None,
        jwks_uri: None,
    };
    Ok((record, secret))
}

/// The registration response (RFC 7591 §3.2.1).
pub fn registration_response(c: &ClientRecord, secret: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "client_id": c.client_id,
        "client_id_issued_at": c.issued_at,
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": c.auth_method.as_str(),
        "grant_types": c.grant_types,
        "response_types": ["code"],
        "application_type": c.application_type,
    });
    let fields = [
        ("client_name", &c.client_name),
        ("client_uri", &c.client_uri),
        ("logo_uri", &c.logo_uri),
        ("scope", &c.scope),
        ("software_id", &c.software_id),
        ("software_version", &c.software_version),
    ];
    for (k, val) in fields {
        if let Some(val) = val {
            v[k] = serde_json::Value::String(val.clone());
        }
    }
    if let Some(s) = secret {
        v["client_secret"] = serde_json::Value::String(s.to_string());
        v["client_secret_expires_at"] = serde_json::Value::from(0);
    }
    v
}

/// Credentials a request presented at the token or revocation endpoint.
#[derive(Default)]
pub struct Presented<'a> {
    pub client_id: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub via_basic: bool,
}

/// Checks that the presented credentials authenticate `client` (RFC 6749 §2.3).
pub fn authenticate(client: &ClientRecord, presented: &Presented) -> Result<(), OAuthError> {
    let fail = || OAuthError::invalid_client("client authentication failed");
    match (&client.secret_hash, presented.secret) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(fail()),
        (Some(_), None) => Err(fail()),
        (Some(hash), Some(secret)) => {
            if bool::from(seal::hash(secret).as_bytes().ct_eq(hash.as_bytes())) {
                Ok(())
            } else {
                Err(fail())
            }
        }
    }
}

/// The registered redirect URI that `presented` matches, or the only one when none is presented.
pub fn resolve_redirect<'a>(
    client: &'a ClientRecord,
    presented: Option<&'a str>,
) -> Option<&'a str> {
    match presented {
        Some(p) => client
            .redirect_uris
            .iter()
            .any(|r| redirect::matches(r, p))
            .then_some(p),
        None if client.redirect_uris.len() == 1 => client.redirect_uris.first().map(String::as_str),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::ErrorCode;

    fn req(uris: &[&str], method: Option<&str>) -> RegistrationRequest {
        RegistrationRequest {
            redirect_uris: Some(uris.iter().map(|s| s.to_string()).collect()),
            token_endpoint_auth_method: method.map(str::to_string),
            client_name: Some("Test".into()),
            ..Default::default()
        }
    }

    #[test]
    fn public_and_confidential_clients() {
        let (c, secret) = register(req(&["http://127.0.0.1:5000/cb"], Some("none")), 1).unwrap();
        assert!(secret.is_none() && c.secret_hash.is_none());
        assert!(
            authenticate(
                &c,
                &Presented {
                    client_id: Some(&c.client_id),
                    ..Default::default()
                }
            )
            .is_ok()
        );

        let (c, secret) = register(
            req(
                &["https://claude.ai/api/mcp/auth_callback"],
                Some("client_secret_post"),
            ),
            1,
        )
        .unwrap();
        let secret = secret.unwrap();
        assert_ne!(
            c.secret_hash.as_deref(),
            Some(secret.as_str()),
            "only the hash is kept"
        );
        assert!(
            authenticate(
                &c,
                &Presented {
                    secret: Some(&secret),
                    ..Default::default()
                }
            )
            .is_ok()
        );
        assert_eq!(
            authenticate(
                &c,
                &Presented {
                    secret: Some("wrong"),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .code,
            ErrorCode::InvalidClient
        );
        assert_eq!(
            authenticate(&c, &Presented::default()).unwrap_err().code,
            ErrorCode::InvalidClient
        );
        let resp = registration_response(&c, Some(&secret));
        assert_eq!(resp["client_secret"], secret.as_str());
        assert_eq!(resp["token_endpoint_auth_method"], "client_secret_post");
    }

    #[test]
    fn default_auth_method_is_client_secret_basic() {
        let (c, secret) = register(req(&["https://a.example/cb"], None), 1).unwrap();
        assert_eq!(c.auth_method, AuthMethod::ClientSecretBasic);
        assert!(secret.is_some());
    }

    #[test]
    fn bad_metadata_is_refused() {
        assert_eq!(
            register(req(&["http://evil.example/cb"], Some("none")), 1)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRedirectUri
        );
        assert_eq!(
            register(req(&[], Some("none")), 1).unwrap_err().code,
            ErrorCode::InvalidRedirectUri
        );
        assert_eq!(
            register(req(&["https://a/cb"], Some("private_key_jwt")), 1)
                .unwrap_err()
                .code,
            ErrorCode::InvalidClientMetadata
        );
        let mut r = req(&["https://a/cb"], Some("none"));
        r.grant_types = Some(vec!["client_credentials".into()]);
        assert_eq!(
            register(r, 1).unwrap_err().code,
            ErrorCode::InvalidClientMetadata
        );
        let mut r = req(&["https://a/cb"], Some("none"));
        r.application_type = Some("desktop".into());
        assert_eq!(
            register(r, 1).unwrap_err().code,
            ErrorCode::InvalidClientMetadata
        );
    }

    #[test]
    fn application_type_decides_private_use_schemes() {
        let mut native = req(
            &["cursor://anysphere.cursor-retrieval/oauth/callback"],
            Some("none"),
        );
        native.application_type = Some("native".into());
        assert!(register(native, 1).is_ok());
        let mut web = req(
            &["cursor://anysphere.cursor-retrieval/oauth/callback"],
            Some("none"),
        );
        web.application_type = Some("web".into());
        assert_eq!(
            register(web, 1).unwrap_err().code,
            ErrorCode::InvalidRedirectUri
        );
        // Clients that do not say (most MCP clients today) may use any of the three kinds.
        assert!(
            register(
                req(
                    &["vscode://vscode.github-authentication/did-authenticate"],
                    Some("none")
                ),
                1
            )
            .is_ok()
        );
    }

    #[test]
    fn redirect_resolution() {
        let (c, _) = register(req(&["http://127.0.0.1/cb"], Some("none")), 1).unwrap();
        assert_eq!(
            resolve_redirect(&c, Some("http://127.0.0.1:4242/cb")),
            Some("http://127.0.0.1:4242/cb")
        );
        assert_eq!(resolve_redirect(&c, None), Some("http://127.0.0.1/cb"));
        assert_eq!(resolve_redirect(&c, Some("https://evil.example/cb")), None);
    }
}
