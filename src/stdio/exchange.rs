//! The HTTP side of a stdio route, Streamable HTTP as the 2025 revisions
//! define it, with the proxy minting the `Mcp-Session-Id`:
//!
//! - `POST` `initialize` opens a session (a new process, or the user's) and is
//!   answered in JSON; other requests go to the session's process, and their
//!   answer comes back as an event stream (progress and the server's requests
//!   on it first) when the client takes one, else as JSON; notifications and
//!   answers to the server's requests get 202;
//! - `GET` opens the session's stream of requests and notifications from the
//!   server (one per session: a new one replaces the old);
//! - `DELETE` ends the session (and its process, with `per: session`).
//!
//! A POST without a session that names the 2026-07-28 revision goes to `modern`.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body::Frame;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::process::{Out, Process, Stop, Waiting};
use super::routing::{self, Kind};
use super::sessions::Owner;
use super::{RouteProcs, Slot, Stdio, StdioError, era, lock};
use crate::config::{Route, StdioServer};
use crate::mcp::jsonrpc;
use crate::mcp::sse;
use crate::wire::{self, Body};

const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// MCP's code for a request the client cancelled.
const REQUEST_CANCELLED: i64 = -32800;

/// The answer forms a client takes (`Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accept {
    pub json: bool,
    pub sse: bool,
}

impl Accept {
    /// Without an `Accept` header: JSON.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let mut accept = Accept {
            json: false,
            sse: false,
        };
        let mut any = false;
        for v in headers.get_all(header::ACCEPT) {
            any = true;
            for item in v.to_str().unwrap_or_default().split(',') {
                let media = item.split(';').next().unwrap_or_default().trim();
                let is = |m: &str| media.eq_ignore_ascii_case(m);
                accept.json |= is("application/json") || is("application/*") || is("*/*");
                accept.sse |= is("text/event-stream") || is("text/*") || is("*/*");
            }
        }
        if !any {
            accept.json = true;
        }
        accept
    }
}

/// One request to a stdio route, as the earlier phases left it.
pub(crate) struct Exchange<'a> {
    pub route: &'a Route,
    pub server: &'a Arc<StdioServer>,
    pub owner: Owner,
    pub method: Method,
    /// The `Mcp-Session-Id` (the session phase checked its owner where it knows it).
    pub session: Option<String>,
    pub accept: Accept,
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<String>,
    /// Whether `Mcp-Method` and `Mcp-Name` are there (2026-07-28 requires them).
    pub mirrors: era::Mirrors,
    /// A POST's body (one JSON-RPC message, checked by the inspect phase); empty otherwise.
    pub body: Bytes,
}

impl Stdio {
    pub(crate) async fn exchange(&self, x: Exchange<'_>) -> Result<Response<Body>, StdioError> {
        let procs = self.route(x.route, x.server);
        if x.method == Method::POST {
            return self.post(&procs, x).await;
        }
        let Some(sid) = x.session.clone() else {
            // A 2026-07-28 client only POSTs.
            if x.protocol_version
                .as_deref()
                .is_some_and(jsonrpc::is_modern)
            {
                return Err(StdioError::NotAllowed);
            }
            return Err(StdioError::NoSession { id: None });
        };
        let process = procs
            .lookup(&sid, &x.owner)
            .ok_or(StdioError::UnknownSession)?;
        let session: Arc<str> = Arc::from(sid.as_str());
        if x.method == Method::DELETE {
            process.detach(&session);
            let stop = lock(&procs.table).end_session(&sid);
            if let Some((_, p)) = stop {
                p.stop(Stop::SessionEnded);
            }
            return Ok(empty(StatusCode::OK));
        }
        if !x.accept.sse {
            return Err(StdioError::NotAcceptable("text/event-stream"));
        }
        let rx = process
            .open_stream(&session)
            .ok_or(StdioError::UnknownSession)?;
        Ok(messages_stream(rx))
    }

