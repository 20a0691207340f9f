//! MCP routes: the phases authenticate → check origin → inspect → forward →
//! filter, for Streamable HTTP and for legacy HTTP+SSE upstreams.

use std::sync::Arc;

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use hyper::body::Incoming;

use super::bearer;
use crate::config::{Config, Route, Transport};
use crate::mcp::filter::{self, Filtered};
use crate::mcp::inspect::{self, MirrorHeaders, Verdict};
use crate::mcp::jsonrpc;
use crate::mcp::legacy::{self, NewSession};
use crate::mcp::policy::ToolPolicy;
use crate::mcp::stream::EventStream;
use crate::oauth::jwt::Claims;
use crate::oauth::metadata;
use crate::proxy::client::Outgoing;
use crate::proxy::headers::{self, ClientInfo};
use crate::state::AppState;
use crate::telemetry::AccessInfo;
use crate::wire::ConnInfo;
use crate::wire::{self, Body, full, json, read_body};

/// MCP messages can be larger than forms (tool arguments), but not unbounded.
pub const MAX_MCP_BODY: usize = 16 * 1024 * 1024;
/// The largest JSON `tools/list` answer held for filtering.
const MAX_FILTERED_JSON: usize = 64 * 1024 * 1024;

const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

fn access(route: &Route, claims: Option<&Claims>) -> AccessInfo {
    AccessInfo {
        route: Some(route.name.clone()),
        user: claims.map(|c| c.sub.clone()),
        client: claims.map(|c| c.client_id.clone()),
    }
}

/// A response with what the access log says of it.
pub type Logged = (Response<Body>, AccessInfo);

fn jsonrpc_response(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The request's `Origin`, if it is one that may use MCP routes: the proxy's
/// own or an allowed one. `Err`: a browser from a foreign origin (DNS-rebinding
/// defence). `Ok(None)`: no `Origin` (not a browser).
fn checked_origin(config: &Config, headers: &HeaderMap) -> Result<Option<HeaderValue>, ()> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let text = origin.to_str().map_err(|_| ())?;
    let allowed = text.eq_ignore_ascii_case(config.public_url.as_str())
        || config
            .server
            .allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(text));
    if allowed {
        Ok(Some(origin.clone()))
    } else {
        Err(())
    }
}

const CORS_ALLOW_HEADERS: &str = "authorization, content-type, accept, last-event-id, mcp-session-id, mcp-protocol-version, mcp-method, mcp-name";
const CORS_EXPOSE_HEADERS: &str = "mcp-session-id, mcp-protocol-version, www-authenticate";

fn with_cors(mut res: Response<Body>, origin: Option<HeaderValue>) -> Response<Body> {
    if let Some(origin) = origin {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(CORS_EXPOSE_HEADERS),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    res
}

/// The origin check, CORS, preflight and bearer authentication around an MCP
/// endpoint's handler, which gets the verified claims; the response comes back with
/// what the access log says of it.
async fn guarded<F, Fut>(
    state: &AppState,
    config: &Config,
    route: &Route,
    req: Request<Incoming>,
    methods: &[Method],
    inner: F,
) -> Logged
where
    F: FnOnce(Request<Incoming>, Arc<Claims>) -> Fut,
    Fut: std::future::Future<Output = Response<Body>>,
{
    let Ok(origin) = checked_origin(config, req.headers()) else {
        let res = wire::json_error(
            StatusCode::FORBIDDEN,
            "invalid_origin",
            "this Origin may not use this MCP server",
        );
        return (res, access(route, None));
    };
    if *req.method() == Method::OPTIONS && origin.is_some() {
        let mut res = Response::new(wire::empty());
        *res.status_mut() = StatusCode::NO_CONTENT;
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&allow) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return (with_cors(res, origin), access(route, None));
    }
    if !methods.contains(req.method()) {
        let res = with_cors(wire::method_not_allowed(methods), origin);
        return (res, access(route, None));
    }
    let claims =
        match bearer::authenticate(&state.authority, config, route, req.headers(), req.uri()) {
            Ok(c) => c,
            Err(res) => return (with_cors(res, origin), access(route, None)),
        };
    let info = access(route, Some(&claims));
    (with_cors(inner(req, claims).await, origin), info)
}

/// `<route path>`: Streamable HTTP (POST, GET, DELETE), or the event stream of a legacy route (GET).
pub async fn route(
    state: &AppState,
    config: &Config,
    route: &Arc<Route>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Logged {
    let methods = [Method::GET, Method::POST, Method::DELETE];
    guarded(
        state,
        config,
        route,
        req,
        &methods,
        |req, claims| async move {
            match route.transport {
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
                Transport::Sse if *req.method() == Method::GET => {
                    legacy_stream(state, config, route, &claims, req, conn).await
                }
                // A legacy route is only an event stream (clients probing for Streamable HTTP get 405).
                Transport::Sse => wire::method_not_allowed(&[Method::GET]),
            }
        },
    )
    .await
}

/// `<legacy route path>/message?session=…`: a client message for the upstream's message URL.
pub async fn legacy_message(
    state: &AppState,
    config: &Config,
    route: &Arc<Route>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Logged {
    guarded(
        state,
        config,
        route,
        req,
        &[Method::POST],
        |req, claims| async move {
            let session_id = req.uri().query().and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "session")
                    .map(|(_, v)| v.into_owned())
            });
            let session = session_id.and_then(|id| state.legacy.get(&id)).filter(|s| {
                s.route == route.name && s.sub == claims.sub && s.client_id == claims.client_id
            });
            let Some(session) = session else {
                return wire::json_error(
                    StatusCode::NOT_FOUND,
                    "unknown_session",
                    "no open event stream with this session",
                );
            };
            let upstream = session.upstream.clone();
            exchange(
                state,
                config,
                route,
                &upstream,
                &claims,
                strip_query(req),
                conn,
                Some(&session.inject),
            )
            .await
        },
    )
    .await
}

