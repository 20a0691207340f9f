//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document,
//! MCP 2025-11-25): a `client_id` that is an https URL names a JSON document
//! describing the client. These are the rules for the URL and the document;
//! fetching lives in `fetch`.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::CimdError;
use crate::oauth::client::{AuthMethod, ClientRecord};
use crate::oauth::error::OAuthError;
use crate::oauth::redirect;

/// The longest `client_id` or `jwks_uri` URL.
pub const MAX_URL: usize = 2048;
/// The longest text field of a document (`client_name`, `scope`, a redirect URI…),
/// as at registration.
pub const MAX_FIELD: usize = 2048;
/// The most entries of a list field (`redirect_uris`, `grant_types`).
pub const MAX_LIST: usize = 20;
/// The most keys of a key set (`jwks` or the document at `jwks_uri`).
pub const MAX_KEYS: usize = 16;
/// The largest key set kept, in bytes of its JSON as kept (the members the
/// assertion check reads): ten RSA-8192 keys fit.
pub const MAX_KEY_SET: usize = 16 * 1024;

/// Whether a `client_id` is a metadata document URL (rather than a registered id).
/// `allow_http` admits `http://` too (test setups with `cimd.allow_private_networks`).
pub fn is_document_url(client_id: &str, allow_http: bool) -> bool {
    client_id.starts_with("https://") || (allow_http && client_id.starts_with("http://"))
}

/// The URL must be https with a path, and carry no fragment, credentials or dot segments.
pub fn check_url(client_id: &str, allow_http: bool) -> Result<url::Url, CimdError> {
    if client_id.len() > MAX_URL {
        return Err(CimdError::TooLong("the client_id URL", MAX_URL));
    }
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
    /// Kept as text until it is known to be needed (`private_key_jwt`).
    jwks: Option<Box<RawValue>>,
    jwks_uri: Option<String>,
    scope: Option<String>,
    software_id: Option<String>,
    software_version: Option<String>,
}

impl Document {
    /// Every text and list within its bound.
    fn check_sizes(&self) -> Result<(), CimdError> {
        let lists = [
            ("redirect_uris", &self.redirect_uris),
            ("grant_types", &self.grant_types),
        ];
        for (name, list) in lists {
            let list = list.as_deref().unwrap_or_default();
            if list.len() > MAX_LIST {
                return Err(CimdError::TooMany(name, MAX_LIST));
            }
            if list.iter().any(|s| s.len() > MAX_FIELD) {
                return Err(CimdError::TooLong(name, MAX_FIELD));
            }
        }
        let texts = [
            ("client_name", &self.client_name, MAX_FIELD),
            ("client_uri", &self.client_uri, MAX_FIELD),
            ("logo_uri", &self.logo_uri, MAX_FIELD),
            (
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
                MAX_FIELD,
            ),
            ("jwks_uri", &self.jwks_uri, MAX_URL),
            ("scope", &self.scope, MAX_FIELD),
            ("software_id", &self.software_id, MAX_FIELD),
            ("software_version", &self.software_version, MAX_FIELD),
        ];
        match texts
            .iter()
            .find(|(_, v, max)| v.as_ref().is_some_and(|v| v.len() > *max))
        {
            Some((name, _, max)) => Err(CimdError::TooLong(name, *max)),
            None => Ok(()),
        }
    }
}

/// A key as kept: the members the assertion check reads (others, such as
/// certificate chains, are dropped).
#[derive(Deserialize, Serialize)]
struct Jwk {
    #[serde(skip_serializing_if = "Option::is_none")]
    kty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
}

/// At most [`MAX_KEYS`] keys: reading stops at the first one more.
#[derive(Serialize)]
struct Keys(Vec<Jwk>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bounded;
        impl<'de> Visitor<'de> for Bounded {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a list of at most {MAX_KEYS} keys")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = seq.next_element::<Jwk>()? {
                    if keys.len() == MAX_KEYS {
                        return Err(de::Error::custom(format!("more than {MAX_KEYS} keys")));
                    }
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_seq(Bounded)
    }
}

#[derive(Deserialize, Serialize)]
struct KeySet {
    keys: Keys,
}

/// A JSON Web Key Set (from a document's `jwks` or its `jwks_uri`) as kept: at
/// most [`MAX_KEYS`] keys, only the members the assertion check reads, at most
/// [`MAX_KEY_SET`] bytes.
pub fn parse_key_set(body: &[u8]) -> Result<serde_json::Value, CimdError> {
    let set: KeySet =
        serde_json::from_slice(body).map_err(|e| CimdError::NotAKeySet(e.to_string()))?;
    let kept = serde_json::to_value(&set).map_err(|e| CimdError::NotAKeySet(e.to_string()))?;
    if kept.to_string().len() > MAX_KEY_SET {
        return Err(CimdError::TooLong("the key set", MAX_KEY_SET));
    }
    Ok(kept)
}

