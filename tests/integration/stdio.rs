//! stdio routes (issue 15): the real proxy in front of `tests/node/stdio-server.mjs`
//! (a stdio MCP server written with the official TypeScript SDK), with every
//! process the proxy starts checked through `/proc`.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{MCP_ACCEPT, Proxy, initialize_body, root, wait_for};
use crate::oauth_client::*;

const ROUTE: &str = "/notes/mcp";

/// A config with one stdio route at `/notes/mcp`; `upstream_extra` goes under
/// `upstream:` (indented 6), `route_extra` under the route (indented 4).
fn stdio_config(
    port: u16,
    dir: &Path,
    args: &str,
    upstream_extra: &str,
    route_extra: &str,
) -> String {
    format!(
        r#"listen: "127.0.0.1:{port}"
public_url: "http://127.0.0.1:{port}"
state:
  dir: {state}
server:
  shutdown_grace: 2s
  header_read_timeout: 5s
  sse_keepalive: 2s
users:
  - name: alice
    password_hash: "{hash}"
  - name: bob
    password_hash: "{hash}"
routes:
  - name: notes
    path: /notes/mcp
    upstream:
      command: ["node", "{server}"{args}]
{upstream_extra}{route_extra}"#,
        state = dir.join("state").display(),
        hash = PASSWORD_HASH,
        server = root().join("tests/node/stdio-server.mjs").display(),
    )
}

async fn start(upstream_extra: &str, route_extra: &str) -> Proxy {
    start_with("", upstream_extra, route_extra).await
}

async fn start_with(args: &str, upstream_extra: &str, route_extra: &str) -> Proxy {
    Proxy::start(|port, dir| stdio_config(port, dir, args, upstream_extra, route_extra)).await
}

/// An access token for `user` (password flow through the real pages).
async fn token_as(proxy: &Proxy, user: &str, extra: &[(&str, &str)]) -> String {
    let client_id = register_public(proxy).await;
    let mut browser = Browser::default();
    let res = login(
        &mut browser,
        proxy,
        &authorize_url(proxy, &client_id, extra),
        user,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 200, "the consent page for {user}");
    let page = res.text().await.unwrap();
    let q = decide(&mut browser, proxy, &page, "allow").await;
    let (status, body) = exchange(proxy, &client_id, &q["code"]).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

fn client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The JSON-RPC messages of an answer, JSON or event stream.
async fn messages(res: reqwest::Response) -> Vec<Value> {
    let is_stream = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = res.text().await.unwrap();
    if !is_stream {
        return vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))];
    }
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

struct Session {
    http: reqwest::Client,
    url: String,
    id: String,
}

impl Session {
    async fn open(proxy: &Proxy, token: &str) -> Session {
        let http = client(token);
        let url = proxy.url(ROUTE);
        let res = http
            .post(&url)
            .header("accept", MCP_ACCEPT)
            .json(&initialize_body())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        assert_eq!(res.headers()["content-type"], "application/json");
        let id = res.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let init = messages(res).await.remove(0);
        assert_eq!(init["id"], 1, "{init}");
        assert_eq!(
            init["result"]["serverInfo"]["name"], "stdio-test-server",
            "{init}"
        );
        let s = Session { http, url, id };
        let res = s
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(res.status(), 202);
        s
    }

    async fn post(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(&self.url)
            .header("accept", MCP_ACCEPT)
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", "2025-06-18")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Calls a tool; the last message of the answer.
    async fn call(&self, tool: &str, arguments: Value) -> Value {
        let res = self
            .post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}))
            .await;
        assert_eq!(res.status(), 200);
        messages(res).await.pop().unwrap()
    }

    /// The JSON text a tool returned, parsed.
    async fn call_json(&self, tool: &str) -> Value {
        let answer = self.call(tool, json!({})).await;
        let text = answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        serde_json::from_str(text).unwrap()
    }

    async fn pid(&self) -> u32 {
        self.call_json("pid").await["pid"].as_u64().unwrap() as u32
    }

    async fn delete(&self) -> reqwest::StatusCode {
        self.http
            .delete(&self.url)
            .header("mcp-session-id", &self.id)
            .send()
            .await
            .unwrap()
            .status()
    }
}

// ---------------------------------------------------------------------------
// /proc

/// (ppid, process group, state) of a live process.
fn stat(pid: u32) -> Option<(u32, u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((ppid, pgrp, state))
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The children of `parent` (zombies included).
fn children_of(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| stat(*p).is_some_and(|s| s.0 == parent))
        .collect()
}

