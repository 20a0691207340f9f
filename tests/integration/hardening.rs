//! Bad input from the network: oversized bodies and headers, garbage, stalls.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::common::{NodeUpstream, Proxy, simple_config, wait_for};

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

/// An HTTP/1.1 connection of its own to the proxy (closed when dropped).
async fn h1_connection(proxy: &Proxy) -> http1::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    let (send, connection) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(connection);
    send
}

/// `GET /healthz` on that connection: its status, or why the connection failed.
async fn health_on(send: &mut http1::SendRequest<Empty<Bytes>>) -> Result<u16, hyper::Error> {
    send.ready().await?;
    let req = hyper::Request::get("/healthz")
        .header("host", "127.0.0.1")
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await?;
    let status = res.status().as_u16();
    res.into_body().collect().await?;
    Ok(status)
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused_and_a_closed_one_frees_its_slot() {
    let proxy = Proxy::start(|port, dir| {
        simple_config(port, dir, "", "http://127.0.0.1:9/mcp").replace(
            "header_read_timeout: 2s",
            "header_read_timeout: 30s\n  max_connections_per_ip: 2",
        )
    })
    .await;
    let mut first = h1_connection(&proxy).await;
    let mut second = h1_connection(&proxy).await;
    assert_eq!(health_on(&mut first).await.unwrap(), 200);
    assert_eq!(health_on(&mut second).await.unwrap(), 200);

    let mut third = h1_connection(&proxy).await;
    assert!(
        health_on(&mut third).await.is_err(),
        "a third connection from 127.0.0.1 is closed unanswered"
    );
    assert_eq!(
        health_on(&mut first).await.unwrap(),
        200,
        "the open connections keep working"
    );

    drop(first);
    let proxy = &proxy;
    wait_for(
        "the closed connection's slot",
        Duration::from_secs(10),
        || async move {
            let mut again = h1_connection(proxy).await;
            health_on(&mut again).await.ok()
        },
    )
    .await;
    assert!(
        proxy
            .logs()
            .contains("connection limit per address reached")
    );
}

/// An HTTP/2 (prior knowledge) connection of its own to the proxy, and the task
/// driving it, which ends when the connection closes.
async fn h2_connection(
    proxy: &Proxy,
) -> (
    http2::SendRequest<Empty<Bytes>>,
    JoinHandle<Result<(), hyper::Error>>,
) {
    let tcp = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    let (send, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    (send, tokio::spawn(connection))
}

fn h2_get(proxy: &Proxy, path: &str, token: Option<&str>) -> hyper::Request<Empty<Bytes>> {
    let mut req = hyper::Request::get(proxy.url(path));
    if let Some(token) = token {
        req = req
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "text/event-stream");
    }
    req.body(Empty::new()).unwrap()
}

/// The proxy with an idle timeout (`header_read_timeout`) of 1 s.
async fn proxy_with_a_short_idle_timeout(upstream: &str) -> Proxy {
    Proxy::start(|port, dir| {
        simple_config(port, dir, "", upstream)
            .replace("header_read_timeout: 2s", "header_read_timeout: 1s")
    })
    .await
}

#[tokio::test]
async fn an_http2_connection_without_streams_is_closed_after_the_idle_timeout() {
    let proxy = proxy_with_a_short_idle_timeout("http://127.0.0.1:9/mcp").await;
    let (mut send, connection) = h2_connection(&proxy).await;
    let res = send
        .send_request(h2_get(&proxy, "/healthz", None))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    let idle_since = Instant::now();

    // The client answers the proxy's pings all along: only the idle timeout closes it.
    let closed = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the proxy closes the idle connection");
    assert!(
        idle_since.elapsed() >= Duration::from_millis(800),
        "closed before the idle timeout"
    );
    closed
        .unwrap()
        .expect("closed gracefully (GOAWAY), not cut off");
}

#[tokio::test]
async fn an_open_sse_stream_keeps_its_http2_connection_open_past_the_idle_timeout() {
    let upstream = NodeUpstream::start(&[]);
    let proxy = proxy_with_a_short_idle_timeout(&upstream.url("/_sse")).await;
    let token = crate::oauth_client::tokens(&proxy, &[]).await.access;
    let (mut send, connection) = h2_connection(&proxy).await;

    // Three events 1.5 s apart: the stream lasts more than four idle timeouts, with
    // silences longer than one.
    let req = h2_get(&proxy, "/notes/mcp?count=3&interval_ms=1500", Some(&token));
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let events = String::from_utf8_lossy(&body).matches("data:").count();
    assert_eq!(events, 3, "the stream was cut: {body:?}");
    assert!(
        !connection.is_finished(),
        "the connection closed under the stream"
    );

    // Once the stream has ended, the connection is idle and closed like any other.
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the proxy closes the connection once its stream ended")
        .unwrap()
        .unwrap();
}

/// Reads from `s` until `text` has arrived (or 5 s passed); what arrived.
async fn read_until(s: &mut TcpStream, text: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&out).contains(text) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_refused_mcp_request_whose_body_comes_late_keeps_its_connection_usable() {
    let proxy = proxy().await;
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#;
    let head = format!(
        "POST /notes/mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The client's body comes late (a second write); a proxy that answered on the
    // head alone would have done so by now and closed the connection after it.
    let mut early = [0u8; 1];
    let answered = tokio::time::timeout(Duration::from_millis(300), s.peek(&mut early)).await;
    s.write_all(body).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let out = read_until(&mut s, "\"ok\"").await;
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(answered.is_err(), "the refusal waited for the body");
    let next = &out[out.find("invalid_token").unwrap_or(0)..];
    assert!(
        next.contains("HTTP/1.1 200"),
        "the connection still serves the next request: {out:?}"
    );
}
