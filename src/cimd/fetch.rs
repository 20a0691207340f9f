//! Fetching client ID metadata documents (and `jwks_uri` key sets) safely: the
//! URL is attacker-chosen, so the fetch refuses private, loopback and
//! link-local addresses (checked on every resolved address, so DNS cannot
//! smuggle one in), redirects, slow servers and large bodies. Results are
//! cached as HTTP caching allows; failures are cached briefly.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use super::CimdError;
use super::address::is_public;
use super::rules as cimd;
use crate::clock::Clock;
use crate::oauth::client::ClientRecord;

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 64 * 1024;
const FAILURE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 10_000;

/// Why a document (or key set) could not be fetched: one variant per failure kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("not a valid URL")]
    NotAUrl,
    #[error("the URL points at a private or local address")]
    PrivateAddress,
    /// No connection or no answer; the innermost cause (e.g. the resolver's refusal).
    #[error("it could not be fetched ({0})")]
    Unreachable(String),
    #[error("its URL redirects; redirects are not followed")]
    Redirect,
    #[error("its URL answered {0}")]
    Status(StatusCode),
    #[error("it is larger than {} KiB or broke off", MAX_BODY / 1024)]
    TooLarge,
    #[error("it did not arrive within {} seconds", TIMEOUT.as_secs())]
    Timeout,
}

/// A resolver that drops non-public addresses (unless allowed) and fails if none is left.
#[derive(Clone)]
struct PublicResolver {
    allow_private: bool,
}

impl tower_service::Service<Name> for PublicResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the host has no public address",
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector<PublicResolver>>;

struct Cached {
    until: Instant,
    value: Result<Arc<ClientRecord>, CimdError>,
}

pub struct Fetcher {
    client: Client<Connector, Empty<Bytes>>,
    allow_private: bool,
    documents: DashMap<String, Cached>,
    clock: Clock,
}

impl Fetcher {
    /// `allow_private`: test setups only; also admits `http://` URLs.
    pub fn new(allow_private: bool, clock: Clock) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new_with_resolver(PublicResolver { allow_private });
        http.enforce_http(false);
        http.set_connect_timeout(Some(TIMEOUT));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?;
        let connector = if allow_private {
            builder.https_or_http().enable_http1().wrap_connector(http)
        } else {
            builder.https_only().enable_http1().wrap_connector(http)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(Self {
            client,
            allow_private,
            documents: DashMap::new(),
            clock,
        })
    }

    pub fn allows_http(&self) -> bool {
        self.allow_private
    }

    /// The client a metadata document URL describes, from the cache or fetched now.
    pub async fn client(&self, client_id: &str) -> Result<Arc<ClientRecord>, CimdError> {
        if let Some(c) = self.documents.get(client_id)
            && c.until > self.clock.instant()
        {
            return c.value.clone();
        }
        let fetched = self.fetch_document(client_id, self.clock.unix()).await;
        let (value, ttl) = match fetched {
            Ok((record, ttl)) => (Ok(Arc::new(record)), ttl),
            Err(e) => (Err(e), FAILURE_TTL),
        };
        let t = self.clock.instant();
        if self.documents.len() >= CACHE_MAX {
            self.documents.retain(|_, c| c.until > t);
        }
        self.documents.insert(
            client_id.to_string(),
            Cached {
                until: t + ttl,
                value: value.clone(),
            },
        );
        value
    }

    async fn fetch_document(
        &self,
        client_id: &str,
        now: u64,
    ) -> Result<(ClientRecord, Duration), CimdError> {
        cimd::check_url(client_id, self.allow_private)?;
        let (body, cache_control) = self.get(client_id).await?;
        let record = cimd::parse_document(client_id, &body, now)?;
        Ok((
            record,
            Duration::from_secs(cimd::cache_seconds(cache_control.as_deref())),
        ))
    }

