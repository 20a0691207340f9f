//! Each kind of config problem, with the line:column it is reported at.

use std::path::Path;

use crate::config::{Config, ConfigError, StateBackend, Transport};

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Xfk6uYDD2JB6vz2bGsVPUh7Wfzm2EBB/TJ0TxEHzAdo";

fn env(name: &str) -> Option<String> {
    match name {
        "NOTES_TOKEN" => Some("tok-123".into()),
        _ => None,
    }
}

fn load(yaml: &str) -> Result<Config, Vec<ConfigError>> {
    Config::from_yaml(yaml, Path::new(env!("CARGO_MANIFEST_DIR")), &env)
}

/// The single error of a config that has exactly one problem.
fn one_error(yaml: &str) -> ConfigError {
    match load(yaml) {
        Ok(_) => panic!("config should be rejected:\n{yaml}"),
        Err(mut errors) => {
            assert_eq!(errors.len(), 1, "expected one error, got {errors:?}");
            errors.remove(0)
        }
    }
}

fn assert_error(yaml: &str, line: u64, column: u64, needle: &str) {
    let e = one_error(yaml);
    assert_eq!((e.line, e.column), (line, column), "{e:?}");
    assert!(
        e.message.contains(needle),
        "{:?} should mention {needle:?}",
        e.message
    );
}

const HEAD: &str =
    "listen: \"127.0.0.1:8080\"\npublic_url: \"http://127.0.0.1:8080\"\nstate:\n  dir: /tmp\n";

fn with_routes(routes: &str) -> String {
    format!("{HEAD}routes:\n{routes}")
}

const ROUTE: &str =
    "  - name: notes\n    path: /notes/mcp\n    upstream: \"http://127.0.0.1:3001/mcp\"\n";

#[test]
fn a_full_config_validates() {
    let yaml = format!(
        "{HEAD}tokens:\n  access_ttl: 15m\n  refresh_ttl: 7d\n  refresh_grace: 5s\nusers:\n  - name: alice\n    password_hash: \"{PHC}\"\n    groups: [staff]\nroutes:\n{ROUTE}    upstream_auth:\n      bearer: \"${{NOTES_TOKEN}}\"\n    allow:\n      users: [alice]\n    scopes:\n      \"notes:read\": [\"read_note\", \"list_*\"]\n      \"notes:write\": [write_note]\n    default_scopes: [\"notes:read\"]\n"
    );
    let c = match load(&yaml) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080");
    assert_eq!(c.tokens.access_ttl.as_secs(), 900);
    assert!(matches!(c.state, StateBackend::Dir(_)));
    let r = &c.routes[0];
    assert_eq!(r.resource, "http://127.0.0.1:8080/notes/mcp");
    assert_eq!(r.transport, Transport::StreamableHttp);
    let auth = r
        .upstream_auth
        .first()
        .map(|a| a.auth.value.to_str().unwrap_or_default().to_string());
    assert_eq!(auth.as_deref(), Some("Bearer tok-123"));
    assert!(
        !format!("{c:?}").contains("tok-123"),
        "Debug must not show the credential"
    );
    assert_eq!(r.default_scopes, vec!["notes:read".to_string()]);
    assert_eq!(r.scopes.as_ref().map(|s| s.len()), Some(2));
}

#[test]
fn unknown_key() {
    assert_error(
        &with_routes(&format!("{ROUTE}    colour: blue\n")),
        9,
        5,
        "unknown field `colour`",
    );
}

#[test]
fn wrong_type() {
    assert_error(&format!("{HEAD}routes: 5\n"), 5, 9, "expected sequence");
}

#[test]
fn missing_key() {
    let e = one_error(HEAD);
    assert!(e.message.contains("missing field `routes`"), "{e:?}");
}

#[test]
fn bad_duration() {
    assert_error(
        &format!("{HEAD}tokens:\n  access_ttl: 1 fortnight\nroutes:\n{ROUTE}"),
        6,
        15,
        "tokens.access_ttl",
    );
}

