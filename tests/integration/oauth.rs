//! The authorization server end to end over HTTP: discovery, registration,
//! login and consent, codes, tokens, refresh, revocation, persistence.

use std::time::Duration;

use serde_json::json;

use crate::common::{MCP_ACCEPT, NodeUpstream, Proxy, initialize_body};
use crate::oauth_client::*;

/// Two routes: `notes` (scoped, alice only) and `open` (no scopes, everyone).
fn config(port: u16, dir: &std::path::Path, upstream: &str, tokens: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:{port}"
public_url: "http://127.0.0.1:{port}"
state:
  dir: {state}
tokens:
{tokens}
users:
  - name: alice
    password_hash: "{PASSWORD_HASH}"
    groups: [staff]
  - name: bob
    password_hash: "{PASSWORD_HASH}"
routes:
  - name: notes
    path: /notes/mcp
    upstream: "{upstream}"
    allow:
      users: [alice]
    scopes:
      "notes:read": ["read_note", "list_*"]
      "notes:write": ["write_note"]
    default_scopes: ["notes:read"]
  - name: open
    path: /open/mcp
    upstream: "{upstream}"
"#,
        state = dir.join("state").display()
    )
}

const DEFAULT_TOKENS: &str = "  access_ttl: 1h\n  refresh_ttl: 30d\n  refresh_grace: 10s";

async fn start(upstream: &str) -> Proxy {
    let upstream = upstream.to_string();
    Proxy::start(move |port, dir| config(port, dir, &upstream, DEFAULT_TOKENS)).await
}

