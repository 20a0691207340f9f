//! The HTTP side of a stdio route for clients of the 2026-07-28 revision:
//! POSTs without a session, each request on its own (`era` reads them).
//!
//! - A user's modern requests go to a process of their own ([`Table::open_modern`]);
//!   its first request finds the child's era: the proxy probes with
//!   `server/discover`, and initializes a child that is not modern itself.
//! - A modern child gets the requests as they are.
//! - A legacy child gets them without the modern `_meta`; `server/discover` is
//!   answered from its `initialize` result; answers get `resultType` (and the
//!   cache fields); and a request it sends the client during a `tools/call`,
//!   `prompts/get` or `resources/read` becomes an `input_required` answer (MRTR):
//!   the original request is parked, still pending at the child, until the
//!   client's retry brings the input (`requestState` names the parked request,
//!   for the same user and client, method and name only) or [`PARK_FOR`] passes;
//!   `subscriptions/listen` gets the child's change notifications.
//!
//! [`Table::open_modern`]: super::sessions::Table::open_modern

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Frame;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::era::{self, Era, ModernRequest, ServerRequest};
use super::exchange::{
    Accept, Exchange, empty, event, event_stream, first_answer, json, messages_stream,
};
use super::process::{Out, Process, Stop, Waiting};
use super::routing::{self, Kind};
use super::sessions::Owner;
use super::{RouteProcs, Stdio, StdioError};
use crate::wire::{self, Body};

/// The session name modern requests use inside a process (they have none).
pub(super) const MODERN_SESSION: &str = "";

pub(super) fn modern_session() -> Arc<str> {
    Arc::from(MODERN_SESSION)
}
/// How long the probe waits for an answer: a legacy child may never answer it,
/// and a modern one started through `npx` may take this long the first time.
const PROBE_WAIT: Duration = Duration::from_secs(30);
/// How long the proxy's own requests to a child (`resources/subscribe`) may take.
const OWN_REQUEST_WAIT: Duration = Duration::from_secs(10);
/// How long the answer to a client that takes an event stream may take before
/// the stream starts (until then, an answer alone goes out as JSON).
const FIRST_WAIT: Duration = Duration::from_secs(10);
/// How long a request waiting for the client's input stays parked.
pub(super) const PARK_FOR: Duration = Duration::from_secs(300);
/// Parked requests per process, at most; the child's next request is refused.
pub(super) const MAX_PARKED: usize = 64;

/// A legacy child's request waiting for the client's retry with its input.
pub(super) struct Parked {
    owner: Owner,
    method: String,
    name: Option<String>,
    /// What the child asked (its id is the child's).
    asked: ServerRequest,
    pub(super) waiting: Waiting,
    rx: mpsc::Receiver<Out>,
    pub(super) until: Instant,
}

/// Parks a request under a new `requestState` and words the `input_required`
/// answer to the client's request `id`; gives it back when too many wait.
fn ask_client(
    process: &Process,
    id: Option<&RawValue>,
    parked: Box<Parked>,
) -> Result<Vec<u8>, Box<Parked>> {
    let state = crate::oauth::seal::random_token(24);
    let answer = era::input_required(id, &parked.asked, &state);
    process.park(state, parked).map(|()| answer)
}

impl Parked {
    /// The child learns its request will not be answered (the original request
    /// is cancelled when this is dropped, with its `waiting`).
    pub(super) fn expire(&self, process: &Process) {
        process.answer_child(&era::refuse(
            &self.asked,
            "the client did not retry the request with its input in time",
        ));
    }
}

