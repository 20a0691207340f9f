//! Reading OAuth requests: form bodies, query strings, client credentials.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, header};

use crate::oauth::OAuthError;
use crate::oauth::authorize::single_params;

/// `application/x-www-form-urlencoded` text (a body or a query string), each parameter once.
pub fn parse(text: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    single_params(url::form_urlencoded::parse(text).map(|(k, v)| (k.into_owned(), v.into_owned())))
        .map_err(|e| OAuthError::invalid_request(e.to_string()))
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub fn is_form(headers: &HeaderMap) -> bool {
    media_type(headers) == "application/x-www-form-urlencoded"
}

pub fn is_json(headers: &HeaderMap) -> bool {
    let t = media_type(headers);
    t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part
/// form-urlencoded) or from the form. Using both is an error.
pub struct ClientCredentials {
    pub client_id: Option<String>,
    pub secret: Option<String>,
    pub via_basic: bool,
}

impl ClientCredentials {
    pub fn from_request(
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<Self, OAuthError> {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, creds)| creds.trim());
        let form_id = form.get("client_id").cloned();
        let form_secret = form.get("client_secret").cloned();
        let Some(basic) = basic else {
            return Ok(Self {
                client_id: form_id,
                secret: form_secret,
                via_basic: false,
            });
        };
        let bad = || OAuthError::invalid_client("malformed Basic credentials");
        let decoded = STANDARD.decode(basic).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
        // RFC 6749 §2.3.1: each part is form-urlencoded (`+` is a space, then %XX).
        let unescape = |s: &str| -> String {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let (id, secret) = (unescape(id), unescape(secret));
        if form_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        if form_id.as_ref().is_some_and(|f| *f != id) {
            return Err(OAuthError::invalid_client(
                "client_id does not match the Basic credentials",
            ));
        }
        Ok(Self {
            client_id: Some(id),
            secret: Some(secret),
            via_basic: true,
        })
    }

    pub fn presented(&self) -> crate::oauth::client::Presented<'_> {
        crate::oauth::client::Presented {
            client_id: self.client_id.as_deref(),
            secret: self.secret.as_deref(),
            via_basic: self.via_basic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let mut h = HeaderMap::new();
        let creds = STANDARD.encode("my%20client:s%3Acret&x+y");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {creds}")).unwrap(),
        );
        let c = ClientCredentials::from_request(&h, &HashMap::new()).unwrap();
        assert_eq!(c.client_id.as_deref(), Some("my client"));
        assert_eq!(c.secret.as_deref(), Some("s:cret&x y"));
        assert!(c.via_basic);
    }

    #[test]
    fn two_methods_or_junk_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        let form = parse(b"client_secret=x").unwrap();
        assert!(ClientCredentials::from_request(&h, &form).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(ClientCredentials::from_request(&h, &HashMap::new()).is_err());
    }

    #[test]
    fn forms_refuse_repeated_parameters() {
        assert!(parse(b"a=1&a=2").is_err());
        assert_eq!(parse(b"a=1+2&b=%26").unwrap()["a"], "1 2");
    }
}
