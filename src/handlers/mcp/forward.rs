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
use crate::oauth::jwt::Claims;
use crate::proxy::client::Outgoing;
use crate::proxy::headers::{Caller, ClientInfo, Identity};
use crate::stdio::sessions::Owner;
use crate::stdio::{Accept, Exchange};
use crate::wire::Body;

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
    let caller = Caller {
        credential: credential(route, claims).map(|r| &r.auth),
        strip: &route.credential_headers,
        identity: claims.filter(|_| route.identity_headers).map(|c| Identity {
            user: &c.sub,
            groups: &c.groups,
            scope: &c.scope,
            client_id: &c.client_id,
        }),
        identity_token: route.identity_token.as_ref().zip(identity_token.as_deref()),
    };
    Ok(cx
        .state
        .upstream
        .forward(route, upstream, head, body, &client, &caller)
        .await?)
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
        body,
    };
    Ok(cx.state.stdio.exchange(exchange).await?)
}