#[test]
fn signing_keys_rotate_every_30_days_unless_configured() {
    let default = load(&with_routes(ROUTE)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(default.tokens.signing_key_rotation.as_secs(), 30 * 86_400);
    let weekly = load(&format!(
        "{HEAD}tokens:\n  signing_key_rotation: 7d\nroutes:\n{ROUTE}"
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(weekly.tokens.signing_key_rotation.as_secs(), 7 * 86_400);
    assert_eq!(
        weekly.tokens.access_ttl.as_secs(),
        3600,
        "other keys keep their defaults"
    );
}

#[test]
fn a_signing_key_rotation_under_an_hour_is_refused() {
    assert_error(
        &format!("{HEAD}tokens:\n  signing_key_rotation: 10m\nroutes:\n{ROUTE}"),
        6,
        25,
        "tokens.signing_key_rotation: must be at least 1h",
    );
}

#[test]
fn bad_url() {
    assert_error(
        &with_routes("  - name: notes\n    path: /notes/mcp\n    upstream: \"not a url\"\n"),
        8,
        15,
        "routes[0].upstream",
    );
}

#[test]
fn plain_http_public_url_needs_loopback() {
    let yaml = "listen: \"127.0.0.1:8080\"\npublic_url: \"http://mcp.example.com\"\nstate:\n  dir: /tmp\nroutes:\n".to_string() + ROUTE;
    assert_error(&yaml, 2, 13, "https");
    let ok = yaml.replace("http://mcp.example.com", "https://mcp.example.com");
    assert!(load(&ok).is_ok());
    let localhost = yaml.replace("http://mcp.example.com", "http://localhost:9000");
    assert!(load(&localhost).is_ok());
}

#[test]
fn duplicate_route_name_and_path() {
    let dup_name = format!(
        "{ROUTE}  - name: notes\n    path: /other/mcp\n    upstream: \"http://127.0.0.1:3001/mcp\"\n"
    );
    assert_error(&with_routes(&dup_name), 9, 11, "duplicate route name");
    let dup_path = format!(
        "{ROUTE}  - name: other\n    path: /notes/mcp\n    upstream: \"http://127.0.0.1:3001/mcp\"\n"
    );
    assert_error(&with_routes(&dup_path), 10, 11, "duplicate route path");
}

#[test]
fn reserved_or_malformed_route_path() {
    let reserved = ROUTE.replace("/notes/mcp", "/oauth/token");
    assert_error(&with_routes(&reserved), 7, 11, "reserved");
    let trailing = ROUTE.replace("/notes/mcp", "/notes/");
    assert_error(&with_routes(&trailing), 7, 11, "must start with");
}

#[test]
fn missing_env_variable() {
    let yaml = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      bearer: \"${{MISSING_TOKEN}}\"\n"
    ));
    assert_error(&yaml, 10, 15, "MISSING_TOKEN");
}

#[test]
fn missing_files() {
    let yaml = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      bearer_file: /nonexistent/token\n"
    ));
    assert_error(&yaml, 10, 20, "does not exist");
    let tls = format!(
        "{HEAD}tls:\n  cert: /nonexistent/cert.pem\n  key: /nonexistent/key.pem\nroutes:\n{ROUTE}"
    );
    assert_error(&tls, 6, 9, "tls.cert");
}

#[test]
fn bearer_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("token");
    std::fs::write(&file, "from-file\n").unwrap_or_else(|e| panic!("{e}"));
    let yaml = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      bearer_file: {}\n",
        file.display()
    ));
    let c = load(&yaml).unwrap_or_else(|e| panic!("{e:?}"));
    let auth = c.routes[0]
        .upstream_auth
        .first()
        .map(|a| a.auth.value.as_bytes().to_vec());
    assert_eq!(auth.as_deref(), Some(&b"Bearer from-file"[..]));
}

#[test]
fn upstream_auth_needs_exactly_one_form() {
    let yaml = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      bearer: a\n      header: {{name: X-Api-Key, value: b}}\n"
    ));
    assert_error(&yaml, 10, 7, "exactly one");
    let hop = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      header: {{name: Connection, value: b}}\n"
    ));
    assert_error(&hop, 10, 22, "cannot carry a credential");
}

#[test]
fn scopes_and_default_scopes_must_agree() {
    let yaml = with_routes(&format!(
        "{ROUTE}    scopes:\n      \"notes:read\": [read_note]\n    default_scopes: [\"notes:write\"]\n"
    ));
    assert_error(&yaml, 11, 22, "not one of this route's scopes");
    let bad_name = with_routes(&format!(
        "{ROUTE}    scopes:\n      \"bad scope\": [read_note]\n"
    ));
    assert_error(&bad_name, 10, 7, "not a valid scope name");
}

