//! Discovery documents: RFC 8414 authorization-server metadata (also served
//! as OpenID configuration) and RFC 9728 protected-resource metadata.

use serde_json::{Value, json};

use crate::config::{Config, Route};
use crate::paths;

/// RFC 7523's JWT bearer grant (the ID-JAG of enterprise-managed authorization).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Every scope any route defines, once, in file order.
pub fn all_scopes(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &config.routes {
        for (name, _) in r.scopes.iter().flatten() {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    out
}

pub fn authorization_server(config: &Config) -> Value {
    let u = &config.public_url;
    let mut auth_methods = vec!["none", "client_secret_post", "client_secret_basic"];
    if config.cimd.enabled {
        auth_methods.push("private_key_jwt");
    }
    let mut grants = vec!["authorization_code", "refresh_token"];
    if !config.clients.is_empty() {
        grants.push("client_credentials");
    }
    if config.identity_providers.iter().any(|p| p.id_jag) {
        grants.push(JWT_BEARER);
    }
    json!({
        "issuer": u.as_str(),
        "authorization_endpoint": u.join(paths::AUTHORIZE),
        "token_endpoint": u.join(paths::TOKEN),
        "registration_endpoint": u.join(paths::REGISTER),
        "revocation_endpoint": u.join(paths::REVOKE),
        "jwks_uri": u.join(paths::JWKS),
        "scopes_supported": all_scopes(config),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": config.cimd.enabled,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
    })
}

pub fn protected_resource(config: &Config, route: &Route) -> Value {
    let scopes: Vec<&String> = route.scopes.iter().flatten().map(|(n, _)| n).collect();
    json!({
        "resource": route.resource,
        "authorization_servers": [config.public_url.as_str()],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": route.name,
    })
}

/// The PRM URL of a route, as put in `WWW-Authenticate`.
pub fn protected_resource_url(config: &Config, route: &Route) -> String {
    config
        .public_url
        .join(&format!("{}{}", paths::PRM, route.path))
}
