//! The upstream side of forwarding against a scripted raw HTTP/1.1 server:
//! connection reuse, upstreams that close connections, odd framing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Proxy, authed, simple_config, wait_for};

const ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;

/// What the upstream does with the next request it reads.
#[derive(Clone)]
enum Act {
    /// Answer with `ANSWER` and keep the connection.
    Answer,
    /// Answer, then close the connection without saying so.
    AnswerThenClose,
    /// Close the connection without answering.
    HangUp,
    /// Write these bytes as they are, in pieces, then keep the connection (or close it).
    Raw(Vec<&'static str>),
    RawThenClose(Vec<&'static str>),
    /// Answer right after the request's head, without reading its body; then close,
    /// or hold the connection without reading.
    EarlyAnswer(&'static str, bool),
}

/// A request as the upstream read it: which connection, the request line and body.
#[derive(Clone, Debug)]
struct Seen {
    conn: usize,
    line: String,
    body: String,
}

#[derive(Clone, Default)]
struct Upstream {
    script: Arc<Mutex<VecDeque<Act>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections the upstream closed after answering (`AnswerThenClose`).
    closed: Arc<Mutex<Vec<usize>>>,
}

impl Upstream {
    async fn start(script: Vec<Act>) -> (Self, u16) {
        let up = Upstream {
            script: Arc::new(Mutex::new(script.into())),
            ..Default::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let u = up.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((s, _)) = listener.accept().await {
                n += 1;
                tokio::spawn(u.clone().serve(s, n));
            }
        });
        (up, port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn serve(self, mut s: TcpStream, conn: usize) {
        let mut buf = Vec::new();
        loop {
            let Some(head) = read_head(&mut s, &mut buf).await else {
                return;
            };
            let act = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Act::Answer);
            let line = head.lines().next().unwrap_or("").to_string();
            if let Act::EarlyAnswer(answer, close) = act {
                let body = format!("(unread, {} bytes of it here)", buf.len());
                self.seen.lock().unwrap().push(Seen { conn, line, body });
                s.write_all(answer.as_bytes()).await.unwrap();
                if !close {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                return;
            }
            let Some(body) = read_body(&mut s, &mut buf, &head).await else {
                return;
            };
            self.seen.lock().unwrap().push(Seen { conn, line, body });
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                ANSWER.len()
            );
            match act.clone() {
                Act::Answer => s.write_all(answer.as_bytes()).await.unwrap(),
                Act::AnswerThenClose => {
                    s.write_all(answer.as_bytes()).await.unwrap();
                    drop(s);
                    self.closed.lock().unwrap().push(conn);
                    return;
                }
                Act::HangUp => return,
                Act::Raw(pieces) | Act::RawThenClose(pieces) => {
                    for p in &pieces {
                        s.write_all(p.as_bytes()).await.unwrap();
                        s.flush().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if matches!(act, Act::RawThenClose(_)) {
                        return;
                    }
                }
                Act::EarlyAnswer(..) => unreachable!(),
            }
        }
    }
}

/// Reads a request head (removed from `buf`); `None` when the peer closed.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the Content-Length body of a request whose head was read.
async fn read_body(s: &mut TcpStream, buf: &mut Vec<u8>, head: &str) -> Option<String> {
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.trim().parse::<usize>().unwrap());
    while buf.len() < len {
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[..len]).to_string();
    buf.drain(..len);
    Some(body)
}

async fn proxy_for(port: u16) -> (Proxy, reqwest::Client) {
    let proxy =
        Proxy::start(|p, dir| simple_config(p, dir, "", &format!("http://127.0.0.1:{port}/mcp")))
            .await;
    let client = authed(&proxy).await;
    (proxy, client)
}

fn call(id: u32) -> serde_json::Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "t", "arguments": {}}})
}

