//! Fetching client ID metadata documents (and `jwks_uri` key sets) safely: the
//! URL is attacker-chosen, so the fetch refuses private, loopback and
//! link-local addresses (checked on every resolved address, so DNS cannot
//! smuggle one in), redirects, slow servers and large bodies. Results (key
//! sets too) are cached as HTTP caching allows, failures briefly, in caches
//! bounded in bytes; a client network's fetches are rate limited.
//!
//! A host that is down must not lock a client's users out: when a refetch
//! fails for an outage (no connection, no answer in time, 5xx, 404, 408, 429),
//! the last good copy is served for up to [`LAST_GOOD_COPY`] after it was
//! fetched, with a warning in the log for each failed refetch.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use super::CimdError;
use super::address::is_public;
use super::cache::{self, Cache, Weigh};
use super::rules as cimd;
use crate::clock::Clock;
use crate::limit::RateLimit;
use crate::oauth::client::ClientRecord;

const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest document or key set read.
const MAX_BODY: usize = 64 * 1024;
const FAILURE_TTL: Duration = Duration::from_secs(30);
/// How long after a successful fetch its copy stands in for a host that fails.
pub const LAST_GOOD_COPY: Duration = Duration::from_secs(24 * 3600);
/// An idle connection to a document host is closed after this.
const POOL_IDLE: Duration = Duration::from_secs(10);
/// Memory for fetched documents (and their failures), estimated from what is
/// kept of each (`Weigh`); the least recently used go first.
const DOCUMENT_CACHE_BYTES: usize = 8 * 1024 * 1024;
/// Memory for key sets fetched from `jwks_uri` (each at most `rules::MAX_KEY_SET`).
const KEY_SET_CACHE_BYTES: usize = 2 * 1024 * 1024;
/// Fetches (cache misses: documents and key sets) per client network per
/// minute; a network is an IPv4 address or an IPv6 /64.
const FETCHES_PER_MINUTE: u32 = 30;

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

impl FetchError {
    /// Whether the host is down rather than changed: no connection, no answer in
    /// time, a server error, or 404, 408 or 429. (A redirect, an oversized
    /// answer or another status is the document's owner speaking.)
    pub fn is_outage(&self) -> bool {
        match self {
            FetchError::Unreachable(_) | FetchError::Timeout => true,
            FetchError::Status(s) => {
                s.is_server_error()
                    || matches!(
                        *s,
                        StatusCode::NOT_FOUND
                            | StatusCode::REQUEST_TIMEOUT
                            | StatusCode::TOO_MANY_REQUESTS
                    )
            }
            FetchError::NotAUrl
            | FetchError::PrivateAddress
            | FetchError::Redirect
            | FetchError::TooLarge => false,
        }
    }
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

/// What is cached of a URL: what it describes, or why it cannot be used.
type Fetched<T> = Result<Arc<T>, CimdError>;

impl<T: Weigh> Weigh for Fetched<T> {
    fn weight(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                Ok(v) => v.weight(),
                Err(e) => e.to_string().len(),
            }
    }
}

impl Weigh for ClientRecord {
    fn weight(&self) -> usize {
        let texts = [
            &self.client_name,
            &self.client_uri,
            &self.logo_uri,
            &self.scope,
            &self.software_id,
            &self.software_version,
            &self.jwks_uri,
            &self.secret_hash,
        ];
        let lists = self.redirect_uris.iter().chain(&self.grant_types);
        std::mem::size_of::<Self>()
            + cache::text(&self.client_id)
            + cache::text(&self.application_type)
            + texts
                .into_iter()
                .flatten()
                .map(|s| cache::text(s))
                .sum::<usize>()
            + lists.map(|s| cache::text(s)).sum::<usize>()
            + self.jwks.as_ref().map_or(0, cache::json)
    }
}

impl Weigh for serde_json::Value {
    fn weight(&self) -> usize {
        cache::json(self)
    }
}

/// Whom the fetch limit counts: an IPv4 address, or the /64 of an IPv6 one
/// (one host commonly has a whole /64).
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

