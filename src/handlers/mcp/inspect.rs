//! The inspect phase: a POST's JSON-RPC body is read (bounded) and checked
//! against the token's tool policy (`mcp::inspect`, pure); what may pass goes
//! on as it came.

use http::request::Parts;
use http::{HeaderName, Method, Request, Uri};
use hyper::body::Incoming;

use super::session::Target;
use super::{Context, McpError};
use crate::mcp::inspect::{self, MirrorHeaders, Verdict};
use crate::mcp::legacy::Delivery;
use crate::mcp::policy::ToolPolicy;
use crate::mcp::sse;
use crate::oauth::jwt::Claims;
use crate::proxy::client::Outgoing;
use crate::wire::{self, read_body};

pub use crate::mcp::MAX_MCP_BODY;

const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// A request that may go to the upstream, and what the filter phase needs.
pub(super) struct Inspected {
    pub head: Parts,
    pub body: Outgoing,
    /// The tools the token may see and call.
    pub policy: ToolPolicy,
    /// The answer will be a `tools/list` result (filtered if it comes as JSON).
    pub tools_list: bool,
}

pub(super) async fn request(
    cx: &Context<'_>,
    claims: &Claims,
    target: &Target,
    req: Request<Incoming>,
) -> Result<Inspected, McpError> {
    let route = cx.route;
    let policy = ToolPolicy::new(route.scopes.as_deref(), &claims.scope);
    let (mut head, body) = req.into_parts();
    if let Target::LegacyMessage(_) = target {
        // The client's `session` parameter is the proxy's, not the upstream's.
        if let Ok(uri) = head.uri.path().parse::<Uri>() {
            head.uri = uri;
        }
    }
    if head.method != Method::POST {
        let body = Outgoing::Stream(wire::boxed(body));
        return Ok(Inspected {
            head,
            body,
            policy,
            tools_list: false,
        });
    }
    let bytes = read_body(&head.headers, body, MAX_MCP_BODY).await?;
    let mirror = MirrorHeaders {
        method: head.headers.get(MCP_METHOD).and_then(|v| v.to_str().ok()),
        name: head.headers.get(MCP_NAME).and_then(|v| v.to_str().ok()),
    };
    let tools_list = match inspect::inspect(
        &bytes,
        &mirror,
        route.scopes.as_deref(),
        &policy,
        &claims.scope,
    ) {
        Verdict::Forward { tools_list } => tools_list,
        Verdict::BadRequest(body) => return Err(McpError::BadRequest(body)),
        Verdict::InsufficientScope {
            tool,
            missing,
            scope,
        } => {
            return Err(McpError::InsufficientScope(Box::new(
                super::error::StepUp {
                    tool,
                    missing,
                    scope,
                },
            )));
        }
        Verdict::Refuse { body, tools } => {
            if let Target::LegacyMessage(session) = target {
                // Legacy transport: the answer belongs on the event stream.
                let event = sse::encode(Some("message"), None, &body);
                return Err(match cx.state.legacy.deliver(session, event) {
                    Delivery::Queued => McpError::RefusedOnStream { tools },
                    Delivery::Closed => McpError::UnknownLegacySession,
                    Delivery::Stalled => McpError::StalledStream,
                });
            }
            return Err(McpError::Refused { body, tools });
        }
    };
    Ok(Inspected {
        head,
        body: Outgoing::Full(bytes),
        policy,
        tools_list,
    })
}
