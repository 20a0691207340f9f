//! The filter phase: a client sees only the tools its token may call. Event
//! streams are filtered event by event as they pass (never buffered); a JSON
//! answer to `tools/list` is read whole (one message) and filtered. A legacy
//! route's event stream gets the proxy's own message endpoint.

use http::{Response, header};

use super::session::Target;
use super::{Context, McpError};
use crate::mcp::filter::{self, Filtered};
use crate::mcp::legacy::NewSession;
use crate::mcp::policy::ToolPolicy;
use crate::mcp::stream::EventStream;
use crate::oauth::jwt::Claims;
use crate::proxy::headers;
use crate::wire::{self, Body, read_body};

/// The largest JSON `tools/list` answer held for filtering.
const MAX_FILTERED_JSON: usize = 64 * 1024 * 1024;

pub(super) async fn response(
    cx: &Context<'_>,
    claims: &Claims,
    target: &Target,
    policy: ToolPolicy,
    tools_list: bool,
    response: Response<Body>,
) -> Result<Response<Body>, McpError> {
    if !response.status().is_success() {
        // Upstream errors pass unchanged: clients read them to tell protocol eras apart.
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let keepalive = cx.config.server.sse_keepalive;
    if headers::is_event_stream(&parts.headers) {
        let stream = EventStream::new(body, Some(policy), keepalive);
        let stream = match (target, cx.route.upstream.http()) {
            (Target::LegacyStream, Some(upstream_sse)) => {
                let (hook, rx) = NewSession {
                    sessions: cx.state.legacy.clone(),
                    route: cx.route.name.clone(),
                    route_path: cx.route.path.clone(),
                    upstream_sse: upstream_sse.clone(),
                    sub: claims.sub.clone(),
                    client_id: claims.client_id.clone(),
                }
                .hook();
                stream.with_hook(hook).with_injected(rx)
            }
            _ => stream,
        };
        // Counted as an open stream until the client's answer is dropped.
        let open = cx.state.metrics.stream_opened(&cx.route.metrics);
        return Ok(Response::from_parts(
            parts,
            wire::boxed(wire::Holding::new(stream, open)),
        ));
    }
    if !tools_list || policy.is_unrestricted() {
        return Ok(Response::from_parts(parts, body));
    }
    // Boxed: most answers are not tool lists, and their requests' futures need not
    // have room for reading one.
    Box::pin(tool_list(policy, parts, body)).await
}

async fn tool_list(
    policy: ToolPolicy,
    mut parts: http::response::Parts,
    body: Body,
) -> Result<Response<Body>, McpError> {
    let bytes = read_body(&parts.headers, body, MAX_FILTERED_JSON)
        .await
        .map_err(|_| McpError::UnreadableToolList)?;
    let bytes = match filter::filter(&bytes, &|name| policy.allows(name)) {
        Filtered::Unchanged => bytes,
        Filtered::Rewritten(new) => new,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, wire::full(bytes)))
}
