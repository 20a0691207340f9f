//! The admin commands and the admin API (issue 13): listing clients and grants,
//! revoking a user, a client or one grant on the running proxy (the next MCP
//! request is refused, the refresh is `invalid_grant`), the same on the store of
//! a stopped proxy, and the admin token that guards it all.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    MCP_ACCEPT, NodeUpstream, Proxy, admin_addr, admin_command, admin_url, free_port,
    initialize_body, simple_config, with_admin,
};
use crate::oauth_client::{http, refresh, tokens};

fn config(upstream: &str) -> impl Fn(u16, &Path) -> String {
    move |port, dir| with_admin(&simple_config(port, dir, "", upstream), free_port())
}

fn admin_token(proxy: &Proxy) -> String {
    std::fs::read_to_string(proxy.dir.path().join("state/admin-token"))
        .unwrap()
        .trim()
        .to_string()
}

async fn initialize(proxy: &Proxy, access: &str) -> u16 {
    http()
        .post(proxy.url("/notes/mcp"))
        .bearer_auth(access)
        .header("accept", MCP_ACCEPT)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&initialize_body())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test]
async fn revoking_a_user_refuses_their_next_mcp_request_and_their_refresh_at_once() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(config(&upstream.url("/mcp"))).await;
    let alice = tokens(&proxy, &[]).await;
    assert_eq!(initialize(&proxy, &alice.access).await, 200);
    // Seen before: the proxy answers it from its verified-token cache now.
    assert_eq!(initialize(&proxy, &alice.access).await, 200);

    let grants = admin_command(&proxy, &["grants", "--user", "alice", "--json"]);
    assert_eq!(grants.code, Some(0), "{}", grants.stderr);
    let listed = json(&grants.stdout);
    assert_eq!(listed["grants"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["grants"][0]["client_id"], alice.client_id.as_str());
    assert_eq!(listed["grants"][0]["route"], "notes");

    let revoked = admin_command(&proxy, &["revoke", "--user", "alice"]);
    assert_eq!(revoked.code, Some(0), "{}", revoked.stderr);
    assert!(
        revoked.stdout.starts_with("revoked 1 grant:\nGRANT"),
        "{}",
        revoked.stdout
    );
    assert!(
        revoked.stdout.contains(&alice.client_id),
        "{}",
        revoked.stdout
    );

    assert_eq!(
        initialize(&proxy, &alice.access).await,
        401,
        "refused at once"
    );
    let (status, body) = refresh(&proxy, &alice.client_id, &alice.refresh).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let after = admin_command(&proxy, &["grants", "--json"]);
    assert_eq!(json(&after.stdout)["grants"], serde_json::json!([]));
    let again = admin_command(&proxy, &["revoke", "--user", "alice"]);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (Some(0), "no grants to revoke\n")
    );
}