/// Turns a fetched document into the client it describes.
pub fn parse_document(client_id: &str, body: &[u8], now: u64) -> Result<ClientRecord, CimdError> {
    let doc: Document =
        serde_json::from_slice(body).map_err(|e| CimdError::NotJson(e.to_string()))?;
    if doc.client_id.as_deref() != Some(client_id) {
        return Err(CimdError::OtherClientId);
    }
    doc.check_sizes()?;
    let redirect_uris = doc
        .redirect_uris
        .filter(|r| !r.is_empty())
        .ok_or(CimdError::NoRedirectUris)?;
    for uri in &redirect_uris {
        redirect::classify(uri).map_err(CimdError::RedirectUri)?;
    }
    // Keys are kept only for the clients that sign with them.
    let (auth_method, jwks, jwks_uri) = match doc.token_endpoint_auth_method.as_deref() {
        None | Some("none") => (AuthMethod::None, None, None),
        Some("private_key_jwt") => {
            if doc.jwks.is_none() && doc.jwks_uri.is_none() {
                return Err(CimdError::NoKeys);
            }
            if let Some(uri) = &doc.jwks_uri
                && !uri.starts_with("https://")
                && !uri.starts_with("http://")
            {
                return Err(CimdError::JwksUriNotAUrl);
            }
            let jwks = match &doc.jwks {
                Some(raw) => Some(parse_key_set(raw.get().as_bytes())?),
                None => None,
            };
            (AuthMethod::PrivateKeyJwt, jwks, doc.jwks_uri)
        }
        Some(other) => return Err(CimdError::AuthMethod(other.to_string())),
    };
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
        jwks,
        jwks_uri,
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

    fn pkjwt(keys: serde_json::Value) -> String {
        serde_json::json!({"client_id": ID, "redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks": keys}).to_string()
    }

    #[test]
    fn keys_are_kept_only_for_private_key_jwt_clients_and_only_the_members_read() {
        let key = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "AAAA", "x5c": ["MIIB"], "use": "sig"});
        let none = serde_json::json!({"client_id": ID, "redirect_uris": ["https://app.example.com/cb"], "jwks": {"keys": [key.clone()], "junk": "x".repeat(40_000)}, "jwks_uri": "https://app.example.com/keys"});
        let c = parse_document(ID, none.to_string().as_bytes(), 1).unwrap();
        assert_eq!((c.jwks, c.jwks_uri), (None, None));
        let c =
            parse_document(ID, pkjwt(serde_json::json!({"keys": [key]})).as_bytes(), 1).unwrap();
        assert_eq!(
            c.jwks,
            Some(
                serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "AAAA"}]})
            )
        );
    }

    #[test]
    fn key_sets_over_16_kib_or_16_keys_are_refused() {
        let rsa = |n: usize| serde_json::json!({"kty": "RSA", "n": "A".repeat(n), "e": "AQAB"});
        let fits = serde_json::json!({"keys": vec![rsa(1_500); 10]});
        assert!(parse_document(ID, pkjwt(fits).as_bytes(), 1).is_ok());
        let big = serde_json::json!({"keys": vec![rsa(1_700); 10]});
        assert_eq!(
            parse_document(ID, pkjwt(big).as_bytes(), 1).unwrap_err(),
            CimdError::TooLong("the key set", MAX_KEY_SET)
        );
        let many = serde_json::json!({"keys": vec![serde_json::json!({}); MAX_KEYS + 1]});
        let e = parse_document(ID, pkjwt(many).as_bytes(), 1).unwrap_err();
        assert!(e.to_string().contains("more than 16 keys"), "{e}");
        assert!(matches!(
            parse_key_set(br#"{"keys": [{"kty": 5}]}"#),
            Err(CimdError::NotAKeySet(_))
        ));
    }

    #[test]
    fn document_fields_lists_and_urls_are_bounded() {
        let doc = |extra: serde_json::Value| {
            let mut d = serde_json::json!({"client_id": ID, "redirect_uris": ["https://app.example.com/cb"]});
            d.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse_document(ID, d.to_string().as_bytes(), 1)
        };
        assert!(doc(serde_json::json!({"client_name": "n".repeat(MAX_FIELD)})).is_ok());
        assert_eq!(
            doc(serde_json::json!({"client_name": "n".repeat(MAX_FIELD + 1)})).unwrap_err(),
            CimdError::TooLong("client_name", MAX_FIELD)
        );
        assert_eq!(
            doc(serde_json::json!({"redirect_uris": vec!["https://app.example.com/cb"; MAX_LIST + 1]}))
                .unwrap_err()
                .to_string(),
            "redirect_uris lists too many entries (at most 20)"
        );
        assert_eq!(
            doc(serde_json::json!({"grant_types": ["g".repeat(MAX_FIELD + 1)]})).unwrap_err(),
            CimdError::TooLong("grant_types", MAX_FIELD)
        );
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(
            check_url(&long, false).unwrap_err().to_string(),
            "the client_id URL is too long (at most 2048 bytes)"
        );
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
