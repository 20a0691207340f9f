//! The MCP request path: one pipeline of named phases over a per-request
//! [`Context`], in this order (`docs/ARCHITECTURE.md` has the chart):
//!
//! ```text
//! origin → authenticate → session → inspect → forward → filter → log
//! ```
//!
//! Each phase lives in the module of its name and either hands the request on
//! or ends it with an [`McpError`]; `log` runs for every request, whichever
//! phase ended it, and `McpError::into_response` is the one place an MCP
//! route's refusals become responses. A new phase (a rate limit, metrics,
//! choosing the upstream credential) is one more line in [`run`].

mod authenticate;
mod error;
mod filter;
mod forward;
mod inspect;
mod log;
mod origin;
mod session;

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::config::{Config, Route, Transport};
use crate::mcp::legacy;
use crate::oauth::jwt::Claims;
use crate::state::AppState;
use crate::telemetry::AccessInfo;
use crate::wire::{self, Body, ConnInfo};

pub use error::McpError;

/// A response with what the access log says of it.
pub type Logged = (Response<Body>, AccessInfo);

/// Which of a route's endpoints a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `<route path>` of a Streamable HTTP route: POST, GET and DELETE.
    Streamable,
    /// `<route path>` of a legacy HTTP+SSE route: the event stream (GET).
    LegacyStream,
    /// `<legacy route path>/message?session=…`: a client message (POST).
    LegacyMessage,
}

impl Endpoint {
    /// The methods the origin phase lets through (and names in a preflight's answer).
    /// A legacy route's path accepts the Streamable HTTP methods up to the session
    /// phase, so that a client probing for Streamable HTTP with a token learns 405.
    fn methods(self) -> &'static [Method] {
        const STREAMABLE: &[Method] = &[Method::GET, Method::POST, Method::DELETE];
        match self {
            Endpoint::Streamable | Endpoint::LegacyStream => STREAMABLE,
            Endpoint::LegacyMessage => &[Method::POST],
        }
    }
}

/// What the phases learn of one request, in the order they learn it.
pub(crate) struct Context<'a> {
    state: &'a AppState,
    config: &'a Config,
    route: &'a Arc<Route>,
    conn: ConnInfo,
    endpoint: Endpoint,
    /// origin: the browser origin that gets CORS headers, if any.
    origin: Option<HeaderValue>,
    /// authenticate: the verified claims of the bearer token.
    claims: Option<Arc<Claims>>,
}

/// The MCP endpoint of `route` at `path`, if `path` is one.
pub fn endpoint_for<'a>(config: &'a Config, path: &str) -> Option<(&'a Arc<Route>, Endpoint)> {
    if let Some(route) = config.route_by_path(path) {
        let endpoint = match route.transport {
            Transport::StreamableHttp => Endpoint::Streamable,
            Transport::Sse => Endpoint::LegacyStream,
        };
        return Some((route, endpoint));
    }
    let route_path = path.strip_suffix(legacy::MESSAGE_SUFFIX)?;
    let route = config
        .route_by_path(route_path)
        .filter(|r| r.transport == Transport::Sse)?;
    Some((route, Endpoint::LegacyMessage))
}

/// Runs the pipeline for one request to an MCP endpoint.
pub async fn handle(
    state: &AppState,
    config: &Config,
    route: &Arc<Route>,
    endpoint: Endpoint,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Logged {
    let mut cx = Context {
        state,
        config,
        route,
        conn,
        endpoint,
        origin: None,
        claims: None,
    };
    let result = run(&mut cx, req).await;
    log::finish(cx, result)
}

/// The phases up to `filter`, in order; `log` is [`log::finish`].
async fn run(cx: &mut Context<'_>, req: Request<Incoming>) -> Result<Response<Body>, McpError> {
    let (claims, target) = match admit(cx, &req) {
        Ok(Admitted::Preflight(res)) => return Ok(res),
        Ok(Admitted::Request(claims, target)) => (claims, target),
        Err(e) => {
            let (head, body) = req.into_parts();
            wire::discard(&head.headers, body).await;
            return Err(e);
        }
    };
    let request = inspect::request(cx, &claims, &target, req).await?;
    let response = forward::send(cx, &target, request.head, request.body).await?;
    session::after(cx, &claims, &target, &response);
    filter::response(
        cx,
        &claims,
        &target,
        request.policy,
        request.tools_list,
        response,
    )
    .await
}

enum Admitted {
    Preflight(Response<Body>),
    Request(Arc<Claims>, session::Target),
}

/// The phases that judge a request by its head: origin, authenticate, session.
fn admit(cx: &mut Context<'_>, req: &Request<Incoming>) -> Result<Admitted, McpError> {
    if let Some(preflight) = origin::check(cx, req)? {
        return Ok(Admitted::Preflight(preflight));
    }
    let claims = authenticate::bearer(cx, req)?;
    let claims = cx.claims.insert(claims).clone();
    let target = session::check(cx, &claims, req)?;
    Ok(Admitted::Request(claims, target))
}