async fn post(proxy: &Proxy, client: &reqwest::Client, id: u32) -> (u16, String) {
    let res = client
        .post(proxy.url("/notes/mcp"))
        .json(&call(id))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap_or_default())
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let (up, port) = Upstream::start(vec![]).await;
    let (proxy, client) = proxy_for(port).await;
    for id in 1..=5 {
        assert_eq!(post(&proxy, &client, id).await, (200, ANSWER.to_string()));
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 5);
    assert!(
        seen.iter().all(|s| s.conn == seen[0].conn),
        "one upstream connection carries all five: {seen:?}"
    );
    assert_eq!(seen[4].line, "POST /mcp HTTP/1.1");
    assert!(seen[4].body.contains(r#""id":5"#));
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    let (up, port) = Upstream::start(vec![Act::AnswerThenClose]).await;
    let (proxy, client) = proxy_for(port).await;
    assert_eq!(post(&proxy, &client, 1).await.0, 200);
    let closed = up.closed.clone();
    wait_for(
        "the upstream to close its connection",
        Duration::from_secs(5),
        || {
            let done = !closed.lock().unwrap().is_empty();
            async move { done.then_some(()) }
        },
    )
    .await;
    assert_eq!(post(&proxy, &client, 2).await.0, 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_ne!(seen[0].conn, seen[1].conn);
}

#[tokio::test]
async fn a_reused_connection_closed_unanswered_is_retried_only_when_safe() {
    // GET is idempotent: sent again on a new connection.
    let (up, port) = Upstream::start(vec![Act::Answer, Act::HangUp]).await;
    let (proxy, client) = proxy_for(port).await;
    assert_eq!(post(&proxy, &client, 1).await.0, 200);
    let res = client
        .get(proxy.url("/notes/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.seen();
    let gets: Vec<_> = seen.iter().filter(|s| s.line.starts_with("GET")).collect();
    assert_eq!(gets.len(), 2, "{seen:?}");
    assert_ne!(gets[0].conn, gets[1].conn);

    // A tools/call POST may have been acted on: not sent twice, the client gets 502.
    let (up, port) = Upstream::start(vec![Act::Answer, Act::HangUp]).await;
    let (proxy, client) = proxy_for(port).await;
    assert_eq!(post(&proxy, &client, 1).await.0, 200);
    let (status, body) = post(&proxy, &client, 2).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(up.seen().len(), 2, "the call reached the upstream once");
    assert_eq!(
        post(&proxy, &client, 3).await.0,
        200,
        "a new connection after that"
    );
}

#[tokio::test]
async fn chunked_answers_with_interim_responses_and_trailers_pass() {
    let raw = vec![
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        "5\r\n{\"jso\r\n",
        "1f;ext=1\r\nnrpc\":\"2.0\",\"id\":1,\"result\":{}}\r",
        "\n0\r\nx-trailer: 1\r\n\r\n",
    ];
    let (up, port) = Upstream::start(vec![Act::Raw(raw)]).await;
    let (proxy, client) = proxy_for(port).await;
    assert_eq!(post(&proxy, &client, 1).await, (200, ANSWER.to_string()));
    assert_eq!(post(&proxy, &client, 2).await, (200, ANSWER.to_string()));
    let seen = up.seen();
    assert_eq!(
        seen[0].conn, seen[1].conn,
        "a chunked answer read to its end leaves the connection usable"
    );
}

#[tokio::test]
async fn malformed_and_truncated_answers() {
    let (_up, port) = Upstream::start(vec![
        Act::Raw(vec!["HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello"]),
        Act::Raw(vec!["NOT HTTP\r\n\r\n"]),
        Act::Raw(vec!["HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n"]),
        // Cut off inside a chunk: only the proxy can tell the body is incomplete.
        Act::RawThenClose(vec![
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
            "40\r\n{\"trunc",
        ]),
    ])
    .await;
    let (proxy, client) = proxy_for(port).await;
    assert_eq!(post(&proxy, &client, 1).await.0, 502, "conflicting lengths");
    assert_eq!(post(&proxy, &client, 2).await.0, 502, "not HTTP");
    assert_eq!(
        post(&proxy, &client, 3).await.0,
        502,
        "a coding the proxy cannot label"
    );
    let res = client
        .post(proxy.url("/notes/mcp"))
        .json(&call(4))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the head was fine");
    let body = res.bytes().await;
    assert!(
        body.is_err(),
        "a truncated body is not passed on as complete: {body:?}"
    );
    assert_eq!(
        post(&proxy, &client, 5).await.0,
        200,
        "the proxy carries on"
    );
}

#[tokio::test]
async fn a_length_beside_chunked_is_not_passed_on() {
    let (_up, port) = Upstream::start(vec![Act::Raw(vec![
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
        "24\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n0\r\n\r\n",
    ])])
    .await;
    let (proxy, client) = proxy_for(port).await;
    assert_eq!(post(&proxy, &client, 1).await, (200, ANSWER.to_string()));
}

/// A request body bigger than the sockets' buffers, so that writing it blocks
/// until the upstream reads.
fn big_call(id: u32) -> serde_json::Value {
    let filler = "x".repeat(12 * 1024 * 1024);
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "t", "arguments": {"text": filler}}})
}

#[tokio::test]
async fn an_early_answer_stops_the_request_and_is_passed_on() {
    // 413 without reading the body, connection kept (but never read again).
    let too_big = "HTTP/1.1 413 Content Too Large\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    // 400 with Connection: close, on a pooled connection: the call must not be sent twice.
    let refused = "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    let (up, port) = Upstream::start(vec![
        Act::EarlyAnswer(too_big, false),
        Act::Answer,
        Act::EarlyAnswer(refused, true),
    ])
    .await;
    let (proxy, client) = proxy_for(port).await;
    let (url, http) = (proxy.url("/notes/mcp"), client.clone());
    let big = |id| {
        let res = http.post(url.clone()).json(&big_call(id)).send();
        async move { res.await.unwrap().status() }
    };
    let started = std::time::Instant::now();
    assert_eq!(big(1).await, 413, "the upstream's early answer");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not the route timeout"
    );
    assert_eq!(post(&proxy, &client, 2).await.0, 200, "on a new connection");
    assert_eq!(big(3).await, 400);
    let seen = up.seen();
    assert_eq!(
        seen.len(),
        3,
        "each request reached the upstream once: {seen:?}"
    );
    assert_ne!(
        seen[0].conn, seen[1].conn,
        "the connection with an unread body is not reused"
    );
    assert_eq!(
        seen[1].conn, seen[2].conn,
        "the big call went on the pooled connection"
    );
}
