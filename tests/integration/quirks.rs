//! The request shapes real clients send, replayed: loopback ports, resource
//! spellings, odd scopes, offline_access, the 2025-03-26 fallback endpoints.

use serde_json::json;

use crate::common::{Proxy, simple_config};
use crate::oauth_client::*;

const SCOPES: &str = "    scopes:\n      \"notes:read\": [\"read_*\"]\n      \"notes:write\": [\"write_*\"]\n    default_scopes: [\"notes:read\"]\n";

async fn proxy() -> Proxy {
    Proxy::start(|port, dir| simple_config(port, dir, SCOPES, "http://127.0.0.1:9/mcp")).await
}

/// Registers `registered`, then runs the flow presenting `presented` and `extra`; returns the token response.
async fn flow(
    proxy: &Proxy,
    registered: &str,
    presented: &str,
    extra: &[(&str, &str)],
) -> serde_json::Value {
    let (s, reg) = register(proxy, json!({"redirect_uris": [registered], "token_endpoint_auth_method": "none", "client_name": "Quirk"})).await;
    assert_eq!(s, 201, "{reg}");
    let id = reg["client_id"].as_str().unwrap();
    let mut params = vec![("redirect_uri", presented)];
    params.extend_from_slice(extra);
    let q = consent(proxy, id, &params, "allow").await;
    let (s, body) = token_request(
        proxy,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", presented),
            ("code_verifier", VERIFIER),
            ("client_id", id),
        ],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body
}

#[tokio::test]
async fn random_loopback_ports_on_every_loopback_host() {
    let proxy = proxy().await;
    for (registered, presented) in [
        (
            "http://127.0.0.1/callback",
            "http://127.0.0.1:49152/callback",
        ),
        ("http://[::1]/callback", "http://[::1]:50001/callback"),
        (
            "http://localhost:33418/callback",
            "http://localhost:61000/callback",
        ),
    ] {
        flow(&proxy, registered, presented, &[]).await;
    }
}

#[tokio::test]
async fn resource_spellings_bind_to_the_canonical_resource() {
    let proxy = proxy().await;
    let canonical = proxy.url("/notes/mcp");
    for spelling in [
        format!("{canonical}/"),
        canonical.replace("http://127.0.0.1", "HTTP://127.0.0.1"),
    ] {
        let body = flow(&proxy, REDIRECT, REDIRECT, &[("resource", &spelling)]).await;
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["aud"],
            canonical,
            "{spelling}"
        );
    }
}

#[tokio::test]
async fn odd_scopes_and_offline_access() {
    let proxy = proxy().await;
    let md: serde_json::Value = reqwest::get(proxy.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !md["scopes_supported"]
            .to_string()
            .contains("offline_access"),
        "not advertised"
    );
    for (scope, granted) in [
        ("", "notes:read"),
        ("   notes:write   offline_access  ", "notes:write"),
        ("offline_access", "notes:read"),
        ("notes:read\tnotes:write", "notes:read notes:write"),
    ] {
        let body = flow(&proxy, REDIRECT, REDIRECT, &[("scope", scope)]).await;
        assert_eq!(body["scope"], granted, "{scope:?}");
    }
}

#[tokio::test]
async fn the_2025_03_26_fallback_endpoints_work() {
    let proxy = proxy().await;
    let res = http()
        .post(proxy.url("/register"))
        .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<serde_json::Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = authorize_url(&proxy, &id, &[]).replace("/oauth/authorize", "/authorize");
    let mut browser = Browser::default();
    let res = login(&mut browser, &proxy, &url, USER, PASSWORD).await;
    assert_eq!(res.status(), 200, "the consent page, via /authorize");
    let page = res.text().await.unwrap();
    let q = decide(&mut browser, &proxy, &page, "allow").await;
    let res = http()
        .post(proxy.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
