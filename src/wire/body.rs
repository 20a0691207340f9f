//! The one body type of the proxy's requests and responses, and bounded reads of request bodies.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use super::response::json_error;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The one body type of the proxy's requests and responses.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Bodies of the proxy's own endpoints (forms, registration, token requests) stay under this.
pub const MAX_FORM_BODY: usize = 1024 * 1024;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// Any body whose errors convert into [`BoxError`], boxed.
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

pin_project_lite::pin_project! {
    /// A body that holds `guard` until it is dropped (sent to the end, or its
    /// stream reset): something counted or reserved while the body is sent, such
    /// as an HTTP/2 stream or an open event stream.
    pub struct Holding<B, G> {
        #[pin]
        body: B,
        guard: G,
    }
}

impl<B, G> Holding<B, G> {
    pub fn new(body: B, guard: G) -> Self {
        Self { body, guard }
    }
}

impl<B: http_body::Body, G> http_body::Body for Holding<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Why a request body could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body too large")]
    TooLarge,
    #[error("request body could not be read")]
    Broken,
    #[error("request body took too long to arrive")]
    TooSlow,
}

impl BodyError {
    pub fn into_response(self) -> Response<Body> {
        let status = match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Broken => StatusCode::BAD_REQUEST,
            BodyError::TooSlow => StatusCode::REQUEST_TIMEOUT,
        };
        json_error(status, "invalid_request", &self.to_string())
    }
}

/// Whether a declared `Content-Length` is over `limit`.
fn declared_too_large(headers: &http::HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// How much of an oversized body is read and thrown away so that the client,
/// still sending, gets to read the 413 instead of a reset connection.
const DRAIN_MAX: u64 = 8 * 1024 * 1024;

/// A request body must arrive within this.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads a whole body of at most `limit` bytes.
pub async fn read_body<B>(
    headers: &http::HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    match tokio::time::timeout(BODY_TIMEOUT, read_body_inner(headers, body, limit)).await {
        Ok(result) => result,
        Err(_) => Err(BodyError::TooSlow),
    }
}

async fn read_body_inner<B>(
    headers: &http::HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    if declared_too_large(headers, limit) {
        // Worth reading only if the client will soon be done sending.
        if !declared_too_large(headers, DRAIN_MAX as usize) {
            drain(body, DRAIN_MAX).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(BodyError::Broken);
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drain(body, DRAIN_MAX).await;
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and discards up to `max` bytes of a body.
async fn drain<B>(mut body: B, max: u64)
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut seen = 0u64;
    while seen < max {
        match body.frame().await {
            Some(Ok(f)) => seen += f.data_ref().map_or(0, |d| d.len() as u64),
            _ => return,
        }
    }
}

/// A refused request's body that is worth reading before the answer: at most this.
const DISCARD_MAX: usize = 64 * 1024;
/// And it must arrive within this.
const DISCARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and throws away a small body of a request that is answered without it
/// (a 401, say). hyper cannot reuse an HTTP/1.1 connection whose request body
/// was not read to its end, and closes it after the answer without saying so;
/// a client that sent the body late, then reuses the connection, would find it
/// closed. Larger bodies are left unread (the connection closes).
pub async fn discard<B>(headers: &http::HeaderMap, body: B)
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    if declared_too_large(headers, DISCARD_MAX) {
        return;
    }
    let _ = tokio::time::timeout(DISCARD_TIMEOUT, drain(body, DISCARD_MAX as u64)).await;
}
