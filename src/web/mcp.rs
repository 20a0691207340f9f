//! MCP routes: the phases authenticate → check origin → inspect → forward →
//! filter, for Streamable HTTP and for legacy HTTP+SSE upstreams.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use hyper::body::Incoming;

use super::{Body, bearer, full, json, read_body};
use crate::config::{Config, Route, Transport};
use crate::mcp::filter::{self, Filtered};
use crate::mcp::inspect::{self, MirrorHeaders, Verdict};
use crate::mcp::legacy::{self, NewSession};
use crate::mcp::policy::ToolPolicy;
use crate::mcp::stream::EventStream;
use crate::oauth::jwt::Claims;
use crate::oauth::metadata;
use crate::proxy::headers::{self, ClientInfo};
use crate::server::router::AccessInfo;
use crate::server::{AppState, ConnInfo};

/// MCP messages can be larger than forms (tool arguments), but not unbounded.
pub const MAX_MCP_BODY: usize = 16 * 1024 * 1024;
/// The largest JSON `tools/list` answer held for filtering.
const MAX_FILTERED_JSON: usize = 64 * 1024 * 1024;

fn access(route: &Route, claims: Option<&Claims>) -> AccessInfo {
    AccessInfo {
        route: Some(route.name.clone()),
        user: claims.map(|c| c.sub.clone()),
        client: claims.map(|c| c.client_id.clone()),
    }
}

fn with_access(mut res: Response<Body>, info: AccessInfo) -> Response<Body> {
    res.extensions_mut().insert(info);
    res
}

fn jsonrpc_response(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = super::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed here",
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// DNS-rebinding defence: a browser's `Origin` must be the proxy's own or an allowed one.
fn origin_allowed(config: &Config, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    origin.eq_ignore_ascii_case(config.public_url.as_str())
        || config
            .server
            .allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
}

/// Authenticate and check the origin: the claims, or the response that ends the request.
fn admit(
    state: &AppState,
    config: &Config,
    route: &Route,
    req: &Request<Incoming>,
) -> Result<Arc<Claims>, Response<Body>> {
    let claims = bearer::authenticate(&state.authority, config, route, req.headers(), req.uri())?;
    if !origin_allowed(config, req.headers()) {
        return Err(super::json_error(
            StatusCode::FORBIDDEN,
            "invalid_origin",
            "this Origin may not use this MCP server",
        ));
    }
    Ok(claims)
}

/// `<route path>`: Streamable HTTP (POST, GET, DELETE), or the event stream of a legacy route (GET).
pub async fn route(
    state: &AppState,
    config: &Config,
    route: &Arc<Route>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::POST | Method::DELETE) {
        return with_access(method_not_allowed("GET, POST, DELETE"), access(route, None));
    }
    let allowed = route.transport == Transport::StreamableHttp || *req.method() == Method::GET;
    let claims = match admit(state, config, route, &req) {
        Ok(c) => c,
        Err(res) => return with_access(res, access(route, None)),
    };
    let info = access(route, Some(&claims));
    if !allowed {
        let allow = if route.transport == Transport::Sse {
            "GET"
        } else {
            "GET, POST, DELETE"
        };
        return with_access(method_not_allowed(allow), info);
    }
    let res = match route.transport {
        Transport::Sse => legacy_stream(state, config, route, &claims, req, conn).await,
        Transport::StreamableHttp => {
            exchange(
                state,
                config,
                route,
                &route.upstream,
                &claims,
                req,
                conn,
                None,
            )
            .await
        }
    };
    with_access(res, info)
}

/// `<legacy route path>/message?session=…`: a client message for the upstream's message URL.
pub async fn legacy_message(
    state: &AppState,
    config: &Config,
    route: &Arc<Route>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let claims = match admit(state, config, route, &req) {
        Ok(c) => c,
        Err(res) => return with_access(res, access(route, None)),
    };
    let info = access(route, Some(&claims));
    if *req.method() != Method::POST {
        return with_access(method_not_allowed("POST"), info);
    }
    let session_id = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "session")
            .map(|(_, v)| v.into_owned())
    });
    let session = session_id.and_then(|id| state.legacy.get(&id)).filter(|s| {
        s.route == route.name && s.sub == claims.sub && s.client_id == claims.client_id
    });
    let Some(session) = session else {
        return with_access(
            super::json_error(
                StatusCode::NOT_FOUND,
                "unknown_session",
                "no open event stream with this session",
            ),
            info,
        );
    };
    let upstream = session.upstream.clone();
    let res = exchange(
        state,
        config,
        route,
        &upstream,
        &claims,
        strip_query(req),
        conn,
        Some(&session.inject),
    )
    .await;
    with_access(res, info)
}

/// The client's `session` parameter is the proxy's, not the upstream's.
fn strip_query(mut req: Request<Incoming>) -> Request<Incoming> {
    let path = req.uri().path().to_string();
    if let Ok(uri) = path.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req
}

fn client_info<'a>(req: &'a Request<Incoming>, conn: ConnInfo) -> ClientInfo<'a> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    ClientInfo {
        ip: conn.peer.ip(),
        https: conn.https,
        host,
    }
}