#[test]
fn allow_names_known_users() {
    let yaml = with_routes(&format!("{ROUTE}    allow:\n      users: [mallory]\n"));
    assert_error(&yaml, 10, 15, "mallory");
}

#[test]
fn bad_password_hash() {
    let yaml =
        format!("{HEAD}users:\n  - name: alice\n    password_hash: plaintext\nroutes:\n{ROUTE}");
    assert_error(&yaml, 7, 20, "argon2");
}

#[test]
fn state_dir_and_redis_are_exclusive() {
    let yaml = "listen: \"127.0.0.1:8080\"\npublic_url: \"http://127.0.0.1:8080\"\nstate:\n  dir: /tmp\n  redis: \"redis://127.0.0.1/0\"\nroutes:\n".to_string() + ROUTE;
    assert_error(&yaml, 4, 3, "not both");
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = "listen: nope\npublic_url: \"ftp://x\"\nstate:\n  dir: /tmp\nroutes:\n  - name: \"a b\"\n    path: nope\n    upstream: \"http://127.0.0.1:1/mcp\"\n";
    let errors = load(yaml).err().unwrap_or_default();
    let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![1, 2, 6, 7], "{errors:?}");
}

#[test]
fn the_per_ip_connection_cap_defaults_to_a_quarter_of_max_connections_and_at_most_256() {
    let cap = |server: &str| match load(&format!("{HEAD}{server}routes:\n{ROUTE}")) {
        Ok(c) => c.server.max_connections_per_ip,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(cap(""), 256);
    assert_eq!(cap("server:\n  max_connections: 50\n"), 12);
    assert_eq!(cap("server:\n  max_connections: 2\n"), 1);
    assert_eq!(cap("server:\n  max_connections_per_ip: 3\n"), 3);
}

#[test]
fn a_per_ip_connection_cap_of_zero_is_refused() {
    assert_error(
        &format!("{HEAD}server:\n  max_connections_per_ip: 0\nroutes:\n{ROUTE}"),
        6,
        27,
        "server.max_connections_per_ip",
    );
}

#[test]
fn a_repeated_key_is_reported_where_it_repeats() {
    // Found by the config fuzz target: serde names the key but not the place.
    // (A tagged key gets past the YAML parser's own duplicate check.)
    let yaml =
        format!("{HEAD}tokens:\n  access_ttl: 1h\n!x listen: \"127.0.0.1:9090\"\nroutes: []\n");
    assert_error(&yaml, 7, 4, "duplicate field `listen`");
    let plain = format!("{HEAD}listen: \"127.0.0.1:9090\"\nroutes: []\n");
    let e = one_error(&plain);
    assert!(e.line > 0 && e.message.contains("listen"), "{e:?}");
}

#[test]
fn every_parse_error_has_a_place() {
    let crash = "listen: \"127.0.0.1:8443\"\npublic_url: \"https://mcp.exampleom\"\nstate:\n  dir: state\ntokens:\n  access_ttl: 1h\n!li listen: \"12users:\n  - name8\"";
    let errors = load(crash).unwrap_err();
    assert!(
        errors.iter().all(|e| e.line > 0 && e.column > 0),
        "{errors:?}"
    );
}

#[test]
fn log_format_filter_and_audit_path_are_read_and_checked() {
    let routes =
        "  - name: notes\n    path: /notes/mcp\n    upstream: \"http://127.0.0.1:3001/mcp\"\n";
    let c = load(&format!(
        "{}log:\n  format: json\n  filter: \"info,mcp_oauth_proxy=debug\"\naudit:\n  path: /var/log/audit.jsonl\n",
        with_routes(routes)
    ))
    .unwrap();
    assert_eq!(c.log.format, crate::config::LogFormat::Json);
    assert_eq!(c.log.filter.as_deref(), Some("info,mcp_oauth_proxy=debug"));
    assert_eq!(c.audit.unwrap().path, Path::new("/var/log/audit.jsonl"));
    let c = load(&with_routes(routes)).unwrap();
    assert_eq!(c.log.format, crate::config::LogFormat::Text);
    assert!(c.audit.is_none());
    let e = one_error(&format!("{}log:\n  format: xml\n", with_routes(routes)));
    assert!(
        e.message.contains("log.format: must be text or json"),
        "{e:?}"
    );
    let e = one_error(&format!(
        "{}log:\n  filter: \"info,=[\"\n",
        with_routes(routes)
    ));
    assert!(e.message.contains("log.filter"), "{e:?}");
}

#[test]
fn without_admin_there_is_no_admin_listener() {
    let c = load(&with_routes(ROUTE)).unwrap();
    assert_eq!(c.admin, None);
}

#[test]
fn admin_listen_is_a_socket_address() {
    let c = load(&format!(
        "{HEAD}admin:\n  listen: \"127.0.0.1:9464\"\nroutes:\n{ROUTE}"
    ))
    .unwrap();
    assert_eq!(
        c.admin.map(|a| a.listen.to_string()).as_deref(),
        Some("127.0.0.1:9464")
    );
    assert_error(
        &format!("{HEAD}admin:\n  listen: \"localhost\"\nroutes:\n{ROUTE}"),
        6,
        11,
        "socket address",
    );
}

#[test]
fn admin_listen_may_not_be_the_public_listener() {
    for listen in ["127.0.0.1:8080", "0.0.0.0:8080"] {
        assert_error(
            &format!("{HEAD}admin:\n  listen: \"{listen}\"\nroutes:\n{ROUTE}"),
            6,
            11,
            "must not be the public `listen` address",
        );
    }
}

#[test]
fn admin_takes_no_other_keys() {
    let e = one_error(&format!(
        "{HEAD}admin:\n  listen: \"127.0.0.1:9464\"\n  token: x\nroutes:\n{ROUTE}"
    ));
    assert!(e.message.contains("token"), "{e:?}");
}

const PROVIDERS: &str = "identity_providers:\n  - name: corp\n    display_name: Corp SSO\n    issuer: \"https://idp.example.com/\"\n    client_id: proxy\n    client_secret: s3cret\n    allowed_email_domains: [\"@Example.com\"]\n    groups_claim: groups\n    revalidate_after: 2s\n    authorize_params: {access_type: offline}\n  - name: gh\n    type: github\n    client_id: ghid\n    client_secret_file: Cargo.toml\n    allowed_organizations: [Acme]\n";

#[test]
fn identity_providers_validate_with_their_defaults() {
    let yaml = format!(
        "{HEAD}{PROVIDERS}routes:\n{ROUTE}    allow:\n      users: [\"corp:alice@example.com\", \"gh:octocat\"]\n      groups: [acme/platform]\n"
    );
    let c = match load(&yaml) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    };
    let corp = c.provider("corp").unwrap();
    assert_eq!(corp.display_name, "Corp SSO");
    assert_eq!(corp.scopes, ["openid", "email", "profile"]);
    assert_eq!(corp.revalidate_after, std::time::Duration::from_secs(2));
    assert_eq!(
        corp.authorize_params,
        [("access_type".into(), "offline".into())]
    );
    assert_eq!(
        corp.kind,
        crate::config::ProviderKind::Oidc {
            issuer: "https://idp.example.com".into(),
            allowed_email_domains: vec!["example.com".into()],
            groups_claim: Some("groups".into()),
        }
    );
    assert_eq!(
        corp.redirect_uri(&c.public_url),
        "http://127.0.0.1:8080/oauth/callback/corp"
    );
    assert_eq!(corp.user_name("a@example.com"), "corp:a@example.com");
    let gh = c.provider("gh").unwrap();
    assert_eq!(gh.display_name, "gh");
    assert_eq!(gh.scopes, ["read:org"]);
    assert!(gh.client_secret.expose().contains("[package]"));
    assert_eq!(
        gh.kind,
        crate::config::ProviderKind::GitHub {
            api_url: "https://api.github.com".into(),
            web_url: "https://github.com".into(),
            allowed_organizations: vec!["acme".into()],
        }
    );
    // The secret stays out of Debug.
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn identity_provider_problems_are_located() {
    let provider = |body: &str| {
        with_routes(ROUTE).replace(
            "routes:\n",
            &format!("identity_providers:\n  - {body}routes:\n"),
        )
    };
    assert_error(
        &provider(
            "name: Corp\n    issuer: \"https://i.example\"\n    client_id: c\n    client_secret: s\n",
        ),
        6,
        11,
        "must be 1 to 32 of",
    );
    assert_error(
        &provider(
            "name: corp\n    issuer: \"http://idp.example.com\"\n    client_id: c\n    client_secret: s\n",
        ),
        7,
        13,
        "must use https unless the host is loopback",
    );
    assert_error(
        &provider(
            "name: corp\n    issuer: \"https://i.example\"\n    client_id: c\n    client_secret: s\n    client_secret_file: Cargo.toml\n",
        ),
        9,
        20,
        "exactly one of `client_secret` or `client_secret_file`",
    );
    assert_error(
        &provider("name: corp\n    client_id: c\n    client_secret: s\n"),
        6,
        11,
        "issuer: is required",
    );
    assert_error(
        &provider(
            "name: gh\n    type: github\n    issuer: \"https://i.example\"\n    client_id: c\n    client_secret: s\n",
        ),
        8,
        13,
        "is not used by a provider of type `github`",
    );
    assert_error(
        &provider(
            "name: corp\n    issuer: \"https://i.example\"\n    client_id: c\n    client_secret: s\n    scopes: [email]\n",
        ),
        10,
        13,
        "must include `openid`",
    );
    assert_error(
        &provider(
            "name: corp\n    issuer: \"https://i.example\"\n    client_id: c\n    client_secret: s\n    authorize_params: {resource: x}\n",
        ),
        10,
        24,
        "\"resource\" is set by the proxy itself",
    );
    assert_error(
        &provider("name: corp\n    type: saml\n    client_id: c\n    client_secret: s\n"),
        7,
        11,
        "must be `oidc` or `github`",
    );
}

#[test]
fn federated_names_need_their_provider_and_local_names_have_no_colon() {
    let yaml = with_routes(&format!(
        "{ROUTE}    allow:\n      users: [\"corp:a@x.org\"]\n"
    ));
    assert_error(&yaml, 10, 15, "no identity provider for it");
    let yaml = format!(
        "{HEAD}users:\n  - name: \"corp:a@x.org\"\n    password_hash: \"{PHC}\"\nroutes:\n{ROUTE}"
    );
    assert_error(&yaml, 6, 11, "must not contain `:`");
}

#[test]
fn machine_clients_and_per_client_lifetimes_validate_and_their_problems_are_located() {
    let scoped = format!("{ROUTE}    scopes:\n      \"notes:read\": [\"*\"]\n");
    let yaml = format!(
        "{HEAD}tokens:\n  access_ttl: 10m\n  access_ttl_by_client: {{\"https://claude.ai/meta\": 8h}}\nclients:\n  - client_id: ci\n    client_secret_hash: \"{PHC}\"\n    routes: [notes]\n    scopes: [\"notes:read\"]\nroutes:\n{scoped}"
    );
    let c = load(&yaml).unwrap_or_else(|e| panic!("{e:?}"));
    let m = c.machine_client("ci").unwrap();
    assert_eq!(m.name, "service:ci");
    assert_eq!(
        c.access_ttl("https://claude.ai/meta"),
        std::time::Duration::from_secs(8 * 3600)
    );
    assert_eq!(c.access_ttl("other"), std::time::Duration::from_secs(600));
    assert_eq!(
        c.tokens.longest_access_ttl,
        std::time::Duration::from_secs(8 * 3600)
    );

    let client = |body: &str| format!("{HEAD}clients:\n  - client_id: ci\n{body}routes:\n{scoped}");
    assert_error(
        &client("    client_secret_hash: plain\n    routes: [notes]\n"),
        7,
        25,
        "must be an argon2 PHC string",
    );
    assert_error(
        &client("    jwks_uri: \"https://k.example/jwks\"\n    routes: [nope]\n"),
        8,
        14,
        "no route named \"nope\"",
    );
    assert_error(
        &client(
            "    jwks_uri: \"https://k.example/jwks\"\n    routes: [notes]\n    scopes: [\"notes:write\"]\n",
        ),
        9,
        14,
        "no route of this client defines scope",
    );
    assert_error(
        &client("    routes: [notes]\n"),
        6,
        16,
        "exactly one of `client_secret_hash`, `jwks` or `jwks_uri`",
    );
}

const TWO_USERS: &str = "users:\n  - name: alice\n    password_hash: \"PHC\"\n    groups: [admins]\n  - name: bob\n    password_hash: \"PHC\"\n";

fn with_rules(rules: &str) -> String {
    format!(
        "{HEAD}{}routes:\n{ROUTE}    scopes:\n      \"notes:read\": [\"*\"]\n      \"notes:write\": [\"*\"]\n    upstream_auth:\n{rules}",
        TWO_USERS.replace("PHC", PHC)
    )
}

#[test]
fn upstream_auth_rules_choose_the_first_match() {
    let c = load(&with_rules(
        "      - name: admin\n        when: {groups: [admins]}\n        bearer: a\n      - when: {scopes: [\"notes:write\"]}\n        header: {name: X-Api-Key, value: w}\n      - default: {bearer: r}\n",
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));
    let r = &c.routes[0];
    let label = |user: &str, groups: &[&str], scope: &str| {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        r.credential_for(user, &groups, scope)
            .and_then(|x| x.label.clone())
    };
    assert_eq!(
        label("alice", &["admins"], "notes:read").as_deref(),
        Some("admin")
    );
    assert_eq!(
        label("bob", &[], "notes:read notes:write").as_deref(),
        Some("1")
    );
    assert_eq!(label("bob", &[], "notes:read").as_deref(), Some("2"));
    assert_eq!(
        r.credential_headers,
        [
            http::header::AUTHORIZATION,
            http::HeaderName::from_static("x-api-key")
        ]
    );
    assert!(!format!("{c:?}").contains("Bearer a"));
}

#[test]
fn upstream_auth_rules_that_cannot_match_or_leave_someone_out_are_refused() {
    assert_error(
        &with_rules(
            "      - default: {bearer: r}\n      - when: {users: [bob]}\n        bearer: b\n",
        ),
        20,
        9,
        "comes after the default rule",
    );
    assert_error(
        &with_rules(
            "      - when: {scopes: [\"notes:admin\"]}\n        bearer: b\n      - default: {bearer: r}\n",
        ),
        19,
        25,
        "defines no scope \"notes:admin\"",
    );
    assert_error(
        &with_rules(
            "      - when: {users: [carol]}\n        bearer: b\n      - default: {bearer: r}\n",
        ),
        19,
        24,
        "\"carol\" is not a user allowed on this route",
    );
    assert_error(
        &with_rules("      - when: {groups: [admins]}\n        bearer: b\n"),
        19,
        7,
        "no rule gives user \"bob\" with scope \"notes:read\" a credential",
    );
    assert_error(
        &with_rules("      - when: {}\n        bearer: b\n      - default: {bearer: r}\n"),
        19,
        15,
        "name `users`, `groups` or `scopes`",
    );
    assert_error(
        &with_rules("      - when: {users: [bob]}\n        default: {bearer: r}\n"),
        19,
        9,
        "a rule is `when: {...}` with a credential, or `default: {...}` alone",
    );
}

#[test]
fn the_admin_token_file_is_in_the_state_directory_unless_named() {
    let c = load(&format!(
        "{HEAD}admin:\n  listen: \"127.0.0.1:9464\"\nroutes:\n{ROUTE}"
    ))
    .unwrap();
    assert_eq!(
        c.admin.map(|a| a.token_file),
        Some(Path::new("/tmp/admin-token").to_path_buf())
    );
    let c = load(&format!(
        "{HEAD}admin:\n  listen: \"127.0.0.1:9464\"\n  token_file: secrets/admin\nroutes:\n{ROUTE}"
    ))
    .unwrap();
    assert_eq!(
        c.admin.map(|a| a.token_file),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("secrets/admin")),
        "relative to the config file's directory"
    );
    assert_error(
        &format!(
            "{HEAD}admin:\n  listen: \"127.0.0.1:9464\"\n  token_file: \"\"\nroutes:\n{ROUTE}"
        ),
        7,
        15,
        "admin.token_file: must not be empty",
    );
}