pub struct Fetcher {
    client: Client<Connector, Empty<Bytes>>,
    allow_private: bool,
    documents: Cache<Fetched<ClientRecord>>,
    key_sets: Cache<Fetched<serde_json::Value>>,
    fetches: RateLimit,
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
        // Hosts are attacker-chosen: idle connections to them do not linger.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            allow_private,
            documents: Cache::new(DOCUMENT_CACHE_BYTES),
            key_sets: Cache::new(KEY_SET_CACHE_BYTES),
            fetches: RateLimit::new(FETCHES_PER_MINUTE, Duration::from_secs(60), clock.clone()),
            clock,
        })
    }

    pub fn allows_http(&self) -> bool {
        self.allow_private
    }

    /// The client a metadata document URL describes, from the cache or fetched
    /// now (which counts against `peer`'s network).
    pub async fn client(&self, client_id: &str, peer: IpAddr) -> Fetched<ClientRecord> {
        cimd::check_url(client_id, self.allow_private)?;
        self.cached(&self.documents, client_id, peer, async {
            let (body, cache_control) = self.get(client_id).await?;
            let record = cimd::parse_document(client_id, &body, self.clock.unix())?;
            Ok((record, cache_control))
        })
        .await
    }

    /// The key set at a client's `jwks_uri`, from the cache or fetched now
    /// (which counts against `peer`'s network).
    pub async fn key_set(&self, uri: &str, peer: IpAddr) -> Fetched<serde_json::Value> {
        if uri.len() > cimd::MAX_URL {
            return Err(CimdError::TooLong("jwks_uri", cimd::MAX_URL));
        }
        self.cached(&self.key_sets, uri, peer, async {
            let (body, cache_control) = self.get(uri).await?;
            Ok((cimd::parse_key_set(&body)?, cache_control))
        })
        .await
    }

    /// `url`'s entry in `cache`, or `load`ed now if `peer`'s network may fetch
    /// one more; kept for the answer's `Cache-Control`, a failure for 30 s. A
    /// good answer stays as the last good copy for [`LAST_GOOD_COPY`]: an outage
    /// of the host serves it (again for 30 s before the next try).
    async fn cached<T: Weigh>(
        &self,
        cache: &Cache<Fetched<T>>,
        url: &str,
        peer: IpAddr,
        load: impl Future<Output = Result<(T, Option<String>), CimdError>>,
    ) -> Fetched<T> {
        if let Some(hit) = cache.get(url, self.clock.instant()) {
            return hit;
        }
        self.fetches
            .check(network(peer))
            .map_err(CimdError::TooManyFetches)?;
        let loaded = load.await;
        let now = self.clock.instant();
        match loaded {
            Ok((v, cache_control)) => {
                let ttl = Duration::from_secs(cimd::cache_seconds(cache_control.as_deref()));
                let value = Ok(Arc::new(v));
                cache.insert_keeping(url, value.clone(), now + ttl, now + LAST_GOOD_COPY);
                value
            }
            Err(e) => {
                if let CimdError::Fetch(outage) = &e
                    && outage.is_outage()
                    && let Some((Ok(copy), keep)) = cache.stale(url, now)
                {
                    let left = keep.saturating_duration_since(now).as_secs() / 60;
                    tracing::warn!(
                        url,
                        error = %outage,
                        "cannot fetch a client metadata document (or key set) again: serving the last good copy for up to {left} more minutes"
                    );
                    let until = (now + FAILURE_TTL).min(keep);
                    cache.insert_keeping(url, Ok(copy.clone()), until, keep);
                    return Ok(copy);
                }
                cache.insert(url, Err(e.clone()), now + FAILURE_TTL);
                Err(e)
            }
        }
    }

    /// GET a small JSON document: 200 only, no redirects, bounded in size and time.
    async fn get(&self, url: &str) -> Result<(Bytes, Option<String>), FetchError> {
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

    type Answer = (&'static str, String);

    /// A server on loopback counting the requests it answers, each with
    /// `Cache-Control: max-age=60` and what `answer` says for the base URL and
    /// path; an empty status closes the connection without an answer.
    async fn serve(
        answer: impl Fn(&str, &str) -> Answer + Send + 'static,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (counter, me) = (hits.clone(), base.clone());
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
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = answer(&me, path);
                if status.is_empty() {
                    continue;
                }
                let response = format!(
                    "HTTP/1.1 {status}\r\ncache-control: max-age=60\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(response.as_bytes()).await;
            }
        });
        (base, hits)
    }

    /// A document server: any path is a document naming itself, or a 500 if `fail`.
    async fn document_server(fail: bool) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let (base, hits) = serve(move |base, path| {
            if fail {
                return ("500 Internal Server Error", String::new());
            }
            let doc = serde_json::json!({"client_id": format!("{base}{path}"), "redirect_uris": ["https://app.example/cb"]});
            ("200 OK", doc.to_string())
        })
        .await;
        (format!("{base}/client.json"), hits)
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn hits(counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_document_is_used_for_its_max_age_then_fetched_again() {
        let time = crate::clock::ManualClock::new(1_000);
        let fetcher = Fetcher::new(true, time.clock()).unwrap();
        let (url, counter) = document_server(false).await;
        let first = fetcher.client(&url, PEER).await.unwrap();
        assert_eq!((first.issued_at, hits(&counter)), (1_000, 1));
        time.advance(Duration::from_secs(59));
        assert!(Arc::ptr_eq(
            &fetcher.client(&url, PEER).await.unwrap(),
            &first
        ));
        assert_eq!(hits(&counter), 1, "cached");
        time.advance(Duration::from_secs(1));
        let second = fetcher.client(&url, PEER).await.unwrap();
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
        let first = fetcher.client(&url, PEER).await.unwrap_err();
        assert_eq!(
            first,
            CimdError::Fetch(FetchError::Status(StatusCode::INTERNAL_SERVER_ERROR))
        );
        assert_eq!(
            first.to_string(),
            "its URL answered 500 Internal Server Error"
        );
        time.advance(FAILURE_TTL - Duration::from_millis(1));
        assert_eq!(fetcher.client(&url, PEER).await.unwrap_err(), first);
        assert_eq!(hits(&counter), 1, "the failure is cached");
        time.advance(Duration::from_millis(1));
        assert!(fetcher.client(&url, PEER).await.is_err());
        assert_eq!(hits(&counter), 2, "tried again after 30 s");
    }

    /// Log lines written while the guard lives (this thread's subscriber).
    fn capture_logs() -> (
        Arc<std::sync::Mutex<Vec<u8>>>,
        tracing::subscriber::DefaultGuard,
    ) {
        #[derive(Clone)]
        struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        (buf, tracing::subscriber::set_default(subscriber))
    }

    #[tokio::test]
    async fn the_last_good_copy_stands_in_for_a_failing_host_for_24_hours_after_its_fetch() {
        use std::sync::atomic::{AtomicU8, Ordering};
        let (logs, _guard) = capture_logs();
        let time = crate::clock::ManualClock::new(1_000);
        let fetcher = Fetcher::new(true, time.clock()).unwrap();
        // 0: the document; 1: 500; 2: 404; 3: the connection closes unanswered.
        let mode = Arc::new(AtomicU8::new(0));
        let m = mode.clone();
        let (base, counter) = serve(move |base, path| match m.load(Ordering::SeqCst) {
            0 => {
                let doc = serde_json::json!({"client_id": format!("{base}{path}"), "redirect_uris": ["https://app.example/cb"]});
                ("200 OK", doc.to_string())
            }
            1 => ("500 Internal Server Error", String::new()),
            2 => ("404 Not Found", String::new()),
            _ => ("", String::new()),
        })
        .await;
        let url = format!("{base}/client.json");
        let good = fetcher.client(&url, PEER).await.unwrap();
        let warnings = || {
            String::from_utf8_lossy(&logs.lock().unwrap())
                .matches("serving the last good copy")
                .count()
        };

        for (failing, after) in [(1, 61), (2, 30), (3, 30)] {
            mode.store(failing, Ordering::SeqCst);
            time.advance(Duration::from_secs(after));
            let served = fetcher.client(&url, PEER).await.unwrap();
            assert!(Arc::ptr_eq(&served, &good), "mode {failing}");
        }
        assert_eq!(hits(&counter), 4, "a refetch each time the copy was due");
        assert_eq!(warnings(), 3, "one warning per failed refetch");
        time.advance(Duration::from_secs(29));
        assert!(fetcher.client(&url, PEER).await.is_ok());
        assert_eq!(
            (hits(&counter), warnings()),
            (4, 3),
            "the copy is reused for 30 s before the next try"
        );

        // 24 hours after the good fetch, the copy is gone.
        time.advance(LAST_GOOD_COPY - Duration::from_secs(61 + 30 + 30 + 29));
        let e = fetcher.client(&url, PEER).await.unwrap_err();
        assert!(
            matches!(e, CimdError::Fetch(FetchError::Unreachable(_))),
            "{e:?}"
        );

        // A good answer starts a new 24 hours.
        mode.store(0, Ordering::SeqCst);
        time.advance(FAILURE_TTL);
        let renewed = fetcher.client(&url, PEER).await.unwrap();
        assert!(!Arc::ptr_eq(&renewed, &good));
    }

    #[tokio::test]
    async fn a_host_that_answers_otherwise_than_with_an_outage_gets_no_stand_in() {
        let time = crate::clock::ManualClock::new(1_000);
        let fetcher = Fetcher::new(true, time.clock()).unwrap();
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let g = gone.clone();
        let (base, _) = serve(move |base, path| {
            if g.load(std::sync::atomic::Ordering::SeqCst) {
                return ("403 Forbidden", String::new());
            }
            let doc = serde_json::json!({"client_id": format!("{base}{path}"), "redirect_uris": ["https://app.example/cb"]});
            ("200 OK", doc.to_string())
        })
        .await;
        let url = format!("{base}/client.json");
        fetcher.client(&url, PEER).await.unwrap();
        gone.store(true, std::sync::atomic::Ordering::SeqCst);
        time.advance(Duration::from_secs(61));
        assert_eq!(
            fetcher.client(&url, PEER).await.unwrap_err(),
            CimdError::Fetch(FetchError::Status(StatusCode::FORBIDDEN)),
            "the owner refused it: the old copy is not used"
        );
    }

    #[test]
    fn outages_are_told_from_answers() {
        for (e, outage) in [
            (FetchError::Unreachable("refused".into()), true),
            (FetchError::Timeout, true),
            (FetchError::Status(StatusCode::BAD_GATEWAY), true),
            (FetchError::Status(StatusCode::NOT_FOUND), true),
            (FetchError::Status(StatusCode::TOO_MANY_REQUESTS), true),
            (FetchError::Status(StatusCode::GONE), false),
            (FetchError::Status(StatusCode::UNAUTHORIZED), false),
            (FetchError::Redirect, false),
            (FetchError::TooLarge, false),
            (FetchError::PrivateAddress, false),
        ] {
            assert_eq!(e.is_outage(), outage, "{e}");
        }
    }

    #[tokio::test]
    async fn a_network_that_fetched_too_many_documents_waits_but_cached_ones_still_answer() {
        let time = crate::clock::ManualClock::new(1_000);
        let fetcher = Fetcher::new(true, time.clock()).unwrap();
        let (url, counter) = document_server(false).await;
        let base = url.trim_end_matches("/client.json");
        for i in 0..FETCHES_PER_MINUTE {
            assert!(
                fetcher
                    .client(&format!("{base}/c{i}.json"), PEER)
                    .await
                    .is_ok()
            );
        }
        time.advance(Duration::from_secs(20));
        assert_eq!(
            fetcher
                .client(&format!("{base}/one-more.json"), PEER)
                .await
                .unwrap_err(),
            CimdError::TooManyFetches(40)
        );
        assert!(
            fetcher
                .client(&format!("{base}/c0.json"), PEER)
                .await
                .is_ok(),
            "cached"
        );
        assert_eq!(hits(&counter), FETCHES_PER_MINUTE as usize);
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(
            fetcher
                .client(&format!("{base}/one-more.json"), other)
                .await
                .is_ok()
        );

        // One IPv6 /64 is one network.
        let v6 = |ip: &str| ip.parse::<IpAddr>().unwrap();
        for i in 0..FETCHES_PER_MINUTE {
            let peer = v6(&format!("2001:db8:1:2::{i:x}"));
            assert!(
                fetcher
                    .client(&format!("{base}/v{i}.json"), peer)
                    .await
                    .is_ok()
            );
        }
        assert!(matches!(
            fetcher
                .client(&format!("{base}/v-more.json"), v6("2001:db8:1:2:ffff::1"))
                .await,
            Err(CimdError::TooManyFetches(_))
        ));
        assert!(
            fetcher
                .client(&format!("{base}/v-more.json"), v6("2001:db8:1:3::1"))
                .await
                .is_ok()
        );
        time.advance(Duration::from_secs(40));
        assert!(
            fetcher
                .client(&format!("{base}/later.json"), PEER)
                .await
                .is_ok(),
            "a new minute"
        );
    }

    #[tokio::test]
    async fn a_key_set_is_fetched_once_for_its_max_age_and_kept_without_extra_members() {
        let time = crate::clock::ManualClock::new(1_000);
        let fetcher = Fetcher::new(true, time.clock()).unwrap();
        let (base, counter) = serve(|_, _| {
            let key = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "AAAA", "x5c": ["MIIB"], "use": "sig"});
            ("200 OK", serde_json::json!({"keys": [key]}).to_string())
        })
        .await;
        let uri = format!("{base}/keys.json");
        let keys = fetcher.key_set(&uri, PEER).await.unwrap();
        assert_eq!(
            *keys,
            serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "AAAA"}]})
        );
        time.advance(Duration::from_secs(59));
        assert!(Arc::ptr_eq(
            &fetcher.key_set(&uri, PEER).await.unwrap(),
            &keys
        ));
        assert_eq!(hits(&counter), 1, "cached");
        time.advance(Duration::from_secs(1));
        fetcher.key_set(&uri, PEER).await.unwrap();
        assert_eq!(hits(&counter), 2, "fetched again after max-age");
    }

    #[tokio::test]
    async fn a_flood_of_large_documents_stays_within_the_cache_bound() {
        let time = crate::clock::ManualClock::new(1_000);
        let fetcher = Fetcher::new(true, time.clock()).unwrap();
        // Each document signs with ten large keys: ~14 KiB of key set kept.
        let (base, _) = serve(|base, path| {
            let key = |i: usize| serde_json::json!({"kty": "RSA", "kid": format!("k{i}"), "n": "A".repeat(1_300), "e": "AQAB"});
            let doc = serde_json::json!({
                "client_id": format!("{base}{path}"),
                "redirect_uris": ["https://app.example/cb"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": (0..10).map(key).collect::<Vec<_>>()},
            });
            ("200 OK", doc.to_string())
        })
        .await;
        let documents = 1_000;
        for i in 0..documents {
            let peer = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            let record = fetcher
                .client(&format!("{base}/c{i}.json"), peer)
                .await
                .unwrap();
            assert!(record.jwks.is_some());
            assert!(
                fetcher.documents.bytes() <= DOCUMENT_CACHE_BYTES,
                "after {i}"
            );
        }
        let kept = fetcher.documents.len();
        assert!(kept < documents && kept > documents / 4, "{kept} kept");
        assert!(fetcher.documents.bytes() > DOCUMENT_CACHE_BYTES * 3 / 4);
    }
}