/// The live processes left in these process groups (a zombie there is not the
/// proxy's: its own children are checked with [`children_of`]).
fn left_in_groups(groups: &HashSet<u32>) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| stat(*p).is_some_and(|s| groups.contains(&s.1) && s.2 != 'Z'))
        .collect()
}

async fn wait_until_gone(proxy_pid: Option<u32>, groups: &HashSet<u32>, what: &str) {
    wait_for(what, Duration::from_secs(20), || {
        let kids = proxy_pid.map(children_of).unwrap_or_default();
        let left = left_in_groups(groups);
        async move { (kids.is_empty() && left.is_empty()).then_some(()) }
    })
    .await;
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_stdio_server_behind_a_route_answers_in_json_and_event_streams() {
    let proxy = start("", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let s = Session::open(&proxy, &token).await;
    let proxy_pid = proxy.child.as_ref().unwrap().id();

    // The child is the proxy's, in a process group of its own.
    let pid = s.pid().await;
    let (ppid, pgrp, _) = stat(pid).unwrap();
    assert_eq!((ppid, pgrp), (proxy_pid, pid));

    // A client that takes only JSON gets JSON; one that takes both, an event stream.
    let res = s
        .http
        .post(&s.url)
        .header("accept", "application/json")
        .header("mcp-session-id", &s.id)
        .json(&json!({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
    let list = messages(res).await.remove(0);
    let res = s
        .post(&json!({"jsonrpc": "2.0", "id": "list2", "method": "tools/list"}))
        .await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(messages(res).await.remove(0)["result"], list["result"]);
    assert_eq!(list["id"], "list");
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"pid"),
        "{names:?}"
    );

    let echo = s.call("echo", json!({"message": "hé \"there\""})).await;
    assert_eq!(echo["id"], 9);
    assert_eq!(echo["result"]["content"][0]["text"], "hé \"there\"");

    // Progress first: the answer becomes an event stream, each event as it happens.
    let started = Instant::now();
    let res = s
        .post(&json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
            "params": {"name": "slow", "arguments": {"ms": 900, "steps": 3}, "_meta": {"progressToken": "p"}}}))
        .await;
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let mut body = res.bytes_stream();
    let mut seen: Vec<(Value, Duration)> = Vec::new();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(d) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                seen.push((serde_json::from_str(d).unwrap(), started.elapsed()));
            }
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    for (i, (m, _)) in seen.iter().take(3).enumerate() {
        assert_eq!(m["method"], "notifications/progress");
        assert_eq!(m["params"]["progressToken"], "p", "the client's own token");
        assert_eq!(m["params"]["progress"], i + 1);
    }
    assert!(
        seen[2].1 - seen[0].1 >= Duration::from_millis(400),
        "not buffered: {seen:?}"
    );
    assert_eq!(seen[3].0["id"], 10);

    // Notifications from the server go to the GET stream.
    let get = s
        .http
        .get(&s.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &s.id)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let mut stream = get.bytes_stream();
    assert_eq!(
        s.call("log", json!({})).await["result"]["content"][0]["text"],
        "logged"
    );
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(first.contains("hello from the log tool"), "{first}");

    // DELETE ends the session and its process.
    assert_eq!(s.delete().await, 200);
    let again = s
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .await;
    assert_eq!(again.status(), 404);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32001);
    wait_until_gone(
        Some(proxy_pid),
        &HashSet::from([pid]),
        "the process to stop after DELETE",
    )
    .await;
    let logs = proxy.logs();
    assert!(
        logs.contains("stdio server stderr: stdio-test-server: started"),
        "{logs}"
    );
    assert!(logs.contains("route=notes"), "{logs}");
}

#[tokio::test]
async fn requests_without_a_session_or_with_anothers_session_are_refused() {
    let proxy = start("", "").await;
    let alice = token_as(&proxy, "alice", &[]).await;
    let bob = token_as(&proxy, "bob", &[]).await;
    let s = Session::open(&proxy, &alice).await;

    // No session, and not a 2026-07-28 request: initialize first.
    let res = client(&alice)
        .post(proxy.url(ROUTE))
        .header("accept", MCP_ACCEPT)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    refusal(res, 400, 1, -32600).await;

    // Bob with alice's session id.
    let stolen = Session {
        http: client(&bob),
        url: s.url.clone(),
        id: s.id.clone(),
    };
    let res = stolen
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(stolen.delete().await, 404);
    let res = stolen
        .http
        .get(&s.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &s.id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Bad input: clear errors, never a 5xx.
    for (body, status) in [
        ("[]", 400),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}",
            400,
        ),
        ("not json", 400),
        ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", 400),
    ] {
        let res = s
            .http
            .post(&s.url)
            .header("accept", MCP_ACCEPT)
            .header("content-type", "application/json")
            .header("mcp-session-id", &s.id)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{body}");
    }
    let res = s
        .http
        .post(&s.url)
        .header("accept", "text/html")
        .header("mcp-session-id", &s.id)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 406);
    // The session still works.
    assert!(s.pid().await > 1);
}

