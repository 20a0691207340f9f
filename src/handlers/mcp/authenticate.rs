//! The authenticate phase (RFC 6750): the bearer token must be a valid access
//! token issued by this proxy for this route.

use std::sync::Arc;

use http::{Request, header};

use super::{Context, McpError};
use crate::metrics::TokenRefusal;
use crate::oauth::jwt::{Claims, TokenError};

/// The `WWW-Authenticate` challenge of a protected route.
pub(super) fn challenge(prm_url: &str, scope: &str, error: Option<(&str, &str)>) -> String {
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

/// The verified claims of the request's bearer token.
pub(super) fn bearer<B>(cx: &Context<'_>, req: &Request<B>) -> Result<Arc<Claims>, McpError> {
    let uri = req.uri();
    // RFC 6750 §2.3 query tokens end up in logs and histories: refused.
    let in_query = uri.query().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")
    });
    let refused = |reason| cx.state.metrics.token_refused(reason);
    if in_query {
        refused(TokenRefusal::InvalidRequest);
        return Err(McpError::invalid_request(
            "send the access token in the Authorization header, not the URL",
        ));
    }
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        refused(TokenRefusal::Missing);
        return Err(McpError::Unauthorized(None));
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
        refused(TokenRefusal::InvalidRequest);
        return Err(McpError::invalid_request(
            "the Authorization header must be `Bearer <token>`",
        ));
    };
    cx.state
        .authority
        .verify_access(cx.config, cx.route, token)
        .map_err(|e| {
            refused(match e {
                TokenError::Malformed => TokenRefusal::Malformed,
                TokenError::BadSignature => TokenRefusal::Signature,
                TokenError::Expired => TokenRefusal::Expired,
                TokenError::WrongAudience => TokenRefusal::Audience,
                TokenError::WrongIssuer => TokenRefusal::Issuer,
                TokenError::Revoked => TokenRefusal::Revoked,
            });
            McpError::Unauthorized(Some(("invalid_token", e.to_string().into())))
        })
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