#[tokio::test]
async fn clients_are_listed_and_deleting_one_revokes_what_it_holds() {
    let upstream = NodeUpstream::start(&["--json"]);
    let proxy = Proxy::start(config(&upstream.url("/mcp"))).await;
    let kept = tokens(&proxy, &[]).await;
    let deleted = tokens(&proxy, &[]).await;

    let clients = admin_command(&proxy, &["clients"]);
    assert_eq!(clients.code, Some(0), "{}", clients.stderr);
    let lines: Vec<&str> = clients.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", clients.stdout);
    assert!(
        lines[0].starts_with("CLIENT ID") && lines[0].ends_with("LAST USED"),
        "{}",
        lines[0]
    );
    for t in [&kept, &deleted] {
        let row = lines
            .iter()
            .find(|l| l.starts_with(&t.client_id))
            .unwrap_or_else(|| panic!("{} in {}", t.client_id, clients.stdout));
        assert!(row.contains("Test Client"), "{row}");
        assert!(row.contains("http://127.0.0.1/callback"), "{row}");
        assert!(row.contains("  1  "), "one grant: {row}");
    }

    let out = admin_command(&proxy, &["delete-client", &deleted.client_id, "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out.stdout);
    assert_eq!(v["registration_deleted"], true);
    assert_eq!(v["revoked"].as_array().unwrap().len(), 1);
    assert_eq!(initialize(&proxy, &deleted.access).await, 401);
    assert_eq!(initialize(&proxy, &kept.access).await, 200);
    let (status, body) = refresh(&proxy, &deleted.client_id, &deleted.refresh).await;
    assert_eq!(
        (status.as_u16(), &body["error"]),
        (401, &Value::from("invalid_client"))
    );

    let again = admin_command(&proxy, &["delete-client", &deleted.client_id]);
    assert_eq!(again.code, Some(1));
    assert!(
        again.stderr.contains("answered 404") && again.stderr.contains("no client"),
        "{}",
        again.stderr
    );
    let unknown = admin_command(&proxy, &["revoke", "--grant", "no-such-grant"]);
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("no live grant no-such-grant"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_token_and_is_not_on_the_public_listener() {
    let proxy = Proxy::start(config("http://127.0.0.1:9/mcp")).await;
    let file = proxy.dir.path().join("state/admin-token");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "created readable by the proxy's user only"
    );
    let token = admin_token(&proxy);
    let url = admin_url(&proxy, "/admin/clients");

    for auth in [None, Some("Bearer wrong".to_string()), Some(token.clone())] {
        let mut req = http().get(&url);
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{auth:?}");
        assert!(res.headers().contains_key("www-authenticate"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{body}");
    }
    let res = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        serde_json::json!({"clients": []})
    );

    let res = http()
        .post(admin_url(&proxy, "/admin/revoke"))
        .bearer_auth(&token)
        .body("{\"group\": \"staff\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "bad input: a clear 400");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("the body must be one of"),
        "{body}"
    );
    let res = http()
        .get(proxy.url("/admin/clients"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "not on the public listener");

    // A token file the admin cannot read: a clear error, exit 77.
    std::fs::write(&file, "short").unwrap();
    let out = admin_command(&proxy, &["clients"]);
    assert_eq!(out.code, Some(77), "{}", out.stderr);
    assert!(out.stderr.contains("shorter than 32"), "{}", out.stderr);
}

#[tokio::test]
async fn with_the_proxy_stopped_the_commands_act_on_its_store() {
    let upstream = NodeUpstream::start(&["--json"]);
    let mut proxy = Proxy::start(|port, dir| {
        let audit = dir.join("audit.jsonl");
        config(&upstream.url("/mcp"))(port, dir) + &format!("audit:\n  path: {}\n", audit.display())
    })
    .await;
    let alice = tokens(&proxy, &[]).await;
    proxy.signal("TERM");
    assert!(proxy.wait_exit(Duration::from_secs(10)).await.success());
    // The admin port bound but not listening: connections are refused, and no other
    // test's proxy can take the port meanwhile.
    let hold = tokio::net::TcpSocket::new_v4().unwrap();
    hold.bind(admin_addr(&proxy)).unwrap();

    let out = admin_command(&proxy, &["revoke", "--client", &alice.client_id]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the proxy is stopped; acting on its store"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.starts_with("revoked 1 grant:"), "{}", out.stdout);
    let audit = std::fs::read_to_string(proxy.dir.path().join("audit.jsonl")).unwrap();
    let event: Value = audit
        .lines()
        .map(json)
        .find(|e| e["event"] == "admin_action")
        .unwrap_or_else(|| panic!("no admin_action in {audit}"));
    assert_eq!(event["action"], "revoke");
    assert_eq!(event["target"], format!("client:{}", alice.client_id));
    assert_eq!(event["user"], "alice", "one grant revoked: its user");
    assert_eq!(event["ip"], Value::Null, "not through the API");
    assert_eq!(event["grants"], 1);

    drop(hold);
    proxy.start_again().await;
    assert_eq!(initialize(&proxy, &alice.access).await, 401);
    let (status, body) = refresh(&proxy, &alice.client_id, &alice.refresh).await;
    assert_eq!(
        (status.as_u16(), &body["error"]),
        (400, &Value::from("invalid_grant"))
    );
}

#[tokio::test]
async fn a_running_proxy_without_an_admin_listener_is_explained() {
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, "", "http://127.0.0.1:9/mcp")).await;
    let out = admin_command(&proxy, &["grants"]);
    assert_eq!(out.code, Some(69), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("is in use by a running mcp-oauth-proxy")
            && out.stderr.contains("set `admin.listen`"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn bad_command_lines_are_refused_with_usage() {
    let proxy = Proxy::start(config("http://127.0.0.1:9/mcp")).await;
    for args in [
        &["revoke"][..],
        &["revoke", "--user", "alice", "--client", "c"],
        &["revoke", "--user", ""],
        &["delete-client"],
    ] {
        let out = admin_command(&proxy, args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("error: "),
            "{args:?}: {}",
            out.stderr
        );
    }
}