impl Stdio {
    pub(super) async fn modern(
        &self,
        procs: &Arc<RouteProcs>,
        x: Exchange<'_>,
        request: ModernRequest,
    ) -> Result<Response<Body>, StdioError> {
        if request.id.is_none() || request.method.is_empty() {
            // No client notification of this revision travels over HTTP
            // (closing the answer's stream is how a client cancels), nor answers.
            return Ok(empty(StatusCode::ACCEPTED));
        }
        if request.method == "subscriptions/listen" && !x.accept.sse {
            return Err(StdioError::NotAcceptable("text/event-stream"));
        }
        let (process, era) = self.modern_process(procs, &x, &request).await?;
        let legacy = era == Era::Legacy;
        let id = request.id.as_deref();
        if legacy && request.method == "server/discover" {
            let init = process.init.get().ok_or(StdioError::Unanswered {
                id: request.id.clone(),
            })?;
            return Ok(one_answer(x.accept, era::discover(id, init)));
        }
        if legacy && request.method == "subscriptions/listen" {
            return self.listen(&process, &x, request.id.clone());
        }
        if legacy && era::removed(&request.method) {
            let answer = era::method_not_found(id, &request.method);
            return Ok(one_answer(x.accept, answer));
        }
        let mut answering = Answering {
            process: process.clone(),
            legacy,
            request,
            owner: x.owner.clone(),
            resumed: false,
            waiting: None,
        };
        let session = modern_session();
        if legacy && answering.request.request_state.is_some() {
            let Some(parked) = answering.unpark() else {
                return Ok(one_answer(
                    x.accept,
                    era::stale_state(answering.request.id.as_deref()),
                ));
            };
            // A retry without the input asked for is asked again (MRTR).
            let Some(input) = era::input_answer(&parked.asked, &answering.request.input_responses)
            else {
                return match ask_client(&process, answering.request.id.as_deref(), parked) {
                    Ok(again) => Ok(one_answer(x.accept, again)),
                    Err(parked) => {
                        parked.expire(&process);
                        Err(StdioError::Unanswered {
                            id: answering.request.id,
                        })
                    }
                };
            };
            // The retry continues the parked request: its input goes to the child.
            process.rebind(parked.waiting.child_id(), &x.body);
            process.answer_child(&input);
            answering.resumed = true;
            answering.waiting = Some((parked.waiting, parked.rx));
        } else {
            let message = if legacy {
                era::to_legacy(&x.body)
            } else {
                x.body.to_vec()
            };
            answering.waiting = Some(process.request(&session, &message, true).await?);
        }
        answering.respond(x.accept, x.route.timeout).await
    }

    /// A listen stream over a legacy child: the child's list changes (it sends
    /// them to every client) and updates of the resources asked for (the proxy
    /// subscribes to them), as the filter says.
    fn listen(
        &self,
        process: &Arc<Process>,
        x: &Exchange<'_>,
        id: Option<Box<RawValue>>,
    ) -> Result<Response<Body>, StdioError> {
        let (Some(id), Some(init)) = (id, process.init.get()) else {
            return Err(StdioError::Unanswered { id: None });
        };
        let filter = era::listen_filter(&x.body, init);
        for uri in &filter.uris {
            let (process, msg) = (process.clone(), era::subscribe(uri));
            tokio::spawn(async move {
                let session = modern_session();
                if let Ok((waiting, rx)) = process.request(&session, &msg, false).await {
                    let _ = first_answer(waiting, rx, OWN_REQUEST_WAIT, None).await;
                }
            });
        }
        let (tx, rx) = mpsc::channel(super::process::TO_CLIENT);
        let _ = tx.try_send(Bytes::from(era::acknowledged(&id, &filter)));
        process
            .listen(super::process::Listener { id, filter, tx })
            .ok_or(StdioError::Unanswered { id: None })?;
        Ok(messages_stream(rx))
    }

    /// The process of this user's (and client's) modern requests, and its era:
    /// found out by the request that started it, the others wait for that.
    async fn modern_process(
        &self,
        procs: &Arc<RouteProcs>,
        x: &Exchange<'_>,
        request: &ModernRequest,
    ) -> Result<(Arc<Process>, Era), StdioError> {
        let id = request.id.as_deref();
        let key = super::sessions::modern_key(x.server.per, &x.owner);
        let (process, started) = procs.open(self, super::Slot::Modern(&key), id)?;
        let _starting = Starting {
            process: process.clone(),
            started,
        };
        let era = *process
            .era
            .get_or_try_init(|| find_era(&process, request, x.route.timeout))
            .await?;
        Ok((process, era))
    }
}

