//! The upstream side of forwarding: HTTP/1.1 over pooled connections (plain or
//! rustls), driven by the request's own task. Connection reuse, idle expiry and
//! the one retry on a connection the upstream just closed live here; framing is
//! `h1`'s.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::uri::{Authority, Scheme};
use http::{Method, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::h1::{self, Decoder, H1Error, RequestFraming};
use crate::clock::Clock;
use crate::wire::Body;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection is kept, unless the upstream says less (`Keep-Alive: timeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// A request body up to this size goes out in the same write as the head.
const COALESCE: usize = 16 * 1024;
const READ_CHUNK: usize = 8 * 1024;

/// Why the upstream gave no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("{0}")]
    Io(io::Error),
    #[error("{0}")]
    Protocol(#[from] H1Error),
    #[error("unsupported upstream URL")]
    Url,
}

/// The request body as the forwarder has it: read already (and so replayable), or streaming.
pub enum Outgoing {
    Full(Bytes),
    Stream(Body),
}

impl Outgoing {
    fn framing(&self, method: &Method) -> RequestFraming {
        match self {
            Outgoing::Full(b) if b.is_empty() && !has_payload_semantics(method) => {
                RequestFraming::None
            }
            Outgoing::Full(b) => RequestFraming::Length(b.len() as u64),
            Outgoing::Stream(body) => match body.size_hint().exact() {
                Some(0) if !has_payload_semantics(method) => RequestFraming::None,
                Some(n) => RequestFraming::Length(n),
                None => RequestFraming::Chunked,
            },
        }
    }
}

fn has_payload_semantics(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// A client for every upstream, with one pool of idle connections per origin.
pub struct Client {
    pool: Arc<Pool>,
    tls: TlsConnector,
}

/// Idle connections by origin. A list, not a map: there are as many origins as
/// routes, and comparing a few keys costs less than hashing one.
struct Pool {
    idle: Mutex<Vec<(Key, Vec<Idle>)>>,
    /// Read at every checkout and return: `Clock` is an enum whose system case is an
    /// inlined `Instant::now()`, so this costs what `Instant::now()` costs.
    clock: Clock,
}

#[derive(Clone, PartialEq, Eq)]
struct Key {
    https: bool,
    authority: Authority,
}

struct Idle {
    conn: Conn,
    expires: Instant,
}

struct Conn {
    io: Io,
    /// Bytes read and not yet used: the response head, then body bytes.
    buf: BytesMut,
}

enum Io {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Client {
    pub fn new(tls: rustls::ClientConfig, clock: Clock) -> Self {
        Self {
            pool: Arc::new(Pool {
                idle: Mutex::default(),
                clock,
            }),
            tls: TlsConnector::from(Arc::new(tls)),
        }
    }

    /// Sends a request to `upstream` and returns the response head, its body
    /// streaming from the connection (which goes back to the pool when the body
    /// has been read to its end).
    /// `fields` writes the request's header lines (`h1::header_line`); `Host` and the
    /// framing are written here.
    pub async fn send(
        &self,
        upstream: &Uri,
        method: &Method,
        fields: impl FnOnce(&mut Vec<u8>),
        body: Outgoing,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let key = Key::of(upstream).ok_or(SendError::Url)?;
        let target = upstream.path_and_query().map_or("/", |pq| pq.as_str());
        let host = host_header(&key.authority);
        // An empty streaming body (a GET's) is as good as a read one, and can be replayed.
        let body = match body {
            Outgoing::Stream(b) if b.is_end_stream() => Outgoing::Full(Bytes::new()),
            other => other,
        };
        let framing = body.framing(method);
        let mut wire = Vec::with_capacity(512);
        h1::request_line(&mut wire, method, target, host);
        fields(&mut wire);
        h1::end_head(&mut wire, framing);
        let mut body = match body {
            Outgoing::Full(b) if b.len() <= COALESCE => {
                wire.extend_from_slice(&b);
                Outgoing::Full(Bytes::new())
            }
            other => other,
        };
        // A request goes again on a new connection only when a reused one turns out to be
        // closed: before any byte of it went out, or, for an idempotent method, before
        // any byte of an answer came.
        let replayable = matches!(body, Outgoing::Full(_));
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The retry takes a new connection: another pooled one may be as stale.
            let pooled = if attempt == 1 {
                self.pool.checkout(&key)
            } else {
                None
            };
            let (mut conn, reused) = match pooled {
                Some(conn) => (conn, true),
                // Boxed: connecting is rare, and the request's future need not have room for it.
                None => (Box::pin(self.connect(&key)).await?, false),
            };
            match conn.exchange(&wire, &mut body, framing, method).await {
                Ok(head) => {
                    let keep = head
                        .keep_alive
                        .then(|| keep_for(head.idle_timeout))
                        .flatten();
                    let mut res = Response::new(UpstreamBody {
                        conn: Some(conn),
                        decoder: head.body,
                        home: keep.map(|keep| (self.pool.clone(), key, keep)),
                    });
                    *res.status_mut() = head.status;
                    *res.headers_mut() = head.headers;
                    return Ok(res);
                }
                Err(Failure { error, retry }) => {
                    // (A retry is never on a reused connection: this happens once.)
                    let again = reused
                        && replayable
                        && match retry {
                            Retry::NothingSent => true,
                            Retry::Unanswered => method.is_idempotent(),
                            Retry::No => false,
                        };
                    if !again {
                        return Err(error);
                    }
                    tracing::debug!(error = %error, "pooled upstream connection was closed; retrying on a new one");
                }
            }
        }
    }

    /// Drops idle connections past their time.
    pub fn sweep(&self) {
        let now = self.pool.clock.instant();
        if let Ok(mut idle) = self.pool.idle.lock() {
            idle.retain_mut(|(_, conns)| {
                conns.retain(|c| c.expires > now);
                !conns.is_empty()
            });
        }
    }

    async fn connect(&self, key: &Key) -> Result<Conn, SendError> {
        let default_port = if key.https { 443 } else { 80 };
        let port = key.authority.port_u16().unwrap_or(default_port);
        let host = key.authority.host();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(SendError::Connect)?
                .collect(),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the host");
        let mut tcp = None;
        for addr in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    tcp = Some(s);
                    break;
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            }
        }
        let tcp = tcp.ok_or(SendError::Connect(last))?;
        tcp.set_nodelay(true).map_err(SendError::Connect)?;
        let io = if key.https {
            let name = rustls::pki_types::ServerName::try_from(bare.to_string())
                .map_err(|e| SendError::Connect(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(SendError::Connect)?;
            Io::Tls(Box::new(tls))
        } else {
            Io::Tcp(tcp)
        };
        Ok(Conn {
            io,
            buf: BytesMut::new(),
        })
    }
}

impl Key {
    fn of(uri: &Uri) -> Option<Self> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return None,
        };
        Some(Self {
            https,
            authority: uri.authority()?.clone(),
        })
    }
}

/// The `Host` of a request to `authority`: without any user information.
fn host_header(authority: &Authority) -> &str {
    let s = authority.as_str();
    s.rsplit_once('@').map_or(s, |(_, host)| host)
}

/// How long a connection may stay idle, given the upstream's `Keep-Alive: timeout`
/// (a second less, so that the proxy lets go first); `None`: do not keep it.
fn keep_for(upstream_says: Option<Duration>) -> Option<Duration> {
    match upstream_says {
        None => Some(IDLE_TIMEOUT),
        Some(t) => {
            let t = t.saturating_sub(Duration::from_secs(1)).min(IDLE_TIMEOUT);
            (!t.is_zero()).then_some(t)
        }
    }
}

impl Pool {
    fn checkout(&self, key: &Key) -> Option<Conn> {
        let now = self.clock.instant();
        let mut idle = self.idle.lock().ok()?;
        let (_, conns) = idle.iter_mut().find(|(k, _)| k == key)?;
        while let Some(mut idle) = conns.pop() {
            if idle.expires > now && idle.conn.is_open() {
                return Some(idle.conn);
            }
        }
        None
    }

    fn put(&self, key: Key, conn: Conn, keep: Duration) {
        let now = self.clock.instant();
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let conns = match idle.iter().position(|(k, _)| *k == key) {
            Some(i) => &mut idle[i].1,
            None => {
                idle.push((key, Vec::new()));
                let last = idle.len() - 1;
                &mut idle[last].1
            }
        };
        conns.retain(|c| c.expires > now);
        if conns.len() >= MAX_IDLE_PER_UPSTREAM {
            conns.remove(0);
        }
        conns.push(Idle {
            conn,
            expires: now + keep,
        });
    }
}

/// Why an exchange failed, and whether sending again could help.
struct Failure {
    error: SendError,
    retry: Retry,
}

enum Retry {
    /// No byte of the request went out: the upstream cannot have acted on it.
    NothingSent,
    /// The connection ended before any byte of an answer.
    Unanswered,
    No,
}

enum Wrote {
    All,
    /// The upstream answered (a final response) before it had the whole request.
    Answered(h1::ResponseHead),
}

impl Conn {
    /// Whether an idle connection is still usable: nothing to read, no end of stream.
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut buf)
            .is_pending()
    }

    /// Writes the request and reads the response head. While writing, the connection
    /// is watched: an upstream that answers before taking the whole request (an early
    /// 4xx) gets no more of it, and its answer is returned (the connection is then
    /// not reused).
    async fn exchange(
        &mut self,
        wire: &[u8],
        body: &mut Outgoing,
        framing: RequestFraming,
        method: &Method,
    ) -> Result<h1::ResponseHead, Failure> {
        let mut sent = 0u64;
        match self
            .write_request(wire, body, framing, method, &mut sent)
            .await
        {
            Ok(Wrote::All) => {}
            Ok(Wrote::Answered(mut head)) => {
                head.keep_alive = false;
                return Ok(head);
            }
            Err(error) => {
                // It may have answered before it closed (e.g. 400 with `Connection: close`).
                if let Some(mut head) = self.answer_already_sent(method) {
                    head.keep_alive = false;
                    return Ok(head);
                }
                // Nothing of the request went out: the upstream cannot have acted on it.
                let retry = if sent == 0 {
                    Retry::NothingSent
                } else {
                    Retry::No
                };
                return Err(Failure { error, retry });
            }
        }
        std::future::poll_fn(|cx| self.poll_head(cx, method))
            .await
            .map_err(|(error, answered)| Failure {
                error,
                retry: if answered {
                    Retry::No
                } else {
                    Retry::Unanswered
                },
            })
    }

    /// Reads until `buf` holds a response head. `Err`: the reason, and whether any byte
    /// of an answer had come.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        method: &Method,
    ) -> Poll<Result<h1::ResponseHead, (SendError, bool)>> {
        loop {
            match h1::parse_response(&mut self.buf, method) {
                Ok(Some(head)) => return Poll::Ready(Ok(head)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err((e.into(), true))),
            }
            let answered = !self.buf.is_empty();
            match self.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before the response",
                    );
                    return Poll::Ready(Err((SendError::Io(e), answered)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err((SendError::Io(e), answered))),
            }
        }
    }

    async fn write_request(
        &mut self,
        wire: &[u8],
        body: &mut Outgoing,
        framing: RequestFraming,
        method: &Method,
        sent: &mut u64,
    ) -> Result<Wrote, SendError> {
        if let Wrote::Answered(head) = self.write_watching(wire, method, sent).await? {
            return Ok(Wrote::Answered(head));
        }
        match body {
            Outgoing::Full(b) => self.write_watching(b, method, sent).await,
            Outgoing::Stream(stream) => self.write_stream(stream, framing, method, sent).await,
        }
    }

    /// A streaming request body, as it comes: chunked, or exactly the length announced.
    async fn write_stream(
        &mut self,
        body: &mut Body,
        framing: RequestFraming,
        method: &Method,
        sent: &mut u64,
    ) -> Result<Wrote, SendError> {
        let mut total = 0u64;
        let wrong_length = || {
            SendError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "the request body does not have its announced length",
            ))
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| SendError::Io(io::Error::other(e)))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not forwarded
            };
            total += data.len() as u64;
            let wrote = match framing {
                RequestFraming::Chunked => {
                    let mut out = Vec::with_capacity(data.len() + 16);
                    h1::encode_chunk(&mut out, &data);
                    self.write_watching(&out, method, sent).await?
                }
                RequestFraming::Length(n) if total > n => return Err(wrong_length()),
                RequestFraming::None if total > 0 => return Err(wrong_length()),
                _ => self.write_watching(&data, method, sent).await?,
            };
            if let Wrote::Answered(head) = wrote {
                return Ok(Wrote::Answered(head));
            }
        }
        match framing {
            RequestFraming::Chunked => self.write_watching(h1::LAST_CHUNK, method, sent).await,
            RequestFraming::Length(n) if total != n => Err(wrong_length()),
            _ => Ok(Wrote::All),
        }
    }

    /// Writes (and flushes) `data`. While the upstream takes no more, what it sends is
    /// read: a final response stops the writing (interim 1xx ones do not).
    async fn write_watching(
        &mut self,
        data: &[u8],
        method: &Method,
        sent: &mut u64,
    ) -> Result<Wrote, SendError> {
        let mut off = 0;
        std::future::poll_fn(|cx| {
            loop {
                let step = if off < data.len() {
                    match Pin::new(&mut self.io).poll_write(cx, &data[off..]) {
                        Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                        Poll::Ready(Ok(n)) => {
                            off += n;
                            *sent += n as u64;
                            continue;
                        }
                        other => other.map_ok(|_| ()),
                    }
                } else {
                    Pin::new(&mut self.io).poll_flush(cx)
                };
                match step {
                    Poll::Ready(Ok(())) => return Poll::Ready(Ok(Wrote::All)),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(SendError::Io(e))),
                    Poll::Pending => {}
                }
                // The upstream takes no more for now: has it answered already?
                return match self.poll_head(cx, method) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(head)) => Poll::Ready(Ok(Wrote::Answered(head))),
                    Poll::Ready(Err((e, _))) => Poll::Ready(Err(e)),
                };
            }
        })
        .await
    }

    /// A complete response head the upstream sent before the connection failed, if any.
    fn answer_already_sent(&mut self, method: &Method) -> Option<h1::ResponseHead> {
        match self.poll_head(&mut Context::from_waker(Waker::noop()), method) {
            Poll::Ready(Ok(head)) => Some(head),
            _ => None,
        }
    }

    /// Reads what the upstream has sent into `buf`; `Ok(0)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// A response body read from its connection as the client takes it; the
/// connection returns to the pool once the body has been read to its end.
pub struct UpstreamBody {
    conn: Option<Conn>,
    decoder: Decoder,
    /// Where the connection goes afterwards, and for how long; `None`: closed.
    home: Option<(Arc<Pool>, Key, Duration)>,
}

impl UpstreamBody {
    /// Back to the pool, if the connection can carry another request.
    fn release(&mut self) {
        if let (Some(conn), Some((pool, key, keep))) = (self.conn.take(), self.home.take())
            && conn.buf.is_empty()
        {
            pool.put(key, conn, keep);
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let data = match this.decoder.decode(&mut conn.buf) {
                Ok(data) => data,
                Err(e) => {
                    this.conn = None;
                    let e = io::Error::new(io::ErrorKind::InvalidData, e);
                    return Poll::Ready(Some(Err(e)));
                }
            };
            if this.decoder.is_done() {
                this.release();
                return Poll::Ready(data.map(|d| Ok(Frame::data(d))));
            }
            if let Some(data) = data {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    this.conn = None;
                    return Poll::Ready(match this.decoder.eof() {
                        Ok(()) => None,
                        Err(e) => Some(Err(io::Error::new(io::ErrorKind::UnexpectedEof, e))),
                    });
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Read to its end (or empty): the connection is clean for another request.
        if self.decoder.is_done() {
            self.release();
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_follows_the_upstreams_keep_alive() {
        assert_eq!(keep_for(None), Some(IDLE_TIMEOUT));
        assert_eq!(
            keep_for(Some(Duration::from_secs(5))),
            Some(Duration::from_secs(4))
        );
        assert_eq!(keep_for(Some(Duration::from_secs(1))), None);
        assert_eq!(keep_for(Some(Duration::from_secs(600))), Some(IDLE_TIMEOUT));
    }

    #[test]
    fn hosts_and_keys() {
        let uri: Uri = "http://user@127.0.0.1:3001/mcp".parse().unwrap();
        assert_eq!(host_header(uri.authority().unwrap()), "127.0.0.1:3001");
        assert!(Key::of(&"ftp://h/x".parse().unwrap()).is_none());
        assert!(Key::of(&"https://H:443/x".parse().unwrap()).unwrap().https);
        assert!(
            Key::of(&"http://H/x".parse().unwrap()) == Key::of(&"http://h/y".parse().unwrap()),
            "one pool per origin, host names case-insensitive"
        );
    }

    #[test]
    fn request_framing() {
        assert_eq!(
            Outgoing::Full(Bytes::new()).framing(&Method::GET),
            RequestFraming::None
        );
        assert_eq!(
            Outgoing::Full(Bytes::new()).framing(&Method::POST),
            RequestFraming::Length(0)
        );
        assert_eq!(
            Outgoing::Full(Bytes::from_static(b"{}")).framing(&Method::DELETE),
            RequestFraming::Length(2)
        );
        assert_eq!(
            Outgoing::Stream(crate::wire::empty()).framing(&Method::GET),
            RequestFraming::None
        );
        let endless = futures_util::stream::pending::<Result<Frame<Bytes>, io::Error>>();
        let streaming = crate::wire::boxed(http_body_util::StreamBody::new(endless));
        assert_eq!(
            Outgoing::Stream(streaming).framing(&Method::POST),
            RequestFraming::Chunked
        );
    }

    #[tokio::test]
    async fn an_idle_connection_is_not_used_past_its_time() {
        let time = crate::clock::ManualClock::new(0);
        let pool = Pool {
            idle: Mutex::default(),
            clock: time.clock(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let key = Key::of(&format!("http://{addr}/mcp").parse().unwrap()).unwrap();
        let mut peers = Vec::new();
        for _ in 0..2 {
            let tcp = TcpStream::connect(addr).await.unwrap();
            peers.push(listener.accept().await.unwrap().0);
            let conn = Conn {
                io: Io::Tcp(tcp),
                buf: BytesMut::new(),
            };
            pool.put(key.clone(), conn, Duration::from_secs(4));
        }
        time.advance(Duration::from_millis(3_999));
        assert!(pool.checkout(&key).is_some(), "idle for less than its time");
        time.advance(Duration::from_millis(1));
        assert!(pool.checkout(&key).is_none(), "idle for its time: not used");
    }
}
