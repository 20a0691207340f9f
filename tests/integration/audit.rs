//! The audit log file: one JSON line per security event, no secrets, reopened on SIGHUP.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    MCP_ACCEPT, NodeUpstream, Proxy, admin_url, free_port, initialize_body, simple_config,
    wait_for, with_admin,
};
use crate::oauth_client::{
    Browser, PASSWORD, REDIRECT, VERIFIER, authorize_url, consent, exchange, http, login, refresh,
    register, register_public, token_request, tokens,
};

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

/// The fields every audit line has, checked on `e`: its event, time, user, client, route and ip.
fn assert_fields(e: &Value, user: &str, client: Option<&str>, route: Option<&str>) {
    let name = &e["event"];
    let time = e["time"].as_str().unwrap_or_default();
    assert!(time.len() > 20 && time.ends_with('Z'), "{name}: time {e}");
    assert_eq!(e["user"], user, "{name}: {e}");
    assert_eq!(
        e["client"],
        client.map_or(Value::Null, Value::from),
        "{name}: {e}"
    );
    assert_eq!(
        e["route"],
        route.map_or(Value::Null, Value::from),
        "{name}: {e}"
    );
    assert_eq!(e["ip"], "127.0.0.1", "{name}: {e}");
}

#[tokio::test]
async fn refusals_and_admin_actions_are_audited_with_who_where_and_from_where_and_no_secret() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(|port, dir| {
        let audit = dir.join("audit.jsonl");
        let base = simple_config(port, dir, SCOPES, &upstream.url("/mcp")).replacen(
            "routes:\n",
            "tokens:\n  refresh_grace: 0s\nroutes:\n",
            1,
        );
        with_admin(&base, free_port()) + &format!("audit:\n  path: {}\n", audit.display())
    })
    .await;
    let path = proxy.dir.path().join("audit.jsonl");

    // login_failed: a wrong password.
    let wrong_password = "not-alices-password-4711";
    let client_id = register_public(&proxy).await;
    let mut browser = Browser::default();
    let failed = login(
        &mut browser,
        &proxy,
        &authorize_url(&proxy, &client_id, &[]),
        "alice",
        wrong_password,
    )
    .await;
    assert_eq!(failed.status(), 401);

    // consent_denied.
    let denied = consent(&proxy, &client_id, &[], "deny").await;
    assert_eq!(denied["error"], "access_denied");

    // A confidential client's whole flow: its secret is used at the token endpoint.
    let (status, registered) = register(
        &proxy,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post", "client_name": "Confidential"}),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    let confidential = registered["client_id"].as_str().unwrap().to_string();
    let secret = registered["client_secret"].as_str().unwrap().to_string();
    let code = consent(&proxy, &confidential, &[], "allow").await["code"].clone();
    let (status, body) = token_request(
        &proxy,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &confidential),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_string();
    let first_refresh = body["refresh_token"].as_str().unwrap().to_string();

    // session_refused: another client of the same user presents this session.
    let res = http()
        .post(proxy.url("/notes/mcp"))
        .bearer_auth(&access)
        .header("accept", MCP_ACCEPT)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let session = res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let other = tokens(&proxy, &[]).await;
    let res = http()
        .post(proxy.url("/notes/mcp"))
        .bearer_auth(&other.access)
        .header("accept", MCP_ACCEPT)
        .header("mcp-session-id", &session)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // reuse_detected: a rotated refresh token presented after the grace window (0 s).
    let secret_form = |refresh: &str| {
        vec![
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), refresh.to_string()),
            ("client_id".to_string(), confidential.clone()),
            ("client_secret".to_string(), secret.clone()),
        ]
    };
    let form = secret_form(&first_refresh);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, body) = token_request(&proxy, &form).await;
    assert_eq!(status, 200, "{body}");
    let second_refresh = body["refresh_token"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = token_request(&proxy, &form).await;
    assert_eq!(
        (status.as_u16(), &body["error"]),
        (400, &json!("invalid_grant"))
    );

    // admin_action: the admin revokes the other client's grants through the API.
    let admin_token = std::fs::read_to_string(proxy.dir.path().join("state/admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let res = http()
        .post(admin_url(&proxy, "/admin/revoke"))
        .bearer_auth(&admin_token)
        .json(&json!({"client": other.client_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let all = wait_for("the audit lines", Duration::from_secs(5), || async {
        let all = events(&path);
        all.iter()
            .any(|e| e["event"] == "admin_action")
            .then_some(all)
    })
    .await;
    let e = find(&all, "login_failed");
    assert_fields(e, "alice", None, None);
    let e = find(&all, "consent_denied");
    assert_fields(e, "alice", Some(&client_id), Some("notes"));
    let e = find(&all, "consent_allowed");
    assert_fields(e, "alice", Some(&confidential), Some("notes"));
    let e = find(&all, "session_refused");
    assert_fields(e, "alice", Some(&other.client_id), Some("notes"));
    let e = find(&all, "reuse_detected");
    assert_fields(e, "alice", Some(&confidential), Some("notes"));
    let e = find(&all, "admin_action");
    assert_fields(e, "alice", Some(&other.client_id), None);
    assert_eq!(e["action"], "revoke");
    assert_eq!(e["target"], format!("client:{}", other.client_id));
    assert_eq!(e["grants"], 1);

    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        access.as_str(),
        &first_refresh,
        &second_refresh,
        &other.access,
        &other.refresh,
        code.as_str(),
        &secret,
        PASSWORD,
        wrong_password,
        &admin_token,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
