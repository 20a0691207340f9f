//! The log phase, for every request whichever phase ended it: refusals become
//! audit lines, the answer gets its CORS headers, and the access log learns the
//! route, user and client (the router writes the access line).

use http::Response;

use super::error::StepUp;
use super::{Context, Logged, McpError, origin};
use crate::telemetry::AccessInfo;
use crate::telemetry::audit::{self, Event};
use crate::wire::Body;

pub(super) fn finish(cx: Context<'_>, result: Result<Response<Body>, McpError>) -> Logged {
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            audit(&cx, &e);
            e.into_response(cx.config, cx.route)
        }
    };
    let info = AccessInfo {
        route: Some(cx.route.name.clone()),
        user: cx.claims.as_ref().map(|c| c.sub.clone()),
        client: cx.claims.as_ref().map(|c| c.client_id.clone()),
    };
    (origin::with_cors(response, cx.origin), info)
}

fn audit(cx: &Context<'_>, error: &McpError) {
    let Some(claims) = &cx.claims else {
        return;
    };
    let (user, client, route) = (&claims.sub, &claims.client_id, &cx.route.name);
    let denied = |tool: &str, missing_scope: Option<&str>| {
        audit::event(Event::ToolCallRefused {
            user,
            client,
            route,
            tool,
            missing_scope,
        });
    };
    match error {
        McpError::ForeignSession => {
            audit::event(Event::SessionRefused {
                user,
                client,
                route,
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
