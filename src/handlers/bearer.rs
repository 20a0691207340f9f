//! Authenticating requests to MCP routes (RFC 6750): the bearer token must be a
//! valid access token issued by this proxy for this route.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header};

use crate::authority::Authority;
use crate::config::{Config, Route};
use crate::oauth::jwt::Claims;
use crate::oauth::metadata;
use crate::wire::{Body, json};

/// The `WWW-Authenticate` challenge of a protected route.
pub fn challenge(prm_url: &str, scope: &str, error: Option<(&str, &str)>) -> String {
    let mut v = format!("Bearer resource_metadata=\"{prm_url}\"");
    if !scope.is_empty() {
        v.push_str(&format!(", scope=\"{scope}\""));
    }
    if let Some((code, description)) = error {
        v.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        ));
    }
    v
}

fn unauthorized(config: &Config, route: &Route, error: Option<(&str, &str)>) -> Response<Body> {
    let prm = metadata::protected_resource_url(config, route);
    let header_value = challenge(&prm, &route.default_scopes.join(" "), error);
    let (code, description) = error.unwrap_or(("invalid_token", "an access token is required"));
    let mut res = json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"error": code, "error_description": description}),
    );
    if let Ok(v) = HeaderValue::from_str(&header_value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// The verified claims of the request's bearer token, or the 401 to send.
pub fn authenticate(
    authority: &Authority,
    config: &Config,
    route: &Route,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Arc<Claims>, Response<Body>> {
    // RFC 6750 §2.3 query tokens end up in logs and histories: refused.
    let in_query = uri.query().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")
    });
    if in_query {
        return Err(unauthorized(
            config,
            route,
            Some((
                "invalid_request",
                "send the access token in the Authorization header, not the URL",
            )),
        ));
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(config, route, None));
    };
    // UTF-8 rather than `to_str`'s byte-by-byte check: this runs on every MCP request,
    // and the token's characters are checked when it is decoded.
    let token = std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim_ascii())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(unauthorized(
            config,
            route,
            Some((
                "invalid_request",
                "the Authorization header must be `Bearer <token>`",
            )),
        ));
    };
    authority
        .verify_access(config, route, token)
        .map_err(|e| unauthorized(config, route, Some(("invalid_token", &e.to_string()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_carry_metadata_scope_and_error() {
        assert_eq!(
            challenge(
                "https://p/.well-known/oauth-protected-resource/n/mcp",
                "a b",
                None
            ),
            "Bearer resource_metadata=\"https://p/.well-known/oauth-protected-resource/n/mcp\", scope=\"a b\""
        );
        assert_eq!(
            challenge("u", "", Some(("invalid_token", "it \"expired\""))),
            "Bearer resource_metadata=\"u\", error=\"invalid_token\", error_description=\"it 'expired'\""
        );
    }
}
