//! Access without a browser: machine clients of `clients:` (client
//! credentials, with a secret or `private_key_jwt`), identity assertions
//! (ID-JAG) from an identity provider with `id_jag: true`, and per-client
//! access-token lifetimes.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::Ed25519KeyPair;
use serde_json::{Value, json};

use crate::cimd::{doc_server, key};
use crate::common::{MCP_ACCEPT, NodeUpstream, Proxy, initialize_body, simple_config};
use crate::oauth_client::*;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(pair: &Ed25519KeyPair, header: Value, claims: Value) -> String {
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    format!(
        "{msg}.{}",
        URL_SAFE_NO_PAD.encode(pair.sign(msg.as_bytes()).as_ref())
    )
}

/// A token request: its status as a number, and its JSON.
async fn token(proxy: &Proxy, form: &[(&str, &str)]) -> (u16, Value) {
    let (status, body) = token_request(proxy, form).await;
    (status.as_u16(), body)
}

/// The grant types the authorization-server metadata advertises.
async fn grant_types(proxy: &Proxy) -> Vec<Value> {
    let meta: Value = http()
        .get(proxy.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    meta["grant_types_supported"].as_array().unwrap().clone()
}

/// An MCP request with `token` to the `notes` route: its status.
async fn mcp_status(proxy: &Proxy, token: &str) -> u16 {
    http()
        .post(proxy.url("/notes/mcp"))
        .bearer_auth(token)
        .header("accept", MCP_ACCEPT)
        .json(&initialize_body())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const SCOPES: &str = "    scopes:\n      \"notes:read\": [\"read_*\"]\n      \"notes:write\": [\"write_*\"]\n    default_scopes: [\"notes:read\"]\n    allow:\n      groups: [staff]\n  - name: other\n    path: /other/mcp\n    upstream: \"http://127.0.0.1:9/mcp\"\n";

#[tokio::test]
async fn machine_clients_get_tokens_for_what_they_were_given() {
    let upstream = NodeUpstream::start(&[]);
    let (pair, jwk) = key();
    let jwks = json!({"keys": [jwk]}).to_string();
    let upstream_url = upstream.url("/mcp");
    let proxy = Proxy::start(move |port, dir| {
        simple_config(port, dir, SCOPES, &upstream_url).replace(
            "routes:\n",
            &format!(
                "tokens:\n  access_ttl: 10m\n  access_ttl_by_client: {{signed: 8h}}\nclients:\n  - client_id: ci\n    name: ci-deploy\n    client_secret_hash: \"{PASSWORD_HASH}\"\n    routes: [notes]\n    scopes: [\"notes:read\"]\n  - client_id: signed\n    jwks: {jwks}\n    routes: [notes, other]\n    scopes: [\"notes:read\", \"notes:write\"]\nroutes:\n"
            ),
        )
    })
    .await;
    let resource = proxy.url("/notes/mcp");
    assert!(
        grant_types(&proxy)
            .await
            .contains(&json!("client_credentials"))
    );

    // A secret (checked against its argon2 hash).
    let cc = [
        ("grant_type", "client_credentials"),
        ("resource", resource.as_str()),
    ];
    let (s, body) = token(
        &proxy,
        &[&cc[..], &[("client_id", "ci"), ("client_secret", PASSWORD)]].concat(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token: {body}"
    );
    assert_eq!(body["scope"], "notes:read");
    assert_eq!(body["expires_in"], 600);
    let access = body["access_token"].as_str().unwrap().to_string();
    let c = claims(&access);
    assert_eq!(
        (c["sub"].as_str(), c["client_id"].as_str()),
        (Some("service:ci-deploy"), Some("ci"))
    );
    assert_eq!(mcp_status(&proxy, &access).await, 200);

    // Refusals: a wrong secret, a scope or route not given, no resource.
    let (s, body) = token(
        &proxy,
        &[&cc[..], &[("client_id", "ci"), ("client_secret", "nope")]].concat(),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    let (s, body) = token(
        &proxy,
        &[
            &cc[..],
            &[
                ("client_id", "ci"),
                ("client_secret", PASSWORD),
                ("scope", "notes:write"),
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
    let other = proxy.url("/other/mcp");
    let (s, body) = token(
        &proxy,
        &[
            ("grant_type", "client_credentials"),
            ("resource", other.as_str()),
            ("client_id", "ci"),
            ("client_secret", PASSWORD),
        ],
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_target")),
        "{body}"
    );

    // private_key_jwt, and its own access-token lifetime.
    let assertion = |jti: &str| {
        sign(
            &pair,
            json!({"alg": "EdDSA", "kid": "k1"}),
            json!({"iss": "signed", "sub": "signed", "aud": proxy.url("/oauth/token"), "exp": now() + 60, "iat": now(), "jti": jti}),
        )
    };
    let kind = (
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );
    let a1 = assertion("a1");
    let (s, body) = token(
        &proxy,
        &[
            &cc[..],
            &[
                kind,
                ("client_assertion", a1.as_str()),
                ("scope", "notes:write"),
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (body["scope"].as_str(), body["expires_in"].as_u64()),
        (Some("notes:write"), Some(8 * 3600))
    );
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        8 * 3600
    );
    // A client that registered itself may not use client credentials.
    let dcr = register_public(&proxy).await;
    let (s, body) = token(&proxy, &[&cc[..], &[("client_id", dcr.as_str())]].concat()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    assert!(!proxy.logs().contains(PASSWORD));
}

/// A small identity provider: discovery and a key set, at `/` of its own server.
async fn issuer(jwk: Value) -> String {
    let port = doc_server(Arc::new(move |port, path| {
        let me = format!("http://127.0.0.1:{port}");
        let body = match path {
            "/.well-known/openid-configuration" => json!({
                "issuer": me, "authorization_endpoint": format!("{me}/auth"), "token_endpoint": format!("{me}/token"),
                "jwks_uri": format!("{me}/jwks"), "id_token_signing_alg_values_supported": ["EdDSA"],
            }),
            "/jwks" => json!({"keys": [jwk.clone()]}),
            _ => return None,
        };
        Some(("200 OK\r\ncontent-type: application/json".to_string(), body.to_string().into_bytes()))
    }))
    .await;
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn identity_assertions_from_a_trusted_provider_give_tokens_without_a_browser() {
    let upstream = NodeUpstream::start(&[]);
    let (pair, jwk) = key();
    let corp = issuer(jwk.clone()).await;
    let untrusted = issuer(jwk).await;
    let providers = format!(
        "identity_providers:\n  - name: corp\n    issuer: \"{corp}\"\n    client_id: proxy\n    client_secret: s\n    groups_claim: groups\n    id_jag: true\n  - name: plain\n    issuer: \"{untrusted}\"\n    client_id: proxy\n    client_secret: s\nroutes:\n"
    );
    let upstream_url = upstream.url("/mcp");
    let proxy = Proxy::start(move |port, dir| {
        simple_config(port, dir, SCOPES, &upstream_url).replace("routes:\n", &providers)
    })
    .await;
    assert!(
        grant_types(&proxy)
            .await
            .contains(&json!("urn:ietf:params:oauth:grant-type:jwt-bearer"))
    );
    let (status, reg) = register(
        &proxy,
        json!({"redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "client_secret_post",
               "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"]}),
    )
    .await;
    assert_eq!(status, 201, "{reg}");
    let (client_id, secret) = (
        reg["client_id"].as_str().unwrap().to_string(),
        reg["client_secret"].as_str().unwrap().to_string(),
    );
    let resource = proxy.url("/notes/mcp");
    let good = json!({
        "iss": corp, "sub": "u-1", "aud": proxy.base(), "resource": resource, "client_id": client_id,
        "jti": "j-1", "iat": now(), "exp": now() + 300, "scope": "notes:read notes:write",
        "email": "Alice@Example.com", "groups": ["staff"],
    });
    let jag = |changes: Value, typ: &str| {
        let mut c = good.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        sign(&pair, json!({"alg": "EdDSA", "kid": "k1", "typ": typ}), c)
    };
    let exchange = async |assertion: String| {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
        ];
        token(&proxy, &form).await
    };

    let (s, body) = exchange(jag(json!({}), "oauth-id-jag+jwt")).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["scope"], "notes:read notes:write");
    let access = body["access_token"].as_str().unwrap().to_string();
    let c = claims(&access);
    assert_eq!(
        (c["sub"].as_str(), c["aud"].as_str()),
        (Some("corp:alice@example.com"), Some(resource.as_str()))
    );
    assert_eq!(mcp_status(&proxy, &access).await, 200);

    let refused = [
        (
            jag(json!({"jti": "j-1"}), "oauth-id-jag+jwt"),
            "invalid_grant",
            "replayed jti",
        ),
        (
            jag(json!({"jti": "j-2"}), "JWT"),
            "invalid_grant",
            "wrong typ",
        ),
        (
            jag(
                json!({"jti": "j-3", "aud": "https://other.example"}),
                "oauth-id-jag+jwt",
            ),
            "invalid_grant",
            "wrong aud",
        ),
        (
            jag(
                json!({"jti": "j-4", "client_id": "someone-else"}),
                "oauth-id-jag+jwt",
            ),
            "invalid_grant",
            "wrong client_id",
        ),
        (
            jag(
                json!({"jti": "j-5", "iat": now() - 400, "exp": now() - 100}),
                "oauth-id-jag+jwt",
            ),
            "invalid_grant",
            "expired",
        ),
        (
            jag(
                json!({"jti": "j-6", "iss": "http://127.0.0.1:9"}),
                "oauth-id-jag+jwt",
            ),
            "invalid_grant",
            "unknown issuer",
        ),
        (
            jag(json!({"jti": "j-7", "iss": untrusted}), "oauth-id-jag+jwt"),
            "invalid_grant",
            "provider without id_jag",
        ),
        (
            jag(
                json!({"jti": "j-8", "groups": ["sales"]}),
                "oauth-id-jag+jwt",
            ),
            "invalid_grant",
            "user outside allow",
        ),
        (
            jag(
                json!({"jti": "j-9", "resource": "https://elsewhere.example/mcp"}),
                "oauth-id-jag+jwt",
            ),
            "invalid_target",
            "not our resource",
        ),
        (
            jag(json!({"jti": "j-10", "scope": "admin"}), "oauth-id-jag+jwt"),
            "invalid_scope",
            "no scope of the route",
        ),
    ];
    for (assertion, error, why) in refused {
        let (s, body) = exchange(assertion).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some(error)),
            "{why}: {body}"
        );
    }
    let (other, _) = key();
    let forged = sign(
        &other,
        json!({"alg": "EdDSA", "kid": "k1", "typ": "oauth-id-jag+jwt"}),
        json!({"iss": corp, "jti": "j-11"}),
    );
    let (s, body) = exchange(forged).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "bad signature: {body}"
    );
}
