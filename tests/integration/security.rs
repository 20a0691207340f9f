//! The RFC 9700 / OAuth 2.1 / MCP security items of `docs/SECURITY.md` that had
//! no end-to-end test yet (issue 17): each test plays the attack against the
//! real proxy on loopback and asserts the refusal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{MCP_ACCEPT, NodeUpstream, Proxy, initialize_body, simple_config, wait_for};
use crate::oauth_client::*;

const NO_UPSTREAM: &str = "http://127.0.0.1:9/mcp";

async fn start() -> Proxy {
    Proxy::start(|port, dir| simple_config(port, dir, "", NO_UPSTREAM)).await
}

/// Login as `user` and consent for `client_id`: the redirect's query.
async fn code_as(
    proxy: &Proxy,
    user: &str,
    client_id: &str,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut browser = Browser::default();
    let authorize = authorize_url(proxy, client_id, extra);
    let res = login(&mut browser, proxy, &authorize, user, PASSWORD).await;
    assert_eq!(res.status(), 200, "the consent page for {user}");
    let page = res.text().await.unwrap();
    decide(&mut browser, proxy, &page, "allow").await
}

/// The token response of the whole flow, as `user` for `client_id`.
async fn tokens_as(proxy: &Proxy, user: &str, client_id: &str, extra: &[(&str, &str)]) -> Value {
    let q = code_as(proxy, user, client_id, extra).await;
    let (status, body) = exchange(proxy, client_id, &q["code"]).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn access(body: &Value) -> &str {
    body["access_token"].as_str().unwrap()
}

fn assert_oauth_error(got: (reqwest::StatusCode, Value), status: u16, error: &str, what: &str) {
    assert_eq!(
        (got.0.as_u16(), got.1["error"].as_str()),
        (status, Some(error)),
        "{what}: {}",
        got.1
    );
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header; status {}", res.status()))
        .to_str()
        .unwrap()
}

async fn mcp_post(proxy: &Proxy, path: &str, token: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(proxy.url(path))
        .header("accept", MCP_ACCEPT)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

// ------------------------------------------------ authorization code injection

#[tokio::test]
async fn a_code_issued_to_one_client_is_invalid_grant_for_another_and_stays_usable_by_its_own() {
    let proxy = start().await;
    let victim = register_public(&proxy).await;
    // The attacker's client has the same redirect URI and knows the verifier:
    // only the code's binding to its client stops the exchange.
    let attacker = register_public(&proxy).await;
    let q = code_as(&proxy, USER, &victim, &[]).await;

    assert_oauth_error(
        exchange(&proxy, &attacker, &q["code"]).await,
        400,
        "invalid_grant",
        "another public client",
    );
    let (_, reg) = register(
        &proxy,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let confidential = reg["client_id"].as_str().unwrap();
    let secret = reg["client_secret"].as_str().unwrap();
    let injected = token_request(
        &proxy,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", confidential),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_oauth_error(
        injected,
        400,
        "invalid_grant",
        "another, authenticated, client",
    );

    // The refused attempts neither burn the code nor revoke anything: the
    // client it was issued to still redeems it, once.
    let (status, body) = exchange(&proxy, &victim, &q["code"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(access(&body))["client_id"], victim.as_str());
    assert_oauth_error(
        exchange(&proxy, &victim, &q["code"]).await,
        400,
        "invalid_grant",
        "a second exchange",
    );
}

#[tokio::test]
async fn a_refresh_token_presented_by_another_client_is_invalid_grant_and_keeps_working_for_its_own()
 {
    let proxy = start().await;
    let t = tokens(&proxy, &[]).await;
    let other = register_public(&proxy).await;

    assert_oauth_error(
        refresh(&proxy, &other, &t.refresh).await,
        400,
        "invalid_grant",
        "a refresh token of another client",
    );
    // Neither rotated nor revoked by the attempt.
    let (status, body) = refresh(&proxy, &t.client_id, &t.refresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(access(&body))["client_id"], t.client_id.as_str());
}

// ------------------------------------------------ PKCE downgrade

#[tokio::test]
async fn authorization_requests_without_an_s256_challenge_are_refused_and_issue_no_code() {
    let proxy = start().await;
    let client_id = register_public(&proxy).await;
    let cases: [&[(&str, &str)]; 5] = [
        // An empty value removes the parameter (authorize_url).
        &[("code_challenge", "")],
        &[("code_challenge", ""), ("code_challenge_method", "")],
        &[("code_challenge_method", "plain")],
        &[
            ("code_challenge_method", "plain"),
            ("code_challenge", VERIFIER),
        ],
        &[("code_challenge_method", "")],
    ];

    // Nobody signed in: a page, no redirect.
    for extra in cases {
        let res = http()
            .get(authorize_url(&proxy, &client_id, extra))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{extra:?}");
        assert!(res.headers().get("location").is_none(), "{extra:?}");
        assert!(
            res.text().await.unwrap().contains("invalid_request"),
            "{extra:?}"
        );
    }

    // Signed in: refused too (an error for the client, or a page), never a code
    // and never the consent page.
    let mut browser = Browser::default();
    let res = login(
        &mut browser,
        &proxy,
        &authorize_url(&proxy, &client_id, &[]),
        USER,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 200, "signed in, at the consent page");
    for extra in cases {
        let res = browser.get(&authorize_url(&proxy, &client_id, extra)).await;
        match res.status().as_u16() {
            302 => {
                let q = query_of(&location(&res));
                assert_eq!(
                    q.get("error").map(String::as_str),
                    Some("invalid_request"),
                    "{extra:?}"
                );
                assert!(!q.contains_key("code"), "{extra:?}: {q:?}");
            }
            400 => assert!(res.text().await.unwrap().contains("invalid_request")),
            s => panic!("{extra:?}: status {s}"),
        }
    }
}

#[tokio::test]
async fn token_requests_without_the_right_code_verifier_are_refused() {
    let proxy = start().await;
    let client_id = register_public(&proxy).await;
    let q = code_as(&proxy, USER, &client_id, &[]).await;
    let code = q["code"].as_str();
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id.as_str()),
    ];
    let wrong = "x".repeat(43);
    // A missing parameter is `invalid_request` (RFC 6749 §5.2); every verifier
    // that is there and does not hash to the challenge is `invalid_grant`.
    let cases: [(&str, Option<&str>, &str); 5] = [
        ("no code_verifier", None, "invalid_request"),
        ("an empty code_verifier", Some(""), "invalid_grant"),
        ("a wrong code_verifier", Some(&wrong), "invalid_grant"),
        (
            "the challenge itself (a plain downgrade)",
            Some(CHALLENGE),
            "invalid_grant",
        ),
        ("a verifier too short", Some("abc"), "invalid_grant"),
    ];
    for (what, verifier, error) in cases {
        let mut form = base.to_vec();
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        assert_oauth_error(token_request(&proxy, &form).await, 400, error, what);
    }
    let (status, body) = exchange(&proxy, &client_id, code).await;
    assert_eq!(status, 200, "the right verifier: {body}");
}

// ------------------------------------------------ mix-up

#[tokio::test]
async fn every_authorization_response_names_the_issuer_and_the_metadata_says_so() {
    let proxy = start().await;
    let issuer = proxy.base();
    let md: Value = reqwest::get(proxy.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(md["issuer"], issuer.as_str());
    assert_eq!(md["authorization_response_iss_parameter_supported"], true);

    let client_id = register_public(&proxy).await;
    let allowed = code_as(&proxy, USER, &client_id, &[]).await;
    assert!(allowed.contains_key("code"));
    assert_eq!(allowed["iss"], issuer, "the code's redirect");

    let denied = consent(&proxy, &client_id, &[], "deny").await;
    assert_eq!(denied["error"], "access_denied");
    assert_eq!(denied["iss"], issuer, "the access_denied redirect");
}

// ------------------------------------------------ open redirector: login `next`

#[tokio::test]
async fn after_login_no_redirect_leaves_the_proxys_authorization_endpoint() {
    let proxy = start().await;
    let client_id = register_public(&proxy).await;
    let evil = [
        "https://evil.example/".to_string(),
        "//evil.example/".to_string(),
        "/\\evil.example/".to_string(),
        "javascript:alert(document.cookie)".to_string(),
        "/oauth/authorize?x=1\r\nLocation: https://evil.example/".to_string(),
        "/oauth/authorize?x=1\nSet-Cookie: mcp_session=forged".to_string(),
        "/oauth/authorize?\\\\evil.example".to_string(),
        "/oauth/authorize".to_string(),
        "/oauth/authorizex?".to_string(),
        "/oauth/login?next=https://evil.example/".to_string(),
        proxy.url("/oauth/authorize?client_id=x"),
    ];
    for next in &evil {
        let mut browser = Browser::default();
        let login_page = browser
            .get(&proxy.url(&format!(
                "/oauth/login?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish()
            )))
            .await;
        assert_eq!(login_page.status(), 200, "{next:?}");
        let page = login_page.text().await.unwrap();
        assert_eq!(hidden(&page, "next"), "", "the page drops {next:?}");
        // The form posted with the bad `next` anyway.
        let res = browser
            .post_form(
                &proxy.url("/oauth/login"),
                &[
                    ("csrf", &hidden(&page, "csrf")),
                    ("next", next),
                    ("username", USER),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert!(
            res.headers().get("location").is_none(),
            "{next:?} redirected to {:?}",
            res.headers().get("location")
        );
        assert_eq!(res.status(), 200, "{next:?}");
        assert!(
            browser.cookies.contains_key("mcp_session"),
            "the login itself succeeded"
        );
        assert!(res.text().await.unwrap().contains("You are signed in"));
    }

    // The authorization endpoint is where a login continues.
    let good = authorize_url(&proxy, &client_id, &[]);
    let good = &good[proxy.base().len()..];
    let mut browser = Browser::default();
    let page = browser
        .get(&proxy.url("/oauth/login"))
        .await
        .text()
        .await
        .unwrap();
    let res = browser
        .post_form(
            &proxy.url("/oauth/login"),
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("next", good),
                ("username", USER),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), good);
}

// ------------------------------------------------ framing, referrers, caching

fn assert_page_headers(res: &reqwest::Response, what: &str) {
    assert_eq!(header(res, "x-frame-options"), "DENY", "{what}");
    assert!(
        header(res, "content-security-policy").contains("frame-ancestors 'none'"),
        "{what}"
    );
    assert_eq!(header(res, "referrer-policy"), "no-referrer", "{what}");
}

#[tokio::test]
async fn browser_pages_forbid_framing_and_referrers_and_token_answers_are_not_stored() {
    let proxy = start().await;
    let client_id = register_public(&proxy).await;
    let mut browser = Browser::default();

    let res = browser.get(&authorize_url(&proxy, &client_id, &[])).await;
    assert_eq!(res.status(), 302);
    assert_eq!(header(&res, "referrer-policy"), "no-referrer", "redirect");
    let login_page = browser.get(&proxy.url(&location(&res))).await;
    assert_eq!(login_page.status(), 200);
    assert_page_headers(&login_page, "login page");
    let page = login_page.text().await.unwrap();

    let res = browser
        .post_form(
            &proxy.url("/oauth/login"),
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("next", &hidden(&page, "next")),
                ("username", USER),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        header(&res, "referrer-policy"),
        "no-referrer",
        "after login"
    );
    let consent_page = browser.get(&proxy.url(&location(&res))).await;
    assert_eq!(consent_page.status(), 200);
    assert_page_headers(&consent_page, "consent page");
    let page = consent_page.text().await.unwrap();

    // The redirect carrying the code must not leak it onward.
    let res = browser
        .post_form(
            &proxy.url("/oauth/consent"),
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("ticket", &hidden(&page, "ticket")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        header(&res, "referrer-policy"),
        "no-referrer",
        "code redirect"
    );
    let code = query_of(&location(&res))["code"].clone();

    // Error pages: an unknown client, a form without its CSRF token.
    let res = http()
        .get(authorize_url(&proxy, "no-such-client", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_page_headers(&res, "the unknown client's error page");
    let res = browser
        .post_form(
            &proxy.url("/oauth/login"),
            &[("username", USER), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_page_headers(&res, "the missing CSRF token's error page");

    // Token answers, success or not, are not stored.
    let token_post = |form: Vec<(&'static str, String)>| {
        let url = proxy.url("/oauth/token");
        async move { http().post(url).form(&form).send().await.unwrap() }
    };
    let res = token_post(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("redirect_uri", REDIRECT.into()),
        ("code_verifier", VERIFIER.into()),
        ("client_id", client_id.clone()),
    ])
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "cache-control"), "no-store", "code exchange");
    let body: Value = res.json().await.unwrap();
    let res = token_post(vec![
        ("grant_type", "refresh_token".into()),
        (
            "refresh_token",
            body["refresh_token"].as_str().unwrap().into(),
        ),
        ("client_id", client_id.clone()),
    ])
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "cache-control"), "no-store", "refresh");
    let res = token_post(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", REDIRECT.into()),
        ("code_verifier", VERIFIER.into()),
        ("client_id", client_id),
    ])
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(header(&res, "cache-control"), "no-store", "an error");
}

// ------------------------------------------------ audience confusion

#[tokio::test]
async fn a_token_for_one_route_is_invalid_token_on_another_and_never_reaches_its_upstream() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(|port, dir| {
        let second = format!(
            "  - name: tasks\n    path: /tasks/mcp\n    upstream: \"{}\"\n",
            upstream.url("/mcp")
        );
        simple_config(port, dir, &second, &upstream.url("/mcp"))
    })
    .await;
    let client_id = register_public(&proxy).await;
    let notes = tokens_as(&proxy, USER, &client_id, &[]).await;
    let tasks = tokens_as(
        &proxy,
        USER,
        &client_id,
        &[("resource", &proxy.url("/tasks/mcp"))],
    )
    .await;

    for (token, own, other) in [
        (access(&notes), "/notes/mcp", "/tasks/mcp"),
        (access(&tasks), "/tasks/mcp", "/notes/mcp"),
    ] {
        assert_eq!(
            mcp_post(&proxy, own, token, &initialize_body())
                .await
                .status(),
            200,
            "{own} takes its own token"
        );
        let before = upstream.requests().await.len();
        let res = mcp_post(&proxy, other, token, &initialize_body()).await;
        assert_eq!(res.status(), 401, "a token for {own} on {other}");
        let challenge = header(&res, "www-authenticate");
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"{}/.well-known/oauth-protected-resource{other}\"",
                proxy.base()
            )),
            "{challenge}"
        );
        assert_eq!(
            upstream.requests().await.len(),
            before,
            "the upstream never saw it"
        );
    }
}

