//! The forward phase: the request goes to the upstream with the route's
//! credential instead of the client's token (`proxy`), and its answer comes
//! back with the body still streaming.

use http::request::Parts;
use http::{HeaderValue, Response, header};

use super::session::Target;
use super::{Context, McpError};
use crate::config::{CredentialRule, Route};
use crate::oauth::jwt::Claims;
use crate::proxy::client::Outgoing;
use crate::proxy::headers::{Caller, ClientInfo, Identity};
use crate::wire::Body;

pub(super) async fn send(
    cx: &Context<'_>,
    target: &Target,
    head: Parts,
    body: Outgoing,
) -> Result<Response<Body>, McpError> {
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
    let upstream = target.upstream(cx.route);
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
