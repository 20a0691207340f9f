//! Prometheus metrics and readiness on the admin listener (issue 13): a scripted
//! session moves the counters by the expected amounts, read back through a
//! Prometheus text-format parser.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    MCP_ACCEPT, NodeUpstream, Proxy, admin_url, free_port, initialize_body, simple_config,
    wait_for, with_admin,
};
use crate::oauth_client::{Browser, USER, authorize_url, login, refresh, register_public, tokens};

const SCOPES: &str = r#"    scopes:
      "notes:read": ["read_note", "list_*", "echo"]
      "notes:write": ["write_note"]
    default_scopes: ["notes:read"]
  - name: down
    path: /down/mcp
    upstream: "http://127.0.0.1:9/mcp"
"#;

/// The config of these tests: `simple_config` with an admin listener on `admin`.
fn config(port: u16, dir: &std::path::Path, upstream: &str, admin: u16) -> String {
    with_admin(&simple_config(port, dir, SCOPES, upstream), admin)
}

struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    async fn of(proxy: &Proxy) -> Self {
        let res = reqwest::get(admin_url(proxy, "/metrics")).await.unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Scrape(prometheus_parse::Scrape::parse(lines).unwrap())
    }

    /// The value of the sample `name` with exactly these labels (0 when absent).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.0.samples.iter().find(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
        });
        match found.map(|s| &s.value) {
            None => 0.0,
            Some(
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v),
            ) => *v,
            Some(other) => panic!("{name}: not a number: {other:?}"),
        }
    }

    /// How many observations the histogram `name` with these labels holds.
    fn observations(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found =
            self.0.samples.iter().find(|s| {
                s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            });
        match found.map(|s| &s.value) {
            Some(prometheus_parse::Value::Histogram(buckets)) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            other => panic!("{name}: not a histogram: {other:?}"),
        }
    }
}

async fn mcp_post(
    token: Option<&str>,
    url: &str,
    session: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", MCP_ACCEPT)
        .header("mcp-protocol-version", "2025-06-18")
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.unwrap()
}

