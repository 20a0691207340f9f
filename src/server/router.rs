//! The top-level router: which handler answers a request, and the one access
//! log line per request.

use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use std::sync::Arc;

use crate::config::{Config, Route};
use crate::handlers::{browser, connect, federated, mcp, oauth_api};
use crate::oauth::metadata;
use crate::paths;
use crate::state::AppState;
use crate::telemetry::AccessInfo;
use crate::telemetry::{self, Access};
use crate::wire::{self, Body, ConnInfo};

pub async fn handle(state: &AppState, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();

    let ((response, info), mcp) = dispatch(state, req, conn).await;

    let latency = started.elapsed();
    let status = response.status().as_u16();
    // Metrics name MCP routes; the own endpoints (whose log line may name the route
    // a login is for) are `-`.
    let route = mcp.as_deref().map(|r| &r.metrics);
    state.metrics.request(route, &method, status, latency);
    telemetry::access(&Access {
        method: method.as_str(),
        path: uri.path(),
        status,
        latency,
        route: info.route.as_deref(),
        user: info.user.as_deref(),
        client: info.client.as_deref(),
        peer: conn.peer_ip.as_str(),
        upstream_auth: info.upstream_auth.as_deref(),
    });
    response
}

/// The response, and what the access log says of it: MCP routes return it, the
/// proxy's own endpoints put it in the response's extensions; and the MCP route
/// the request was for.
async fn dispatch(
    state: &AppState,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> (mcp::Logged, Option<Arc<Route>>) {
    let config = state.config.load_full();
    let path = req.uri().path();

    if path == paths::HEALTHZ {
        let res = match *req.method() {
            Method::GET | Method::HEAD => {
                // Degraded: the shared store does not answer. OAuth endpoints answer 503
                // meanwhile; MCP routes keep serving tokens already issued.
                let degraded = state.shared.as_ref().is_some_and(|r| !r.is_up());
                let status = if degraded { "degraded" } else { "ok" };
                wire::json(StatusCode::OK, &serde_json::json!({ "status": status }))
            }
            _ => wire::method_not_allowed(&[Method::GET, Method::HEAD]),
        };
        return ((res, AccessInfo::default()), None);
    }
    // Handlers' futures are boxed: hyper keeps each connection's request future (this
    // one) for the connection's life, and moves it; inline, it would have the size of
    // the largest handler.
    if let Some((route, endpoint)) = mcp::endpoint_for(&config, path) {
        let route = route.clone();
        let logged = Box::pin(mcp::handle(state, &config, &route, endpoint, req, conn)).await;
        return (logged, Some(route));
    }
    let mut res = Box::pin(own_endpoint(state, &config, req, conn)).await;
    let info = res
        .extensions_mut()
        .remove::<AccessInfo>()
        .unwrap_or_default();
    ((res, info), None)
}

async fn own_endpoint(
    state: &AppState,
    config: &Config,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let path = req.uri().path();
    let authority = &state.authority;
    if req.method() == Method::OPTIONS
        && (path.starts_with(paths::WELL_KNOWN) || path.starts_with(paths::OAUTH_PREFIX))
    {
        return oauth_api::preflight();
    }
    match path {
        paths::REGISTER | "/register" => oauth_api::register(state, req, conn).await,
        paths::TOKEN | "/token" => oauth_api::token(state, config, req, conn).await,
        paths::REVOKE => oauth_api::revoke(state, config, req, conn).await,
        paths::JWKS => oauth_api::document(&req, authority.jwks()),
        paths::AUTHORIZE | "/authorize" => browser::authorize(state, config, req, conn).await,
        paths::LOGIN => browser::login(state, config, req, conn).await,
        paths::CONSENT => browser::consent(state, config, req, conn).await,
        _ => {
            if let Some(name) = path.strip_prefix(paths::PROVIDER_LOGIN_PREFIX) {
                let name = name.to_string();
                return federated::start(state, config, req, &name).await;
            }
            if let Some(rest) = path.strip_prefix(paths::CONNECT_PREFIX) {
                let rest = rest.to_string();
                return connect::handle(state, config, req, &rest).await;
            }
            if let Some(name) = path.strip_prefix(paths::CALLBACK_PREFIX) {
                let name = name.to_string();
                return federated::callback(state, config, req, conn, &name).await;
            }
            well_known(config, req).await
        }
    }
}

/// RFC 8414 / OpenID / RFC 9728 documents, at every URL form clients try.
async fn well_known(config: &Config, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    // Authorization-server metadata: at the root, with the issuer path (none)
    // or a route path appended, or an OpenID form appended to a route path.
    let as_metadata = [paths::AS_METADATA, paths::OPENID_CONFIGURATION]
        .iter()
        .any(|p| {
            path == *p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| config.route_by_path(rest).is_some())
        })
        || path
            .strip_suffix(paths::OPENID_CONFIGURATION)
            .is_some_and(|route| config.route_by_path(route).is_some());
    if as_metadata {
        return oauth_api::authorization_server_metadata(&req, config);
    }
    if let Some(rest) = path.strip_prefix(paths::PRM) {
        // The root document describes the first route.
        let route = if rest.is_empty() || rest == "/" {
            config.routes.first()
        } else {
            config.route_by_path(rest)
        };
        if let Some(route) = route {
            return oauth_api::document(&req, metadata::protected_resource(config, route));
        }
    }
    not_found(req).await
}

async fn not_found(req: Request<Incoming>) -> Response<Body> {
    // Read (bounded) what the client sent so that an oversized body gets 413, not 404.
    let (parts, body) = req.into_parts();
    if let Err(e) = wire::read_body(&parts.headers, body, wire::MAX_FORM_BODY).await {
        return e.into_response();
    }
    wire::json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
