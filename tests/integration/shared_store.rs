//! Several instances on one Redis (`state.redis`, issue 12): two real proxies
//! on one `redis-server` of the test's own, sharing one public URL (as behind
//! a load balancer), each request sent to the instance the test names.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{MCP_ACCEPT, NodeUpstream, Proxy, initialize_body, wait_for};
use crate::oauth_client::*;
use crate::redis_server::RedisServer;

/// Instance `port` of a deployment whose public URL is port `public`'s.
fn config(port: u16, public: u16, redis: &str, upstream: &str, grace: &str, admin: u16) -> String {
    format!(
        r#"listen: "127.0.0.1:{port}"
public_url: "http://127.0.0.1:{public}"
state:
  redis: "{redis}"
tokens:
  access_ttl: 1h
  refresh_ttl: 30d
  refresh_grace: {grace}
admin:
  listen: "127.0.0.1:{admin}"
server:
  shutdown_grace: 2s
users:
  - name: alice
    password_hash: "{PASSWORD_HASH}"
  - name: bob
    password_hash: "{PASSWORD_HASH}"
routes:
  - name: notes
    path: /notes/mcp
    upstream: "{upstream}"
"#
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two instances, `a` (whose address is the public URL) and `b`, on one Redis.
struct Pair {
    a: Proxy,
    b: Proxy,
    a_admin: u16,
    redis: RedisServer,
    _upstream: NodeUpstream,
}

/// Two instances on `redis` in front of `upstream`, the route with `extra` lines;
/// and the first one's admin port.
async fn instances(
    redis: &RedisServer,
    upstream: &str,
    grace: &str,
    extra: &str,
) -> (Proxy, Proxy, u16) {
    let url = redis.url();
    let (a_admin, b_admin) = (free_port(), free_port());
    let a =
        Proxy::start(|port, _: &Path| config(port, port, &url, upstream, grace, a_admin) + extra)
            .await;
    let public = a.port;
    let b =
        Proxy::start(|port, _: &Path| config(port, public, &url, upstream, grace, b_admin) + extra)
            .await;
    (a, b, a_admin)
}

impl Pair {
    async fn start(grace: &str) -> Self {
        let redis = RedisServer::start();
        let upstream = NodeUpstream::start(&["--json"]);
        let (a, b, a_admin) = instances(&redis, &upstream.url("/mcp"), grace, "").await;
        Self {
            a,
            b,
            a_admin,
            redis,
            _upstream: upstream,
        }
    }
}

/// The same URL on instance `to` (a URL of the public address, `a`'s).
fn on(to: &Proxy, url: &str, a: &Proxy) -> String {
    url.replacen(&a.base(), &to.base(), 1)
}

/// A code for `user`, authorized through `a`.
async fn code_for(a: &Proxy, client_id: &str, user: &str) -> String {
    let mut browser = Browser::default();
    let res = login(
        &mut browser,
        a,
        &authorize_url(a, client_id, &[]),
        user,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    decide(&mut browser, a, &page, "allow").await["code"].clone()
}

/// Tokens for `user`: registered and authorized through `a`, exchanged through `b`.
async fn tokens_for(a: &Proxy, b: &Proxy, user: &str) -> (String, Value) {
    let client_id = register_public(a).await;
    let code = code_for(a, &client_id, user).await;
    let (status, body) = exchange(b, &client_id, &code).await;
    assert_eq!(status, 200, "{body}");
    (client_id, body)
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// An MCP POST with `token` to `proxy`; the session id if given.
async fn mcp(proxy: &Proxy, token: &str, session: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(proxy.url("/notes/mcp"))
        .header("accept", MCP_ACCEPT)
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .json(body);
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    req.send().await.unwrap()
}

async fn mcp_status(proxy: &Proxy, token: &str) -> u16 {
    mcp(proxy, token, None, &initialize_body())
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_client_registered_and_authorized_on_one_instance_gets_and_rotates_tokens_on_the_other() {
    let pair = Pair::start("1s").await;
    let (a, b) = (&pair.a, &pair.b);
    let (client_id, first) = tokens_for(a, b, USER).await;
    let (r1, access1) = (s(&first, "refresh_token"), s(&first, "access_token"));
    assert_eq!(
        mcp_status(a, &access1).await,
        200,
        "a token from b works on a"
    );
    assert_eq!(mcp_status(b, &access1).await, 200);

    let (status, rotated) = refresh(b, &client_id, &r1).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, again) = refresh(a, &client_id, &r1).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, rotated, "within the grace window, a gets b's answer");

    // Whole seconds: the window is over once a second has passed after its last one.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, reused) = refresh(a, &client_id, &r1).await;
    assert_eq!(status, 400);
    assert_eq!(reused["error"], "invalid_grant");
    let (status, body) = refresh(b, &client_id, &s(&rotated, "refresh_token")).await;
    assert_eq!(
        (status.as_u16(), s(&body, "error").as_str()),
        (400, "invalid_grant"),
        "the family is revoked for b too"
    );
    let access2 = s(&rotated, "access_token");
    for proxy in [a, b] {
        wait_for(
            "the rotated access token refused",
            Duration::from_secs(1),
            || async { (mcp_status(proxy, &access2).await == 401).then_some(()) },
        )
        .await;
    }
}

#[tokio::test]
async fn a_code_exchanged_on_one_instance_is_refused_on_the_other_and_revokes_what_it_issued() {
    let pair = Pair::start("10s").await;
    let (a, b) = (&pair.a, &pair.b);
    let client_id = register_public(a).await;
    let code = code_for(a, &client_id, USER).await;
    let (status, body) = exchange(a, &client_id, &code).await;
    assert_eq!(status, 200, "{body}");
    let access = s(&body, "access_token");
    assert_eq!(mcp_status(a, &access).await, 200);
    let (status, replay) = exchange(b, &client_id, &code).await;
    assert_eq!(
        (status.as_u16(), s(&replay, "error").as_str()),
        (400, "invalid_grant")
    );
    wait_for(
        "a's token refused on a after the replay on b",
        Duration::from_secs(1),
        || async { (mcp_status(a, &access).await == 401).then_some(()) },
    )
    .await;
    let (status, _) = refresh(a, &client_id, &s(&body, "refresh_token")).await;
    assert_eq!(status, 400, "its refresh token is revoked too");
}

#[tokio::test]
async fn a_token_revoked_on_one_instance_is_refused_on_the_other_within_a_second() {
    let pair = Pair::start("10s").await;
    let (a, b) = (&pair.a, &pair.b);
    let (client_id, t) = tokens_for(a, b, USER).await;
    let access = s(&t, "access_token");
    assert_eq!(
        mcp_status(b, &access).await,
        200,
        "b has verified (and cached) it"
    );
    let res = http()
        .post(a.url("/oauth/revoke"))
        .form(&[
            ("token", access.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let revoked = Instant::now();
    wait_for(
        "b to refuse the revoked token",
        Duration::from_secs(1),
        || async { (mcp_status(b, &access).await == 401).then_some(()) },
    )
    .await;
    assert!(revoked.elapsed() < Duration::from_secs(1));
    assert_eq!(mcp_status(a, &access).await, 401);
}

#[tokio::test]
async fn login_failures_made_on_either_instance_count_together() {
    let pair = Pair::start("10s").await;
    let (a, b) = (&pair.a, &pair.b);
    let client_id = register_public(a).await;
    let authorize = authorize_url(a, &client_id, &[]);
    let mut statuses = Vec::new();
    for to in [a, b, a, b, a, b, a] {
        let mut browser = Browser::default();
        let res = login(&mut browser, to, &on(to, &authorize, a), USER, "wrong").await;
        statuses.push(res.status().as_u16());
    }
    // Five failures are free; the sixth right away waits, wherever it is made.
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429, 429], "{statuses:?}");
}

#[tokio::test]
async fn a_session_opened_on_one_instance_continues_on_the_other_for_its_owner_only() {
    let pair = Pair::start("10s").await;
    let (a, b) = (&pair.a, &pair.b);
    let (_, alice) = tokens_for(a, b, USER).await;
    let (_, bob) = tokens_for(a, b, "bob").await;
    let (alice, bob) = (s(&alice, "access_token"), s(&bob, "access_token"));
    let opened = mcp(a, &alice, None, &initialize_body()).await;
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let res = mcp(b, &bob, Some(&session), &list).await;
    assert_eq!(
        res.status(),
        404,
        "another user cannot continue it through b"
    );
    let res = mcp(b, &alice, Some(&session), &list).await;
    assert_eq!(res.status(), 200, "its owner can");
    assert!(res.text().await.unwrap().contains("tools"));
    assert_eq!(
        mcp(a, &bob, Some(&session), &list).await.status(),
        404,
        "nor through a"
    );
}

#[tokio::test]
async fn fifty_concurrent_refreshes_over_both_instances_rotate_the_token_once() {
    let pair = Pair::start("30s").await;
    let (a, b) = (&pair.a, &pair.b);
    let (client_id, t) = tokens_for(a, b, USER).await;
    let r1 = s(&t, "refresh_token");
    let answers = futures_util::future::join_all((0..50).map(|i| {
        let (to, client_id, r1) = (if i % 2 == 0 { a } else { b }, &client_id, &r1);
        async move { refresh(to, client_id, r1).await }
    }))
    .await;
    let rotations: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    for (status, body) in &answers {
        assert!(
            *status == 200 || body["error"] == "invalid_grant",
            "{status} {body}"
        );
    }
    assert!(!rotations.is_empty());
    assert!(
        rotations.iter().all(|r| *r == rotations[0]),
        "one rotation: every success is the same answer"
    );
    // The family has one new member: the rotated token rotates once more, on either instance.
    let (status, next) = refresh(b, &client_id, &s(rotations[0], "refresh_token")).await;
    assert_eq!(status, 200, "{next}");
}

#[tokio::test]
async fn while_redis_is_down_oauth_answers_503_mcp_traffic_goes_on_and_all_recovers() {
    let mut pair = Pair::start("10s").await;
    let (client_id, t) = tokens_for(&pair.a, &pair.b, USER).await;
    let (access, r1) = (s(&t, "access_token"), s(&t, "refresh_token"));
    assert_eq!(mcp_status(&pair.b, &access).await, 200);
    let health = async |proxy: &Proxy| -> String {
        let v: Value = reqwest::get(proxy.url("/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s(&v, "status")
    };
    assert_eq!(health(&pair.a).await, "ok");

    pair.redis.save_and_stop();
    for proxy in [&pair.a, &pair.b] {
        let started = Instant::now();
        let res = http()
            .post(proxy.url("/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", r1.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        assert!(res.headers().contains_key("retry-after"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let (status, body) = register(
            proxy,
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}),
        )
        .await;
        assert_eq!(
            (status.as_u16(), s(&body, "error").as_str()),
            (503, "temporarily_unavailable")
        );
        let page = http()
            .get(authorize_url(&pair.a, &client_id, &[]).replacen(&pair.a.base(), &proxy.base(), 1))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 503, "the authorization page says so");
        assert!(
            page.text()
                .await
                .unwrap()
                .contains("Temporarily unavailable")
        );
        let mut browser = Browser::default();
        let form = browser
            .get(&proxy.url("/oauth/login"))
            .await
            .text()
            .await
            .unwrap();
        let res = browser
            .post_form(
                &proxy.url("/oauth/login"),
                &[
                    ("csrf", &hidden(&form, "csrf")),
                    ("next", ""),
                    ("username", USER),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), 503, "signing in waits for the store");
        assert!(res.headers().contains_key("retry-after"));
        let res = http()
            .post(proxy.url("/oauth/revoke"))
            .form(&[
                ("token", access.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            503,
            "a revocation is not acknowledged unless stored"
        );
        assert_eq!(
            mcp_status(proxy, &access).await,
            200,
            "issued tokens keep working"
        );
    }
    wait_for(
        "healthz to say degraded",
        Duration::from_secs(5),
        || async { (health(&pair.b).await == "degraded").then_some(()) },
    )
    .await;
    let readyz = reqwest::get(format!("http://127.0.0.1:{}/readyz", pair.a_admin))
        .await
        .unwrap();
    assert_eq!(readyz.status(), 503);

    pair.redis.restart();
    wait_for("healthz to say ok", Duration::from_secs(10), || async {
        (health(&pair.a).await == "ok" && health(&pair.b).await == "ok").then_some(())
    })
    .await;
    let (status, rotated) = refresh(&pair.b, &client_id, &r1).await;
    assert_eq!(
        status, 200,
        "the refresh that failed did not half-happen: {rotated}"
    );
    let readyz = reqwest::get(format!("http://127.0.0.1:{}/readyz", pair.a_admin))
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    assert_eq!(mcp_status(&pair.a, &s(&rotated, "access_token")).await, 200);
}

#[tokio::test]
async fn migrate_store_copies_an_embedded_store_so_its_tokens_keep_working_on_redis() {
    let redis = RedisServer::start();
    let upstream = NodeUpstream::start(&["--json"]);
    let mut single = Proxy::start(|port, dir| {
        crate::common::simple_config(port, dir, "", &upstream.url("/mcp"))
    })
    .await;
    let t = tokens(&single, &[]).await;
    let public = single.port;
    let state_dir = single.dir.path().join("state");
    let stopped = single.child.take().map(|mut c| {
        c.kill().unwrap();
        c.wait().unwrap()
    });
    assert!(stopped.is_some());

    let redis_config = single.dir.path().join("redis.yaml");
    let text = config(
        public,
        public,
        &redis.url(),
        &upstream.url("/mcp"),
        "10s",
        1,
    );
    std::fs::write(&redis_config, text).unwrap();
    let migrate = || {
        let out = std::process::Command::new(crate::common::proxy_bin())
            .args(["migrate-store", "--config"])
            .arg(&redis_config)
            .arg("--from")
            .arg(&state_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = migrate();
    assert!(
        first.contains("clients: 1 copied, 0 already in redis"),
        "{first}"
    );
    assert!(first.contains("families: 1 copied"), "{first}");
    let again = migrate();
    assert!(
        again.contains("clients: 0 copied, 1 already in redis"),
        "idempotent: {again}"
    );

    let url = redis.url();
    let up = upstream.url("/mcp");
    let shared =
        Proxy::start(|port, _: &Path| config(port, public, &url, &up, "10s", free_port())).await;
    assert_eq!(
        mcp_status(&shared, &t.access).await,
        200,
        "the signing keys came along"
    );
    let (status, body) = refresh(&shared, &t.client_id, &t.refresh).await;
    assert_eq!(
        status, 200,
        "the client and its refresh token came along: {body}"
    );
}

#[tokio::test]
async fn a_legacy_sse_message_sent_to_an_instance_without_its_stream_fails_at_once_and_says_why() {
    let redis = RedisServer::start();
    let upstream = crate::security::LegacyUpstream::start().await;
    let sse = format!("http://127.0.0.1:{}/sse", upstream.port);
    let (a, b, _) = instances(&redis, &sse, "10s", "    transport: sse\n").await;
    let (_, t) = tokens_for(&a, &b, USER).await;
    let access = s(&t, "access_token");
    let (_stream, endpoint) = crate::security::open_legacy_stream(&a, &access).await;
    let post = |to: &Proxy| {
        let url = to.url(&endpoint);
        let access = access.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(access)
                .timeout(Duration::from_secs(5))
                .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}))
                .send()
                .await
                .unwrap()
        }
    };
    let started = Instant::now();
    let res = post(&b).await;
    assert_eq!(res.status(), 404);
    assert!(started.elapsed() < Duration::from_secs(2), "no hang");
    let body: Value = res.json().await.unwrap();
    assert!(
        s(&body, "error_description").contains("held by another instance"),
        "{body}"
    );
    assert_eq!(upstream.posts(), Vec::<String>::new(), "nothing forwarded");
    assert_eq!(
        post(&a).await.status(),
        202,
        "the instance holding the stream takes it"
    );
}

#[tokio::test]
async fn a_redis_that_hangs_fails_oauth_requests_in_bounded_time_and_mcp_traffic_goes_on() {
    let pair = Pair::start("10s").await;
    let (a, b) = (&pair.a, &pair.b);
    let (client_id, t) = tokens_for(a, b, USER).await;
    let (access, r1) = (s(&t, "access_token"), s(&t, "refresh_token"));
    assert_eq!(mcp_status(a, &access).await, 200);
    pair.redis.pause(true);
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = refresh(a, &client_id, &r1).await;
        assert_eq!(
            (status.as_u16(), s(&body, "error").as_str()),
            (503, "temporarily_unavailable")
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        mcp_status(a, &access).await,
        200,
        "issued tokens keep working"
    );
    pair.redis.pause(false);
    wait_for(
        "the refresh to work again",
        Duration::from_secs(10),
        || async {
            let (status, body) = refresh(b, &client_id, &r1).await;
            (status == 200).then_some(body)
        },
    )
    .await;
}

#[tokio::test]
async fn the_redis_password_comes_from_a_file_and_never_reaches_the_logs() {
    const PASSWORD: &str = "pw-Zq81x-not-in-logs";
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let upstream = NodeUpstream::start(&["--json"]);
    let url = redis.url();
    let up = upstream.url("/mcp");
    let with_file = |port: u16, dir: &Path, password: &str| {
        let file = dir.join("redis-password");
        std::fs::write(&file, password).unwrap();
        config(port, port, &url, &up, "10s", free_port()).replacen(
            "state:\n",
            &format!("state:\n  redis_password_file: {}\n", file.display()),
            1,
        )
    };
    let proxy = Proxy::start(|port, dir| with_file(port, dir, PASSWORD)).await;
    let t = tokens(&proxy, &[]).await;
    assert_eq!(mcp_status(&proxy, &t.access).await, 200);
    assert!(!proxy.logs().contains(PASSWORD));

    // A wrong password: the proxy does not start, and says why without the password.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, with_file(free_port(), dir.path(), "wrong-Zq81x")).unwrap();
    let out = std::process::Command::new(crate::common::proxy_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("store"), "{text}");
    assert!(
        !text.contains("wrong-Zq81x") && !text.contains(PASSWORD),
        "{text}"
    );
}

#[tokio::test]
async fn mcp_requests_with_a_known_token_and_session_never_reach_redis() {
    let pair = Pair::start("10s").await;
    let (a, b) = (&pair.a, &pair.b);
    let (_, t) = tokens_for(a, b, USER).await;
    let access = s(&t, "access_token");
    let opened = mcp(a, &access, None, &initialize_body()).await;
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    // b learns the session's owner from Redis on its first request (counted).
    let start = pair.redis.commands();
    assert_eq!(mcp(b, &access, Some(&session), &list).await.status(), 200);
    let before = pair.redis.commands();
    assert!(before > start, "b's look-up is seen: {start} → {before}");
    for i in 0..20 {
        let to = if i % 2 == 0 { a } else { b };
        assert_eq!(mcp(to, &access, Some(&session), &list).await.status(), 200);
    }
    assert_eq!(
        pair.redis.commands(),
        before,
        "no Redis command but the health pings"
    );
}