fn call(id: u32, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

#[tokio::test]
async fn a_scripted_session_moves_the_counters_by_what_it_did() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy =
        Proxy::start(|port, dir| config(port, dir, &upstream.url("/mcp"), free_port())).await;
    let notes = proxy.url("/notes/mcp");
    let before = Scrape::of(&proxy).await;
    let requests = "mcp_oauth_proxy_http_requests_total";
    let on_notes =
        |m: &'static str, s: &'static str| [("route", "notes"), ("method", m), ("status", s)];
    assert_eq!(before.value(requests, &on_notes("POST", "2xx")), 0.0);
    assert_eq!(
        before.value(
            "mcp_oauth_proxy_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(before.value("mcp_oauth_proxy_config_loaded_timestamp_seconds", &[]) > 1.7e9);

    // No token: refused as missing.
    let res = mcp_post(None, &notes, None, &initialize_body()).await;
    assert_eq!(res.status(), 401);
    // A failed login, then a whole flow: registration, login, consent, token.
    let client_id = register_public(&proxy).await;
    let mut browser = Browser::default();
    let failed = login(
        &mut browser,
        &proxy,
        &authorize_url(&proxy, &client_id, &[]),
        "alice",
        "wrong",
    )
    .await;
    assert_eq!(failed.status(), 401);
    let t = tokens(&proxy, &[("scope", "notes:read")]).await;

    // initialize, tools/list, a step-up refusal, a refused tools/call.
    let res = mcp_post(Some(&t.access), &notes, None, &initialize_body()).await;
    assert_eq!(res.status(), 200);
    let session = res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let res = mcp_post(Some(&t.access), &notes, Some(&session), &list).await;
    assert_eq!(res.status(), 200);
    let res = mcp_post(
        Some(&t.access),
        &notes,
        Some(&session),
        &call(3, "write_note"),
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = mcp_post(
        Some(&t.access),
        &notes,
        Some(&session),
        &call(4, "delete_note"),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("-32602"));
    // The token is for `notes`: refused at `down` (audience).
    let down = proxy.url("/down/mcp");
    let res = mcp_post(Some(&t.access), &down, None, &initialize_body()).await;
    assert_eq!(res.status(), 401);
    // A refresh.
    let (status, body) = refresh(&proxy, &t.client_id, &t.refresh).await;
    assert_eq!(status, 200, "{body}");
    // A token for `down`, whose upstream does not listen: a connect error.
    let d = tokens(&proxy, &[("resource", &down)]).await;
    let res = mcp_post(Some(&d.access), &down, None, &initialize_body()).await;
    assert_eq!(res.status(), 502);
    // A reload.
    proxy.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || async {
        proxy
            .logs()
            .contains("configuration reloaded")
            .then_some(())
    })
    .await;

    // A reload of a broken file.
    let good = std::fs::read_to_string(&proxy.config_path).unwrap();
    std::fs::write(&proxy.config_path, good.replace("routes:", "routez:")).unwrap();
    proxy.signal("HUP");
    wait_for("the rejected reload", Duration::from_secs(10), || async {
        proxy.logs().contains("reload rejected").then_some(())
    })
    .await;
    std::fs::write(&proxy.config_path, good).unwrap();

    let after = Scrape::of(&proxy).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(
        moved(requests, &on_notes("POST", "2xx")),
        3.0,
        "initialize, tools/list, refused call"
    );
    assert_eq!(
        moved(requests, &on_notes("POST", "4xx")),
        2.0,
        "no token, step-up"
    );
    assert_eq!(
        moved(
            requests,
            &[("route", "-"), ("method", "POST"), ("status", "2xx")]
        ),
        6.0,
        "three registrations (201), three token requests"
    );
    assert_eq!(
        after.observations(
            "mcp_oauth_proxy_http_request_duration_seconds",
            &[("route", "notes")]
        ),
        5.0
    );
    let tokens_issued = "mcp_oauth_proxy_tokens_issued_total";
    assert_eq!(
        moved(tokens_issued, &[("grant", "authorization_code")]),
        2.0
    );
    assert_eq!(moved(tokens_issued, &[("grant", "refresh_token")]), 1.0);
    let refused = "mcp_oauth_proxy_tokens_refused_total";
    assert_eq!(moved(refused, &[("reason", "missing")]), 1.0);
    assert_eq!(moved(refused, &[("reason", "audience")]), 1.0);
    assert_eq!(moved(refused, &[("reason", "expired")]), 0.0);
    let logins = "mcp_oauth_proxy_logins_total";
    assert_eq!(
        moved(logins, &[("method", "local"), ("result", "succeeded")]),
        2.0
    );
    assert_eq!(
        moved(logins, &[("method", "local"), ("result", "failed")]),
        1.0
    );
    assert_eq!(moved("mcp_oauth_proxy_registrations_total", &[]), 3.0);
    let policy = "mcp_oauth_proxy_policy_refusals_total";
    assert_eq!(
        moved(policy, &[("route", "notes"), ("kind", "step_up")]),
        1.0
    );
    assert_eq!(
        moved(policy, &[("route", "notes"), ("kind", "tools_call")]),
        1.0
    );
    let upstream_errors = "mcp_oauth_proxy_upstream_errors_total";
    assert_eq!(
        moved(upstream_errors, &[("route", "down"), ("kind", "connect")]),
        1.0
    );
    assert_eq!(
        moved(upstream_errors, &[("route", "notes"), ("kind", "connect")]),
        0.0
    );
    assert_eq!(
        moved("mcp_oauth_proxy_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        moved(
            "mcp_oauth_proxy_config_reloads_total",
            &[("result", "failed")]
        ),
        1.0
    );

    // No user, client or token in any label.
    for s in &after.0.samples {
        for v in s.labels.values() {
            assert!(
                v != "alice" && *v != t.client_id && !v.contains(&t.access),
                "{} has {v}",
                s.metric
            );
        }
    }
}

#[tokio::test]
async fn readiness_answers_on_the_admin_listener_and_neither_endpoint_on_the_public_one() {
    let proxy =
        Proxy::start(|port, dir| config(port, dir, "http://127.0.0.1:9/mcp", free_port())).await;
    let res = reqwest::get(admin_url(&proxy, "/readyz")).await.unwrap();
    assert_eq!(res.status(), 200);
    for path in ["/metrics", "/readyz"] {
        let res = reqwest::get(proxy.url(path)).await.unwrap();
        assert_eq!(res.status(), 404, "{path} on the public listener");
    }
    let res = reqwest::get(admin_url(&proxy, "/healthz")).await.unwrap();
    assert_eq!(
        res.status(),
        404,
        "the admin listener serves only its own paths"
    );
}

#[tokio::test]
async fn without_admin_the_public_listener_serves_no_metrics_either() {
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, "", "http://127.0.0.1:9/mcp")).await;
    let res = reqwest::get(proxy.url("/metrics")).await.unwrap();
    assert_eq!(res.status(), 404);
}

