//! Validating an authorization request (RFC 6749 §4.1.1 + PKCE + RFC 8707),
//! in the order that decides where an error may be sent: problems with the
//! client or redirect URI go to an error page, everything after to the client.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::client::{self, ClientRecord};
use super::error::OAuthError;
use super::{pkce, resource, scope};
use crate::config::{Config, Route};

/// A validated request, carried through login and consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Whether the client sent `redirect_uri` (then the token request must repeat it).
    pub redirect_uri_sent: bool,
    pub state: Option<String>,
    pub code_challenge: String,
    pub route: String,
    pub resource: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show a page, redirect nowhere.
    Page(String),
    /// Tell the client, at its redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

/// A parameter given twice (its name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {0:?} appears more than once")]
pub struct RepeatedParameter(pub String);

/// Query or form parameters; a parameter given twice is an error (RFC 6749 §3.1).
pub fn single_params(
    pairs: impl Iterator<Item = (String, String)>,
) -> Result<HashMap<String, String>, RepeatedParameter> {
    let mut map = HashMap::new();
    for (k, v) in pairs {
        if map.insert(k.clone(), v).is_some() {
            return Err(RepeatedParameter(k));
        }
    }
    Ok(map)
}

/// The route a `resource` parameter names. Without one, a proxy with a single
/// route uses it (2025-03-26 clients send no `resource`).
pub fn route_for<'a>(
    config: &'a Config,
    resource_param: Option<&str>,
) -> Result<&'a Arc<Route>, OAuthError> {
    match resource_param {
        Some(r) => {
            let canonical = resource::canonical(r).ok_or_else(|| {
                OAuthError::invalid_target("resource must be an absolute https URL")
            })?;
            config
                .routes
                .iter()
                .find(|route| route.resource == canonical)
                .ok_or_else(|| OAuthError::invalid_target("resource is not served by this proxy"))
        }
        None if config.routes.len() == 1 => config
            .routes
            .first()
            .ok_or_else(|| OAuthError::invalid_target("no route")),
        None => Err(OAuthError::invalid_target(
            "resource is required: name the MCP server URL",
        )),
    }
}

pub fn validate(
    params: &HashMap<String, String>,
    client: Option<&ClientRecord>,
    config: &Config,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let get = |k: &str| params.get(k).map(String::as_str);
    let Some(client_id) = get("client_id").filter(|c| !c.is_empty()) else {
        return Err(AuthorizeError::Page(
            "The request names no client (client_id is missing).".into(),
        ));
    };
    let Some(client) = client else {
        return Err(AuthorizeError::Page(
            "This client is not registered with this server. Remove the server from your MCP client and add it again.".into(),
        ));
    };
    debug_assert_eq!(client.client_id, client_id);
    let Some(redirect_uri) = client::resolve_redirect(client, get("redirect_uri")) else {
        return Err(AuthorizeError::Page(
            "The redirect URI does not match any that this client registered.".into(),
        ));
    };
    let state = get("state").map(str::to_string);
    let fail = |error: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_string(),
        state: state.clone(),
        error,
    };

    match get("response_type") {
        Some("code") => {}
        None => {
            return Err(fail(OAuthError::invalid_request(
                "response_type is required",
            )));
        }
        Some(_) => {
            return Err(fail(OAuthError::new(
                super::error::ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            )));
        }
    }
    let code_challenge =
        pkce::check_challenge(get("code_challenge"), get("code_challenge_method")).map_err(fail)?;
    let route = route_for(config, get("resource")).map_err(fail)?;
    let requested = scope::parse(get("scope"));
    let scopes = scope::grant(&requested, route.scopes.as_deref(), &route.default_scopes);
    if scopes.is_empty() && route.scopes.is_some() {
        // Nothing known asked and no defaults: such a token would unlock no tool.
        return Err(fail(OAuthError::invalid_scope(
            "ask for at least one of this server's scopes",
        )));
    }

    Ok(AuthorizationRequest {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        redirect_uri_sent: get("redirect_uri").is_some(),
        state,
        code_challenge,
        route: route.name.clone(),
        resource: route.resource.clone(),
        scopes,
    })
}

/// The URL the browser is sent back to: `code` (or `error`), `state`, `iss` (RFC 9207).
pub fn redirect_url(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = redirect_uri.to_string();
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let query = ser.finish();
    out.push(if redirect_uri.contains('?') { '&' } else { '?' });
    out.push_str(&query);
    out
}

#[cfg(test)]
mod tests;