#[tokio::test]
async fn two_users_never_share_a_process() {
    for per in ["session", "user"] {
        let proxy = start(&format!("      per: {per}\n"), "").await;
        let alice = token_as(&proxy, "alice", &[]).await;
        let bob = token_as(&proxy, "bob", &[]).await;
        let (a1, b1) = tokio::join!(Session::open(&proxy, &alice), Session::open(&proxy, &bob));
        let a2 = Session::open(&proxy, &alice).await;
        let (pa1, pb1, pa2) = (a1.pid().await, b1.pid().await, a2.pid().await);
        assert_ne!(pa1, pb1, "per {per}: alice and bob");
        if per == "user" {
            assert_eq!(pa1, pa2, "per user: alice's sessions share her process");
            // The second session got the first one's initialize result, under its own id.
            assert_eq!(a2.call_json("pid").await["calls"], 3);
            // DELETE of one session leaves the user's process to her other session.
            assert_eq!(a1.delete().await, 200);
            assert_eq!(a2.pid().await, pa1);
        } else {
            assert_ne!(pa1, pa2, "per session: one process per session");
        }
    }
}

#[tokio::test]
async fn tools_list_filtering_and_tools_call_enforcement_apply_to_stdio_routes() {
    let scopes = "    scopes:\n      \"notes:read\": [\"echo\", \"pid\", \"slow\"]\n      \"notes:admin\": [\"crash\"]\n    default_scopes: [\"notes:read\"]\n";
    let proxy = start("", scopes).await;
    let token = token_as(&proxy, "alice", &[]).await;
    let s = Session::open(&proxy, &token).await;
    // JSON answer.
    let list = messages(
        s.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
            .await,
    )
    .await;
    let mut names: Vec<String> = list[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["echo", "pid", "slow"]);
    // A tool of another scope: step-up; a tool of no scope: refused. Neither reaches the child.
    let res = s.post(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "crash"}})).await;
    assert_eq!(res.status(), 403);
    let refused = s.call("garbage", json!({})).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(
        s.call_json("pid").await["calls"],
        1,
        "the child saw only allowed calls"
    );
}

#[tokio::test]
async fn the_childs_environment_is_exactly_env_plus_path_home_lang() {
    let proxy = Proxy::start_with(
        |port, dir| {
            stdio_config(
                port,
                dir,
                "",
                "      env: {API_KEY: \"${STDIO_TEST_KEY}\", MODE: plain}\n",
                "",
            )
        },
        &[
            ("STDIO_TEST_KEY", "key-4242-secret"),
            ("PROXY_ONLY_SECRET", "never-in-child"),
            ("LANG", "C.UTF-8"),
        ],
    )
    .await;
    let token = token_as(&proxy, "alice", &[]).await;
    let s = Session::open(&proxy, &token).await;
    let env = s.call_json("env").await;
    let mut keys: Vec<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    let mut expected = vec!["API_KEY", "LANG", "MODE", "PATH"];
    if std::env::var_os("HOME").is_some() {
        expected.push("HOME");
    }
    expected.sort();
    assert_eq!(keys, expected, "{env}");
    assert_eq!(env["API_KEY"], "key-4242-secret");
    assert!(
        !proxy.logs().contains("key-4242-secret"),
        "{}",
        proxy.logs()
    );
}

