//! The forward phase: the request goes to the upstream with the route's
//! credential instead of the client's token (`proxy`), and its answer comes
//! back with the body still streaming.

use http::request::Parts;
use http::{HeaderValue, Response, header};

use super::session::Target;
use super::{Context, McpError};
use crate::proxy::client::Outgoing;
use crate::proxy::headers::ClientInfo;
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
    Ok(cx
        .state
        .upstream
        .forward(cx.route, upstream, head, body, &client)
        .await?)
}
