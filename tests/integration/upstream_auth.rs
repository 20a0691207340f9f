//! Mapped upstream credentials: `upstream_auth` rules chosen by group, scope
//! and user; identity headers and the identity token to the upstream.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::Value;

use crate::common::{MCP_ACCEPT, NodeUpstream, Proxy, initialize_body, simple_config, wait_for};
use crate::oauth_client::*;

const ROUTE: &str = r#"    scopes:
      "notes:read": ["read_*"]
      "notes:write": ["write_*"]
    default_scopes: ["notes:read"]
    upstream_auth:
      - name: admins
        when: {groups: [staff]}
        bearer: admin-token
      - when: {scopes: ["notes:write"]}
        header: {name: X-Api-Key, value: write-key}
      - default: {bearer: read-token}
    identity_headers: true
    identity_token: {header: X-Mcp-Identity}
"#;

/// Tokens for `user` with `scope`, through the login and consent forms.
async fn tokens_as(proxy: &Proxy, user: &str, scope: &str) -> String {
    let client_id = register_public(proxy).await;
    let mut browser = Browser::default();
    let url = authorize_url(proxy, &client_id, &[("scope", scope)]);
    let res = login(&mut browser, proxy, &url, user, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let q = decide(&mut browser, proxy, &page, "allow").await;
    let (status, body) = exchange(proxy, &client_id, &q["code"]).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// The headers the upstream got for one MCP request with `token` (and a
/// client trying to name itself).
async fn seen_by_upstream(proxy: &Proxy, upstream: &NodeUpstream, token: &str) -> Value {
    let before = upstream.requests().await.len();
    let res = http()
        .post(proxy.url("/notes/mcp"))
        .bearer_auth(token)
        .header("accept", MCP_ACCEPT)
        .header("x-forwarded-user", "mallory")
        .header("x-api-key", "client-chosen")
        .header("x-mcp-identity", "forged")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let requests = upstream.requests().await;
    assert_eq!(requests.len(), before + 1);
    requests[before]["headers"].clone()
}

#[tokio::test]
async fn each_caller_gets_the_credential_of_the_first_rule_that_matches() {
    let upstream = NodeUpstream::start(&[]);
    let url = upstream.url("/mcp");
    let proxy = Proxy::start(move |port, dir| simple_config(port, dir, ROUTE, &url)).await;

    // alice is in `staff`: the admins rule, whatever her scopes.
    let alice = tokens_as(&proxy, "alice", "notes:write").await;
    let h = seen_by_upstream(&proxy, &upstream, &alice).await;
    assert_eq!(h["authorization"], "Bearer admin-token");
    assert!(
        h.get("x-api-key").is_none(),
        "a client's own X-Api-Key never arrives: {h}"
    );
    // bob (no group) with notes:write: the key rule; with notes:read: the default.
    let bob_write = tokens_as(&proxy, "bob", "notes:write").await;
    let h = seen_by_upstream(&proxy, &upstream, &bob_write).await;
    assert_eq!(
        (h["x-api-key"].as_str(), h.get("authorization")),
        (Some("write-key"), None)
    );
    let bob_read = tokens_as(&proxy, "bob", "notes:read").await;
    let h = seen_by_upstream(&proxy, &upstream, &bob_read).await;
    assert_eq!(h["authorization"], "Bearer read-token");

    // Identity headers: the proxy's, never the client's.
    assert_eq!(h["x-forwarded-user"], "bob");
    assert_eq!(h["x-forwarded-scopes"], "notes:read");
    assert_eq!(h["x-forwarded-groups"], "");
    assert!(
        h.get("x-forwarded-email").is_none(),
        "a local user has no email"
    );
    assert!(
        h["x-forwarded-client-id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );

    // The identity token verifies with a key of /oauth/jwks and names the caller.
    let token = h["x-mcp-identity"].as_str().unwrap();
    assert_ne!(token, "forged");
    let jwks: Value = http()
        .get(proxy.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["typ"], "mcp-identity+jwt");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(&ED25519, x)
        .verify(
            signed.as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("the identity token's signature verifies");
    let c = claims(token);
    assert_eq!(
        (c["sub"].as_str(), c["scope"].as_str()),
        (Some("bob"), Some("notes:read"))
    );
    assert_eq!(c["aud"].as_str(), Some(upstream.url("/mcp").as_str()));
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
    let c = claims(&alice);
    assert_eq!(
        c["groups"],
        serde_json::json!(["staff"]),
        "groups travel in the access token"
    );

    // The access log names the rule, never the secret.
    wait_for(
        "the access lines",
        std::time::Duration::from_secs(5),
        || async {
            let logs = proxy.logs();
            (logs.contains("upstream_auth=admins")
                && logs.contains("upstream_auth=1")
                && logs.contains("upstream_auth=2"))
            .then_some(())
        },
    )
    .await;
    let logs = proxy.logs();
    for secret in ["admin-token", "write-key", "read-token"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}