async fn mcp_status(proxy: &Proxy, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(proxy.url(path))
        .header("accept", MCP_ACCEPT)
        .header("authorization", format!("Bearer {token}"))
        .json(&initialize_body())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn discovery_documents() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let issuer = proxy.base();

    let res = reqwest::get(proxy.url("/notes/mcp")).await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{issuer}/.well-known/oauth-protected-resource/notes/mcp\", scope=\"notes:read\""
        )
    );

    for path in [
        "/.well-known/oauth-protected-resource/notes/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let prm: serde_json::Value = reqwest::get(proxy.url(path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(prm["resource"], format!("{issuer}/notes/mcp"), "{path}");
        assert_eq!(prm["authorization_servers"], json!([issuer]));
        assert_eq!(
            prm["scopes_supported"],
            json!(["notes:read", "notes:write"])
        );
    }
    let prm: serde_json::Value =
        reqwest::get(proxy.url("/.well-known/oauth-protected-resource/open/mcp"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(prm["resource"], format!("{issuer}/open/mcp"));

    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/notes/mcp",
        "/.well-known/openid-configuration/notes/mcp",
        "/notes/mcp/.well-known/openid-configuration",
    ] {
        let res = reqwest::get(proxy.url(path)).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        let md: serde_json::Value = res.json().await.unwrap();
        assert_eq!(md["issuer"], issuer, "one issuer string, no trailing slash");
        assert_eq!(
            md["authorization_endpoint"],
            format!("{issuer}/oauth/authorize")
        );
        assert_eq!(md["token_endpoint"], format!("{issuer}/oauth/token"));
        assert_eq!(
            md["registration_endpoint"],
            format!("{issuer}/oauth/register")
        );
        assert_eq!(md["revocation_endpoint"], format!("{issuer}/oauth/revoke"));
        assert_eq!(md["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(md["response_types_supported"], json!(["code"]));
        assert_eq!(
            md["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(
            md["token_endpoint_auth_methods_supported"],
            json!([
                "none",
                "client_secret_post",
                "client_secret_basic",
                "private_key_jwt"
            ])
        );
        assert_eq!(md["client_id_metadata_document_supported"], true);
        assert_eq!(md["authorization_response_iss_parameter_supported"], true);
        assert_eq!(md["scopes_supported"], json!(["notes:read", "notes:write"]));
    }
    let jwks: serde_json::Value = reqwest::get(proxy.url("/oauth/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private key material"
    );
}

#[tokio::test]
async fn registration_accepts_public_and_confidential_clients_and_refuses_bad_metadata() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let (status, body) = register(&proxy, json!({"redirect_uris": ["http://127.0.0.1:33418/callback"], "token_endpoint_auth_method": "none", "client_name": "CLI"})).await;
    assert_eq!(status, 201);
    assert!(
        body["client_id"].is_string() && body.get("client_secret").is_none(),
        "{body}"
    );

    for method in ["client_secret_post", "client_secret_basic"] {
        let (status, body) = register(&proxy, json!({"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"], "token_endpoint_auth_method": method})).await;
        assert_eq!(status, 201);
        assert!(
            body["client_secret"]
                .as_str()
                .is_some_and(|s| s.len() >= 32),
            "{body}"
        );
        assert_eq!(body["token_endpoint_auth_method"], method);
    }
    let (status, body) = register(&proxy, json!({"redirect_uris": ["cursor://anysphere.cursor-retrieval/oauth/callback"], "token_endpoint_auth_method": "none"})).await;
    assert_eq!(status, 201, "{body}");

    let (status, body) =
        register(&proxy, json!({"redirect_uris": ["http://evil.example/cb"]})).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_redirect_uri"))
    );
    let (status, body) = register(&proxy, json!({"redirect_uris": "not a list"})).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_client_metadata"))
    );

    let res = http()
        .post(proxy.url("/oauth/register"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    let res = http()
        .post(proxy.url("/oauth/register"))
        .body("redirect_uris=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = http()
        .post(proxy.url("/oauth/register"))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let res = http()
        .get(proxy.url("/oauth/register"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn the_full_flow_issues_audience_bound_tokens() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = start(&upstream.url("/mcp")).await;
    let client_id = register_public(&proxy).await;
    let q = consent(
        &proxy,
        &client_id,
        &[("scope", "notes:write  offline_access"), ("state", "a")],
        "allow",
    )
    .await;
    assert_eq!(q["state"], "a", "a one-character state comes back");
    assert_eq!(q["iss"], proxy.base());
    let code = q["code"].clone();

    let res = http()
        .post(proxy.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "notes:write");
    let access = body["access_token"].as_str().unwrap();
    let c = claims(access);
    assert_eq!(c["aud"], proxy.url("/notes/mcp"));
    assert_eq!(c["iss"], proxy.base());
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["client_id"], client_id.as_str());
    assert_eq!(c["scope"], "notes:write");
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        3600
    );

    assert_eq!(mcp_status(&proxy, "/notes/mcp", access).await.status(), 200);
    let other = mcp_status(&proxy, "/open/mcp", access).await;
    assert_eq!(
        other.status(),
        401,
        "a token for notes is refused by another route"
    );
    assert!(
        other.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    // The upstream never sees the client's token.
    let reqs = upstream.requests().await;
    assert!(
        reqs.iter().all(|r| !r.to_string().contains(access)),
        "{reqs:?}"
    );

    // Replaying the code fails and revokes what it issued.
    let (status, replay) = exchange(&proxy, &client_id, &code).await;
    assert_eq!(
        (status.as_u16(), replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        mcp_status(&proxy, "/notes/mcp", access).await.status(),
        401,
        "access token of a replayed code is revoked"
    );
    let (status, _) = refresh(&proxy, &client_id, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "refresh token of a replayed code is revoked");
}

#[tokio::test]
async fn authorization_errors_go_to_the_client_or_to_a_page() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let client_id = register_public(&proxy).await;
    let cases = [
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("resource", "https://elsewhere.example/mcp")],
            "invalid_target",
        ),
    ];
    // Nobody signed in: anyone could have registered the redirect URI, so the
    // error is shown here rather than redirected (no open redirector).
    for (extra, error) in &cases {
        let res = http()
            .get(authorize_url(&proxy, &client_id, extra))
            .send()
            .await
            .unwrap();
        assert_error_page(res, error).await;
    }
    // Signed in, but the client was never allowed: still a page (RFC 9700 §4.11.2).
    let mut browser = Browser::default();
    let res = login(
        &mut browser,
        &proxy,
        &authorize_url(&proxy, &client_id, &[]),
        USER,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 200);
    let consent_page = res.text().await.unwrap();
    for (extra, error) in &cases {
        let res = browser.get(&authorize_url(&proxy, &client_id, extra)).await;
        assert_error_page(res, error).await;
    }
    // Once the user allowed the client, its errors go back to it with state and iss.
    decide(&mut browser, &proxy, &consent_page, "allow").await;
    for (extra, error) in &cases {
        let res = browser.get(&authorize_url(&proxy, &client_id, extra)).await;
        assert_eq!(res.status(), 302, "{extra:?}");
        let q = query_of(&location(&res));
        assert_eq!(q["error"], *error, "{extra:?}");
        assert_eq!(q["state"], "st");
        assert_eq!(q["iss"], proxy.base());
    }
    // Untrusted client or redirect: a readable page, no redirect.
    for url in [
        authorize_url(&proxy, "no-such-client", &[]),
        authorize_url(
            &proxy,
            &client_id,
            &[("redirect_uri", "https://evil.example/callback")],
        ),
        proxy.url("/oauth/authorize?client_id=a&client_id=b"),
        proxy.url("/oauth/authorize?%zz=%%%"),
    ] {
        let res = http().get(&url).send().await.unwrap();
        assert_eq!(res.status(), 400, "{url}");
        assert!(res.headers().get("location").is_none());
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let text = res.text().await.unwrap();
        assert!(
            text.contains("<h1>") && !text.contains("panicked"),
            "{text}"
        );
    }
    // A different loopback port is the same redirect URI (RFC 8252 §7.3).
    let res = Browser::default()
        .get(&authorize_url(
            &proxy,
            &client_id,
            &[("redirect_uri", "http://127.0.0.1:61234/callback")],
        ))
        .await;
    assert_eq!(res.status(), 302);
    assert!(
        location(&res).starts_with("/oauth/login?"),
        "to the login page"
    );
}

/// An error shown as a page (400, HTML, naming `error`), not redirected anywhere.
async fn assert_error_page(res: reqwest::Response, error: &str) {
    assert_eq!(res.status(), 400, "{error}");
    assert!(res.headers().get("location").is_none(), "{error}");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = res.text().await.unwrap();
    assert!(text.contains(error), "{error}: {text}");
}

#[tokio::test]
async fn a_signed_in_user_is_not_redirected_to_a_client_they_never_allowed() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let mut browser = Browser::default();
    let own = register_public(&proxy).await;
    let res = login(
        &mut browser,
        &proxy,
        &authorize_url(&proxy, &own, &[]),
        USER,
        PASSWORD,
    )
    .await;
    let page = res.text().await.unwrap();
    decide(&mut browser, &proxy, &page, "allow").await;
    let (status, body) = register(
        &proxy,
        json!({"redirect_uris": ["https://evil.example/phish"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let evil = body["client_id"].as_str().unwrap();
    let link = authorize_url(
        &proxy,
        evil,
        &[
            ("redirect_uri", "https://evil.example/phish"),
            ("response_type", "x"),
        ],
    );
    assert_error_page(browser.get(&link).await, "unsupported_response_type").await;
}

#[tokio::test]
async fn login_and_consent_pages() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let client_id = register_public(&proxy).await;
    let mut browser = Browser::default();
    let authorize = authorize_url(&proxy, &client_id, &[]);

    let res = login(&mut browser, &proxy, &authorize, USER, "wrong").await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Wrong username or password.")
    );

    // Without the CSRF token the form is refused.
    let res = browser
        .post_form(
            &proxy.url("/oauth/login"),
            &[("username", USER), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 403);

    let res = login(&mut browser, &proxy, &authorize, USER, PASSWORD).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("form-action"),
        "{csp}"
    );
    let page = res.text().await.unwrap();
    for needle in [
        "Test Client",
        "notes",
        "127.0.0.1",
        "notes:read",
        "read_note",
        "list_*",
        ">Allow</button>",
        ">Deny</button>",
    ] {
        assert!(page.contains(needle), "consent page lacks {needle}");
    }
    let cookie = browser.cookies.get("mcp_session").cloned().unwrap();

    // Deny: access_denied with state and iss.
    let res = browser
        .post_form(
            &proxy.url("/oauth/consent"),
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("ticket", &hidden(&page, "ticket")),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let q = query_of(&location(&res));
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        ("access_denied", "st", proxy.base().as_str())
    );
    assert!(!q.contains_key("code"));

    // A forged ticket is refused.
    let res = browser
        .post_form(
            &proxy.url("/oauth/consent"),
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("ticket", "eyJ4Ijox.forged"),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(!cookie.is_empty());
}

#[tokio::test]
async fn users_outside_allow_get_a_page_and_no_code() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let client_id = register_public(&proxy).await;
    let mut browser = Browser::default();
    let res = login(
        &mut browser,
        &proxy,
        &authorize_url(&proxy, &client_id, &[]),
        "bob",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("not allowed"));
    // bob may use the open route.
    let res = browser
        .get(&authorize_url(
            &proxy,
            &client_id,
            &[("resource", &proxy.url("/open/mcp"))],
        ))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_login_failures_are_slowed_down() {
    let (proxy, clock) = Proxy::start_in_process(|port, dir| {
        config(port, dir, "http://127.0.0.1:9/mcp", DEFAULT_TOKENS)
    })
    .await;
    let client_id = register_public(&proxy).await;
    let mut browser = Browser::default();
    let authorize = authorize_url(&proxy, &client_id, &[]);
    let mut statuses = Vec::new();
    let attempt = async |browser: &mut Browser| {
        login(browser, &proxy, &authorize, USER, "wrong")
            .await
            .status()
            .as_u16()
    };
    for _ in 0..6 {
        statuses.push(attempt(&mut browser).await);
    }
    assert_eq!(
        statuses,
        vec![401, 401, 401, 401, 401, 429],
        "the 6th attempt right away is refused"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        attempt(&mut browser).await,
        401,
        "a second later it is tried"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(attempt(&mut browser).await, 429, "then the wait doubles");
    clock.advance(Duration::from_secs(1));
    assert_eq!(attempt(&mut browser).await, 401);
}

#[tokio::test]
async fn an_overlong_username_is_refused_and_not_counted() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let client_id = register_public(&proxy).await;
    let authorize = authorize_url(&proxy, &client_id, &[]);
    let long = "a".repeat(257);
    let mut browser = Browser::default();
    // More than the 20 failures an address gets for free: none of these count.
    for _ in 0..25 {
        let res = login(&mut browser, &proxy, &authorize, &long, "wrong").await;
        assert_eq!(res.status(), 400);
        let page = res.text().await.unwrap();
        assert!(
            page.contains("That username is too long (at most 256 bytes).")
                && !page.contains(&long),
            "{page}"
        );
    }
    let res = login(&mut browser, &proxy, &authorize, USER, PASSWORD).await;
    assert_eq!(res.status(), 200, "not slowed down");
}

#[tokio::test]
async fn token_endpoint_errors() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let client_id = register_public(&proxy).await;
    let q = consent(&proxy, &client_id, &[], "allow").await;
    let code = q["code"].as_str();

    let wrong_verifier = "x".repeat(43);
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &wrong_verifier),
                ("client_id", &client_id),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", VERIFIER),
                ("client_id", &client_id),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", &client_id),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![("grant_type", "password"), ("client_id", &client_id)],
            400,
            "unsupported_grant_type",
        ),
        (vec![("client_id", &client_id)], 400, "invalid_request"),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("client_id", "unknown"),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "junk"),
                ("client_id", &client_id),
            ],
            400,
            "invalid_grant",
        ),
    ];
    for (form, status, error) in cases {
        let (s, body) = token_request(&proxy, &form).await;
        assert_eq!(
            (s.as_u16(), body["error"].as_str()),
            (status, Some(error)),
            "{form:?}: {body}"
        );
    }
    // Failed attempts did not burn the code.
    let (status, body) = exchange(&proxy, &client_id, code).await;
    assert_eq!(status, 200, "{body}");

    let res = http()
        .post(proxy.url("/oauth/token"))
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let res = http()
        .post(proxy.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn confidential_clients_authenticate_with_basic_or_post() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    for method in ["client_secret_basic", "client_secret_post"] {
        let (_, reg) = register(&proxy, json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": method, "client_name": "Claude"})).await;
        let id = reg["client_id"].as_str().unwrap();
        let secret = reg["client_secret"].as_str().unwrap();
        let q = consent(&proxy, id, &[], "allow").await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];

        // Without the secret, or with a wrong one: 401 invalid_client.
        let res = http()
            .post(proxy.url("/oauth/token"))
            .basic_auth(id, Some("wrong"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert!(res.headers().contains_key("www-authenticate"));
        let (s, _) = token_request(&proxy, &[form.as_slice(), &[("client_id", id)]].concat()).await;
        assert_eq!(s, 401);

        let res = if method == "client_secret_basic" {
            http()
                .post(proxy.url("/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap()
        } else {
            http()
                .post(proxy.url("/oauth/token"))
                .form(
                    &[
                        form.as_slice(),
                        &[("client_id", id), ("client_secret", secret)],
                    ]
                    .concat(),
                )
                .send()
                .await
                .unwrap()
        };
        assert_eq!(res.status(), 200, "{method}");
    }
    let logs = proxy.logs();
    assert!(!logs.contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotates_with_a_grace_window_then_revokes_on_reuse() {
    let (proxy, clock) = Proxy::start_in_process(|port, dir| {
        config(
            port,
            dir,
            "http://127.0.0.1:9/mcp",
            "  access_ttl: 1h\n  refresh_grace: 1s",
        )
    })
    .await;
    let t = tokens(&proxy, &[("scope", "notes:read notes:write")]).await;

    let (s, first) = refresh(&proxy, &t.client_id, &t.refresh).await;
    assert_eq!(s, 200, "{first}");
    assert_ne!(first["refresh_token"], t.body["refresh_token"], "rotated");
    assert_eq!(first["scope"], "notes:read notes:write", "scopes survive");
    assert_eq!(
        claims(first["access_token"].as_str().unwrap())["aud"],
        proxy.url("/notes/mcp"),
        "audience survives"
    );

    // Two retries at once with the old token within the grace window: the same answer.
    let (a, b) = tokio::join!(
        refresh(&proxy, &t.client_id, &t.refresh),
        refresh(&proxy, &t.client_id, &t.refresh)
    );
    assert_eq!((a.0.as_u16(), b.0.as_u16()), (200, 200));
    assert_eq!(a.1, first);
    assert_eq!(b.1, first);

    // Narrowing works; widening does not.
    let new_refresh = first["refresh_token"].as_str().unwrap();
    let (s, narrowed) = token_request(
        &proxy,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", new_refresh),
            ("client_id", &t.client_id),
            ("scope", "notes:read"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], "notes:read");

    // The window includes its last second.
    clock.advance(Duration::from_secs(1));
    let (s, again) = refresh(&proxy, &t.client_id, &t.refresh).await;
    assert_eq!(
        (s.as_u16(), &again),
        (200, &first),
        "still within the window"
    );

    // After the window, the old token is reuse: the whole family is revoked.
    clock.advance(Duration::from_secs(1));
    let (s, body) = refresh(&proxy, &t.client_id, &t.refresh).await;
    assert_eq!(
        (s.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let newest = narrowed["refresh_token"].as_str().unwrap();
    let (s, _) = refresh(&proxy, &t.client_id, newest).await;
    assert_eq!(s, 400, "the newest token of the family is revoked too");
    let access = narrowed["access_token"].as_str().unwrap();
    assert_eq!(
        mcp_status(&proxy, "/notes/mcp", access).await.status(),
        401,
        "and its access tokens"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_tokens_expire_exactly_and_bad_tokens_are_refused() {
    let (proxy, clock) = Proxy::start_in_process(|port, dir| {
        config(port, dir, "http://127.0.0.1:9/mcp", "  access_ttl: 2s")
    })
    .await;
    let t = tokens(&proxy, &[("resource", &proxy.url("/open/mcp"))]).await;
    let exp = claims(&t.access)["exp"].as_u64().unwrap();
    assert_eq!(exp, clock.unix() + 2, "access_ttl");
    // Before exp the upstream is tried (502: nothing listens), from exp on the token is refused.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        mcp_status(&proxy, "/open/mcp", &t.access).await.status(),
        502,
        "a second before exp"
    );
    clock.advance(Duration::from_secs(1));
    let res = mcp_status(&proxy, "/open/mcp", &t.access).await;
    assert_eq!(res.status(), 401, "at exp");
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("expired")
    );

    let mut parts: Vec<String> = t.access.split('.').map(str::to_string).collect();
    let none_header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"alg":"none","typ":"at+jwt"}"#,
    );
    let alg_none = format!("{none_header}.{}.", parts[1]);
    parts[2] = parts[2].chars().rev().collect();
    for bad in [alg_none, parts.join("."), "garbage".to_string()] {
        assert_eq!(
            mcp_status(&proxy, "/open/mcp", &bad).await.status(),
            401,
            "{bad}"
        );
    }
    let res = reqwest::Client::new()
        .post(proxy.url(&format!("/open/mcp?access_token={}", t.access)))
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "tokens in the query string are refused");
}

#[tokio::test]
async fn revocation() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let t = tokens(&proxy, &[("resource", &proxy.url("/open/mcp"))]).await;
    assert_eq!(
        mcp_status(&proxy, "/open/mcp", &t.access).await.status(),
        502,
        "valid (upstream down)"
    );
    let res = http()
        .post(proxy.url("/oauth/revoke"))
        .form(&[("token", t.access.as_str()), ("client_id", &t.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        mcp_status(&proxy, "/open/mcp", &t.access).await.status(),
        401
    );

    let res = http()
        .post(proxy.url("/oauth/revoke"))
        .form(&[
            ("token", t.refresh.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", &t.client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (s, _) = refresh(&proxy, &t.client_id, &t.refresh).await;
    assert_eq!(s, 400);
    // Unknown tokens are fine (RFC 7009); a missing token is not.
    let res = http()
        .post(proxy.url("/oauth/revoke"))
        .form(&[("token", "whatever"), ("client_id", &t.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http()
        .post(proxy.url("/oauth/revoke"))
        .form(&[("client_id", &t.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn a_restart_keeps_clients_keys_and_refresh_tokens() {
    let mut proxy = start("http://127.0.0.1:9/mcp").await;
    let t = tokens(&proxy, &[("resource", &proxy.url("/open/mcp"))]).await;
    proxy.restart().await;
    assert_eq!(
        mcp_status(&proxy, "/open/mcp", &t.access).await.status(),
        502,
        "the signing key survives: the old access token is valid"
    );
    let (s, body) = refresh(&proxy, &t.client_id, &t.refresh).await;
    assert_eq!(s, 200, "client and refresh token survive: {body}");
    let q = consent(
        &proxy,
        &t.client_id,
        &[("resource", &proxy.url("/open/mcp"))],
        "allow",
    )
    .await;
    assert!(q.contains_key("code"), "the client is still registered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_obtained_a_token_refreshes_and_revokes_after_two_days() {
    let (proxy, clock) = Proxy::start_in_process(|port, dir| {
        config(port, dir, "http://127.0.0.1:9/mcp", DEFAULT_TOKENS)
    })
    .await;
    let t = tokens(&proxy, &[("resource", &proxy.url("/open/mcp"))]).await;
    let unused = register_public(&proxy).await;
    clock.advance(Duration::from_secs(2 * 86_400));
    let (s, body) = refresh(&proxy, &t.client_id, &t.refresh).await;
    assert_eq!(s, 200, "{body}");
    let res = http()
        .post(proxy.url("/oauth/revoke"))
        .form(&[
            ("token", body["refresh_token"].as_str().unwrap()),
            ("client_id", &t.client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the client still authenticates");
    let (s, body) = refresh(&proxy, &unused, "whatever.token").await;
    assert_eq!(
        (s.as_u16(), body["error"].as_str()),
        (401, Some("invalid_client")),
        "a client that never obtained a token is forgotten after a day"
    );
}

#[tokio::test]
async fn revoking_any_refresh_token_of_a_family_revokes_the_newest() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let t = tokens(&proxy, &[("resource", &proxy.url("/open/mcp"))]).await;
    let (_, second) = refresh(&proxy, &t.client_id, &t.refresh).await;
    let middle = second["refresh_token"].as_str().unwrap().to_string();
    let (_, third) = refresh(&proxy, &t.client_id, &middle).await;
    let newest = third["refresh_token"].as_str().unwrap();
    let newest_access = third["access_token"].as_str().unwrap();
    assert_eq!(
        mcp_status(&proxy, "/open/mcp", newest_access)
            .await
            .status(),
        502,
        "valid before"
    );
    let res = http()
        .post(proxy.url("/oauth/revoke"))
        .form(&[("token", middle.as_str()), ("client_id", &t.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (s, _) = refresh(&proxy, &t.client_id, newest).await;
    assert_eq!(s, 400, "the newest refresh token of the family is revoked");
    assert_eq!(
        mcp_status(&proxy, "/open/mcp", newest_access)
            .await
            .status(),
        401,
        "and its access token"
    );
}

#[tokio::test]
async fn token_request_details() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let client_id = register_public(&proxy).await;
    let q = consent(&proxy, &client_id, &[], "allow").await;
    // The authorization request named redirect_uri: the token request must repeat it.
    let (s, body) = token_request(
        &proxy,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        (s.as_u16(), body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (s, body) = exchange(&proxy, &client_id, &q["code"]).await;
    assert_eq!(s, 200, "{body}");
    // offline_access alone on refresh keeps the whole grant.
    let (s, body) = token_request(
        &proxy,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
            ("scope", "offline_access"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["scope"], "notes:read");
}

#[tokio::test]
async fn cookies_are_http_only_and_consent_is_answered_once() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let client_id = register_public(&proxy).await;
    let mut browser = Browser::default();
    let res = browser.get(&authorize_url(&proxy, &client_id, &[])).await;
    let login_page = browser.get(&proxy.url(&location(&res))).await;
    let cookie = login_page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
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
    let session = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        session.starts_with("mcp_session=") && session.contains("HttpOnly"),
        "{session}"
    );
    let consent_page = browser
        .get(&proxy.url(&location(&res)))
        .await
        .text()
        .await
        .unwrap();
    let form = [
        ("csrf", hidden(&consent_page, "csrf")),
        ("ticket", hidden(&consent_page, "ticket")),
        ("decision", "allow".to_string()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        browser
            .post_form(&proxy.url("/oauth/consent"), &form)
            .await
            .status(),
        303
    );
    assert_eq!(
        browser
            .post_form(&proxy.url("/oauth/consent"), &form)
            .await
            .status(),
        400,
        "a re-posted consent mints no second code"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_is_rate_limited_per_address() {
    let (proxy, clock) = Proxy::start_in_process(|port, dir| {
        config(port, dir, "http://127.0.0.1:9/mcp", DEFAULT_TOKENS)
    })
    .await;
    let body = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    let mut statuses = Vec::new();
    for _ in 0..61 {
        statuses.push(register(&proxy, body.clone()).await.0.as_u16());
    }
    assert!(statuses[..60].iter().all(|s| *s == 201));
    assert_eq!(statuses[60], 429);
    clock.advance(Duration::from_secs(3599));
    assert_eq!(register(&proxy, body.clone()).await.0, 429);
    clock.advance(Duration::from_secs(1));
    assert_eq!(register(&proxy, body).await.0, 201, "a new hour");
}

#[tokio::test]
async fn client_secrets_never_reach_the_logs() {
    let proxy = start("http://127.0.0.1:9/mcp").await;
    let (_, reg) = register(
        &proxy,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap();
    let secret = reg["client_secret"].as_str().unwrap();
    let q = consent(&proxy, id, &[], "allow").await;
    let (s, body) = token_request(
        &proxy,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", id),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_eq!(s, 200);
    let logs = proxy.logs();
    for secret in [
        secret,
        &q["code"],
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
        PASSWORD,
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
}

/// The `kid` in a JWT's header (unverified, for assertions).
fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header);
    let header: serde_json::Value = serde_json::from_slice(&header.unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// The `kid`s that `/oauth/jwks` publishes.
async fn published_kids(proxy: &Proxy) -> Vec<String> {
    let jwks: serde_json::Value = reqwest::get(proxy.url("/oauth/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `/oauth/jwks` until the sweeper (woken by the clock) has published `kids`.
async fn wait_for_jwks(proxy: &Proxy, kids: &[&str]) {
    crate::common::wait_for(
        &format!("JWKS to list {kids:?}"),
        Duration::from_secs(10),
        || async { (published_kids(proxy).await == kids).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_rotate_on_schedule_and_the_old_key_stays_published_while_its_tokens_live() {
    const DAY: u64 = 86_400;
    const PUBLISH_AHEAD: u64 = 600;
    let (proxy, clock) = Proxy::start_in_process(|port, dir| {
        config(
            port,
            dir,
            "http://127.0.0.1:9/mcp",
            "  access_ttl: 1h\n  signing_key_rotation: 30d",
        )
    })
    .await;
    let open = [("resource", proxy.url("/open/mcp"))];
    let open: Vec<(&str, &str)> = open.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = published_kids(&proxy).await;
    assert_eq!(first.len(), 1);
    let old = first[0].clone();
    assert_eq!(kid(&tokens(&proxy, &open).await.access), old);

    clock.advance(Duration::from_secs(30 * DAY - PUBLISH_AHEAD));
    let next = crate::common::wait_for("the next key", Duration::from_secs(10), || async {
        let kids = published_kids(&proxy).await;
        (kids.len() == 2).then(|| kids[1].clone())
    })
    .await;
    assert_eq!(published_kids(&proxy).await, [old.clone(), next.clone()]);
    let before = tokens(&proxy, &open).await.access;
    assert_eq!(
        kid(&before),
        old,
        "the next key is published before it signs"
    );

    clock.advance(Duration::from_secs(PUBLISH_AHEAD));
    let after = tokens(&proxy, &open).await.access;
    assert_eq!(
        kid(&after),
        next,
        "tokens after the rotation carry the new kid"
    );
    for (token, which) in [(&before, "signed before"), (&after, "signed after")] {
        // 502: past authentication, to an upstream where nothing listens.
        let status = mcp_status(&proxy, "/open/mcp", token).await.status();
        assert_eq!(status, 502, "a token {which} the rotation is accepted");
    }
    wait_for_jwks(&proxy, &[&old, &next]).await;

    clock.advance(Duration::from_secs(3600 + PUBLISH_AHEAD));
    wait_for_jwks(&proxy, &[&next]).await;
    let latest = tokens(&proxy, &open).await.access;
    assert_eq!(mcp_status(&proxy, "/open/mcp", &latest).await.status(), 502);
    let mut parts: Vec<&str> = latest.split('.').collect();
    let unknown = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{old}"}}"#),
    );
    parts[0] = &unknown;
    assert_eq!(
        mcp_status(&proxy, "/open/mcp", &parts.join("."))
            .await
            .status(),
        401,
        "a kid no longer in the set is refused"
    );
}
