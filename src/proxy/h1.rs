//! HTTP/1.1 for the upstream side, as pure functions: a request head as bytes,
//! a response head from bytes, and the response body's framing (RFC 9112 §6),
//! decoded incrementally so that an event stream passes as it arrives.

use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::wire::is_hop_by_hop;
use http::{Method, StatusCode};

/// A response head larger than this is refused.
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

/// What the upstream sent that is not HTTP/1.1 the proxy can pass on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum H1Error {
    #[error("malformed response head")]
    Head,
    #[error("response head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("malformed chunked body")]
    Chunked,
    #[error("unsupported Transfer-Encoding (only chunked is passed on)")]
    TransferCoding,
    #[error("the connection closed before the body ended")]
    Truncated,
    #[error("unexpected 101 Switching Protocols")]
    Upgrade,
}

/// How the request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    None,
    Length(u64),
    Chunked,
}

/// The request line and `Host`; header lines follow ([`header_line`]), then [`end_head`].
pub fn request_line(out: &mut Vec<u8>, method: &Method, target: &str, host: &str) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One header line. The caller passes end-to-end headers only; `Host` and the
/// framing headers are written here.
pub fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The body's framing header and the end of the head.
pub fn end_head(out: &mut Vec<u8>, framing: RequestFraming) {
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// One chunk of a chunked request body.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Decoder,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
    /// `Keep-Alive: timeout=N`: how long the upstream keeps an idle connection.
    pub idle_timeout: Option<Duration>,
}

/// Parses a response head from the start of `buf` and removes it from `buf`.
/// `Ok(None)`: more bytes are needed. Interim (1xx) responses are skipped.
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, H1Error> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut slots);
        let len = match res.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(H1Error::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(H1Error::Head),
        };
        let code = res.code.ok_or(H1Error::Head)?;
        let status = StatusCode::from_u16(code).map_err(|_| H1Error::Head)?;
        let http10 = res.version == Some(0);
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(H1Error::Upgrade);
        }
        if status.is_informational() {
            let _ = buf.split_to(len);
            continue;
        }
        // Header values are kept as slices of the head (no copies).
        let base = buf.as_ptr() as usize;
        let offsets: Vec<(Range<usize>, Range<usize>)> = res
            .headers
            .iter()
            .map(|h| {
                let n = h.name.as_ptr() as usize - base;
                let v = h.value.as_ptr() as usize - base;
                (n..n + h.name.len(), v..v + h.value.len())
            })
            .collect();
        let head = buf.split_to(len).freeze();
        // Connection headers are read here and not passed on.
        let mut hop = Hop::default();
        let mut headers = HeaderMap::with_capacity(offsets.len());
        for (name, value) in offsets {
            let name = HeaderName::from_bytes(&head[name]).map_err(|_| H1Error::Head)?;
            if is_hop_by_hop(&name) {
                let text = std::str::from_utf8(&head[value]).map_err(|_| H1Error::Head)?;
                hop.read(&name, text);
                continue;
            }
            let value =
                HeaderValue::from_maybe_shared(head.slice(value)).map_err(|_| H1Error::Head)?;
            headers.append(name, value);
        }
        // `Connection` may name end-to-end headers but not take away the framing.
        for named in &hop.named {
            if let Ok(name) = HeaderName::from_bytes(named.as_bytes())
                && name != header::CONTENT_LENGTH
            {
                headers.remove(name);
            }
        }
        return head_from(status, headers, http10, hop, method).map(Some);
    }
}

/// What the connection headers of a response say.
#[derive(Default)]
struct Hop {
    close: bool,
    keep_alive: bool,
    /// `Keep-Alive: timeout=N`.
    idle_timeout: Option<Duration>,
    /// The codings of every `Transfer-Encoding` header, in order (`None`: no header).
    transfer_encoding: Option<Vec<String>>,
    /// Other headers `Connection` names: connection-specific too.
    named: Vec<String>,
}

