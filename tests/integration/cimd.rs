//! Client ID metadata documents: fetched safely, validated, used at the token
//! endpoint (none and private_key_jwt); bad documents fail with a page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Proxy, simple_config, wait_for};
use crate::oauth_client::*;

/// What the document server answers for a path: status line and headers, body.
pub type Documents = Arc<dyn Fn(u16, &str) -> Option<(String, Vec<u8>)> + Send + Sync>;

/// A tiny document server. `/hang` never answers.
pub async fn doc_server(docs: Documents) -> u16 {
    stoppable_doc_server(docs).await.0
}

/// [`doc_server`], and its accept loop: aborting it closes the listening socket.
async fn stoppable_doc_server(docs: Documents) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let docs = docs.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                if path == "/hang" {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let (head, body) =
                    docs(port, &path).unwrap_or(("404 Not Found".into(), Vec::new()));
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    (port, server)
}

pub fn key() -> (Ed25519KeyPair, serde_json::Value) {
    let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
    (pair, jwk)
}

fn assertion(pair: &Ed25519KeyPair, client_id: &str, aud: &str, jti: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": "k1", "typ": "JWT"}).to_string());
    let c = URL_SAFE_NO_PAD.encode(json!({"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 60, "iat": now, "jti": jti}).to_string());
    let msg = format!("{h}.{c}");
    format!(
        "{msg}.{}",
        URL_SAFE_NO_PAD.encode(pair.sign(msg.as_bytes()).as_ref())
    )
}

async fn serve_documents(jwk: serde_json::Value) -> u16 {
    doc_server(Arc::new(move |port, path| {
        let me = format!("http://127.0.0.1:{port}{path}");
        let ok = |doc: serde_json::Value| Some(("200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=60".to_string(), doc.to_string().into_bytes()));
        match path {
            "/client.json" => ok(json!({"client_id": me, "client_name": "Doc Client", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})),
            "/pkjwt.json" => ok(json!({"client_id": me, "client_name": "Signed Client", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk.clone()]}})),
            "/other.json" => ok(json!({"client_id": "https://impostor.example/c.json", "redirect_uris": [REDIRECT]})),
            "/big.json" => Some(("200 OK\r\ncontent-type: application/json".to_string(), vec![b' '; 10 * 1024 * 1024])),
            "/redirect.json" => Some((format!("302 Found\r\nlocation: http://127.0.0.1:{port}/client.json"), Vec::new())),
            _ => None,
        }
    }))
    .await
}

/// Waits until the proxy's log has `text` (its lines arrive shortly after the answers).
async fn logged(proxy: &Proxy, text: &str) {
    wait_for(
        &format!("{text:?} in the log"),
        Duration::from_secs(5),
        || {
            let found = proxy.logs().contains(text);
            async move { found.then_some(()) }
        },
    )
    .await
}

fn cimd_config(allow_private: bool) -> impl Fn(u16, &std::path::Path) -> String {
    move |port, dir| {
        let mut c = simple_config(port, dir, "", "http://127.0.0.1:9/mcp");
        if allow_private {
            c = c.replacen(
                "\nroutes:",
                "\ncimd:\n  allow_private_networks: true\nroutes:",
                1,
            );
        }
        c
    }
}

#[tokio::test]
async fn a_metadata_document_client_signs_in_without_registering() {
    let (_, jwk) = key();
    let docs = serve_documents(jwk).await;
    let proxy = Proxy::start(cimd_config(true)).await;
    let md: serde_json::Value = reqwest::get(proxy.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(md["client_id_metadata_document_supported"], true);

    let client_id = format!("http://127.0.0.1:{docs}/client.json");
    let mut browser = Browser::default();
    let res = login(
        &mut browser,
        &proxy,
        &authorize_url(&proxy, &client_id, &[]),
        USER,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Doc Client") && page.contains("127.0.0.1"),
        "consent names the client and its redirect host"
    );
    let q = decide(&mut browser, &proxy, &page, "allow").await;
    let (s, body) = exchange(&proxy, &client_id, &q["code"]).await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = refresh(&proxy, &client_id, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn private_key_jwt_clients_prove_themselves_with_a_signed_assertion() {
    let (pair, jwk) = key();
    let docs = serve_documents(jwk).await;
    let proxy = Proxy::start(cimd_config(true)).await;
    let client_id = format!("http://127.0.0.1:{docs}/pkjwt.json");
    let q = consent(&proxy, &client_id, &[], "allow").await;
    let token_endpoint = proxy.url("/oauth/token");
    let base = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];

    let (s, body) = token_request(
        &proxy,
        &[base.as_slice(), &[("client_id", client_id.as_str())]].concat(),
    )
    .await;
    assert_eq!(
        (s.as_u16(), body["error"].as_str()),
        (401, Some("invalid_client")),
        "no assertion: refused"
    );
    let forged_key = key().0;
    let forged = assertion(&forged_key, &client_id, &token_endpoint, "j0");
    let kind = (
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );
    let (s, _) = token_request(
        &proxy,
        &[
            base.as_slice(),
            &[kind, ("client_assertion", forged.as_str())],
        ]
        .concat(),
    )
    .await;
    assert_eq!(s, 401, "a key not in the document: refused");

    let good = assertion(&pair, &client_id, &token_endpoint, "j1");
    let (s, body) = token_request(
        &proxy,
        &[
            base.as_slice(),
            &[kind, ("client_assertion", good.as_str())],
        ]
        .concat(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", body["refresh_token"].as_str().unwrap()),
        kind,
        ("client_assertion", good.as_str()),
    ];
    let (s, _) = token_request(&proxy, &refresh_form).await;
    assert_eq!(s, 401, "an assertion is single-use");
}

#[tokio::test]
async fn unusable_documents_fail_with_a_page_and_the_proxy_keeps_serving() {
    let (_, jwk) = key();
    let docs = serve_documents(jwk).await;
    let proxy = Proxy::start(cimd_config(true)).await;
    let not_fetched = "it could not be fetched";
    // A broken rule is shown; what the network did is logged only (no scanning oracle).
    for (path, shown, detail) in [
        ("/other.json", "client_id", "client_id"),
        ("/big.json", not_fetched, "larger than"),
        ("/redirect.json", not_fetched, "redirects"),
        ("/missing.json", not_fetched, "answered 404"),
        ("/hang", not_fetched, "within 5 seconds"),
    ] {
        let client_id = format!("http://127.0.0.1:{docs}{path}");
        let started = Instant::now();
        let res = http()
            .get(authorize_url(&proxy, &client_id, &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{path}");
        let text = res.text().await.unwrap();
        assert!(text.contains(shown), "{path}: {text}");
        if shown == not_fetched {
            assert!(!text.contains(detail), "{path}: {text}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{path} took too long"
        );
        logged(&proxy, detail).await;
    }
    assert_eq!(
        reqwest::get(proxy.url("/healthz")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn documents_on_private_addresses_are_refused_by_default() {
    let (_, jwk) = key();
    let docs = serve_documents(jwk).await;
    let proxy = Proxy::start(cimd_config(false)).await;
    for client_id in [
        format!("https://127.0.0.1:{docs}/client.json"),
        format!("https://localhost:{docs}/client.json"),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://[::1]/client.json".to_string(),
    ] {
        let res = http()
            .get(authorize_url(&proxy, &client_id, &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{client_id}");
        let text = res.text().await.unwrap();
        assert!(
            text.contains("it could not be fetched"),
            "{client_id}: {text}"
        );
    }
    logged(&proxy, "private or local address").await;
    logged(&proxy, "no public address").await;
    // Plain http document URLs are not metadata documents at all: an unknown client.
    let res = http()
        .get(authorize_url(
            &proxy,
            &format!("http://127.0.0.1:{docs}/client.json"),
            &[],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

/// Sends the authorization request for `client_id` from this machine; the page's status and text.
async fn authorize_page(proxy: &Proxy, client_id: &str) -> (u16, String) {
    let res = http()
        .get(authorize_url(proxy, client_id, &[]))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn an_address_that_fetches_too_many_documents_is_refused_for_the_rest_of_the_minute() {
    let docs = doc_server(Arc::new(|port, path| {
        let doc = json!({"client_id": format!("http://127.0.0.1:{port}{path}"), "client_name": "Many", "redirect_uris": [REDIRECT]});
        Some(("200 OK".to_string(), doc.to_string().into_bytes()))
    }))
    .await;
    let proxy = Proxy::start(cimd_config(true)).await;
    let id = |i: usize| format!("http://127.0.0.1:{docs}/c{i}.json");
    for i in 0..30 {
        let (status, _) = authorize_page(&proxy, &id(i)).await;
        assert_ne!(status, 400, "document {i} is fetched");
    }
    let (status, page) = authorize_page(&proxy, &id(30)).await;
    assert_eq!(status, 400);
    assert!(
        page.contains(
            "too many client metadata documents were fetched from your network; try again in"
        ),
        "{page}"
    );
    let (status, _) = authorize_page(&proxy, &id(0)).await;
    assert_ne!(status, 400, "a cached document needs no fetch");

    let (status, body) = token_request(
        &proxy,
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", id(31).as_str()),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("try again in"),
        "{body}"
    );
}

#[tokio::test]
async fn a_jwks_uri_is_fetched_once_for_its_max_age_and_its_failures_are_not_detailed() {
    let (pair, jwk) = key();
    let key_fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = key_fetches.clone();
    let docs = doc_server(Arc::new(move |port, path| {
        let me = format!("http://127.0.0.1:{port}{path}");
        let ok = |body: serde_json::Value| Some(("200 OK\r\ncache-control: max-age=300".to_string(), body.to_string().into_bytes()));
        let signed_by = |keys: &str| json!({"client_id": me, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": format!("http://127.0.0.1:{port}{keys}")});
        match path {
            "/uri.json" => ok(signed_by("/keys.json")),
            "/forbidden-keys.json" => ok(signed_by("/forbidden")),
            "/keys.json" => {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                ok(json!({"keys": [jwk.clone()]}))
            }
            "/forbidden" => Some(("403 Forbidden".to_string(), Vec::new())),
            _ => None,
        }
    }))
    .await;
    let proxy = Proxy::start(cimd_config(true)).await;
    let token_endpoint = proxy.url("/oauth/token");
    let signed = |client_id: &str, jti: &str| {
        vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), "not-a-code".to_string()),
            (
                "client_assertion_type".to_string(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
            ),
            (
                "client_assertion".to_string(),
                assertion(&pair, client_id, &token_endpoint, jti),
            ),
        ]
    };
    let client_id = format!("http://127.0.0.1:{docs}/uri.json");
    for jti in ["a", "b", "c"] {
        let form = signed(&client_id, jti);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, body) = token_request(&proxy, &form).await;
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some("invalid_grant")),
            "authenticated with the fetched keys: {body}"
        );
    }
    assert_eq!(
        key_fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the key set is cached"
    );

    let client_id = format!("http://127.0.0.1:{docs}/forbidden-keys.json");
    let form = signed(&client_id, "d");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, body) = token_request(&proxy, &form).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error_description"],
        "client authentication failed: its jwks_uri: it could not be fetched"
    );
    logged(&proxy, "answered 403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_whose_host_stops_serving_is_used_from_its_last_good_copy_for_24_hours() {
    let (docs, server) = stoppable_doc_server(Arc::new(|port, path| {
        let doc = json!({"client_id": format!("http://127.0.0.1:{port}{path}"), "client_name": "Hosted", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
        Some((
            "200 OK\r\ncache-control: max-age=60".to_string(),
            doc.to_string().into_bytes(),
        ))
    }))
    .await;
    let (proxy, clock) = Proxy::start_in_process(cimd_config(true)).await;
    let client_id = format!("http://127.0.0.1:{docs}/client.json");
    let (status, page) = authorize_page(&proxy, &client_id).await;
    assert_eq!(status, 302, "fetched: on to the login page: {page}");

    // The host stops serving: nothing listens on its port any more.
    server.abort();
    let _ = server.await;
    wait_for(
        "the document host to be gone",
        Duration::from_secs(5),
        || {
            let url = client_id.clone();
            async move { reqwest::get(url).await.is_err().then_some(()) }
        },
    )
    .await;

    // Past the document's max-age, its users still sign in and get tokens.
    clock.advance(Duration::from_secs(3600));
    let q = consent(&proxy, &client_id, &[], "allow").await;
    let (status, body) = exchange(&proxy, &client_id, &q["code"]).await;
    assert_eq!(status, 200, "{body}");
    clock.advance(Duration::from_secs(20 * 3600));
    let (status, _) = refresh(&proxy, &client_id, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "still within 24 hours of the good fetch");

    // 24 hours after the last good fetch, the copy is no longer used.
    clock.advance(Duration::from_secs(3 * 3600));
    let (status, page) = authorize_page(&proxy, &client_id).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("it could not be fetched"), "{page}");
}