// ------------------------------------------------ session hijacking

#[tokio::test]
async fn another_user_of_the_same_client_cannot_continue_a_streamable_http_session() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(|port, dir| simple_config(port, dir, "", &upstream.url("/mcp"))).await;
    let client_id = register_public(&proxy).await;
    let alice = tokens_as(&proxy, "alice", &client_id, &[]).await;
    let bob = tokens_as(&proxy, "bob", &client_id, &[]).await;
    assert_eq!(claims(access(&bob))["client_id"], client_id.as_str());

    let res = mcp_post(&proxy, "/notes/mcp", access(&alice), &initialize_body()).await;
    assert_eq!(res.status(), 200);
    let session = header(&res, "mcp-session-id").to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let continue_as = |token: String| {
        let url = proxy.url("/notes/mcp");
        let (session, list) = (session.clone(), list.clone());
        async move {
            reqwest::Client::new()
                .post(url)
                .header("accept", MCP_ACCEPT)
                .header("mcp-protocol-version", "2025-06-18")
                .header("mcp-session-id", session)
                .bearer_auth(token)
                .json(&list)
                .send()
                .await
                .unwrap()
        }
    };
    let before = upstream.requests().await.len();
    let res = continue_as(access(&bob).to_string()).await;
    assert_eq!(res.status(), 404, "bob with alice's session id");
    assert_eq!(upstream.requests().await.len(), before, "not forwarded");
    assert_eq!(
        continue_as(access(&alice).to_string()).await.status(),
        200,
        "alice continues her session"
    );
}