    /// GET a small JSON document: 200 only, no redirects, bounded in size and time.
    pub async fn get(&self, url: &str) -> Result<(Bytes, Option<String>), FetchError> {
        let uri: Uri = url.parse().map_err(|_| FetchError::NotAUrl)?;
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>()
            && !self.allow_private
            && !is_public(ip)
        {
            return Err(FetchError::PrivateAddress);
        }
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("mcp-oauth-proxy/", env!("CARGO_PKG_VERSION"))),
        );
        let fetch = async {
            let response = self.client.request(request).await.map_err(|e| {
                // The innermost cause says what happened (e.g. the resolver's refusal).
                let mut cause: &dyn std::error::Error = &e;
                while let Some(next) = cause.source() {
                    cause = next;
                }
                FetchError::Unreachable(cause.to_string())
            })?;
            let status = response.status();
            if status.is_redirection() {
                return Err(FetchError::Redirect);
            }
            if status != StatusCode::OK {
                return Err(FetchError::Status(status));
            }
            let cache_control = response
                .headers()
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|_| FetchError::TooLarge)?
                .to_bytes();
            Ok((body, cache_control))
        };
        tokio::time::timeout(TIMEOUT, fetch)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_errors_read_as_before() {
        for (e, text) in [
            (FetchError::NotAUrl, "not a valid URL"),
            (
                FetchError::PrivateAddress,
                "the URL points at a private or local address",
            ),
            (
                FetchError::Unreachable("connection refused".into()),
                "it could not be fetched (connection refused)",
            ),
            (
                FetchError::Redirect,
                "its URL redirects; redirects are not followed",
            ),
            (
                FetchError::Status(StatusCode::NOT_FOUND),
                "its URL answered 404 Not Found",
            ),
            (
                FetchError::TooLarge,
                "it is larger than 64 KiB or broke off",
            ),
            (FetchError::Timeout, "it did not arrive within 5 seconds"),
        ] {
            assert_eq!(e.to_string(), text);
            assert_eq!(CimdError::from(e).to_string(), text, "shown as it is");
        }
    }

    /// A document server on loopback counting the requests it answers: the
    /// document with `Cache-Control: max-age=60`, or a 500 if `fail`.
    async fn document_server(fail: bool) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/client.json");
        let doc = format!(r#"{{"client_id":"{url}","redirect_uris":["https://app.example/cb"]}}"#);
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, body) = if fail {
                    ("500 Internal Server Error", "")
                } else {
                    ("200 OK", doc.as_str())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncache-control: max-age=60\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(response.as_bytes()).await;
            }
        });
        (url, hits)
    }

    fn hits(counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_document_is_used_for_its_max_age_then_fetched_again() {
        let time = crate::clock::ManualClock::new(1_000);
        let fetcher = Fetcher::new(true, time.clock()).unwrap();
        let (url, counter) = document_server(false).await;
        let first = fetcher.client(&url).await.unwrap();
        assert_eq!((first.issued_at, hits(&counter)), (1_000, 1));
        time.advance(Duration::from_secs(59));
        assert!(Arc::ptr_eq(&fetcher.client(&url).await.unwrap(), &first));
        assert_eq!(hits(&counter), 1, "cached");
        time.advance(Duration::from_secs(1));
        let second = fetcher.client(&url).await.unwrap();
        assert_eq!(
            (second.issued_at, hits(&counter)),
            (1_060, 2),
            "expired: fetched again"
        );
    }

    #[tokio::test]
    async fn a_failure_is_remembered_for_30_seconds() {
        let time = crate::clock::ManualClock::new(1_000);
        let fetcher = Fetcher::new(true, time.clock()).unwrap();
        let (url, counter) = document_server(true).await;
        let first = fetcher.client(&url).await.unwrap_err();
        assert_eq!(
            first,
            CimdError::Fetch(FetchError::Status(StatusCode::INTERNAL_SERVER_ERROR))
        );
        assert_eq!(
            first.to_string(),
            "its URL answered 500 Internal Server Error"
        );
        time.advance(FAILURE_TTL - Duration::from_millis(1));
        assert_eq!(fetcher.client(&url).await.unwrap_err(), first);
        assert_eq!(hits(&counter), 1, "the failure is cached");
        time.advance(Duration::from_millis(1));
        assert!(fetcher.client(&url).await.is_err());
        assert_eq!(hits(&counter), 2, "tried again after 30 s");
    }
}
