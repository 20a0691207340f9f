//! A scripted OAuth client and browser for the tests: registration, the login
//! and consent forms, token requests. Talks HTTP to the real proxy.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::common::Proxy;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-pw";
/// `mcp-oauth-proxy hash-password <<< alice-pw`
pub const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$YVqjWtFjZTs/R3qCDziyaw$BFZoFrBahluVm4W5y3YW4fMqE6yoE3RgwtzbKI6XSFA";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A cookie-keeping browser that does not follow redirects.
#[derive(Default)]
pub struct Browser {
    pub cookies: HashMap<String, String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').unwrap();
            self.cookies.insert(k.to_string(), val.to_string());
        }
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let res = http()
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&res);
        res
    }

    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let res = http()
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&res);
        res
    }
}

/// The value of the hidden input `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location; status {}", res.status()))
        .to_str()
        .unwrap()
        .to_string()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    let parsed = url::Url::parse(url).unwrap();
    parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub async fn register(proxy: &Proxy, body: Value) -> (reqwest::StatusCode, Value) {
    let res = http()
        .post(proxy.url("/oauth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

pub async fn register_public(proxy: &Proxy) -> String {
    let (status, body) = register(
        proxy,
        serde_json::json!({"redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none", "client_name": "Test Client"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["client_id"].as_str().unwrap().to_string()
}

pub fn authorize_url(proxy: &Proxy, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "st"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let resource = proxy.url("/notes/mcp");
    params.push(("resource".into(), resource));
    for (k, v) in extra {
        params.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            params.push((k.to_string(), v.to_string()));
        }
    }
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    proxy.url(&format!("/oauth/authorize?{q}"))
}

/// Logs in through the login form, starting from an authorize URL; returns the consent page.
pub async fn login(
    browser: &mut Browser,
    proxy: &Proxy,
    authorize: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let res = browser.get(authorize).await;
    assert_eq!(
        res.status(),
        302,
        "unauthenticated authorize redirects to login"
    );
    let login_url = proxy.url(&location(&res));
    let page = browser.get(&login_url).await.text().await.unwrap();
    let res = browser
        .post_form(
            &proxy.url("/oauth/login"),
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("next", &hidden(&page, "next")),
                ("username", user),
                ("password", password),
            ],
        )
        .await;
    if res.status() != 303 {
        return res;
    }
    browser.get(&proxy.url(&location(&res))).await
}

/// Answers a consent page with `decision`; returns the query of the redirect to the client.
pub async fn decide(
    browser: &mut Browser,
    proxy: &Proxy,
    page: &str,
    decision: &str,
) -> HashMap<String, String> {
    let res = browser
        .post_form(
            &proxy.url("/oauth/consent"),
            &[
                ("csrf", &hidden(page, "csrf")),
                ("ticket", &hidden(page, "ticket")),
                ("decision", decision),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    query_of(&location(&res))
}

/// The whole browser part: login, consent with `decision`; returns the redirect's query.
pub async fn consent(
    proxy: &Proxy,
    client_id: &str,
    extra: &[(&str, &str)],
    decision: &str,
) -> HashMap<String, String> {
    let mut browser = Browser::default();
    let res = login(
        &mut browser,
        proxy,
        &authorize_url(proxy, client_id, extra),
        USER,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    decide(&mut browser, proxy, &page, decision).await
}

pub async fn token_request(proxy: &Proxy, form: &[(&str, &str)]) -> (reqwest::StatusCode, Value) {
    let res = http()
        .post(proxy.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

pub async fn exchange(proxy: &Proxy, client_id: &str, code: &str) -> (reqwest::StatusCode, Value) {
    token_request(
        proxy,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id),
        ],
    )
    .await
}

pub struct Tokens {
    pub client_id: String,
    pub access: String,
    pub refresh: String,
    pub body: Value,
}

/// Registration → login → consent → token, for the default route.
pub async fn tokens(proxy: &Proxy, extra: &[(&str, &str)]) -> Tokens {
    let client_id = register_public(proxy).await;
    let q = consent(proxy, &client_id, extra, "allow").await;
    let (status, body) = exchange(proxy, &client_id, &q["code"]).await;
    assert_eq!(status, 200, "{body}");
    Tokens {
        client_id,
        access: body["access_token"].as_str().unwrap().to_string(),
        refresh: body["refresh_token"].as_str().unwrap().to_string(),
        body,
    }
}

pub async fn refresh(
    proxy: &Proxy,
    client_id: &str,
    refresh_token: &str,
) -> (reqwest::StatusCode, Value) {
    token_request(
        proxy,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
    )
    .await
}

/// The claims of a JWT, unverified (for assertions).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