#[tokio::test]
async fn a_crash_mid_request_is_a_json_rpc_error_and_the_next_initialize_starts_a_fresh_process() {
    let proxy = start("", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let s = Session::open(&proxy, &token).await;
    let pid = s.pid().await;
    let crash = s.call("crash", json!({})).await;
    assert_eq!(crash["id"], 9, "{crash}");
    assert_eq!(crash["error"]["code"], -32603, "{crash}");
    let message = crash["error"]["message"].as_str().unwrap();
    assert!(message.contains("exited (exit status 3)"), "{message}");
    let after = s
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .await;
    assert_eq!(after.status(), 404, "the session ended with its process");
    let s2 = Session::open(&proxy, &token).await;
    assert_ne!(s2.pid().await, pid);

    // A child killed from outside: the same.
    let killed = s2.pid().await;
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &killed.to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_for("the killed session to end", Duration::from_secs(10), || {
        let s2 = &s2;
        async move {
            let res = s2
                .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
                .await;
            (res.status() == 404).then_some(())
        }
    })
    .await;
    let s3 = Session::open(&proxy, &token).await;
    let fresh = s3.pid().await;
    assert!(fresh != killed && fresh != pid);
    assert!(
        proxy.logs().contains("killed by signal 9"),
        "{}",
        proxy.logs()
    );
}

#[tokio::test]
async fn garbage_or_an_overlong_line_from_the_child_ends_its_session_with_a_clear_error() {
    let proxy = start("", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let s = Session::open(&proxy, &token).await;
    let answer = s.call("garbage", json!({})).await;
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(message.contains("not JSON-RPC"), "{message}");
    assert_eq!(
        s.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .await
            .status(),
        404
    );

    let s = Session::open(&proxy, &token).await;
    let answer = s.call("huge", json!({"bytes": 17 * 1024 * 1024})).await;
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(message.contains("over the size limit"), "{message}");
}

#[tokio::test]
async fn a_sampling_request_from_the_child_reaches_the_client_and_its_answer_goes_back() {
    let proxy = start("", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let http = client(&token);
    let mut init = initialize_body();
    init["params"]["capabilities"] = json!({"sampling": {}});
    let res = http
        .post(proxy.url(ROUTE))
        .header("accept", MCP_ACCEPT)
        .json(&init)
        .send()
        .await
        .unwrap();
    let s = Session {
        id: res.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string(),
        http,
        url: proxy.url(ROUTE),
    };
    drop(res.bytes().await);
    s.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    // Without a GET stream, the request travels on the call's own event stream.
    let res = s
        .post(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "sample", "arguments": {"prompt": "hi"}}}))
        .await;
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = res.bytes_stream();
    let mut buf = String::new();
    let mut result = None;
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some(d) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let m: Value = serde_json::from_str(d).unwrap();
            if m["method"] == "sampling/createMessage" {
                let answer = json!({"jsonrpc": "2.0", "id": m["id"], "result": {
                    "role": "assistant", "model": "test", "content": {"type": "text", "text": "the model says hi"}}});
                assert_eq!(s.post(&answer).await.status(), 202);
            } else if m["id"] == 5 {
                result = Some(m);
            }
        }
    }
    let result = result.expect("the call's answer");
    assert_eq!(
        result["result"]["content"][0]["text"], "sampled: the model says hi",
        "{result}"
    );

    // With a GET stream open, it goes there.
    let get = s
        .http
        .get(&s.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &s.id)
        .send()
        .await
        .unwrap();
    let mut stream = get.bytes_stream();
    let call = tokio::spawn({
        let (http, url, id) = (s.http.clone(), s.url.clone(), s.id.clone());
        async move {
            let res = http
                .post(&url)
                .header("accept", "application/json")
                .header("mcp-session-id", &id)
                .json(&json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "sample", "arguments": {"prompt": "again"}}}))
                .send()
                .await
                .unwrap();
            messages(res).await.remove(0)
        }
    });
    let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk).to_string();
    let request: Value =
        serde_json::from_str(text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(request["method"], "sampling/createMessage");
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {
        "role": "assistant", "model": "test", "content": {"type": "text", "text": "second"}}});
    assert_eq!(s.post(&answer).await.status(), 202);
    let result = call.await.unwrap();
    assert_eq!(
        result["result"]["content"][0]["text"], "sampled: second",
        "{result}"
    );
}

#[tokio::test]
async fn max_processes_refuses_a_flood_of_initialize_with_503_and_no_process_leaks() {
    let proxy = start("      max_processes: 3\n", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let proxy_pid = proxy.child.as_ref().unwrap().id();
    let http = client(&token);
    let flood = (0..12).map(|i| {
        let http = http.clone();
        let url = proxy.url(ROUTE);
        async move {
            let mut body = initialize_body();
            body["id"] = json!(i);
            let res = http
                .post(url)
                .header("accept", MCP_ACCEPT)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let session = res
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = res.json().await.unwrap();
            (status, session, body)
        }
    });
    let results = futures_util::future::join_all(flood).await;
    let ok: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!((ok.len(), busy.len()), (3, 9), "{results:?}");
    for (_, _, body) in &busy {
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_processes 3"),
            "{body}"
        );
        assert!(
            body["id"].is_number(),
            "the answer names the request: {body}"
        );
    }
    assert_eq!(children_of(proxy_pid).len(), 3);
    for (_, session, _) in &ok {
        let s = Session {
            http: http.clone(),
            url: proxy.url(ROUTE),
            id: session.clone().unwrap(),
        };
        assert_eq!(s.delete().await, 200);
    }
    wait_until_gone(
        Some(proxy_pid),
        &HashSet::new(),
        "every child to be reaped after DELETE",
    )
    .await;
    // Room again.
    Session::open(&proxy, &token).await;
}

