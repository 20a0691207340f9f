//! The session phase: which session a request belongs to, and whether it is
//! this user's. A Streamable HTTP `Mcp-Session-Id` belongs to the user and
//! client that opened it; a legacy message belongs to the event stream it
//! names, which only its own user and client may post to.

use std::sync::Arc;

use http::{HeaderName, Method, Request, Response};

use super::{Context, Endpoint, McpError};
use crate::mcp::legacy;
use crate::oauth::jwt::Claims;

pub(super) const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// Where a request goes, as the session phase found it.
pub(super) enum Target {
    /// A Streamable HTTP request, with the session it names (checked) and
    /// whether it ends that session.
    Streamable {
        session: Option<String>,
        delete: bool,
    },
    /// A legacy route's event stream: a session starts when it opens.
    LegacyStream,
    /// A message for the legacy session of one of this user's streams.
    LegacyMessage(Arc<legacy::Session>),
}

pub(super) fn check<B>(
    cx: &Context<'_>,
    claims: &Claims,
    req: &Request<B>,
) -> Result<Target, McpError> {
    match cx.endpoint {
        Endpoint::Streamable => {
            // Every copy would be forwarded, but only one can be checked.
            let mut copies = req.headers().get_all(MCP_SESSION_ID).iter();
            let first = copies.next();
            if copies.next().is_some() {
                return Err(McpError::RepeatedSession);
            }
            let session = first.and_then(|v| v.to_str().ok()).map(str::to_string);
            if let Some(sid) = &session {
                let owners = &cx.state.mcp_sessions;
                let (user, client) = (claims.sub.as_str(), claims.client_id.as_str());
                let permitted = match owners.known(sid, user, client) {
                    Some(ok) => ok,
                    None if owners.is_shared() => {
                        // Opened through another instance, perhaps: its owner is in Redis.
                        tokio::task::block_in_place(|| owners.look_up(sid, user, client))
                            .map_err(|_| McpError::SessionUnverifiable)?
                    }
                    None => true,
                };
                if !permitted {
                    return Err(McpError::ForeignSession);
                }
            }
            let delete = req.method() == Method::DELETE;
            Ok(Target::Streamable { session, delete })
        }
        // A legacy route is only an event stream (clients probing for Streamable HTTP get 405).
        Endpoint::LegacyStream if req.method() != Method::GET => {
            Err(McpError::MethodNotAllowed(&[Method::GET]))
        }
        Endpoint::LegacyStream => Ok(Target::LegacyStream),
        Endpoint::LegacyMessage => {
            let id = req.uri().query().and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "session")
                    .map(|(_, v)| v.into_owned())
            });
            id.and_then(|id| cx.state.legacy.get(&id))
                .filter(|s| {
                    s.route == cx.route.name
                        && s.sub == claims.sub
                        && s.client_id == claims.client_id
                })
                .map(Target::LegacyMessage)
                .ok_or(McpError::UnknownLegacySession)
        }
    }
}

/// After the upstream answered: a session it created belongs to this user and
/// client; a session it ended is forgotten.
pub(super) fn after<B>(cx: &Context<'_>, claims: &Claims, target: &Target, response: &Response<B>) {
    let Target::Streamable { session, delete } = target else {
        return;
    };
    if let Some(created) = response
        .headers()
        .get(MCP_SESSION_ID)
        .and_then(|v| v.to_str().ok())
    {
        let owners = &cx.state.mcp_sessions;
        if owners.record(created, &claims.sub, &claims.client_id) && owners.is_shared() {
            tokio::task::block_in_place(|| owners.share(created, &claims.sub, &claims.client_id));
        }
    }
    if *delete
        && response.status().is_success()
        && let Some(sid) = session
    {
        // With a shared store, forgetting it is a Redis call too.
        tokio::task::block_in_place(|| cx.state.mcp_sessions.forget(sid));
    }
}