impl Hop {
    fn read(&mut self, name: &HeaderName, value: &str) {
        let items = value.split(',').map(str::trim).filter(|t| !t.is_empty());
        match name.as_str() {
            "connection" => {
                for token in items {
                    if token.eq_ignore_ascii_case("close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        self.keep_alive = true;
                    } else {
                        self.named.push(token.to_string());
                    }
                }
            }
            "keep-alive" => {
                self.idle_timeout = items
                    .filter_map(|p| p.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("timeout"))
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .or(self.idle_timeout);
            }
            "transfer-encoding" => {
                let codings = self.transfer_encoding.get_or_insert_with(Vec::new);
                codings.extend(items.map(str::to_ascii_lowercase));
            }
            _ => {}
        }
    }
}

fn head_from(
    status: StatusCode,
    mut headers: HeaderMap,
    http10: bool,
    hop: Hop,
    method: &Method,
) -> Result<ResponseHead, H1Error> {
    let mut keep_alive = !hop.close && (hop.keep_alive || !http10);
    let no_body = *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if hop.transfer_encoding.is_some() {
        // RFC 9112 §6.3: a Content-Length beside Transfer-Encoding is ignored, must not
        // be passed on, and the connection must not be reused.
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
    }
    let body = if no_body {
        Decoder::done()
    } else if let Some(codings) = &hop.transfer_encoding {
        // Only plain chunked: another coding (gzip, …) would reach the client as bytes
        // nobody labels, and an HTTP/1.0 message with Transfer-Encoding is faulty
        // framing (RFC 9112 §6.1). nginx refuses both too.
        if http10 || codings.len() != 1 || codings[0] != "chunked" {
            return Err(H1Error::TransferCoding);
        }
        Decoder::chunked()
    } else if headers.contains_key(header::CONTENT_LENGTH) {
        Decoder::length(content_length(&headers)?)
    } else {
        keep_alive = false;
        Decoder::until_close()
    };
    Ok(ResponseHead {
        status,
        headers,
        body,
        keep_alive,
        idle_timeout: hop.idle_timeout,
    })
}

/// One length, possibly repeated (`5, 5`); differing or malformed values are an error.
fn content_length(headers: &HeaderMap) -> Result<u64, H1Error> {
    let mut found = None;
    let values = headers.get_all(header::CONTENT_LENGTH).iter();
    for v in values.flat_map(|v| v.as_bytes().split(|b| *b == b',')) {
        let v = v.trim_ascii();
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Err(H1Error::ContentLength);
        }
        let n: u64 = std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(H1Error::ContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(H1Error::ContentLength);
        }
        found = Some(n);
    }
    found.ok_or(H1Error::ContentLength)
}

/// The response body's framing, decoded as bytes arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoder(Framing);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked { state: Chunk, size: u64 },
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Hex digits of the size; `digits` read so far.
    Size {
        digits: u8,
    },
    /// Whitespace after the size: more of it, `;` or CR.
    SizeSpace,
    /// `;` extensions up to CR.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    TrailerLine,
    EndLf,
}

impl Decoder {
    pub fn length(n: u64) -> Self {
        Self(if n == 0 {
            Framing::Done
        } else {
            Framing::Length(n)
        })
    }

    pub fn chunked() -> Self {
        Self(Framing::Chunked {
            state: Chunk::Size { digits: 0 },
            size: 0,
        })
    }

    pub fn until_close() -> Self {
        Self(Framing::UntilClose)
    }

    pub fn done() -> Self {
        Self(Framing::Done)
    }

    pub fn is_done(&self) -> bool {
        self.0 == Framing::Done
    }

    /// The body's remaining length, when the framing says it.
    pub fn remaining(&self) -> Option<u64> {
        match self.0 {
            Framing::Length(n) => Some(n),
            Framing::Done => Some(0),
            _ => None,
        }
    }