#[tokio::test]
async fn abandoned_sessions_and_abrupt_disconnects_leave_no_process_after_the_idle_timeout() {
    let proxy = start("      idle_timeout: 1s\n", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let proxy_pid = proxy.child.as_ref().unwrap().id();
    let mut groups = HashSet::new();
    for _ in 0..3 {
        let s = Session::open(&proxy, &token).await;
        let pid = s.pid().await;
        groups.insert(pid);
        // Something the child started itself, in its group.
        let grandchild = s.call_json("grandchild").await["pid"].as_u64().unwrap() as u32;
        assert_eq!(stat(grandchild).unwrap().1, pid);
        // A call whose client goes away mid-stream, and a GET stream dropped.
        let res = s
            .post(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "slow", "arguments": {"ms": 3000, "steps": 3}, "_meta": {"progressToken": 1}}}))
            .await;
        let mut body = res.bytes_stream();
        let _ = body.next().await;
        drop(body);
        let get = s
            .http
            .get(&s.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &s.id)
            .send()
            .await
            .unwrap();
        drop(get);
    }
    // The last one at least is still busy with its call (the child does not stop on a cancellation).
    assert!(!children_of(proxy_pid).is_empty());
    let started = Instant::now();
    wait_until_gone(
        Some(proxy_pid),
        &groups,
        "idle processes and their groups to be gone",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        proxy.logs().contains("stopped after its idle timeout"),
        "{}",
        proxy.logs()
    );
}

#[tokio::test]
async fn sigterm_stops_every_child_even_a_stubborn_one_before_the_proxy_exits() {
    let mut proxy = start_with(", \"--stubborn\"", "", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let proxy_pid = proxy.child.as_ref().unwrap().id();
    let mut groups = HashSet::new();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let s = Session::open(&proxy, &token).await;
        groups.insert(s.pid().await);
        s.call_json("grandchild").await;
        sessions.push(s);
    }
    let started = Instant::now();
    proxy.signal("TERM");
    let status = proxy.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    // stdin closed, SIGTERM ignored, SIGKILL: about two grace periods.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        left_in_groups(&groups).is_empty(),
        "{:?}",
        left_in_groups(&groups)
    );
    assert!(children_of(proxy_pid).is_empty());
    assert!(
        proxy.logs().contains("stopping stdio servers"),
        "{}",
        proxy.logs()
    );
}

#[tokio::test]
async fn a_reload_that_removes_the_route_stops_its_processes() {
    let mut proxy = start("", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let proxy_pid = proxy.child.as_ref().unwrap().id();
    let s = Session::open(&proxy, &token).await;
    let pid = s.pid().await;
    // Same route, other limits: the process stays.
    let text = std::fs::read_to_string(&proxy.config_path).unwrap();
    std::fs::write(
        &proxy.config_path,
        text.replace("upstream:\n", "upstream:\n      max_processes: 7\n"),
    )
    .unwrap();
    proxy.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        let logs = proxy.logs();
        async move { logs.contains("configuration reloaded").then_some(()) }
    })
    .await;
    assert_eq!(s.pid().await, pid);
    // The route now goes to an HTTP upstream: its processes stop.
    let text = std::fs::read_to_string(&proxy.config_path).unwrap();
    let start = text.find("    upstream:\n").unwrap();
    let http_route = format!(
        "{}    upstream: \"http://127.0.0.1:9/mcp\"\n",
        &text[..start]
    );
    std::fs::write(&proxy.config_path, http_route).unwrap();
    proxy.signal("HUP");
    wait_until_gone(
        Some(proxy_pid),
        &HashSet::from([pid]),
        "the route's process to stop after the reload",
    )
    .await;
    let _ = &mut proxy;
}