/// One request/response exchange with the upstream, with the inspect and filter phases.
/// `inject`: on a legacy route, refusals go to the client's event stream.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    state: &AppState,
    config: &Config,
    route: &Route,
    upstream: &Uri,
    claims: &Claims,
    req: Request<Incoming>,
    conn: ConnInfo,
    inject: Option<&tokio::sync::mpsc::UnboundedSender<Bytes>>,
) -> Response<Body> {
    let policy = ToolPolicy::new(route.scopes.as_deref(), &claims.scope);
    let owned_host = client_info(&req, conn).host.map(str::to_string);
    let client = ClientInfo {
        ip: conn.peer.ip(),
        https: conn.https,
        host: owned_host.as_deref(),
    };

    let (parts, body) = req.into_parts();
    let mut tools_list = false;
    let body = if parts.method == Method::POST {
        let bytes = match read_body(&parts.headers, body, MAX_MCP_BODY).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        let mirror = MirrorHeaders {
            method: parts
                .headers
                .get("mcp-method")
                .and_then(|v| v.to_str().ok()),
            name: parts.headers.get("mcp-name").and_then(|v| v.to_str().ok()),
        };
        match inspect::inspect(
            &bytes,
            &mirror,
            route.scopes.as_deref(),
            &policy,
            &claims.scope,
        ) {
            Verdict::Forward { tools_list: t } => tools_list = t,
            Verdict::BadRequest(body) => return jsonrpc_response(StatusCode::BAD_REQUEST, body),
            Verdict::InsufficientScope {
                tool,
                missing,
                scope,
            } => {
                audit_denied(route, claims, &tool, Some(&missing));
                return insufficient_scope(config, route, &scope, &tool);
            }
            Verdict::Refuse { body, tools } => {
                for tool in &tools {
                    audit_denied(route, claims, tool, None);
                }
                if let Some(tx) = inject {
                    // Legacy transport: the answer belongs on the event stream.
                    let _ = tx.send(crate::mcp::sse::encode(Some("message"), None, &body));
                    let mut res = Response::new(super::empty());
                    *res.status_mut() = StatusCode::ACCEPTED;
                    return res;
                }
                return jsonrpc_response(StatusCode::OK, body);
            }
        }
        super::full(bytes)
    } else {
        super::boxed(body)
    };

    let request = Request::from_parts(parts, body);
    let response = match state
        .upstream
        .forward(route, upstream, request, &client)
        .await
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    filter_response(config, policy, tools_list, response).await
}

/// The filter phase: event streams are filtered event by event as they pass;
/// a JSON answer to `tools/list` is read whole (one message) and filtered.
async fn filter_response(
    config: &Config,
    policy: ToolPolicy,
    tools_list: bool,
    response: Response<Body>,
) -> Response<Body> {
    if !response.status().is_success() {
        // Upstream errors pass unchanged: clients read them to tell protocol eras apart.
        return response;
    }
    let (mut parts, body) = response.into_parts();
    if headers::is_event_stream(&parts.headers) {
        let stream = EventStream::new(body, Some(policy), config.server.sse_keepalive);
        return Response::from_parts(parts, super::boxed(stream));
    }
    if !tools_list || policy.is_unrestricted() {
        return Response::from_parts(parts, body);
    }
    let bytes = match read_body(&parts.headers, body, MAX_FILTERED_JSON).await {
        Ok(b) => b,
        Err(_) => {
            return super::json_error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the upstream's tool list could not be read",
            );
        }
    };
    let bytes = match filter::filter(&bytes, &|name| policy.allows(name)) {
        Filtered::Unchanged => bytes,
        Filtered::Rewritten(new) => new,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, full(bytes))
}

/// A legacy route's GET: the upstream's event stream, with its endpoint rewritten to the proxy.
async fn legacy_stream(
    state: &AppState,
    config: &Config,
    route: &Arc<Route>,
    claims: &Claims,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let owned_host = client_info(&req, conn).host.map(str::to_string);
    let client = ClientInfo {
        ip: conn.peer.ip(),
        https: conn.https,
        host: owned_host.as_deref(),
    };
    let request = req.map(super::boxed);
    let response = match state
        .upstream
        .forward(route, &route.upstream, request, &client)
        .await
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if !response.status().is_success() || !headers::is_event_stream(response.headers()) {
        return response;
    }
    let (hook, rx) = NewSession {
        sessions: state.legacy.clone(),
        route: route.name.clone(),
        route_path: route.path.clone(),
        upstream_sse: route.upstream.clone(),
        sub: claims.sub.clone(),
        client_id: claims.client_id.clone(),
    }
    .hook();
    let policy = ToolPolicy::new(route.scopes.as_deref(), &claims.scope);
    let (parts, body) = response.into_parts();
    let stream = EventStream::new(body, Some(policy), config.server.sse_keepalive)
        .with_hook(hook)
        .with_injected(rx);
    Response::from_parts(parts, super::boxed(stream))
}

fn audit_denied(route: &Route, claims: &Claims, tool: &str, missing: Option<&str>) {
    tracing::warn!(
        target: "audit",
        user = %claims.sub,
        client = %claims.client_id,
        route = %route.name,
        tool = %tool,
        missing_scope = %missing.unwrap_or("-"),
        "tool call refused"
    );
}

/// 403 with the step-up challenge (RFC 6750 §3.1, MCP 2025-11-25).
fn insufficient_scope(config: &Config, route: &Route, scope: &str, tool: &str) -> Response<Body> {
    let prm = metadata::protected_resource_url(config, route);
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{prm}\""
    );
    let description = format!("calling {tool} needs scope {scope}");
    let mut res = json(
        StatusCode::FORBIDDEN,
        &serde_json::json!({"error": "insufficient_scope", "error_description": description}),
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// The legacy route a message path belongs to: `<legacy route path>/message`.
pub fn legacy_route_for<'a>(config: &'a Config, path: &str) -> Option<&'a Arc<Route>> {
    let route_path = path.strip_suffix(legacy::MESSAGE_SUFFIX)?;
    config
        .route_by_path(route_path)
        .filter(|r| r.transport == Transport::Sse)
}
