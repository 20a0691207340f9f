//! What the flow's tests share: a config, a client, users, requests.

use std::collections::HashMap;
use std::path::Path;

use crate::config::Config;
use crate::login::LoginUser;
use crate::oauth::client::{ClientRecord, RegistrationRequest, register};

pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Two routes: `notes` (group `staff` only, two scopes) and `open` (everyone).
pub fn config() -> Config {
    let yaml = r#"
listen: "127.0.0.1:8080"
public_url: "https://proxy.example"
state:
  dir: /tmp
routes:
  - name: notes
    path: /notes/mcp
    upstream: "http://127.0.0.1:1/mcp"
    allow:
      groups: [staff]
    scopes:
      "notes:read": ["read_note", "list_*"]
      "notes:write": ["write_note"]
    default_scopes: ["notes:read"]
  - name: open
    path: /open/mcp
    upstream: "http://127.0.0.1:1/mcp"
"#;
    Config::from_yaml(yaml, Path::new("/"), &|_| None).unwrap()
}

/// A public client with a loopback redirect URI.
pub fn client() -> ClientRecord {
    register(
        RegistrationRequest {
            redirect_uris: Some(vec!["http://127.0.0.1/callback".into()]),
            token_endpoint_auth_method: Some("none".into()),
            ..Default::default()
        },
        0,
    )
    .unwrap()
    .0
}

/// In group `staff`: allowed on both routes.
pub fn alice() -> LoginUser {
    LoginUser {
        name: "alice".into(),
        groups: vec!["staff".into()],
    }
}

/// In no group: allowed on `open` only.
pub fn bob() -> LoginUser {
    LoginUser {
        name: "bob".into(),
        groups: vec![],
    }
}

/// A valid authorization request of `client` for `notes`, changed by `extra`.
pub fn request_params(client: &ClientRecord, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut p: HashMap<String, String> = [
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", "http://127.0.0.1:55555/callback"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "st"),
        ("resource", "https://proxy.example/notes/mcp"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    p
}

pub fn without(mut params: HashMap<String, String>, key: &str) -> HashMap<String, String> {
    params.remove(key);
    params
}

/// The query parameters of a URL or path.
pub fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}