/// The first request of a process finds its era: the probe, then for a legacy
/// child `initialize` and `notifications/initialized`.
async fn find_era(
    process: &Arc<Process>,
    request: &ModernRequest,
    wait: Duration,
) -> Result<Era, StdioError> {
    let id = request.id.as_deref();
    let session = modern_session();
    let (waiting, rx) = process
        .request(&session, &era::probe(&request.meta), false)
        .await?;
    let verdict = match first_answer(waiting, rx, PROBE_WAIT, id).await {
        Ok(answer) => era::verdict(&answer),
        // Silence is one of the ways a legacy child answers.
        Err(StdioError::Timeout { .. }) => Era::Legacy,
        Err(e) => return Err(e),
    };
    if verdict == Era::Modern {
        return Ok(Era::Modern);
    }
    let (waiting, rx) = process
        .request(&session, &era::initialize(&request.meta), false)
        .await?;
    let answer = first_answer(waiting, rx, wait, id).await?;
    let Some(result) = routing::result(&answer) else {
        return Err(StdioError::Ended {
            id: id.map(ToOwned::to_owned),
            why: "it refused the proxy's initialize".to_string(),
        });
    };
    let _ = process.init.set(result);
    process
        .notify(&session, era::INITIALIZED, "notifications/initialized")
        .await?;
    tracing::info!(route = %process.route(), pid = process.pid, "stdio server speaks only the initialize revisions: bridging 2026-07-28 requests");
    Ok(Era::Legacy)
}

/// A process started for a modern request whose era could not be found (or
/// whose client went away first) is stopped.
struct Starting {
    process: Arc<Process>,
    started: bool,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if self.started && self.process.era.get().is_none() {
            self.process.stop(Stop::InitFailed);
        }
    }
}

/// One modern request being answered.
struct Answering {
    process: Arc<Process>,
    legacy: bool,
    request: ModernRequest,
    owner: Owner,
    /// It continues a parked request (whose answer may carry the first id).
    resumed: bool,
    /// Until the answer (or the request is parked).
    waiting: Option<(Waiting, mpsc::Receiver<Out>)>,
}

/// What a message from the child means for the client.
enum Step {
    /// Progress (or a subscription's notification): on the event stream only.
    Event(Bytes),
    /// The answer: the last message.
    Last(Bytes),
    /// Nothing for the client.
    Skip,
    /// Over without an answer (the waiter went away).
    End,
}

impl Answering {
    /// The parked request this retry continues: same user and client, method
    /// and name (else the retry is refused: its state is not this request's).
    fn unpark(&self) -> Option<Box<Parked>> {
        let state = self.request.request_state.as_deref()?;
        self.process.unpark(state, |p| {
            p.owner == self.owner && p.method == self.request.method && p.name == self.request.name
        })
    }

    fn step(&mut self, out: Option<Out>) -> Step {
        match out {
            None => {
                self.finish();
                Step::End
            }
            Some(Out::Answer(b)) => {
                self.finish();
                // A parked request's answer may have come before the retry, under the first id.
                let b = match (&self.request.id, self.resumed) {
                    (Some(id), true) => routing::reid(&b, id).map_or(b, Bytes::from),
                    _ => b,
                };
                if self.legacy {
                    Step::Last(Bytes::from(era::to_modern_result(&b, &self.request.method)))
                } else {
                    Step::Last(b)
                }
            }
            Some(Out::Event(b)) => match routing::classify(&b) {
                Ok(Kind::Request { method }) => self.asked(&b, &method),
                _ => Step::Event(b),
            },
        }
    }