#[tokio::test]
async fn the_childs_stderr_is_logged_line_by_line_and_rate_limited() {
    let proxy = start("", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let s = Session::open(&proxy, &token).await;
    s.call("stderr", json!({"lines": 500})).await;
    // The count of dropped lines is logged with the next line, or when stderr ends.
    assert_eq!(s.delete().await, 200);
    let logs = wait_for("the dropped-lines count", Duration::from_secs(15), || {
        let logs = proxy.logs();
        async move { logs.contains("lines dropped (rate limit)").then_some(logs) }
    })
    .await;
    let logged = logs
        .lines()
        .filter(|l| l.contains("stdio server stderr: stderr line"))
        .count();
    assert!((40..=120).contains(&logged), "{logged} lines logged");
    assert!(logs.contains("stderr line 0 of 500"), "{logs}");
}

#[tokio::test]
async fn a_server_that_dies_at_start_is_a_502_naming_its_exit_status_and_leaves_no_session() {
    // An unknown option: the server exits with status 1 before reading stdin.
    let proxy = start_with(", \"--no-such-option\"", "", "").await;
    let token = token_as(&proxy, "alice", &[]).await;
    let res = client(&token)
        .post(proxy.url(ROUTE))
        .header("accept", MCP_ACCEPT)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert!(res.headers().get("mcp-session-id").is_none());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], 1, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("exit status 1"), "{message}");
    let proxy_pid = proxy.child.as_ref().unwrap().id();
    wait_until_gone(
        Some(proxy_pid),
        &HashSet::new(),
        "the dead server to be reaped",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Clients of the 2026-07-28 revision (no session, no initialize), in front of
// the test server, which speaks only the initialize revisions: the proxy bridges.

const MODERN: &str = "2026-07-28";

/// A request as a 2026-07-28 client writes it: its version, capabilities and
/// identity in `_meta`.
fn modern_body(id: u64, method: &str, params: Value, capabilities: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "0"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POSTs it with the headers of the revision (`Mcp-Method`, `Mcp-Name`).
async fn modern_post(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    accept: &str,
) -> reqwest::Response {
    let mut req = http
        .post(url)
        .header("accept", accept)
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", body["method"].as_str().unwrap());
    if let Some(name) = body["params"]["name"].as_str() {
        req = req.header("mcp-name", name);
    }
    req.json(body).send().await.unwrap()
}

/// Every message of the answer (event stream or JSON).
async fn modern_all(http: &reqwest::Client, url: &str, body: &Value) -> Vec<Value> {
    let res = modern_post(http, url, body, MCP_ACCEPT).await;
    assert_eq!(res.status(), 200, "{body}");
    assert!(
        res.headers().get("mcp-session-id").is_none(),
        "no session in this revision"
    );
    messages(res).await
}

/// The answer's result (the last message).
async fn modern_result(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let answer = modern_all(http, url, body).await.pop().unwrap();
    assert_eq!(answer["id"], body["id"], "{answer}");
    answer["result"].clone()
}

/// A refusal: its HTTP status, and a JSON-RPC error with the request's id and
/// this code; the body, for more.
async fn refusal(res: reqwest::Response, status: u16, id: u64, code: i64) -> Value {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(id), json!(code)),
        "{body}"
    );
    body
}

/// A `tools/list` result names the tool.
fn lists_tool(result: &Value, name: &str) -> bool {
    result["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["name"] == name))
}

async fn modern_pid(http: &reqwest::Client, url: &str) -> (u64, u64) {
    let r = modern_result(
        http,
        url,
        &modern_body(
            3,
            "tools/call",
            json!({"name": "pid", "arguments": {}}),
            json!({}),
        ),
    )
    .await;
    let v: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
    (v["pid"].as_u64().unwrap(), v["calls"].as_u64().unwrap())
}

#[tokio::test]
async fn a_2026_07_28_client_uses_a_stdio_server_that_speaks_only_initialize() {
    let proxy = start("", "").await;
    let alice = client(&token_as(&proxy, "alice", &[]).await);
    let bob = client(&token_as(&proxy, "bob", &[]).await);
    let url = proxy.url(ROUTE);

    // server/discover, answered from the child's initialize result, in JSON.
    let res = modern_post(
        &alice,
        &url,
        &modern_body(1, "server/discover", json!({}), json!({})),
        "application/json",
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let d = messages(res).await.remove(0);
    assert_eq!(d["id"], 1, "{d}");
    let r = &d["result"];
    assert_eq!(r["supportedVersions"][0], MODERN, "{d}");
    assert!(
        r["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-06-18")),
        "initialize still works: {d}"
    );
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "stdio-test-server",
        "{d}"
    );
    assert!(r["capabilities"]["tools"].is_object(), "{d}");
    assert_eq!(
        (
            r["resultType"].clone(),
            r["cacheScope"].clone(),
            r["ttlMs"].clone()
        ),
        (json!("complete"), json!("private"), json!(0))
    );

    // A list, with the fields this revision requires of it.
    let r = modern_result(
        &alice,
        &url,
        &modern_body(2, "tools/list", json!({}), json!({})),
    )
    .await;
    assert!(lists_tool(&r, "pid"), "{r}");
    assert_eq!(
        (r["resultType"].clone(), r["cacheScope"].clone()),
        (json!("complete"), json!("private")),
        "{r}"
    );

    // Alice's requests share one process; her session has its own; bob's is another.
    let (pid, calls) = modern_pid(&alice, &url).await;
    assert_eq!(modern_pid(&alice, &url).await, (pid, calls + 1));
    let session = Session::open(&proxy, &token_as(&proxy, "alice", &[]).await).await;
    assert_ne!(
        u64::from(session.pid().await),
        pid,
        "modern requests never share a session's process"
    );
    let (bobs, _) = modern_pid(&bob, &url).await;
    assert_ne!(bobs, pid, "two users never share a process");

    // Progress on the call's event stream, under the client's own token.
    let mut call = modern_body(
        4,
        "tools/call",
        json!({"name": "slow", "arguments": {"ms": 300, "steps": 3}}),
        json!({}),
    );
    call["params"]["_meta"]["progressToken"] = json!("tok");
    let all = modern_all(&alice, &url, &call).await;
    let progress: Vec<&Value> = all
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{all:?}");
    assert!(
        progress
            .iter()
            .all(|m| m["params"]["progressToken"] == "tok"),
        "{all:?}"
    );
    assert_eq!(
        all.last().unwrap()["result"]["content"][0]["text"],
        "slept 300 ms"
    );
    assert_eq!(all.last().unwrap()["result"]["resultType"], "complete");

    // The processes: one for alice's requests, one for her session, one for bob.
    assert_eq!(children_of(proxy.child.as_ref().unwrap().id()).len(), 3);
}

