//! Asking a running proxy through its admin listener: one HTTP/1.1 request with
//! the admin token, its JSON answer read back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use super::CommandError;
use super::api;
use super::token::AdminToken;
use crate::authority::admin::{Action, Outcome};
use crate::config::Admin;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Listing a large store or revoking many grants takes a while.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_ANSWER: usize = 256 * 1024 * 1024;

/// Where to connect for a listener bound to `listen`: a wildcard address is
/// reached on loopback.
fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The outcome of `action` from the running proxy; `None` when nothing listens
/// on the admin address (the proxy is stopped).
pub async fn call(admin: &Admin, action: &Action) -> Result<Option<Outcome>, CommandError> {
    let addr = target(admin.listen);
    let unreachable = |reason: String| CommandError::Unreachable { addr, reason };
    let tcp =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable("no connection within 5 seconds".into())),
        };
    let token = AdminToken::read(&admin.token_file)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let driver = tokio::spawn(connection);

    let req = api::request(action);
    let mut request = http::Request::new(Full::new(Bytes::from(req.body.unwrap_or_default())));
    *request.method_mut() = req.method;
    *request.uri_mut() = req
        .path_and_query
        .parse()
        .map_err(|e: http::uri::InvalidUri| unreachable(e.to_string()))?;
    let headers = request.headers_mut();
    let host = HeaderValue::from_str(&addr.to_string()).map_err(|e| unreachable(e.to_string()))?;
    headers.insert(header::HOST, host);
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| unreachable("the admin token is not a valid header value".into()))?;
    bearer.set_sensitive(true);
    headers.insert(header::AUTHORIZATION, bearer);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );

    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| unreachable(format!("its answer broke off: {e}")))?
            .to_bytes();
        Ok::<_, CommandError>((status, body))
    };
    let (status, body) = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable("no answer within 2 minutes".into()))??;
    driver.abort();

    if status == http::StatusCode::UNAUTHORIZED {
        return Err(CommandError::Unauthorized {
            addr,
            file: admin.token_file.clone(),
        });
    }
    if !status.is_success() {
        let description = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error_description"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(CommandError::Refused {
            addr,
            status: status.as_u16(),
            description,
        });
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| unreachable(format!("its answer is not what the admin API sends ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback() {
        for (listen, target_addr) in [
            ("0.0.0.0:9464", "127.0.0.1:9464"),
            ("[::]:9464", "[::1]:9464"),
            ("10.0.0.5:9464", "10.0.0.5:9464"),
        ] {
            assert_eq!(
                target(listen.parse().unwrap()),
                target_addr.parse::<SocketAddr>().unwrap()
            );
        }
    }
}
