//! The admin API (`/admin/…` on the admin listener): what the `admin`
//! commands ask a running proxy. Only connections from this machine, and only
//! with the admin token; the wire form is `admin::api`, the actions
//! `Authority::admin` (which writes the audit event).

use std::net::SocketAddr;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::admin::api::{self, ApiError};
use crate::authority::admin::AdminError;
use crate::authority::api_keys::ApiKeyError;
use crate::state::AppState;
use crate::wire::{self, Body, MAX_FORM_BODY, read_body};

/// Answers an `/admin/…` request that came from `peer` to the listener's `local` address.
pub async fn handle(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
) -> Response<Body> {
    let peer_ip = peer.ip().to_canonical();
    if !from_this_machine(peer, local) {
        tracing::warn!(peer = %peer, "admin API request from another machine refused");
        return wire::json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the admin API answers only connections from this machine",
        );
    }
    if !authorized(state, req.headers()) {
        tracing::warn!(peer = %peer, "admin API request without the admin token refused");
        let mut res = wire::json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API needs `Authorization: Bearer <the token of admin.token_file>`",
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"mcp-oauth-proxy admin\""),
        );
        return res;
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(&parts.headers, body, MAX_FORM_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let action = match api::action(&parts.method, parts.uri.path(), parts.uri.query(), &body) {
        Ok(a) => a,
        Err(ApiError::NotFound) => {
            return wire::json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        }
        Err(ApiError::Method(allowed)) => return wire::method_not_allowed(&[allowed]),
        Err(e @ ApiError::BadRequest(_)) => {
            return wire::json_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string());
        }
    };
    let config = state.config.load();
    let done =
        tokio::task::block_in_place(|| state.authority.admin(&config, &action, Some(peer_ip)));
    match done {
        Ok(outcome) => match serde_json::to_value(&outcome) {
            Ok(v) => wire::json(StatusCode::OK, &v),
            Err(e) => server_error(&e.to_string()),
        },
        Err(e @ (AdminError::NoGrant(_) | AdminError::NoClient(_))) => {
            wire::json_error(StatusCode::NOT_FOUND, "not_found", &e.to_string())
        }
        Err(AdminError::ApiKey(ApiKeyError::Store(e))) => server_error(&e.to_string()),
        Err(AdminError::ApiKey(e @ ApiKeyError::NoKey(_))) => {
            wire::json_error(StatusCode::NOT_FOUND, "not_found", &e.to_string())
        }
        Err(AdminError::ApiKey(e)) => {
            wire::json_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string())
        }
        Err(e @ (AdminError::Store(_) | AdminError::Revoke(_))) => server_error(&e.to_string()),
    }
}

/// Whether a connection came from this machine: from loopback, or from the
/// address it was made to. The token travels in plain HTTP: never from another machine.
fn from_this_machine(peer: SocketAddr, local: SocketAddr) -> bool {
    let peer = peer.ip().to_canonical();
    peer.is_loopback() || peer == local.ip().to_canonical()
}

fn server_error(detail: &str) -> Response<Body> {
    tracing::error!(error = detail, "admin action failed");
    wire::json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the admin action failed; the proxy's log says why",
    )
}

/// Whether the request carries the admin token (`Authorization: Bearer …`).
fn authorized(state: &AppState, headers: &http::HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (presented, state.admin_token.load().as_deref()) {
        (Some(p), Some(token)) => token.matches(p.trim()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_from_this_machine_reach_the_admin_api() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        for (peer, local, allowed) in [
            ("127.0.0.1:5000", "127.0.0.1:9464", true),
            ("[::1]:5000", "[::1]:9464", true),
            ("[::ffff:127.0.0.1]:5000", "[::ffff:127.0.0.1]:9464", true),
            ("10.0.0.5:5000", "10.0.0.5:9464", true),
            ("[::ffff:10.0.0.5]:5000", "10.0.0.5:9464", true),
            ("10.0.0.6:5000", "10.0.0.5:9464", false),
            ("192.0.2.1:5000", "127.0.0.1:9464", false),
        ] {
            assert_eq!(
                from_this_machine(at(peer), at(local)),
                allowed,
                "{peer} → {local}"
            );
        }
    }
}