/// An upstream that answers every request with 500, on a loopback port.
async fn failing_upstream() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn an_upstream_answering_5xx_counts_as_an_upstream_error_of_its_route() {
    let port = failing_upstream().await;
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let proxy = Proxy::start(|p, dir| config(p, dir, &upstream, free_port())).await;
    let t = tokens(&proxy, &[]).await;
    let res = mcp_post(
        Some(&t.access),
        &proxy.url("/notes/mcp"),
        None,
        &initialize_body(),
    )
    .await;
    assert_eq!(res.status(), 500);
    let after = Scrape::of(&proxy).await;
    let errors = "mcp_oauth_proxy_upstream_errors_total";
    let on_notes = |kind| [("route", "notes"), ("kind", kind)];
    assert_eq!(after.value(errors, &on_notes("status_5xx")), 1.0);
    assert_eq!(after.value(errors, &on_notes("connect")), 0.0);
    assert_eq!(
        after.value(
            "mcp_oauth_proxy_http_requests_total",
            &[("route", "notes"), ("method", "POST"), ("status", "5xx")]
        ),
        1.0
    );
}

#[tokio::test]
async fn open_connections_and_event_streams_are_gauges_that_fall_back_when_they_end() {
    let upstream = NodeUpstream::start(&[]);
    let proxy = Proxy::start(|port, dir| {
        with_admin(
            &simple_config(port, dir, "", &upstream.url("/_sse")),
            free_port(),
        )
    })
    .await;
    let t = tokens(&proxy, &[]).await;
    let gauges = |s: &Scrape| {
        (
            s.value("mcp_oauth_proxy_open_connections", &[]),
            s.value("mcp_oauth_proxy_open_streams", &[("route", "notes")]),
        )
    };
    let mut res = reqwest::Client::new()
        .get(proxy.url("/notes/mcp?count=2&interval_ms=2000"))
        .bearer_auth(&t.access)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let first = res.chunk().await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("data:"),
        "{first:?}"
    );
    let (connections, streams) = gauges(&Scrape::of(&proxy).await);
    assert!(connections >= 1.0, "{connections}");
    assert_eq!(streams, 1.0);

    drop(res);
    wait_for(
        "the stream to be counted closed",
        Duration::from_secs(10),
        || async {
            let (_, streams) = gauges(&Scrape::of(&proxy).await);
            (streams == 0.0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_throttled_login_is_counted() {
    let admin = free_port();
    let proxy =
        Proxy::start(move |port, dir| config(port, dir, "http://127.0.0.1:9/mcp", admin)).await;
    let client_id = register_public(&proxy).await;
    let authorize = authorize_url(&proxy, &client_id, &[]);
    let mut browser = Browser::default();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            login(&mut browser, &proxy, &authorize, USER, "wrong")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let s = Scrape::of(&proxy).await;
    assert_eq!(
        s.value("mcp_oauth_proxy_throttled_total", &[("what", "login")]),
        1.0
    );
    assert_eq!(
        s.value(
            "mcp_oauth_proxy_throttled_total",
            &[("what", "registration")]
        ),
        0.0
    );
}
