use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::oauth::client::{RegistrationRequest, register};
use crate::oauth::error::ErrorCode;

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn config(routes: usize) -> Config {
    let mut yaml = "listen: \"127.0.0.1:8080\"\npublic_url: \"https://proxy.example\"\nstate:\n  dir: /tmp\nroutes:\n".to_string();
    for i in 0..routes {
        yaml.push_str(&format!(
            "  - name: r{i}\n    path: /r{i}/mcp\n    upstream: \"http://127.0.0.1:1/mcp\"\n    scopes:\n      \"read\": [\"read_*\"]\n      \"write\": [\"write_*\"]\n    default_scopes: [read]\n"
        ));
    }
    Config::from_yaml(&yaml, Path::new("/"), &|_| None).unwrap()
}

fn client() -> ClientRecord {
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

fn params(c: &ClientRecord, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut p: HashMap<String, String> = [
        ("client_id", c.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", "http://127.0.0.1:55555/callback"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "x"),
        ("resource", "https://proxy.example/r1/mcp"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        if v.is_empty() {
            p.remove(*k);
        } else {
            p.insert(k.to_string(), v.to_string());
        }
    }
    p
}

fn redirect_error(r: Result<AuthorizationRequest, AuthorizeError>) -> ErrorCode {
    match r {
        Err(AuthorizeError::Redirect { error, state, .. }) => {
            assert_eq!(
                state.as_deref(),
                Some("x"),
                "state goes back with the error"
            );
            error.code
        }
        other => panic!("expected a redirect error, got {other:?}"),
    }
}

#[test]
fn a_good_request_names_route_scopes_and_redirect() {
    let cfg = config(2);
    let c = client();
    let req = validate(
        &params(&c, &[("scope", "write  offline_access")]),
        Some(&c),
        &cfg,
    )
    .unwrap();
    assert_eq!(req.route, "r1");
    assert_eq!(req.resource, "https://proxy.example/r1/mcp");
    assert_eq!(req.scopes, vec!["write".to_string()]);
    assert_eq!(req.redirect_uri, "http://127.0.0.1:55555/callback");
    let req = validate(&params(&c, &[("scope", "")]), Some(&c), &cfg).unwrap();
    assert_eq!(
        req.scopes,
        vec!["read".to_string()],
        "empty scope= gets the defaults"
    );
    let req = validate(
        &params(
            &c,
            &[
                ("resource", "HTTPS://PROXY.example/r0/mcp/"),
                ("state", "x"),
            ],
        ),
        Some(&c),
        &cfg,
    )
    .unwrap();
    assert_eq!(req.resource, "https://proxy.example/r0/mcp");
}

#[test]
fn untrusted_client_or_redirect_gets_a_page() {
    let cfg = config(1);
    let c = client();
    assert!(matches!(
        validate(&params(&c, &[]), None, &cfg),
        Err(AuthorizeError::Page(_))
    ));
    assert!(matches!(
        validate(
            &params(&c, &[("redirect_uri", "https://evil.example/callback")]),
            Some(&c),
            &cfg
        ),
        Err(AuthorizeError::Page(_))
    ));
}

#[test]
fn pkce_and_response_type_errors_go_to_the_client() {
    let cfg = config(2);
    let c = client();
    assert_eq!(
        redirect_error(validate(
            &params(&c, &[("code_challenge_method", "plain")]),
            Some(&c),
            &cfg
        )),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        redirect_error(validate(
            &params(&c, &[("code_challenge", "")]),
            Some(&c),
            &cfg
        )),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        redirect_error(validate(
            &params(&c, &[("response_type", "token")]),
            Some(&c),
            &cfg
        )),
        ErrorCode::UnsupportedResponseType
    );
    assert_eq!(
        redirect_error(validate(
            &params(&c, &[("resource", "https://other.example/mcp")]),
            Some(&c),
            &cfg
        )),
        ErrorCode::InvalidTarget
    );
    assert_eq!(
        redirect_error(validate(&params(&c, &[("resource", "")]), Some(&c), &cfg)),
        ErrorCode::InvalidTarget,
        "two routes: resource is needed"
    );
}

#[test]
fn a_single_route_is_the_default_resource() {
    let cfg = config(1);
    let c = client();
    let req = validate(&params(&c, &[("resource", "")]), Some(&c), &cfg).unwrap();
    assert_eq!(req.route, "r0");
}

#[test]
fn duplicate_parameters_are_refused() {
    let pairs = vec![
        ("a".to_string(), "1".to_string()),
        ("a".to_string(), "2".to_string()),
    ];
    let e = single_params(pairs.into_iter()).unwrap_err();
    assert_eq!(e.to_string(), r#"parameter "a" appears more than once"#);
}

#[test]
fn redirect_urls_keep_existing_queries_and_encode() {
    assert_eq!(
        redirect_url("https://c/cb", &[("code", "a b"), ("state", "s&t")]),
        "https://c/cb?code=a+b&state=s%26t"
    );
    assert_eq!(
        redirect_url("https://c/cb?x=1", &[("code", "c")]),
        "https://c/cb?x=1&code=c"
    );
}