    /// The child asks the client something while answering this request.
    fn asked(&mut self, msg: &[u8], method: &str) -> Step {
        let Some(asked) = era::server_request(msg) else {
            return Step::Skip;
        };
        let refuse = |why| {
            self.process.answer_child(&era::refuse(&asked, why));
            Step::Skip
        };
        if method == "ping" {
            self.process.answer_child(&era::pong(&asked));
            return Step::Skip;
        }
        if !self.legacy {
            return refuse("2026-07-28: a server asks the client through input_required results");
        }
        if !era::takes_input(&self.request.method) {
            return refuse("the client cannot be asked for input during this request");
        }
        if !self.request.declares_for(method) {
            // The client cannot give it: its request fails (-32021), the child's ends.
            self.process.answer_child(&era::refuse(
                &asked,
                "the client does not have this capability",
            ));
            self.waiting = None;
            return Step::Last(Bytes::from(era::missing_capability(
                self.request.id.as_deref(),
                method,
            )));
        }
        let Some((waiting, rx)) = self.waiting.take() else {
            return Step::Skip;
        };
        let parked = Box::new(Parked {
            owner: self.owner.clone(),
            method: self.request.method.clone(),
            name: self.request.name.clone(),
            asked,
            waiting,
            rx,
            until: Instant::now() + PARK_FOR,
        });
        match ask_client(&self.process, self.request.id.as_deref(), parked) {
            Ok(answer) => Step::Last(Bytes::from(answer)),
            Err(parked) => {
                self.process.answer_child(&era::refuse(
                    &parked.asked,
                    "too many requests are waiting for the client's input",
                ));
                self.waiting = Some((parked.waiting, parked.rx));
                Step::Skip
            }
        }
    }

    fn finish(&mut self) {
        if let Some((mut waiting, _)) = self.waiting.take() {
            waiting.finish();
        }
    }

    /// The answer alone as JSON when it comes first (an error then has its
    /// status); an event stream once progress comes first, or when the answer
    /// takes longer than [`FIRST_WAIT`] for a client that takes one. A client
    /// that takes only JSON waits up to the route's timeout.
    async fn respond(
        mut self,
        accept: Accept,
        timeout: Duration,
    ) -> Result<Response<Body>, StdioError> {
        let deadline = Instant::now() + if accept.sse { FIRST_WAIT } else { timeout };
        loop {
            let Some((_, rx)) = &mut self.waiting else {
                return Err(StdioError::Unanswered {
                    id: self.request.id.take(),
                });
            };
            let out = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(out) => out,
                Err(_) if accept.sse => return Ok(self.stream(None)),
                Err(_) => {
                    return Err(StdioError::Timeout {
                        id: self.request.id.clone(),
                    });
                }
            };
            match self.step(out) {
                Step::Last(b) => return Ok(one_answer(accept, b)),
                Step::Event(b) if accept.sse => return Ok(self.stream(Some(b))),
                Step::End => {
                    return Err(StdioError::Unanswered {
                        id: self.request.id.take(),
                    });
                }
                Step::Event(_) | Step::Skip => {}
            }
        }
    }

    /// An event stream: `first`, then progress as it comes, the answer last.
    fn stream(mut self, first: Option<Bytes>) -> Response<Body> {
        let mut first = first;
        let events = futures_util::stream::poll_fn(move |cx| {
            if let Some(b) = first.take() {
                return Poll::Ready(Some(Ok::<_, std::convert::Infallible>(Frame::data(event(
                    &b,
                )))));
            }
            loop {
                let Some((_, rx)) = &mut self.waiting else {
                    return Poll::Ready(None);
                };
                let out = match rx.poll_recv(cx) {
                    Poll::Ready(out) => out,
                    Poll::Pending => return Poll::Pending,
                };
                match self.step(out) {
                    Step::Event(b) | Step::Last(b) => {
                        return Poll::Ready(Some(Ok::<_, std::convert::Infallible>(Frame::data(
                            event(&b),
                        ))));
                    }
                    Step::Skip => {}
                    Step::End => return Poll::Ready(None),
                }
            }
        });
        event_stream(wire::boxed(http_body_util::StreamBody::new(events)))
    }
}

/// An answer on its own: JSON with the status the revision gives it, or one
/// event for a client that takes only event streams.
fn one_answer(accept: Accept, answer: impl Into<Bytes>) -> Response<Body> {
    let answer: Bytes = answer.into();
    let status = StatusCode::from_u16(era::status_of(&answer)).unwrap_or(StatusCode::OK);
    if !accept.json {
        let once = futures_util::stream::once(async move {
            Ok::<_, std::convert::Infallible>(Frame::data(event(&answer)))
        });
        return event_stream(wire::boxed(http_body_util::StreamBody::new(once)));
    }
    let mut res = json(answer);
    *res.status_mut() = status;
    res
}
