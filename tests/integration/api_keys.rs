//! API keys (issue 16): created by an admin, used as a bearer token on their
//! route with their scopes, listed, revoked (refused at once), expiring; the
//! key itself never in a log or in `/metrics`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    MCP_ACCEPT, NodeUpstream, Proxy, admin_command, admin_url, free_port, initialize_body,
    simple_config, with_admin,
};
use crate::oauth_client::http;

const ROUTE: &str = "    scopes:\n      \"notes:read\": [\"read_*\"]\n      \"notes:write\": [\"write_*\"]\n    default_scopes: [\"notes:read\"]\n    allow:\n      groups: [staff]\n";

fn config(upstream: &str, enabled: bool) -> impl Fn(u16, &Path) -> String {
    let extra = if enabled {
        "api_keys:\n  enabled: true\n"
    } else {
        ""
    };
    move |port, dir| {
        with_admin(&simple_config(port, dir, ROUTE, upstream), free_port()).replacen(
            "routes:\n",
            &format!("{extra}routes:\n"),
            1,
        )
    }
}

async fn call(proxy: &Proxy, key: &str, tool: Option<&str>) -> (u16, Value) {
    let body = match tool {
        None => initialize_body(),
        Some(name) => {
            serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {}}})
        }
    };
    let res = http()
        .post(proxy.url("/notes/mcp"))
        .bearer_auth(key)
        .header("accept", MCP_ACCEPT)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn an_api_key_works_on_its_route_with_its_scopes_until_revoked_or_expired() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(config(&upstream.url("/mcp"), true)).await;

    let made = admin_command(
        &proxy,
        &[
            "api-key", "create", "--user", "alice", "--route", "notes", "--json",
        ],
    );
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let made: Value = serde_json::from_str(&made.stdout).unwrap();
    let key = made["api_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("mop_"), "{key}");
    assert_eq!(made["key"]["scopes"], serde_json::json!(["notes:read"]));

    assert_eq!(call(&proxy, &key, None).await.0, 200);
    // Its scopes hold: a write tool is refused before the upstream.
    let (status, _) = call(&proxy, &key, Some("write_note")).await;
    assert_ne!(status, 200, "notes:write is not the key's");
    assert_eq!(call(&proxy, "mop_nope_wrong", None).await.0, 401);
    let forged = format!("{}x", &key[..key.len() - 1]);
    assert_eq!(call(&proxy, &forged, None).await.0, 401);

    let listed = admin_command(&proxy, &["api-key", "list"]);
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let id = made["key"]["id"].as_str().unwrap();
    assert!(
        listed.stdout.contains(id) && listed.stdout.contains("alice"),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains(&key));

    let revoked = admin_command(&proxy, &["api-key", "revoke", id]);
    assert_eq!(revoked.code, Some(0), "{}", revoked.stderr);
    assert_eq!(call(&proxy, &key, None).await.0, 401, "refused at once");

    // Who may get one, and what.
    let bob = admin_command(
        &proxy,
        &["api-key", "create", "--user", "bob", "--route", "notes"],
    );
    assert_ne!(bob.code, Some(0));
    assert!(
        bob.stderr.contains("bob is not allowed on route notes"),
        "{}",
        bob.stderr
    );
    let scope = admin_command(
        &proxy,
        &[
            "api-key", "create", "--user", "alice", "--route", "notes", "--scopes", "admin",
        ],
    );
    assert!(
        scope.stderr.contains("defines no scope \"admin\""),
        "{}",
        scope.stderr
    );

    // Never in a log line or in the metrics.
    let metrics = http()
        .get(admin_url(&proxy, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!proxy.logs().contains(&key), "a key in the logs");
    assert!(!metrics.contains(&key), "a key in /metrics");
    assert!(
        proxy.logs().contains("user=alice client=api-key:"),
        "the access log names the key's user and id"
    );
}

#[tokio::test]
async fn api_keys_are_off_unless_enabled() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(config(&upstream.url("/mcp"), false)).await;
    let made = admin_command(
        &proxy,
        &["api-key", "create", "--user", "alice", "--route", "notes"],
    );
    assert_ne!(made.code, Some(0));
    assert!(made.stderr.contains("API keys are off"), "{}", made.stderr);
    assert_eq!(call(&proxy, "mop_abc_def", None).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_with_an_expiry_stops_working_then() {
    let upstream = NodeUpstream::start(&["--json"]);
    let (proxy, clock) = Proxy::start_in_process(config(&upstream.url("/mcp"), true)).await;
    let short = admin_command(
        &proxy,
        &[
            "api-key",
            "create",
            "--user",
            "alice",
            "--route",
            "notes",
            "--scopes",
            "notes:read,notes:write",
            "--expires",
            "2s",
            "--json",
        ],
    );
    assert_eq!(short.code, Some(0), "{}", short.stderr);
    let short: Value = serde_json::from_str(&short.stdout).unwrap();
    let short_key = short["api_key"].as_str().unwrap();
    assert_eq!(
        short["key"]["scopes"],
        serde_json::json!(["notes:read", "notes:write"])
    );
    assert_eq!(call(&proxy, short_key, None).await.0, 200);
    clock.advance(Duration::from_secs(1));
    assert_eq!(call(&proxy, short_key, None).await.0, 200, "not yet");
    clock.advance(Duration::from_secs(1));
    assert_eq!(call(&proxy, short_key, None).await.0, 401, "expired");
    assert!(!proxy.logs().contains(short_key), "a key in the logs");
}
