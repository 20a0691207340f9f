//! Forwarding to upstream MCP servers: the request goes out with the route's
//! credential instead of the client's, and the response streams back frame by
//! frame as it arrives (SSE included), never buffered.

pub mod client;
pub mod h1;
pub mod headers;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Response, StatusCode, Uri};
use hyper_rustls::ConfigBuilderExt;

use crate::clock::Clock;
use crate::config::Route;
use crate::wire::{self, Body};

use client::{Client, Outgoing, SendError};
use headers::{Caller, ClientInfo};

/// Why the upstream gave no response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream unreachable")]
    Unreachable,
    #[error("upstream failed before answering")]
    Failed,
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("the upstream refused the proxy's credential")]
    UpstreamAuth,
}

impl ProxyError {
    /// The one place a proxy failure becomes a response.
    pub fn into_response(self) -> Response<Body> {
        let (status, code) = match self {
            ProxyError::Unreachable | ProxyError::Failed => {
                (StatusCode::BAD_GATEWAY, "bad_gateway")
            }
            ProxyError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout"),
            ProxyError::UpstreamAuth => (StatusCode::BAD_GATEWAY, "upstream_auth_failed"),
        };
        wire::json_error(status, code, &self.to_string())
    }
}

/// The client for every upstream (http, or https through rustls).
pub struct Upstream {
    client: Client,
}

impl Upstream {
    pub fn new(clock: Clock) -> Result<Self, rustls::Error> {
        let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_webpki_roots()
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            client: Client::new(tls, clock),
        })
    }

    /// Drops idle upstream connections past their time.
    pub fn sweep(&self) {
        self.client.sweep();
    }

    /// Sends the client's request to `upstream` (with the route's credential) and returns its
    /// response head with its body still streaming.
    pub async fn forward(
        &self,
        route: &Route,
        upstream: &Uri,
        parts: Parts,
        body: Outgoing,
        client: &ClientInfo<'_>,
        caller: &Caller<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let uri = upstream_uri(upstream, parts.uri.query());
        let fields = |out: &mut Vec<u8>| {
            headers::to_upstream(&parts.headers, client, caller, |name, value| {
                h1::header_line(out, name.as_str(), value);
            });
        };
        let sent = self.client.send(&uri, &parts.method, fields, body);
        let response = match tokio::time::timeout(route.timeout, sent).await {
            Err(_) => return Err(ProxyError::Timeout),
            Ok(Err(e @ (SendError::Connect(_) | SendError::Url))) => {
                tracing::warn!(route = %route.name, error = %e, "upstream unreachable");
                return Err(ProxyError::Unreachable);
            }
            Ok(Err(e)) => {
                tracing::warn!(route = %route.name, error = %e, "upstream request failed");
                return Err(ProxyError::Failed);
            }
            Ok(Ok(r)) => r,
        };
        // The upstream's own auth challenge is about the proxy's credential, not the
        // client's token: passing it on would send clients into a login loop.
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::FORBIDDEN
                && response
                    .headers()
                    .contains_key(http::header::WWW_AUTHENTICATE))
        {
            tracing::warn!(route = %route.name, status = status.as_u16(), "the upstream refused the route's upstream_auth credential");
            return Err(ProxyError::UpstreamAuth);
        }
        let (mut parts, body) = response.into_parts();
        headers::to_client(&mut parts.headers);
        let route_name = route.name.clone();
        let body = http_body_util::BodyExt::map_err(body, move |e| {
            tracing::warn!(route = %route_name, error = %e, "upstream response body broke off");
            e
        });
        Ok(Response::from_parts(parts, wire::boxed(body)))
    }
}

/// The upstream URL with the client's query string appended to its own.
pub fn upstream_uri(upstream: &Uri, client_query: Option<&str>) -> Uri {
    let Some(q) = client_query.filter(|q| !q.is_empty()) else {
        return upstream.clone();
    };
    let path = upstream.path();
    let pq = match upstream.query() {
        Some(own) => format!("{path}?{own}&{q}"),
        None => format!("{path}?{q}"),
    };
    let mut parts = upstream.clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(pq).ok().or(parts.path_and_query);
    Uri::from_parts(parts).unwrap_or_else(|_| upstream.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_joined() {
        let up: Uri = "http://127.0.0.1:3001/mcp".parse().unwrap_or_default();
        assert_eq!(upstream_uri(&up, None), up);
        assert_eq!(
            upstream_uri(&up, Some("a=1")).to_string(),
            "http://127.0.0.1:3001/mcp?a=1"
        );
        let with: Uri = "http://h/mcp?k=v".parse().unwrap_or_default();
        assert_eq!(
            upstream_uri(&with, Some("a=1")).to_string(),
            "http://h/mcp?k=v&a=1"
        );
    }
}