#[tokio::test]
async fn a_legacy_servers_sampling_request_travels_as_input_required_and_the_retry_brings_the_answer()
 {
    let proxy = start("", "").await;
    let alice = client(&token_as(&proxy, "alice", &[]).await);
    let bob = client(&token_as(&proxy, "bob", &[]).await);
    let url = proxy.url(ROUTE);
    let sampling = json!({"sampling": {}});
    let sample = |id, extra: Value| {
        let mut b = modern_body(
            id,
            "tools/call",
            json!({"name": "sample", "arguments": {"prompt": "hi"}}),
            sampling.clone(),
        );
        for (k, v) in extra.as_object().unwrap() {
            b["params"][k] = v.clone();
        }
        b
    };

    let r = modern_result(&alice, &url, &sample(1, json!({}))).await;
    assert_eq!(r["resultType"], "input_required", "{r}");
    let requests = r["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{r}");
    let (key, asked) = requests.iter().next().unwrap();
    assert_eq!(asked["method"], "sampling/createMessage", "{r}");
    assert_eq!(
        asked["params"]["messages"][0]["content"]["text"], "hi",
        "{r}"
    );
    let state = r["requestState"].as_str().unwrap().to_string();
    let answer = json!({key.clone(): {"role": "assistant", "model": "m", "content": {"type": "text", "text": "the model says hi"}}});
    let retry = |id| {
        sample(
            id,
            json!({"inputResponses": answer.clone(), "requestState": state.clone()}),
        )
    };

    // Bob with alice's state (it is not his process's): refused, never alice's result.
    let stale = |answer: Value| {
        assert_eq!(answer["error"]["code"], -32602, "{answer}");
        assert!(answer.get("result").is_none(), "{answer}");
    };
    stale(modern_all(&bob, &url, &retry(2)).await.pop().unwrap());
    // Alice's retry of another tool with it: refused too, and hers still waits.
    let mut other = retry(3);
    other["params"]["name"] = json!("echo");
    let res = modern_post(&alice, &url, &other, MCP_ACCEPT).await;
    stale(messages(res).await.pop().unwrap());

    // A retry without the input asked for is asked again, under a new state.
    let r = modern_result(
        &alice,
        &url,
        &sample(4, json!({"requestState": state.clone()})),
    )
    .await;
    assert_eq!(r["resultType"], "input_required", "{r}");
    assert_eq!(
        r["inputRequests"][key]["method"], "sampling/createMessage",
        "{r}"
    );
    let again = r["requestState"].as_str().unwrap().to_string();
    assert_ne!(again, state);
    // The first state is spent.
    stale(modern_all(&alice, &url, &retry(5)).await.pop().unwrap());

    // Alice's retry gets the original request's answer, under the retry's id.
    let r = modern_result(
        &alice,
        &url,
        &sample(
            6,
            json!({"inputResponses": answer.clone(), "requestState": again}),
        ),
    )
    .await;
    assert_eq!(r["content"][0]["text"], "sampled: the model says hi", "{r}");
    assert_eq!(r["resultType"], "complete");

    // A client that did not declare sampling is never asked: -32021, 400.
    let call = modern_body(
        7,
        "tools/call",
        json!({"name": "sample", "arguments": {"prompt": "hi"}}),
        json!({}),
    );
    let answer = refusal(
        modern_post(&alice, &url, &call, MCP_ACCEPT).await,
        400,
        7,
        -32021,
    )
    .await;
    assert_eq!(
        answer["error"]["data"],
        json!({"requiredCapabilities": {"sampling": {}}}),
        "{answer}"
    );
    // The process goes on: the child's request was answered, the call cancelled.
    assert_eq!(
        modern_pid(&alice, &url).await.0,
        modern_pid(&alice, &url).await.0
    );
}

