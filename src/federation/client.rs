//! The HTTP client for identity providers: small JSON requests over https (http only
//! to loopback hosts, which the config enforces), bounded in time and size,
//! no redirects followed.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use url::form_urlencoded;

/// One request to a provider, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read (discovery documents and key sets are a few KiB).
const MAX_BODY: usize = 256 * 1024;
const USER_AGENT: &str = concat!("mcp-oauth-proxy/", env!("CARGO_PKG_VERSION"));

/// Why a provider gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("no connection ({0})")]
    Unreachable(String),
    #[error("no answer within {} seconds", TIMEOUT.as_secs())]
    Timeout,
    #[error("the answer is larger than {} KiB or broke off", MAX_BODY / 1024)]
    TooLarge,
    #[error("the answer ({0}) is not JSON")]
    NotJson(StatusCode),
}

impl HttpError {
    /// Whether the provider is down or slow (rather than answering something wrong).
    pub fn is_unavailable(&self) -> bool {
        match self {
            HttpError::Unreachable(_) | HttpError::Timeout => true,
            HttpError::TooLarge => false,
            HttpError::NotJson(status) => status.is_server_error(),
        }
    }
}

/// A JSON answer with its status.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// How the request proves who the proxy is, if at all.
pub enum Auth<'a> {
    None,
    /// `client_secret_basic` (RFC 6749 §2.3.1: both parts form-encoded first).
    Basic {
        id: &'a str,
        secret: &'a str,
    },
    /// A bearer token (userinfo, the GitHub API).
    Bearer(&'a str),
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct ProviderHttp {
    client: Client<Connector, Full<Bytes>>,
}

impl ProviderHttp {
    pub fn new() -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Ok(Self { client })
    }

    pub async fn get(&self, url: &str, auth: Auth<'_>, accept: &str) -> Result<Answer, HttpError> {
        self.send(Method::GET, url, auth, accept, Bytes::new())
            .await
    }

    pub async fn post_form(
        &self,
        url: &str,
        auth: Auth<'_>,
        form: &[(&str, &str)],
    ) -> Result<Answer, HttpError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(Method::POST, url, auth, "application/json", body.into())
            .await
    }

    /// A JSON body (dynamic client registration, RFC 7591).
    pub async fn post_json(&self, url: &str, body: &Value) -> Result<Answer, HttpError> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        self.request(
            Method::POST,
            url,
            Auth::None,
            "application/json",
            body.into(),
            "application/json",
        )
        .await
    }

    /// The `WWW-Authenticate` header of a tokenless MCP request to `url`
    /// (a protected MCP server answers 401 and names its metadata), if any.
    pub async fn challenge(&self, url: &str) -> Result<Option<String>, HttpError> {
        let body = r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#;
        let req = Request::post(url)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .map_err(|e| HttpError::Unreachable(e.to_string()))?;
        let exchange = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| HttpError::Unreachable(innermost(&e)))?;
            Ok(res
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| HttpError::Timeout)?
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        auth: Auth<'_>,
        accept: &str,
        body: Bytes,
    ) -> Result<Answer, HttpError> {
        let content_type = "application/x-www-form-urlencoded";
        self.request(method, url, auth, accept, body, content_type)
            .await
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        auth: Auth<'_>,
        accept: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Answer, HttpError> {
        let is_post = method == Method::POST;
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header(header::ACCEPT, accept)
            .header(header::USER_AGENT, USER_AGENT);
        if is_post {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(value) = authorization(&auth) {
            req = req.header(header::AUTHORIZATION, value);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| HttpError::Unreachable(e.to_string()))?;
        let exchange = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| HttpError::Unreachable(innermost(&e)))?;
            let status = res.status();
            let bytes = Limited::new(res.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|_| HttpError::TooLarge)?
                .to_bytes();
            let body = serde_json::from_slice(&bytes).map_err(|_| HttpError::NotJson(status))?;
            Ok(Answer { status, body })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| HttpError::Timeout)?
    }
}

fn authorization(auth: &Auth) -> Option<HeaderValue> {
    let text = match auth {
        Auth::None => return None,
        Auth::Basic { id, secret } => {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
            )
        }
        Auth::Bearer(token) => format!("Bearer {token}"),
    };
    let mut value = HeaderValue::from_str(&text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The deepest cause of a client error (e.g. "Connection refused").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_form_encodes_both_parts() {
        let v = authorization(&Auth::Basic {
            id: "a b",
            secret: "p:w",
        })
        .unwrap();
        // base64("a+b:p%3Aw")
        assert_eq!(v.to_str().unwrap(), "Basic YStiOnAlM0F3");
        assert!(v.is_sensitive());
        assert!(authorization(&Auth::None).is_none());
    }

    #[test]
    fn down_and_slow_are_unavailable_but_a_wrong_answer_is_not() {
        assert!(HttpError::Timeout.is_unavailable());
        assert!(HttpError::Unreachable("refused".into()).is_unavailable());
        assert!(HttpError::NotJson(StatusCode::BAD_GATEWAY).is_unavailable());
        assert!(!HttpError::NotJson(StatusCode::OK).is_unavailable());
        assert!(!HttpError::TooLarge.is_unavailable());
    }
}
