//! The audit log file: one JSON line per security event, no secrets, reopened on SIGHUP.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{MCP_ACCEPT, NodeUpstream, Proxy, initialize_body, simple_config, wait_for};
use crate::oauth_client::{PASSWORD, consent, exchange, http, refresh, register_public};

const SCOPES: &str = r#"    scopes:
      "notes:read": ["echo"]
      "notes:write": ["write_note"]
    default_scopes: ["notes:read"]
"#;

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn find<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} in {events:#?}"))
}

#[tokio::test]
async fn a_session_leaves_one_audit_line_per_security_event_and_no_secret() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(|port, dir| {
        let audit = dir.join("audit.jsonl");
        simple_config(port, dir, SCOPES, &upstream.url("/mcp"))
            + &format!("audit:\n  path: {}\n", audit.display())
    })
    .await;
    let path = proxy.dir.path().join("audit.jsonl");

    let client_id = register_public(&proxy).await;
    let q = consent(&proxy, &client_id, &[("scope", "notes:read")], "allow").await;
    let code = q["code"].clone();
    let (status, body) = exchange(&proxy, &client_id, &code).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_string();
    let first_refresh = body["refresh_token"].as_str().unwrap().to_string();

    let mcp = |body: Value| {
        http()
            .post(proxy.url("/notes/mcp"))
            .bearer_auth(&access)
            .header("accept", MCP_ACCEPT)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .send()
    };
    assert_eq!(mcp(initialize_body()).await.unwrap().status(), 200);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "write_note", "arguments": {"id": "x", "text": "y"}}});
    assert_eq!(mcp(call).await.unwrap().status(), 403);

    let (status, body) = refresh(&proxy, &client_id, &first_refresh).await;
    assert_eq!(status, 200, "{body}");
    let second_refresh = body["refresh_token"].as_str().unwrap().to_string();
    let revoked = http()
        .post(proxy.url("/oauth/revoke"))
        .form(&[
            ("token", second_refresh.as_str()),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    let all = wait_for("the audit lines", Duration::from_secs(5), || async {
        let all = events(&path);
        all.iter()
            .any(|e| e["event"] == "token_revoked")
            .then_some(all)
    })
    .await;
    assert_eq!(
        find(&all, "client_registered")["client"],
        client_id.as_str()
    );
    assert_eq!(find(&all, "client_registered")["ip"], "127.0.0.1");
    assert_eq!(find(&all, "login_succeeded")["user"], "alice");
    for name in [
        "consent_allowed",
        "token_issued",
        "token_refreshed",
        "token_revoked",
    ] {
        let e = find(&all, name);
        assert_eq!(e["user"], "alice", "{e}");
        assert_eq!(e["client"], client_id.as_str(), "{e}");
        assert_eq!(e["route"], "notes", "{e}");
        assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    let refused = find(&all, "tool_call_refused");
    assert_eq!(refused["tool"], "write_note");
    assert_eq!(refused["missing_scope"], "notes:write");
    assert_eq!(refused["route"], "notes");

    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        access.as_str(),
        &first_refresh,
        &second_refresh,
        code.as_str(),
        PASSWORD,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn sighup_reopens_the_audit_file_for_logrotate() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(|port, dir| {
        let audit = dir.join("audit.jsonl");
        simple_config(port, dir, "", &upstream.url("/mcp"))
            + &format!("audit:\n  path: {}\n", audit.display())
    })
    .await;
    let path = proxy.dir.path().join("audit.jsonl");
    let rotated = proxy.dir.path().join("audit.jsonl.1");
    register_public(&proxy).await;
    std::fs::rename(&path, &rotated).unwrap();
    proxy.signal("HUP");
    wait_for("the reload", Duration::from_secs(5), || async {
        proxy
            .logs()
            .contains("configuration reloaded")
            .then_some(())
    })
    .await;
    register_public(&proxy).await;
    let new = wait_for("the new file", Duration::from_secs(5), || async {
        let e = events(&path);
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["event"], "client_registered");
    assert_eq!(events(&rotated).len(), 1);
}