    async fn post(
        &self,
        procs: &Arc<RouteProcs>,
        x: Exchange<'_>,
    ) -> Result<Response<Body>, StdioError> {
        if !x.accept.json && !x.accept.sse {
            return Err(StdioError::NotAcceptable(
                "application/json or text/event-stream",
            ));
        }
        if x.session.is_none() {
            match era::modern_request(x.protocol_version.as_deref(), x.mirrors, &x.body) {
                Ok(Some(request)) => return self.modern(procs, x, request).await,
                Ok(None) => {}
                Err(refusal) => {
                    let id = routing::id(&x.body);
                    return Err(StdioError::Version {
                        id,
                        refusal: Box::new(refusal),
                    });
                }
            }
        }
        let kind = routing::classify(&x.body).map_err(|_| StdioError::NotOneMessage)?;
        let id = routing::id(&x.body);
        if let Kind::Request { method } = &kind
            && method == "initialize"
        {
            if x.session.is_some() {
                return Err(StdioError::AlreadyInitialized { id });
            }
            return self.initialize(procs, &x, id).await;
        }
        let sid = x
            .session
            .clone()
            .ok_or(StdioError::NoSession { id: id.clone() })?;
        let process = procs
            .lookup(&sid, &x.owner)
            .ok_or(StdioError::UnknownSession)?;
        let session: Arc<str> = Arc::from(sid.as_str());
        match kind {
            Kind::Request { .. } => {
                let (waiting, rx) = process.request(&session, &x.body, x.accept.sse).await?;
                answer(waiting, rx, x.accept, x.route.timeout, id).await
            }
            Kind::Notification { method } => {
                process.notify(&session, &x.body, &method).await?;
                Ok(empty(StatusCode::ACCEPTED))
            }
            Kind::Response => {
                process.respond(&session, &x.body).await?;
                Ok(empty(StatusCode::ACCEPTED))
            }
        }
    }

    /// Opens a session: the child's `initialize` answer (the user's process
    /// answered it already: the same result under this request's id), and the
    /// session id the proxy made.
    async fn initialize(
        &self,
        procs: &Arc<RouteProcs>,
        x: &Exchange<'_>,
        id: Option<Box<RawValue>>,
    ) -> Result<Response<Body>, StdioError> {
        let (process, started) = procs.open(self, Slot::Session(&x.owner), id.as_deref())?;
        let session: Arc<str> = Arc::from(crate::oauth::seal::random_token(24));
        process.attach(&session);
        let mut opening = Opening {
            process: process.clone(),
            session: session.clone(),
            started,
            done: false,
        };
        let mut answered = None;
        let init = process
            .init
            .get_or_try_init(|| async {
                let (waiting, rx) = process.request(&session, &x.body, false).await?;
                let answer = first_answer(waiting, rx, x.route.timeout, id.as_deref()).await?;
                let result = routing::result(&answer);
                answered = Some(answer);
                result.ok_or(InitError::Failed)
            })
            .await;
        let body = match (init, answered) {
            (Ok(_), Some(answer)) => answer,
            (Ok(result), None) => {
                Bytes::from(jsonrpc::result_response(id.as_deref(), result.get()))
            }
            // The process ended before it answered: 502, with why.
            (Err(InitError::Failed), _) if process.end_reason().is_some() => {
                let why = process.end_reason().unwrap_or_default();
                return Err(StdioError::Ended { id, why });
            }
            // The child's own error (e.g. an unsupported protocol version): passed on, no session.
            (Err(InitError::Failed), Some(answer)) => return Ok(json(answer)),
            (Err(InitError::Failed), None) => return Err(ended(id)),
            // The process went away under a session waiting for another's initialize.
            (Err(InitError::Stdio(StdioError::UnknownSession)), _) => return Err(ended(id)),
            (Err(InitError::Stdio(e)), _) => return Err(e),
        };
        if !lock(&procs.table).add_session(session.clone(), process.id, x.owner.clone()) {
            return Err(ended(id));
        }
        opening.done = true;
        let mut res = json(body);
        if let Ok(v) = HeaderValue::from_str(&session) {
            res.headers_mut().insert(MCP_SESSION_ID, v);
        }
        Ok(res)
    }
}

fn ended(id: Option<Box<RawValue>>) -> StdioError {
    StdioError::Ended {
        id,
        why: "the process stopped".to_string(),
    }
}

/// Why the first `initialize` of a process did not give a result.
enum InitError {
    /// The child answered with an error.
    Failed,
    Stdio(StdioError),
}

impl From<StdioError> for InitError {
    fn from(e: StdioError) -> Self {
        InitError::Stdio(e)
    }
}

/// A session being opened: if that fails (or its client goes away), the session
/// leaves the process, and a process started for it stops.
struct Opening {
    process: Arc<Process>,
    session: Arc<str>,
    started: bool,
    done: bool,
}

impl Drop for Opening {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.process.detach(&self.session);
        if self.started && self.process.sessionless() {
            self.process.stop(Stop::InitFailed);
        }
    }
}

/// The answer to a request only the proxy reads (`initialize`): progress is skipped.
pub(super) async fn first_answer(
    mut guard: Waiting,
    mut rx: mpsc::Receiver<Out>,
    wait: Duration,
    id: Option<&RawValue>,
) -> Result<Bytes, StdioError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Out::Answer(b))) => {
                guard.finish();
                return Ok(b);
            }
            Ok(Some(Out::Event(_))) => {}
            Ok(None) => return Err(ended(id.map(ToOwned::to_owned))),
            Err(_) => {
                return Err(StdioError::Timeout {
                    id: id.map(ToOwned::to_owned),
                });
            }
        }
    }
}