    /// Takes body bytes from the front of `buf`. `Ok(None)`: `buf` holds no
    /// body bytes yet (more input is needed, or the body is done).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, H1Error> {
        match &mut self.0 {
            Framing::Done => Ok(None),
            _ if buf.is_empty() => Ok(None),
            Framing::UntilClose => Ok(Some(buf.split().freeze())),
            Framing::Length(left) => {
                let n = usize::try_from(*left).map_or(buf.len(), |l| l.min(buf.len()));
                *left -= n as u64;
                if *left == 0 {
                    self.0 = Framing::Done;
                }
                Ok(Some(buf.split_to(n).freeze()))
            }
            Framing::Chunked { state, size } => match chunked(state, size, buf)? {
                Step::Data(data) => Ok(Some(data)),
                Step::More => Ok(None),
                Step::End => {
                    self.0 = Framing::Done;
                    Ok(None)
                }
            },
        }
    }

    /// The upstream closed the connection: the end of an until-close body, a
    /// truncated one otherwise.
    pub fn eof(&mut self) -> Result<(), H1Error> {
        match self.0 {
            Framing::UntilClose | Framing::Done => {
                self.0 = Framing::Done;
                Ok(())
            }
            _ => Err(H1Error::Truncated),
        }
    }
}

enum Step {
    Data(Bytes),
    More,
    End,
}