#[test]
fn upstream_oauth_is_a_routes_only_credential() {
    let ok = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      oauth:\n        authorization_server: \"https://github.com/login/oauth/\"\n        client_id: Iv1.abc\n        client_secret: \"${{NOTES_TOKEN}}\"\n        scopes: [repo, \"read:org\"]\n"
    ));
    let config = load(&ok).unwrap();
    let route = &config.routes[0];
    let oauth = route.upstream_oauth.as_ref().unwrap();
    assert_eq!(
        oauth.authorization_server.as_deref(),
        Some("https://github.com/login/oauth")
    );
    assert_eq!(oauth.client_id.as_deref(), Some("Iv1.abc"));
    assert_eq!(oauth.client_secret.as_ref().unwrap().expose(), "tok-123");
    assert_eq!(oauth.scopes, ["repo", "read:org"]);
    assert!(route.upstream_auth.is_empty());
    assert!(
        route
            .credential_headers
            .contains(&http::header::AUTHORIZATION)
    );
    // Nothing of the secret in Debug.
    assert!(!format!("{route:?}").contains("tok-123"));

    // Everything discovered and registered: an empty map is enough.
    let bare = with_routes(&format!("{ROUTE}    upstream_auth:\n      oauth: {{}}\n"));
    let oauth = load(&bare).unwrap().routes[0]
        .upstream_oauth
        .clone()
        .unwrap();
    assert_eq!((oauth.authorization_server, oauth.client_id), (None, None));

    let beside = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      bearer: a\n      oauth: {{client_id: x}}\n"
    ));
    assert_error(&beside, 11, 14, "only credential");
    let in_rule = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      - default: {{oauth: {{client_id: x}}}}\n"
    ));
    assert_error(&in_rule, 10, 26, "only credential");
    let secret_alone = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      oauth: {{client_secret: s}}\n"
    ));
    assert_error(&secret_alone, 10, 14, "needs its `client_id`");
    let bad_url = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      oauth: {{authorization_server: \"http://as.example\"}}\n"
    ));
    assert_error(&bad_url, 10, 37, "https");
    let bad_scope = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      oauth: {{client_id: x, scopes: [\"a b\"]}}\n"
    ));
    assert_error(&bad_scope, 10, 38, "not a scope token");
    let unknown = with_routes(&format!(
        "{ROUTE}    upstream_auth:\n      oauth: {{client: x}}\n"
    ));
    assert_eq!(one_error(&unknown).line, 10);
}

