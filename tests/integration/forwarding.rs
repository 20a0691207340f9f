//! Forwarding to a real upstream MCP server: round trips, streaming, credentials, errors.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::common::{MCP_ACCEPT, NodeUpstream, Proxy, authed, initialize_body, simple_config};

const UPSTREAM_SECRET: &str = "upstream-secret-4b1d";

fn auth_route() -> String {
    format!("    upstream_auth:\n      bearer: \"{UPSTREAM_SECRET}\"\n")
}

#[tokio::test]
async fn json_post_round_trips_with_session_header() {
    let upstream = NodeUpstream::start(&["--json", "--token", UPSTREAM_SECRET]);
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, &auth_route(), &upstream.url("/mcp")))
            .await;
    let client = authed(&proxy).await;

    let res = client
        .post(proxy.url("/notes/mcp"))
        .header("accept", MCP_ACCEPT)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let session = res
        .headers()
        .get("mcp-session-id")
        .expect("session id passes back")
        .clone();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["id"], 1);
    assert!(body["result"]["serverInfo"]["name"].is_string(), "{body}");

    let list = client
        .post(proxy.url("/notes/mcp"))
        .header("accept", MCP_ACCEPT)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let body: serde_json::Value = list.json().await.unwrap();
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");
}

#[tokio::test]
async fn upstream_sees_its_own_credential_never_the_clients() {
    let upstream = NodeUpstream::start(&["--json", "--token", UPSTREAM_SECRET]);
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, &auth_route(), &upstream.url("/mcp")))
            .await;
    let tokens = crate::oauth_client::tokens(&proxy, &[]).await;
    let res = reqwest::Client::new()
        .post(proxy.url("/notes/mcp?trace=1"))
        .header("accept", MCP_ACCEPT)
        .header("authorization", format!("Bearer {}", tokens.access))
        .header("cookie", "session=client-cookie-7a6b")
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-param-region", "eu")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-user", "admin")
        .header("x-forwarded-email", "admin@example.com")
        .header("x-forwarded-groups", "admins")
        .header("x-auth-request-user", "admin")
        .header("remote-user", "admin")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "the upstream accepted the proxy's credential"
    );

    let requests = upstream.requests().await;
    let mcp: Vec<_> = requests
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/mcp")))
        .collect();
    assert_eq!(mcp.len(), 1, "{requests:?}");
    let h = &mcp[0]["headers"];
    assert_eq!(h["authorization"], format!("Bearer {UPSTREAM_SECRET}"));
    assert!(
        h.get("cookie").is_none(),
        "cookie must not reach the upstream: {h}"
    );
    assert_eq!(h["mcp-protocol-version"], "2025-06-18");
    assert_eq!(h["mcp-param-region"], "eu");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], format!("127.0.0.1:{}", proxy.port));
    assert_eq!(mcp[0]["query"], "?trace=1", "the query string passes");
    for spoofed in [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-auth-request-user",
        "remote-user",
    ] {
        assert!(
            h.get(spoofed).is_none(),
            "a client's {spoofed} must not reach the upstream: {h}"
        );
    }

    let logs = proxy.logs();
    for secret in [
        UPSTREAM_SECRET,
        &tokens.access,
        &tokens.refresh,
        "client-cookie-7a6b",
        crate::oauth_client::PASSWORD,
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
    assert!(
        logs.contains("status=200") && logs.contains("route=notes"),
        "one access line per request:\n{logs}"
    );
}

/// Reads an SSE body and returns each `data:` line with the time it arrived.
async fn timed_events(res: reqwest::Response, started: Instant) -> Vec<(String, Duration)> {
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                events.push((data.to_string(), started.elapsed()));
            }
        }
    }
    events
}

#[tokio::test]
async fn sse_events_arrive_as_the_upstream_sends_them() {
    let upstream = NodeUpstream::start(&[]);
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, "", &upstream.url("/_sse"))).await;
    let client = authed(&proxy).await;
    let started = Instant::now();
    let res = client
        .get(proxy.url("/notes/mcp?count=5&interval_ms=300"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let events = timed_events(res, started).await;
    assert_eq!(events.len(), 5, "{events:?}");
    // The upstream sends one event every 300 ms: had the proxy buffered, they would arrive together.
    for pair in events.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= Duration::from_millis(150),
            "events arrived together: {events:?}"
        );
    }
    assert!(
        events[0].1 < Duration::from_millis(1000),
        "first event was held back: {events:?}"
    );
}

#[tokio::test]
async fn tool_progress_streams_through_over_mcp() {
    let upstream = NodeUpstream::start(&[]);
    let proxy = Proxy::start(|port, dir| simple_config(port, dir, "", &upstream.url("/mcp"))).await;
    let client = authed(&proxy).await;
    let init = client
        .post(proxy.url("/notes/mcp"))
        .header("accept", MCP_ACCEPT)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    let session = init.headers()["mcp-session-id"].clone();
    drop(init.bytes().await);
    let call = serde_json::json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "slow_stream", "arguments": {"count": 4, "interval_ms": 300}, "_meta": {"progressToken": "p1"}}
    });
    let started = Instant::now();
    let res = client
        .post(proxy.url("/notes/mcp"))
        .header("accept", MCP_ACCEPT)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = timed_events(res, started).await;
    let progress: Vec<_> = events
        .iter()
        .filter(|(d, _)| d.contains("notifications/progress"))
        .collect();
    assert_eq!(progress.len(), 4, "{events:?}");
    assert!(
        events.last().unwrap().0.contains("\"id\":7"),
        "the result comes last: {events:?}"
    );
    let spread = progress[3].1 - progress[0].1;
    assert!(
        spread >= Duration::from_millis(600),
        "progress arrived in one burst: {events:?}"
    );
}

#[tokio::test]
async fn client_disconnect_closes_the_upstream_stream() {
    let upstream = NodeUpstream::start(&[]);
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, "", &upstream.url("/_sse"))).await;
    let res = authed(&proxy)
        .await
        .get(proxy.url("/notes/mcp?count=1000&interval_ms=50"))
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    crate::common::wait_for(
        "upstream to see the stream closed",
        Duration::from_secs(10),
        || async {
            let reqs = upstream.requests().await;
            reqs.iter()
                .any(|r| {
                    r["path"].as_str().is_some_and(|p| p.starts_with("/_sse"))
                        && r["aborted"] == true
                })
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_silent_upstream_is_504() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = Proxy::start(|port, dir| {
        simple_config(port, dir, "", &format!("http://127.0.0.1:{closed}/mcp"))
    })
    .await;
    let res = authed(&proxy)
        .await
        .post(proxy.url("/notes/mcp"))
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");

    // An upstream that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let proxy = Proxy::start(|port, dir| {
        simple_config(
            port,
            dir,
            "    timeout: 500ms\n",
            &format!("http://127.0.0.1:{silent_port}/mcp"),
        )
    })
    .await;
    let res = authed(&proxy)
        .await
        .post(proxy.url("/notes/mcp"))
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "gateway_timeout");
}

#[tokio::test]
async fn healthz_answers() {
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, "", "http://127.0.0.1:9/mcp")).await;
    let res = reqwest::get(proxy.url("/healthz")).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = reqwest::get(proxy.url("/nope")).await.unwrap();
    assert_eq!(res.status(), 404);
}