#[tokio::test]
async fn a_listen_stream_gets_a_legacy_servers_list_changes_tagged_with_its_id() {
    let proxy = start("", "").await;
    let alice = client(&token_as(&proxy, "alice", &[]).await);
    let url = proxy.url(ROUTE);
    let listen = modern_body(
        11,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "promptsListChanged": true}}),
        json!({}),
    );
    let res = modern_post(&alice, &url, &listen, MCP_ACCEPT).await;
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    let mut next = async || loop {
        if let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(d) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                return serde_json::from_str::<Value>(d).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a message on the listen stream")
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
    };
    let ack = next().await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        11
    );
    // The test server lists its tools' changes, not its prompts'.
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true}),
        "{ack}"
    );

    let r = modern_result(
        &alice,
        &url,
        &modern_body(
            12,
            "tools/call",
            json!({"name": "add-tool", "arguments": {}}),
            json!({}),
        ),
    )
    .await;
    assert_eq!(r["content"][0]["text"], "added-1", "{r}");
    let changed = next().await;
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 11,
        "{changed}"
    );
    let r = modern_result(
        &alice,
        &url,
        &modern_body(13, "tools/list", json!({}), json!({})),
    )
    .await;
    assert!(lists_tool(&r, "added-1"), "{r}");

    // A client that takes no event stream cannot listen.
    let res = modern_post(&alice, &url, &listen, "application/json").await;
    assert_eq!(res.status(), 406);
}

#[tokio::test]
async fn a_2026_07_28_request_with_a_missing_or_unsupported_version_is_refused_clearly() {
    let proxy = start("", "").await;
    let alice = client(&token_as(&proxy, "alice", &[]).await);
    let url = proxy.url(ROUTE);
    let list = modern_body(7, "tools/list", json!({}), json!({}));
    // A POST with exactly these headers (`modern_post` sets them from the body).
    let post = |version: &'static str, method: Option<&'static str>, body: &Value| {
        let mut req = alice
            .post(&url)
            .header("accept", MCP_ACCEPT)
            .header("mcp-protocol-version", version);
        if let Some(m) = method {
            req = req.header("mcp-method", m);
        }
        req.json(body).send()
    };

    let mut other = list.clone();
    other["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let body = refusal(
        post("2099-01-01", Some("tools/list"), &other)
            .await
            .unwrap(),
        400,
        7,
        -32022,
    )
    .await;
    assert_eq!(body["error"]["data"]["requested"], "2099-01-01");
    assert!(
        body["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN)),
        "{body}"
    );

    // The header says 2026-07-28, the body says nothing: its _meta is missing.
    let bare = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"});
    refusal(
        post(MODERN, Some("tools/list"), &bare).await.unwrap(),
        400,
        8,
        -32602,
    )
    .await;

    // Methods the revision removed, and unknown ones: 404 with -32601.
    for method in ["ping", "logging/setLevel", "no/such/method"] {
        let body = modern_body(9, method, json!({}), json!({}));
        refusal(
            modern_post(&alice, &url, &body, MCP_ACCEPT).await,
            404,
            9,
            -32601,
        )
        .await;
    }

    // The mirror headers are required: without Mcp-Method, -32020.
    let body = refusal(post(MODERN, None, &list).await.unwrap(), 400, 7, -32020).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Method"),
        "{body}"
    );

    // GET and DELETE are not part of the revision.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let res = alice
            .request(method.clone(), &url)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", MODERN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method}");
        assert_eq!(res.headers()["allow"], "POST");
    }
    // The refusals started no process; the methods, alice's one.
    assert_eq!(children_of(proxy.child.as_ref().unwrap().id()).len(), 1);
}