/// Steps through chunk framing until data, the end of the body or the end of `buf`.
fn chunked(state: &mut Chunk, size: &mut u64, buf: &mut BytesMut) -> Result<Step, H1Error> {
    let mut i = 0;
    while i < buf.len() {
        let b = buf[i];
        match *state {
            Chunk::Size { digits } => match (b as char).to_digit(16) {
                Some(d) if digits < 16 => {
                    *size = *size * 16 + u64::from(d);
                    *state = Chunk::Size { digits: digits + 1 };
                }
                None if digits > 0 && b == b';' => *state = Chunk::Extension,
                None if digits > 0 && matches!(b, b' ' | b'\t') => *state = Chunk::SizeSpace,
                None if digits > 0 && b == b'\r' => *state = Chunk::SizeLf,
                _ => return Err(H1Error::Chunked),
            },
            Chunk::SizeSpace => match b {
                b' ' | b'\t' => {}
                b';' => *state = Chunk::Extension,
                b'\r' => *state = Chunk::SizeLf,
                _ => return Err(H1Error::Chunked),
            },
            Chunk::Extension => {
                if b == b'\r' {
                    *state = Chunk::SizeLf;
                } else if b == b'\n' {
                    return Err(H1Error::Chunked);
                }
            }
            Chunk::SizeLf if b == b'\n' => {
                *state = if *size == 0 {
                    Chunk::TrailerStart
                } else {
                    Chunk::Data
                };
            }
            Chunk::Data => {
                let _ = buf.split_to(i);
                let n = usize::try_from(*size).map_or(buf.len(), |s| s.min(buf.len()));
                *size -= n as u64;
                if *size == 0 {
                    *state = Chunk::DataCr;
                }
                return Ok(Step::Data(buf.split_to(n).freeze()));
            }
            Chunk::DataCr if b == b'\r' => *state = Chunk::DataLf,
            Chunk::DataLf if b == b'\n' => *state = Chunk::Size { digits: 0 },
            Chunk::TrailerStart if b == b'\r' => *state = Chunk::EndLf,
            Chunk::TrailerStart => *state = Chunk::TrailerLine,
            Chunk::TrailerLine => {
                if b == b'\n' {
                    *state = Chunk::TrailerStart;
                }
            }
            Chunk::EndLf if b == b'\n' => {
                let _ = buf.split_to(i + 1);
                return Ok(Step::End);
            }
            Chunk::SizeLf | Chunk::DataCr | Chunk::DataLf | Chunk::EndLf => {
                return Err(H1Error::Chunked);
            }
        }
        i += 1;
    }
    let _ = buf.split_to(i);
    Ok(Step::More)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8], method: &Method) -> Result<Option<ResponseHead>, H1Error> {
        parse_response(&mut BytesMut::from(bytes), method)
    }

    /// Decodes `wire` fed in pieces split at `cuts`; returns the body and whether it ended.
    fn decode_in_pieces(
        mut d: Decoder,
        wire: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, bool, Vec<u8>), H1Error> {
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        let mut at = 0;
        for &cut in cuts.iter().chain([&wire.len()]) {
            buf.extend_from_slice(&wire[at..cut]);
            at = cut;
            while let Some(data) = d.decode(&mut buf)? {
                assert!(!data.is_empty());
                out.extend_from_slice(&data);
            }
        }
        Ok((out, d.is_done(), buf.to_vec()))
    }

    #[test]
    fn request_heads() {
        let mut out = Vec::new();
        request_line(&mut out, &Method::POST, "/mcp?a=1", "127.0.0.1:3001");
        header_line(&mut out, "content-type", b"application/json");
        header_line(&mut out, "x-a", b"1");
        end_head(&mut out, RequestFraming::Length(12));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /mcp?a=1 HTTP/1.1\r\nhost: 127.0.0.1:3001\r\ncontent-type: application/json\r\n\
             x-a: 1\r\ncontent-length: 12\r\n\r\n"
        );
        let mut out = Vec::new();
        request_line(&mut out, &Method::GET, "/sse", "up");
        end_head(&mut out, RequestFraming::Chunked);
        assert_eq!(
            out,
            b"GET /sse HTTP/1.1\r\nhost: up\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let mut out = Vec::new();
        request_line(&mut out, &Method::DELETE, "/", "up");
        end_head(&mut out, RequestFraming::None);
        assert_eq!(out, b"DELETE / HTTP/1.1\r\nhost: up\r\n\r\n");
        let mut out = Vec::new();
        encode_chunk(&mut out, b"0123456789abcdefg");
        encode_chunk(&mut out, b"");
        assert_eq!(out, b"11\r\n0123456789abcdefg\r\n");
    }

    #[test]
    fn connection_headers_are_read_not_passed() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=7\r\nTransfer-Encoding: chunked\r\nX-End: 2\r\n\r\n"[..],
        );
        let h = parse_response(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(h.headers.len(), 1, "{:?}", h.headers);
        assert_eq!(h.headers["x-end"], "2");
        assert_eq!(h.body, Decoder::chunked());
        assert_eq!(h.idle_timeout, Some(Duration::from_secs(7)));
        assert!(h.keep_alive);
    }

    #[test]
    fn only_end_to_end_headers_reach_the_client() {
        // What the client gets is `parse_response` then `headers::to_client`.
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-secret-hop\r\nx-secret-hop: 1\r\n\
               Transfer-Encoding: chunked\r\nUpgrade: websocket\r\nTrailer: x-t\r\n\
               Proxy-Authenticate: Basic\r\nTE: trailers\r\nx-keep: 1\r\n\
               Set-Cookie: __Host-mcp_csrf=evil\r\n\r\n"[..],
        );
        let mut h = parse_response(&mut buf, &Method::GET).unwrap().unwrap();
        super::super::headers::to_client(&mut h.headers);
        assert_eq!(h.headers.len(), 1, "{:?}", h.headers);
        assert!(h.headers.contains_key("x-keep"));
    }

    #[test]
    fn response_heads() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello"[..],
        );
        let h = parse_response(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.headers["content-type"], "application/json");
        assert_eq!(h.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(h.body.remaining(), Some(5));
        assert!(h.keep_alive);
        assert_eq!(h.idle_timeout, Some(Duration::from_secs(5)));
        assert_eq!(&buf[..], b"hello", "the body stays in the buffer");

        assert!(
            head(b"HTTP/1.1 200 OK\r\nContent-Len", &Method::GET)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            head(b"HTTX/1.1 200 OK\r\n\r\n", &Method::GET).unwrap_err(),
            H1Error::Head
        );
        let big = [&b"HTTP/1.1 200 OK\r\nx: "[..], &vec![b'a'; MAX_HEAD]].concat();
        assert_eq!(head(&big, &Method::GET).unwrap_err(), H1Error::HeadTooLarge);
        assert_eq!(
            head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", &Method::GET).unwrap_err(),
            H1Error::Upgrade
        );
    }

    #[test]
    fn interim_responses_are_skipped() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"[..],
        );
        let h = parse_response(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::ACCEPTED);
        assert!(h.body.is_done() && buf.is_empty());
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let frame = |s: &str, m: &Method| {
            let h = head(s.as_bytes(), m).unwrap().unwrap();
            (h.body, h.keep_alive)
        };
        assert_eq!(
            frame(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n",
                &Method::GET
            ),
            (Decoder::chunked(), true)
        );
        let both = head(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((both.body, both.keep_alive), (Decoder::chunked(), false));
        assert!(
            both.headers.get("content-length").is_none(),
            "not passed on beside Transfer-Encoding"
        );
        for faulty in [
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(
                head(faulty.as_bytes(), &Method::GET).unwrap_err(),
                H1Error::TransferCoding,
                "{faulty:?}"
            );
        }
        let named = head(
            b"HTTP/1.1 200 OK\r\nconnection: content-length, x-a\r\ncontent-length: 2\r\nx-a: 1\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            named.body,
            Decoder::length(2),
            "Connection cannot take the framing away"
        );
        assert!(named.headers.get("x-a").is_none());
        for (wire, method, want) in [
            (
                "HTTP/1.1 200 OK\r\n\r\n",
                &Method::GET,
                (Decoder::until_close(), false),
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\n\r\n",
                &Method::GET,
                (Decoder::length(7), true),
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n",
                &Method::HEAD,
                (Decoder::done(), true),
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                &Method::DELETE,
                (Decoder::done(), true),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\n\r\n",
                &Method::GET,
                (Decoder::done(), true),
            ),
            (
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
                &Method::GET,
                (Decoder::length(1), false),
            ),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
                &Method::GET,
                (Decoder::length(1), false),
            ),
            (
                "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n",
                &Method::GET,
                (Decoder::length(1), true),
            ),
        ] {
            assert_eq!(frame(wire, method), want, "{wire:?}");
        }
        for bad in ["5, 6", "-1", "+5", "0x5", "", "99999999999999999999999"] {
            let s = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n");
            assert_eq!(
                head(s.as_bytes(), &Method::GET).unwrap_err(),
                H1Error::ContentLength,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn chunked_bodies_decode_at_every_split() {
        let wire = b"5 ;name=v\r\nhello\r\n1a\t\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let want = b"helloabcdefghijklmnopqrstuvwxyz";
        for a in 0..=wire.len() {
            for b in a..=wire.len() {
                let (body, done, rest) =
                    decode_in_pieces(Decoder::chunked(), wire, &[a, b]).unwrap();
                assert_eq!(body, want, "cuts {a} {b}");
                assert!(done, "cuts {a} {b}");
                assert_eq!(rest, b"NEXT", "the next response stays, cuts {a} {b}");
            }
        }
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for wire in [
            &b"x\r\n"[..],
            b"5\r\nhelloX",
            b"0\r\n\rX",
            b"5\nhello",
            b"\r\n",
            b"11111111111111111\r\n",
            b"5 6\r\nhello\r\n",
            b" 5\r\n",
            b"5;ext\n",
        ] {
            assert_eq!(
                decode_in_pieces(Decoder::chunked(), wire, &[]).unwrap_err(),
                H1Error::Chunked,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let mut d = Decoder::chunked();
        d.decode(&mut BytesMut::from(&b"5\r\nhe"[..])).unwrap();
        assert_eq!(d.eof().unwrap_err(), H1Error::Truncated);
    }

    #[test]
    fn lengths_and_close_delimited_bodies() {
        for cut in 0..=9 {
            let (body, done, rest) =
                decode_in_pieces(Decoder::length(5), b"helloNEXT", &[cut.min(9)]).unwrap();
            assert_eq!(
                (body.as_slice(), done, rest.as_slice()),
                (&b"hello"[..], true, &b"NEXT"[..])
            );
        }
        let (body, done, _) = decode_in_pieces(Decoder::length(10), b"hello", &[2]).unwrap();
        assert_eq!((body.as_slice(), done), (&b"hello"[..], false));
        let mut d = Decoder::length(10);
        assert_eq!(d.eof().unwrap_err(), H1Error::Truncated);

        let mut d = Decoder::until_close();
        let (body, done, _) = decode_in_pieces(d.clone(), b"all of it", &[3]).unwrap();
        assert_eq!((body.as_slice(), done), (&b"all of it"[..], false));
        d.eof().unwrap();
        assert!(d.is_done());
        assert_eq!(Decoder::length(0), Decoder::done());
    }
}