fn with_state(state: &str) -> String {
    format!(
        "listen: \"127.0.0.1:8080\"\npublic_url: \"http://127.0.0.1:8080\"\nstate:\n{state}routes:\n{ROUTE}"
    )
}

#[test]
fn redis_urls_and_password_files_are_accepted() {
    for url in [
        "redis://127.0.0.1:6379/0",
        "redis://:pw@redis.internal:6380/2",
        "rediss://user:pw@redis.example.com/0",
    ] {
        let c = load(&with_state(&format!("  redis: \"{url}\"\n"))).unwrap();
        assert!(
            matches!(&c.state, StateBackend::Redis { url: u, password: None } if u.expose() == url),
            "{url}"
        );
        assert!(!format!("{c:?}").contains("pw@"), "the URL never prints");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "s3cret-pw\n").unwrap();
    let yaml = with_state(&format!(
        "  redis: \"redis://127.0.0.1:6379/0\"\n  redis_password_file: {}\n",
        file.display()
    ));
    let c = load(&yaml).unwrap();
    let StateBackend::Redis {
        password: Some(p), ..
    } = &c.state
    else {
        panic!("{:?}", c.state);
    };
    assert_eq!(p.expose(), "s3cret-pw");
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn bad_redis_settings_are_refused_at_their_line_without_repeating_the_password() {
    let e = one_error(&with_state("  redis: \"http://:hunter2@127.0.0.1/0\"\n"));
    assert_eq!((e.line, e.column), (4, 10), "{e:?}");
    assert!(e.message.contains("redis://"), "{e:?}");
    assert!(!e.message.contains("hunter2"), "{e:?}");
    assert_error(
        &with_state("  redis: \"redis://127.0.0.1/not-a-db\"\n"),
        4,
        10,
        "redis://",
    );
    assert_error(
        &with_state("  dir: /tmp\n  redis_password_file: /nonexistent\n"),
        5,
        24,
        "is for `state.redis`",
    );
    assert_error(
        &with_state("  redis: \"redis://:pw@127.0.0.1/0\"\n  redis_password_file: /etc/hostname\n"),
        5,
        24,
        "one or the other",
    );
    assert_error(
        &with_state("  redis: \"redis://127.0.0.1/0\"\n  redis_password_file: /nonexistent/pw\n"),
        5,
        24,
        "does not exist",
    );
}
