//! MCP-aware routing against real upstreams: filtered tool lists, refused
//! calls that never reach the upstream, step-up, envelope checks, origins.

use serde_json::{Value, json};

use crate::common::{MCP_ACCEPT, NodeUpstream, Proxy, initialize_body, simple_config};
use crate::oauth_client::tokens;

const SCOPES: &str = r#"    scopes:
      "notes:read": ["read_note", "list_*", "echo"]
      "notes:write": ["write_note"]
    default_scopes: ["notes:read"]
"#;

struct Session {
    client: reqwest::Client,
    url: String,
    session: Option<String>,
}

impl Session {
    async fn open(proxy: &Proxy, scope: &str) -> Self {
        let t = tokens(proxy, &[("scope", scope)]).await;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "authorization",
            format!("Bearer {}", t.access).parse().unwrap(),
        );
        headers.insert("accept", MCP_ACCEPT.parse().unwrap());
        headers.insert("mcp-protocol-version", "2025-06-18".parse().unwrap());
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        let mut s = Session {
            client,
            url: proxy.url("/notes/mcp"),
            session: None,
        };
        let res = s.post(&initialize_body()).await;
        assert_eq!(res.status(), 200);
        s.session = res
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_string());
        let _ = res.bytes().await;
        s
    }

    async fn post(&self, body: &Value) -> reqwest::Response {
        let mut req = self.client.post(&self.url).json(body);
        if let Some(id) = &self.session {
            req = req.header("mcp-session-id", id);
        }
        req.send().await.unwrap()
    }

    /// The JSON-RPC message answering a request, whether the body is JSON or SSE.
    async fn answer(res: reqwest::Response) -> Value {
        let sse = res
            .headers()
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap().starts_with("text/event-stream"));
        let text = res.text().await.unwrap();
        if !sse {
            return serde_json::from_str(&text).unwrap();
        }
        text.split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .find(|m| m.get("id").is_some())
            .expect("an answer on the stream")
    }
}

fn tool_names(answer: &Value) -> Vec<String> {
    let mut names: Vec<String> = answer["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn call(id: u32, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

async fn calls_seen_by(upstream: &NodeUpstream, tool: &str) -> usize {
    upstream
        .requests()
        .await
        .iter()
        .filter(|r| {
            r["body"]
                .as_str()
                .is_some_and(|b| b.contains("tools/call") && b.contains(&format!("\"{tool}\"")))
        })
        .count()
}

#[tokio::test]
async fn tool_lists_are_filtered_in_json_and_sse_answers() {
    for mode in [&["--json"][..], &[][..]] {
        let upstream = NodeUpstream::start(mode);
        let proxy =
            Proxy::start(|port, dir| simple_config(port, dir, SCOPES, &upstream.url("/mcp"))).await;
        let read = Session::open(&proxy, "notes:read").await;
        let answer = Session::answer(
            read.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
                .await,
        )
        .await;
        assert_eq!(
            tool_names(&answer),
            vec!["echo", "list_notes", "read_note"],
            "mode {mode:?}"
        );
        let both = Session::open(&proxy, "notes:read notes:write").await;
        let answer = Session::answer(
            both.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
                .await,
        )
        .await;
        assert_eq!(
            tool_names(&answer),
            vec!["echo", "list_notes", "read_note", "write_note"],
            "mode {mode:?}"
        );
    }
}

#[tokio::test]
async fn a_route_without_scopes_shows_every_tool() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(|port, dir| simple_config(port, dir, "", &upstream.url("/mcp"))).await;
    let s = Session::open(&proxy, "").await;
    let answer = Session::answer(
        s.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
            .await,
    )
    .await;
    assert_eq!(tool_names(&answer).len(), 6, "{answer}");
}

#[tokio::test]
async fn calls_outside_the_scopes_never_reach_the_upstream() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, SCOPES, &upstream.url("/mcp"))).await;
    let s = Session::open(&proxy, "notes:read").await;

    let ok = Session::answer(s.post(&call(3, "echo", json!({"message": "hi"}))).await).await;
    assert_eq!(ok["result"]["content"][0]["text"], "hi", "{ok}");

    // Another scope would allow it: 403 step-up.
    let res = s
        .post(&call(4, "write_note", json!({"id": "x", "text": "y"})))
        .await;
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"notes:read notes:write\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/notes/mcp\"",
            proxy.base()
        )),
        "{challenge}"
    );

    // No scope allows it: a JSON-RPC error for an unknown tool.
    let res = s
        .post(&call(5, "delete_note", json!({"id": "welcome"})))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["id"].as_u64(), body["error"]["code"].as_i64()),
        (Some(5), Some(-32602)),
        "{body}"
    );

    assert_eq!(calls_seen_by(&upstream, "write_note").await, 0);
    assert_eq!(calls_seen_by(&upstream, "delete_note").await, 0);
    assert_eq!(calls_seen_by(&upstream, "echo").await, 1);

    let logs = proxy.logs();
    let audit: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("tool call refused"))
        .collect();
    assert_eq!(audit.len(), 2, "{logs}");
    assert!(
        audit[0].contains("user=alice")
            && audit[0].contains("route=notes")
            && audit[0].contains("tool=write_note")
            && audit[0].contains("missing_scope=notes:write"),
        "{}",
        audit[0]
    );
    assert!(audit[1].contains("tool=delete_note"), "{}", audit[1]);
}