/// The client's `session` parameter is the proxy's, not the upstream's.
fn strip_query(mut req: Request<Incoming>) -> Request<Incoming> {
    let path = req.uri().path().to_string();
    if let Ok(uri) = path.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req
}

fn client_info<'c, B>(req: &Request<B>, conn: &'c ConnInfo) -> ClientInfo<'c> {
    // The `Host` header if it is text, else the authority of an HTTP/2 request.
    let host = match req.headers().get(header::HOST) {
        Some(h) if h.to_str().is_ok() => Some(h.clone()),
        _ => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    ClientInfo {
        ip: conn.peer_ip.as_str(),
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
    let client = client_info(&req, &conn);

    let (parts, body) = req.into_parts();
    let session = parts
        .headers
        .get(MCP_SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(sid) = &session
        && !state
            .mcp_sessions
            .permits(sid, &claims.sub, &claims.client_id)
    {
        tracing::warn!(target: "audit", user = %claims.sub, client = %claims.client_id, route = %route.name, "another user's MCP session refused");
        return jsonrpc_response(
            StatusCode::NOT_FOUND,
            jsonrpc::error_response(None, -32001, "Session not found"),
        );
    }
    let is_delete = parts.method == Method::DELETE;
    let mut tools_list = false;
    let body = if parts.method == Method::POST {
        let bytes = match read_body(&parts.headers, body, MAX_MCP_BODY).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        let mirror = MirrorHeaders {
            method: parts.headers.get(MCP_METHOD).and_then(|v| v.to_str().ok()),
            name: parts.headers.get(MCP_NAME).and_then(|v| v.to_str().ok()),
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
                return insufficient_scope(config, route, &scope, &missing, &tool);
            }
            Verdict::Refuse { body, tools } => {
                for tool in &tools {
                    audit_denied(route, claims, tool, None);
                }
                if let Some(tx) = inject {
                    // Legacy transport: the answer belongs on the event stream.
                    let _ = tx.send(crate::mcp::sse::encode(Some("message"), None, &body));
                    let mut res = Response::new(wire::empty());
                    *res.status_mut() = StatusCode::ACCEPTED;
                    return res;
                }
                return jsonrpc_response(StatusCode::OK, body);
            }
        }
        Outgoing::Full(bytes)
    } else {
        Outgoing::Stream(wire::boxed(body))
    };

    let response = match state
        .upstream
        .forward(route, upstream, parts, body, &client)
        .await
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Some(created) = response
        .headers()
        .get(MCP_SESSION_ID)
        .and_then(|v| v.to_str().ok())
    {
        state
            .mcp_sessions
            .record(created, &claims.sub, &claims.client_id);
    }
    if is_delete
        && response.status().is_success()
        && let Some(sid) = &session
    {
        state.mcp_sessions.forget(sid);
    }
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
    let (parts, body) = response.into_parts();
    if headers::is_event_stream(&parts.headers) {
        let stream = EventStream::new(body, Some(policy), config.server.sse_keepalive);
        return Response::from_parts(parts, wire::boxed(stream));
    }
    if !tools_list || policy.is_unrestricted() {
        return Response::from_parts(parts, body);
    }
    // Boxed: most answers are not tool lists, and their requests' futures need not
    // have room for reading one.
    Box::pin(filter_tool_list(policy, parts, body)).await
}

async fn filter_tool_list(
    policy: ToolPolicy,
    mut parts: http::response::Parts,
    body: Body,
) -> Response<Body> {
    let bytes = match read_body(&parts.headers, body, MAX_FILTERED_JSON).await {
        Ok(b) => b,
        Err(_) => {
            return wire::json_error(
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
    let client = client_info(&req, &conn);
    let (parts, body) = req.into_parts();
    let body = Outgoing::Stream(wire::boxed(body));
    let response = match state
        .upstream
        .forward(route, &route.upstream, parts, body, &client)
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
    Response::from_parts(parts, wire::boxed(stream))
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
fn insufficient_scope(
    config: &Config,
    route: &Route,
    scope: &str,
    missing: &str,
    tool: &str,
) -> Response<Body> {
    let prm = metadata::protected_resource_url(config, route);
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{prm}\""
    );
    let description = format!("calling {tool} needs scope {missing}");
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