/// A legacy (2024-11-05) HTTP+SSE upstream: `GET` opens an event stream whose
/// `endpoint` event names `/messages?sessionId=upstream-1`; a `POST` is
/// recorded and answered 202.
pub struct LegacyUpstream {
    pub port: u16,
    posts: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LegacyUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LegacyUpstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts: Arc<Mutex<Vec<String>>> = Arc::default();
        let recorded = posts.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(Self::serve(sock, recorded.clone()));
            }
        });
        LegacyUpstream { port, posts, task }
    }

    async fn serve(mut sock: tokio::net::TcpStream, posts: Arc<Mutex<Vec<String>>>) {
        let mut buf = Vec::new();
        loop {
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 4096];
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            buf.drain(..head_end);
            let request_line = head.lines().next().unwrap_or_default().to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if request_line.starts_with("GET ") {
                let event = "event: endpoint\ndata: /messages?sessionId=upstream-1\n\n";
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
                    event.len()
                );
                if sock.write_all(res.as_bytes()).await.is_err() {
                    return;
                }
                // The stream stays open until the proxy closes it.
                let mut rest = [0u8; 64];
                while matches!(sock.read(&mut rest).await, Ok(n) if n > 0) {}
                return;
            }
            while buf.len() < length {
                let mut chunk = [0u8; 4096];
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body: Vec<u8> = buf.drain(..length).collect();
            posts
                .lock()
                .unwrap()
                .push(format!("{request_line} {}", String::from_utf8_lossy(&body)));
            let res = "HTTP/1.1 202 Accepted\r\ncontent-length: 8\r\n\r\nAccepted";
            if sock.write_all(res.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    pub fn posts(&self) -> Vec<String> {
        self.posts.lock().unwrap().clone()
    }
}

/// Opens the legacy event stream with `token`; returns the stream (kept open)
/// and the message endpoint the proxy announced.
pub async fn open_legacy_stream(proxy: &Proxy, token: &str) -> (reqwest::Response, String) {
    let mut res = reqwest::Client::new()
        .get(proxy.url("/notes/mcp"))
        .header("accept", "text/event-stream")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut text = String::new();
    let endpoint = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(line) = text
                .split("\n\n")
                .filter(|e| e.contains("event: endpoint"))
                .find_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            {
                return line.trim().to_string();
            }
            let chunk = res.chunk().await.unwrap().expect("the stream ended");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("an endpoint event");
    (res, endpoint)
}

#[tokio::test]
async fn another_user_cannot_post_to_someone_elses_legacy_sse_session() {
    let upstream = LegacyUpstream::start().await;
    let proxy = Proxy::start(|port, dir| {
        simple_config(
            port,
            dir,
            "    transport: sse\n",
            &format!("http://127.0.0.1:{}/sse", upstream.port),
        )
    })
    .await;
    let client_id = register_public(&proxy).await;
    let alice = tokens_as(&proxy, "alice", &client_id, &[]).await;
    let bob = tokens_as(&proxy, "bob", &client_id, &[]).await;
    let alice_other_client = tokens(&proxy, &[]).await;

    let (_stream, endpoint) = open_legacy_stream(&proxy, access(&alice)).await;
    assert!(
        endpoint.starts_with("/notes/mcp/message?session="),
        "{endpoint}"
    );
    let ping = |token: String| {
        let url = proxy.url(&endpoint);
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        ping(access(&bob).to_string()).await,
        404,
        "bob (same client) posting to alice's session"
    );
    assert_eq!(
        ping(alice_other_client.access.clone()).await,
        404,
        "alice through another client"
    );
    assert_eq!(upstream.posts(), Vec::<String>::new(), "nothing forwarded");

    assert_eq!(ping(access(&alice).to_string()).await, 202, "the owner");
    let posts = upstream.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0].starts_with("POST /messages?sessionId=upstream-1 ") && posts[0].contains("ping"),
        "{posts:?}"
    );
}

