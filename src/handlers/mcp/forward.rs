//! The forward phase: the request goes to the upstream with the route's
//! credential instead of the client's token (`proxy`), and its answer comes
//! back with the body still streaming. A route whose upstream is a stdio
//! command goes to its process instead (`stdio`): the one branch HTTP routes pass.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, header};

use super::session::Target;
use super::{Context, McpError};
use crate::config::{CredentialRule, Route, StdioServer, Upstream};
use crate::mcp::jsonrpc;
use crate::oauth::jwt::Claims;
use crate::proxy::ProxyError;
use crate::proxy::client::Outgoing;
use crate::proxy::headers::{Caller, ClientInfo, Identity};
use crate::stdio::era::Mirrors;
use crate::stdio::sessions::Owner;
use crate::stdio::{Accept, Exchange};
use crate::upstream_oauth::{self, UpstreamOAuthError};
use crate::wire::Body;
use serde_json::value::RawValue;

pub(super) async fn send(
    cx: &Context<'_>,
    target: &Target,
    head: Parts,
    body: Outgoing,
) -> Result<Response<Body>, McpError> {
    let upstream = match (target, &cx.route.upstream) {
        (Target::LegacyMessage(session), _) => &session.upstream,
        (_, Upstream::Http(uri)) => uri,
        (_, Upstream::Stdio(server)) => {
            return Box::pin(stdio(cx, server, target, head, body)).await;
        }
    };
    // The `Host` header if it is text, else the authority of an HTTP/2 request.
    let host = match head.headers.get(header::HOST) {
        Some(h) if h.to_str().is_ok() => Some(h.clone()),
        _ => head
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    let client = ClientInfo {
        ip: cx.conn.peer_ip.as_str(),
        https: cx.conn.https,
        host,
    };
    let route = cx.route;
    let claims = cx.claims.as_deref();
    let identity_token = match (&route.identity_token, claims) {
        (Some(_), Some(c)) => Some(cx.state.authority.identity_token(
            cx.config,
            &upstream.to_string(),
            c,
        )),
        _ => None,
    };
    // An upstream protected by OAuth: the user's own token (see `upstream_oauth`).
    let connected = match (&route.upstream_oauth, claims) {
        (None, _) => None,
        (Some(_), Some(c)) => Some(
            cx.state
                .upstream_oauth
                .credential(&cx.state.authority, cx.config, route, &c.sub)
                .await
                .map_err(|e| connect_error(cx, e, &body))?,
        ),
        (Some(_), None) => return Err(not_connected(cx, &body)),
    };
    let caller = Caller {
        credential: match &connected {
            Some(c) => Some(&c.auth),
            None => credential(route, claims).map(|r| &r.auth),
        },
        strip: &route.credential_headers,
        identity: claims.filter(|_| route.identity_headers).map(|c| Identity {
            user: &c.sub,
            groups: &c.groups,
            scope: &c.scope,
            client_id: &c.client_id,
        }),
        identity_token: route.identity_token.as_ref().zip(identity_token.as_deref()),
    };
    // Kept (a reference count) for the error below; parsed only then.
    let sent = match (&connected, &body) {
        (Some(_), Outgoing::Full(bytes)) => Some(Outgoing::Full(bytes.clone())),
        _ => None,
    };
    match cx
        .state
        .upstream
        .forward(route, upstream, head, body, &client, &caller)
        .await
    {
        Ok(res) => Ok(res),
        // The upstream no longer takes the user's token (revoked there): they connect again.
        Err(ProxyError::UpstreamAuth) if connected.is_some() => {
            if let Some(c) = claims {
                cx.state
                    .upstream_oauth
                    .forget_for(&cx.state.authority, route, &c.sub);
            }
            Err(McpError::UpstreamNotConnected {
                url: upstream_oauth::connect_url(cx.config, route),
                id: sent.as_ref().and_then(request_id),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The JSON-RPC id of a request body (`None`: a notification, or no body).
fn request_id(body: &Outgoing) -> Option<Box<RawValue>> {
    let Outgoing::Full(bytes) = body else {
        return None;
    };
    let (messages, _) = jsonrpc::parse(bytes).ok()?;
    messages.first()?.id.map(ToOwned::to_owned)
}

fn not_connected(cx: &Context<'_>, body: &Outgoing) -> McpError {
    McpError::UpstreamNotConnected {
        url: upstream_oauth::connect_url(cx.config, cx.route),
        id: request_id(body),
    }
}

fn connect_error(cx: &Context<'_>, e: UpstreamOAuthError, body: &Outgoing) -> McpError {
    match e {
        UpstreamOAuthError::NotConnected => not_connected(cx, body),
        e => {
            tracing::warn!(route = %cx.route.name, error = %e, "no upstream token for the user");
            McpError::UpstreamOAuth(e)
        }
    }
}

/// The credential rule for this caller (without a token: only a rule without `when`).
pub(super) fn credential<'r>(
    route: &'r Route,
    claims: Option<&Claims>,
) -> Option<&'r CredentialRule> {
    match claims {
        Some(c) => route.credential_for(&c.sub, &c.groups, &c.scope),
        None => route.upstream_auth.iter().find(|r| r.when.is_none()),
    }
}

/// To the route's stdio process, as the session of this user and client.
async fn stdio(
    cx: &Context<'_>,
    server: &Arc<StdioServer>,
    target: &Target,
    head: Parts,
    body: Outgoing,
) -> Result<Response<Body>, McpError> {
    let (Some(claims), Target::Streamable { session, .. }) = (&cx.claims, target) else {
        // Stdio routes are Streamable HTTP routes (config validation), and authenticated by now.
        return Err(McpError::Unauthorized(None));
    };
    let body = match body {
        Outgoing::Full(bytes) => bytes,
        // GET and DELETE: a body means nothing.
        Outgoing::Stream(_) => Bytes::new(),
    };
    let exchange = Exchange {
        route: cx.route,
        server,
        owner: Owner {
            user: claims.sub.clone(),
            client: claims.client_id.clone(),
        },
        method: head.method,
        session: session.clone(),
        accept: Accept::from_headers(&head.headers),
        protocol_version: head
            .headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        mirrors: Mirrors {
            method: head.headers.contains_key("mcp-method"),
            name: head.headers.contains_key("mcp-name"),
        },
        body,
    };
    Ok(cx.state.stdio.exchange(exchange).await?)
}