/// A request's answer: an event stream (headers at once, progress and requests
/// from the server as they come, the answer last) for a client that takes one,
/// as the SDKs' Streamable HTTP servers do; else the answer alone as JSON,
/// waited for up to the route's timeout.
async fn answer(
    mut guard: Waiting,
    mut rx: mpsc::Receiver<Out>,
    accept: Accept,
    timeout: Duration,
    id: Option<Box<RawValue>>,
) -> Result<Response<Body>, StdioError> {
    if accept.sse {
        return Ok(answer_stream(guard, rx));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Out::Answer(b))) => {
                guard.finish();
                return Ok(json(b));
            }
            // A JSON-only client gets the answer alone.
            Ok(Some(Out::Event(_))) => {}
            // Cancelled by the client's own notification.
            Ok(None) => {
                guard.finish();
                return Ok(json(Bytes::from(jsonrpc::error_response(
                    id.as_deref(),
                    REQUEST_CANCELLED,
                    "Request cancelled",
                ))));
            }
            Err(_) => return Err(StdioError::Timeout { id }),
        }
    }
}

/// An answer as an event stream: what arrives, up to the answer.
fn answer_stream(mut guard: Waiting, mut rx: mpsc::Receiver<Out>) -> Response<Body> {
    // The closure owns the whole guard because it uses it through its methods:
    // reading the `done` field alone would move a copy of the flag into the
    // closure and drop the guard here, cancelling the request at once.
    let events = futures_util::stream::poll_fn(move |cx| {
        if guard.is_done() {
            return Poll::Ready(None);
        }
        match rx.poll_recv(cx) {
            Poll::Ready(Some(Out::Event(b))) => Poll::Ready(Some(
                Ok::<_, std::convert::Infallible>(Frame::data(event(&b))),
            )),
            Poll::Ready(Some(Out::Answer(b))) => {
                guard.finish();
                Poll::Ready(Some(Ok(Frame::data(event(&b)))))
            }
            Poll::Ready(None) => {
                guard.finish();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    });
    event_stream(wire::boxed(http_body_util::StreamBody::new(events)))
}

/// An event stream of the messages `rx` brings, until it closes.
pub(super) fn messages_stream(mut rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let events = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|m| m.map(|m| Ok::<_, std::convert::Infallible>(Frame::data(event(&m)))))
    });
    event_stream(wire::boxed(http_body_util::StreamBody::new(events)))
}

/// One message as an SSE event. A line from the child holds no `\n`; a `\r`
/// (whitespace between JSON tokens) would end an SSE line, so it becomes a space.
pub(super) fn event(message: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(message).replace('\r', " ");
    sse::encode(Some("message"), None, &text)
}

pub(super) fn event_stream(body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    res
}

pub(super) fn json(body: Bytes) -> Response<Body> {
    let mut res = Response::new(wire::full(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

pub(super) fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(wire::empty());
    *res.status_mut() = status;
    res
}

impl RouteProcs {
    /// The process of `session`, if `owner` opened it.
    fn lookup(&self, session: &str, owner: &Owner) -> Option<Arc<Process>> {
        lock(&self.table).session(session, owner).map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: Option<&str>) -> Accept {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        Accept::from_headers(&h)
    }

    #[test]
    fn accept_names_the_answer_forms() {
        let both = Accept {
            json: true,
            sse: true,
        };
        assert_eq!(accept(Some("application/json, text/event-stream")), both);
        assert_eq!(accept(Some("*/*")), both);
        assert_eq!(
            accept(Some("text/event-stream;q=0.9")),
            Accept {
                json: false,
                sse: true
            }
        );
        assert_eq!(
            accept(None),
            Accept {
                json: true,
                sse: false
            }
        );
        assert_eq!(
            accept(Some("text/html")),
            Accept {
                json: false,
                sse: false
            }
        );
    }

    #[test]
    fn an_event_carries_one_message_on_one_data_line() {
        assert_eq!(
            &event(b"{\"a\":\r1}")[..],
            b"event: message\ndata: {\"a\": 1}\n\n"
        );
    }

    #[test]
    fn refusals_are_json_rpc_errors_with_the_requests_id() {
        let id = serde_json::value::to_raw_value(&7).ok();
        let res = StdioError::Busy { max: 3, id }.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        let res = StdioError::UnknownSession.into_response();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