// ------------------------------------------------ log injection

/// What an attacker would like to see as a line of its own in the log.
const FORGED: &str = "2099-01-01T00:00:00Z  INFO audit: login succeeded";

/// Waits until the injected text reached the log, then checks that no line
/// (split at LF and at CR, which a terminal also obeys) starts with it.
async fn assert_no_forged_line(proxy: &Proxy, field: &str) {
    let logs = wait_for(
        &format!("the {field} in the log"),
        Duration::from_secs(10),
        || {
            let logs = proxy.logs();
            async move { logs.contains("2099-01-01T00:00:00Z").then_some(logs) }
        },
    )
    .await;
    let forged: Vec<&str> = logs
        .split(['\n', '\r'])
        .filter(|l| l.starts_with("2099-01-01"))
        .collect();
    assert!(
        forged.is_empty(),
        "a {field} with CR/LF forged log lines {forged:?} in:\n{logs}"
    );
}

#[tokio::test]
async fn a_user_name_with_a_line_break_forges_no_log_line() {
    let proxy = start().await;
    let mut browser = Browser::default();
    let page = browser
        .get(&proxy.url("/oauth/login"))
        .await
        .text()
        .await
        .unwrap();
    let res = browser
        .post_form(
            &proxy.url("/oauth/login"),
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("next", ""),
                ("username", &format!("m\r\n{FORGED}")),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 401);
    assert_no_forged_line(&proxy, "user name").await;
}

#[tokio::test]

async fn a_client_id_with_a_line_break_forges_no_log_line() {
    let proxy = start().await;
    let client_id = format!("https://client.example/cb\r\n{FORGED}");
    let res = http()
        .get(authorize_url(&proxy, &client_id, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    let (status, _) = token_request(
        &proxy,
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_no_forged_line(&proxy, "client_id").await;
}

#[tokio::test]

async fn a_tool_name_with_a_line_break_forges_no_log_line() {
    let proxy = Proxy::start(|port, dir| {
        simple_config(
            port,
            dir,
            "    scopes:\n      \"notes:read\": [\"read_note\"]\n    default_scopes: [\"notes:read\"]\n",
            NO_UPSTREAM,
        )
    })
    .await;
    let t = tokens(&proxy, &[]).await;
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": format!("nope\r\n{FORGED}"), "arguments": {}}});
    let res = mcp_post(&proxy, "/notes/mcp", &t.access, &call).await;
    assert_eq!(res.status(), 200, "refused by the proxy as an unknown tool");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert_no_forged_line(&proxy, "tool name").await;
}
