//! The log phase, for every request whichever phase ended it: refusals become
//! audit lines and metrics, the answer gets its CORS headers, and the access log
//! learns the route, user and client (the router writes the access line and
//! counts the request).

use http::Response;

use super::error::StepUp;
use super::{Context, Logged, McpError, origin};
use crate::metrics::{PolicyRefusal, UpstreamError};
use crate::proxy::ProxyError;
use crate::stdio::StdioError;
use crate::telemetry::AccessInfo;
use crate::telemetry::audit::{self, Event};
use crate::wire::Body;

pub(super) fn finish(cx: Context<'_>, result: Result<Response<Body>, McpError>) -> Logged {
    let response = match result {
        Ok(response) => {
            if response.status().is_server_error() {
                let metrics = &cx.state.metrics;
                metrics.upstream_error(&cx.route.metrics, UpstreamError::Status5xx);
            }
            response
        }
        Err(e) => {
            audit(&cx, &e);
            count(&cx, &e);
            e.into_response(cx.config, cx.route)
        }
    };
    let info = AccessInfo {
        route: Some(cx.route.name.clone()),
        user: cx.claims.as_ref().map(|c| c.sub.clone()),
        client: cx.claims.as_ref().map(|c| c.client_id.clone()),
        // Only rule lists have labels (the one-credential form has none): no
        // second match for the common case.
        upstream_auth: cx
            .route
            .upstream_auth
            .first()
            .filter(|r| r.label.is_some())
            .and_then(|_| super::forward::credential(cx.route, cx.claims.as_deref()))
            .and_then(|r| r.label.clone()),
    };
    (origin::with_cors(response, cx.origin), info)
}

/// The metrics of a refusal or an upstream failure.
fn count(cx: &Context<'_>, error: &McpError) {
    let (metrics, route) = (&cx.state.metrics, &cx.route.metrics);
    match error {
        McpError::Upstream(e) => {
            let kind = match e {
                ProxyError::Unreachable => UpstreamError::Connect,
                ProxyError::Failed => UpstreamError::Failed,
                ProxyError::Timeout => UpstreamError::Timeout,
                ProxyError::UpstreamAuth => UpstreamError::Auth,
            };
            metrics.upstream_error(route, kind);
        }
        McpError::Stdio(StdioError::Spawn { .. }) => {
            metrics.upstream_error(route, UpstreamError::Connect);
        }
        McpError::Stdio(StdioError::Timeout { .. }) => {
            metrics.upstream_error(route, UpstreamError::Timeout);
        }
        McpError::InsufficientScope(_) => {
            metrics.policy_refusal(route, PolicyRefusal::StepUp, 1);
        }
        McpError::Refused { tools, .. } | McpError::RefusedOnStream { tools } => {
            metrics.policy_refusal(route, PolicyRefusal::ToolsCall, tools.len() as u64);
        }
        _ => {}
    }
}

fn audit(cx: &Context<'_>, error: &McpError) {
    let Some(claims) = &cx.claims else {
        return;
    };
    let (user, client, route) = (&claims.sub, &claims.client_id, &cx.route.name);
    let ip = cx.conn.peer.ip();
    let denied = |tool: &str, missing_scope: Option<&str>| {
        audit::event(Event::ToolCallRefused {
            user,
            client,
            route,
            tool,
            missing_scope,
            ip,
        });
    };
    match error {
        McpError::ForeignSession => {
            audit::event(Event::SessionRefused {
                user,
                client,
                route,
                ip,
            });
        }
        McpError::InsufficientScope(step_up) => {
            let StepUp { tool, missing, .. } = step_up.as_ref();
            denied(tool, Some(missing));
        }
        McpError::Refused { tools, .. } | McpError::RefusedOnStream { tools } => {
            for tool in tools {
                denied(tool, None);
            }
        }
        _ => {}
    }
}
