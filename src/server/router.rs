//! The top-level router: which handler answers a request, and the one access
//! log line per request.

use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::{AppState, ConnInfo};
use crate::config::Route;
use crate::paths;
use crate::proxy::headers::ClientInfo;
use crate::web::{self, Body};

/// Facts a handler learned that belong in the access log line. Handlers put it
/// in the response's extensions; the router takes it out before sending.
#[derive(Clone, Debug, Default)]
pub struct AccessInfo {
    pub route: Option<String>,
    pub user: Option<String>,
    pub client: Option<String>,
}

pub async fn handle(state: &AppState, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: query strings carry codes and state that must not be logged.
    let path = req.uri().path().to_string();

    let mut response = dispatch(state, req, conn).await;

    let info = response
        .extensions_mut()
        .remove::<AccessInfo>()
        .unwrap_or_default();
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        route = %info.route.as_deref().unwrap_or("-"),
        user = %info.user.as_deref().unwrap_or("-"),
        client = %info.client.as_deref().unwrap_or("-"),
        peer = %conn.peer.ip(),
    );
    response
}

async fn dispatch(state: &AppState, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let config = state.config.load_full();
    let path = req.uri().path();

    if path == paths::HEALTHZ {
        return match *req.method() {
            Method::GET | Method::HEAD => {
                web::json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
            }
            _ => method_not_allowed("GET, HEAD"),
        };
    }
    if let Some(route) = config.route_by_path(path) {
        let route = route.clone();
        return mcp_route(state, &route, req, conn).await;
    }
    not_found(req).await
}

/// The MCP endpoint of a route: forward to the upstream.
async fn mcp_route(
    state: &AppState,
    route: &Arc<Route>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::POST | Method::DELETE) {
        return method_not_allowed("GET, POST, DELETE");
    }
    if web::declared_too_large(req.headers(), MAX_MCP_BODY) {
        return web::BodyError::TooLarge.into_response();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let client = ClientInfo {
        ip: conn.peer.ip(),
        https: conn.https,
        host: host.as_deref(),
    };
    let req = req.map(|b| web::boxed(http_body_util::Limited::new(b, MAX_MCP_BODY)));
    let mut response = match state.upstream.forward(route, req, &client).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response.extensions_mut().insert(AccessInfo {
        route: Some(route.name.clone()),
        ..AccessInfo::default()
    });
    response
}

/// MCP messages can be larger than forms (tool arguments), but not unbounded.
pub const MAX_MCP_BODY: usize = 16 * 1024 * 1024;

async fn not_found(req: Request<Incoming>) -> Response<Body> {
    // Read (bounded) what the client sent so that an oversized body gets 413, not 404.
    let (parts, body) = req.into_parts();
    if let Err(e) = web::read_body(&parts.headers, body, web::MAX_FORM_BODY).await {
        return e.into_response();
    }
    web::json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = web::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed here",
    );
    res.headers_mut()
        .insert(header::ALLOW, http::HeaderValue::from_static(allow));
    res
}
