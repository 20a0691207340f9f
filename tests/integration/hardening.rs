//! Bad input from the network: oversized bodies and headers, garbage, stalls.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Proxy, simple_config};

async fn proxy() -> Proxy {
    Proxy::start(|port, dir| simple_config(port, dir, "", "http://127.0.0.1:9/mcp")).await
}

/// Sends raw bytes and returns what the proxy answered before closing (or within 5 s).
async fn raw(proxy: &Proxy, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn two_mib_body_to_a_non_mcp_endpoint_is_413() {
    let proxy = proxy().await;
    let body = vec![b'x'; 2 * 1024 * 1024];
    let res = reqwest::Client::new()
        .post(proxy.url("/oauth/register"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // Without a Content-Length (chunked), the limit holds as well.
    let stream = futures_util::stream::iter(
        body.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let res = reqwest::Client::new()
        .post(proxy.url("/anything"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn oversized_mcp_body_is_413_before_reaching_the_upstream() {
    let proxy = proxy().await;
    let token = crate::oauth_client::tokens(&proxy, &[]).await.access;
    let request = format!(
        "POST /notes/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 99999999\r\nContent-Type: application/json\r\n\r\n{{"
    );
    let answer = raw(&proxy, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let proxy = proxy().await;
    let answer = raw(&proxy, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let answer = raw(
        &proxy,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = raw(&proxy, huge.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431") || answer.is_empty(),
        "{answer}"
    );
    assert_eq!(
        reqwest::get(proxy.url("/healthz")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_cut_off() {
    let proxy = proxy().await;
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    // header_read_timeout is 2s in the test config.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed too early"
    );
    assert_eq!(
        reqwest::get(proxy.url("/healthz")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_junk_method_on_an_mcp_route_is_405() {
    let proxy = proxy().await;
    let res = reqwest::Client::new()
        .put(proxy.url("/notes/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn a_peer_that_sends_nothing_is_disconnected() {
    let proxy = proxy().await;
    for first in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        s.write_all(first).await.unwrap();
        let started = Instant::now();
        let mut out = Vec::new();
        // Closed (EOF), or reset because the proxy dropped it with unread bytes.
        let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("the proxy closes a silent connection");
        assert!(
            closed.is_ok()
                || closed
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)
        );
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "closed too early"
        );
    }
}