#[tokio::test]
async fn batches_are_inspected_element_by_element() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, SCOPES, &upstream.url("/mcp"))).await;
    let s = Session::open(&proxy, "notes:read").await;
    let res = s
        .post(&json!([
            call(1, "echo", json!({"message": "a"})),
            call(2, "delete_note", json!({"id": "x"}))
        ]))
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body[0]["error"]["code"], -32600, "{body}");
    assert_eq!(body[1]["error"]["code"], -32602, "{body}");
    assert_eq!(
        calls_seen_by(&upstream, "echo").await,
        0,
        "a refused batch is not forwarded at all"
    );
    let res = s
        .post(&json!([
            call(1, "echo", json!({"message": "a"})),
            call(2, "write_note", json!({"id": "x", "text": "y"}))
        ]))
        .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn bad_envelopes_are_answered_by_the_proxy() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, SCOPES, &upstream.url("/mcp"))).await;
    let s = Session::open(&proxy, "notes:read").await;
    let before = upstream.requests().await.len();

    let res = s
        .client
        .post(&s.url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700);

    let res = s
        .client
        .post(&s.url)
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], -32600);

    // 2026-07-28 mirror headers must agree with the body.
    let res = s
        .client
        .post(&s.url)
        .header("mcp-method", "tools/list")
        .json(&call(1, "echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = s
        .client
        .post(&s.url)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "read_note")
        .json(&call(1, "echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    assert_eq!(
        upstream.requests().await.len(),
        before,
        "none of these reached the upstream"
    );

    // Matching headers and unknown Mcp-Param-* pass through.
    let res = s
        .post_with(
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
                ("mcp-param-region", "eu"),
            ],
            &call(9, "echo", json!({"message": "m"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let last = upstream.requests().await.pop().unwrap();
    assert_eq!(last["headers"]["mcp-param-region"], "eu");
    assert_eq!(last["headers"]["mcp-name"], "echo");
}

impl Session {
    async fn post_with(&self, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
        let mut req = self.client.post(&self.url).json(body);
        if let Some(id) = &self.session {
            req = req.header("mcp-session-id", id);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, SCOPES, &upstream.url("/mcp"))).await;
    let s = Session::open(&proxy, "notes:read").await;
    // A request with an unknown session: the SDK server answers 404 with its own JSON-RPC body.
    let res = s
        .client
        .post(&s.url)
        .header("mcp-session-id", "no-such-session")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.text().await.unwrap();
    let direct = reqwest::Client::new()
        .post(upstream.url("/mcp"))
        .header("accept", MCP_ACCEPT)
        .header("mcp-session-id", "no-such-session")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status, direct.status());
    assert_eq!(body, direct.text().await.unwrap());
}

#[tokio::test]
async fn foreign_browser_origins_are_refused() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(|port, dir| {
        simple_config(port, dir, SCOPES, &upstream.url("/mcp")).replace(
            "  header_read_timeout: 2s\n",
            "  header_read_timeout: 2s\n  allowed_origins: [\"http://localhost:6274\"]\n",
        )
    })
    .await;
    let s = Session::open(&proxy, "notes:read").await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    assert_eq!(
        s.post_with(&[("origin", "http://evil.example")], &list)
            .await
            .status(),
        403
    );
    assert_eq!(
        s.post_with(&[("origin", &proxy.base())], &list)
            .await
            .status(),
        200
    );
    assert_eq!(
        s.post_with(&[("origin", "http://localhost:6274")], &list)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_mcp_session_belongs_to_whoever_opened_it() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(|port, dir| simple_config(port, dir, "", &upstream.url("/mcp"))).await;
    let alice = Session::open(&proxy, "").await;
    let other = Session::open(&proxy, "").await;
    let stolen = Session {
        client: other.client.clone(),
        url: other.url.clone(),
        session: alice.session.clone(),
    };
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    assert_eq!(alice.post(&list).await.status(), 200);
    assert_eq!(
        stolen.post(&list).await.status(),
        404,
        "another client cannot continue alice's session"
    );
    // A second copy of the header would reach the upstream unchecked: refused whole.
    let sessions = [other.session.clone(), alice.session.clone()];
    let mut req = other.client.post(&other.url).json(&list);
    for id in sessions.iter().flatten() {
        req = req.header("mcp-session-id", id);
    }
    let before = upstream.requests().await.len();
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 400, "two Mcp-Session-Id headers");
    assert_eq!(
        upstream.requests().await.len(),
        before,
        "the upstream never saw it"
    );
}

#[tokio::test]
async fn an_upstream_refusing_the_proxys_credential_is_a_502() {
    let upstream = NodeUpstream::start(&["--json", "--token", "right"]);
    let proxy = Proxy::start(|port, dir| {
        simple_config(
            port,
            dir,
            "    upstream_auth:\n      bearer: wrong\n",
            &upstream.url("/mcp"),
        )
    })
    .await;
    let t = tokens(&proxy, &[]).await;
    let res = reqwest::Client::new()
        .post(proxy.url("/notes/mcp"))
        .bearer_auth(&t.access)
        .header("accept", MCP_ACCEPT)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert!(
        res.headers().get("www-authenticate").is_none(),
        "the upstream's challenge is not the client's business"
    );
    // The log line is written after the answer: wait for it.
    crate::common::wait_for("the log line", std::time::Duration::from_secs(5), || {
        let logged = proxy
            .logs()
            .contains("refused the route's upstream_auth credential");
        async move { logged.then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn allowed_browser_origins_get_cors() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(|port, dir| {
        simple_config(port, dir, "", &upstream.url("/mcp")).replace(
            "  header_read_timeout: 2s\n",
            "  header_read_timeout: 2s\n  allowed_origins: [\"http://localhost:6274\"]\n",
        )
    })
    .await;
    let res = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, proxy.url("/notes/mcp"))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://localhost:6274"
    );
    assert!(
        res.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("mcp-session-id")
    );
    let res = reqwest::Client::new()
        .post(proxy.url("/notes/mcp"))
        .header("origin", "http://localhost:6274")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://localhost:6274"
    );
    assert!(
        res.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("www-authenticate")
    );
}
