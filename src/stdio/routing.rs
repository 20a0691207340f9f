//! Which JSON-RPC message goes where between the HTTP sessions that share one
//! stdio process and the process itself. Pure: no I/O, generic over what
//! waits for an answer (`W`).
//!
//! - Client requests get ids of the proxy's choosing (1, 2, 3, …) on their way
//!   to the child, so that sessions sharing a process (`per: user`) cannot
//!   collide or answer each other's requests; the child's answer gets the
//!   client's own id back. A `_meta.progressToken` is rewritten the same way
//!   (to the request's child id), and progress for it goes to that request only.
//! - Requests from the child (sampling, elicitation, roots) go to one session,
//!   keep the child's id, and only that session's answer is passed back.
//! - Other notifications from the child go to every session of the process.
//!
//! Messages are rewritten by splicing the bytes of the replaced values: the
//! rest of a message is passed on byte for byte.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::mcp::jsonrpc::{INTERNAL_ERROR, error_response};

/// Requests from the child waiting for a client's answer, at most; more are answered with an error.
const MAX_SERVER_REQUESTS: usize = 1024;

/// One JSON-RPC message as far as routing cares. Fields the proxy does not read stay raw.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// Keeps `"id": null` as a present id.
pub(super) fn present<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'a RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The members of `params` that routing rewrites.
#[derive(Deserialize, Default)]
struct Params<'a> {
    #[serde(borrow, rename = "_meta")]
    meta: Option<Meta<'a>>,
    #[serde(borrow, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
    #[serde(borrow, rename = "requestId")]
    request_id: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(borrow, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
    /// 2026-07-28: the `subscriptions/listen` request a notification belongs to.
    #[serde(borrow, rename = "io.modelcontextprotocol/subscriptionId")]
    subscription_id: Option<&'a RawValue>,
}

/// What kind of message a line or body holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Request {
        method: String,
    },
    Notification {
        method: String,
    },
    /// An answer (`result` or `error`) to a request.
    Response,
}

/// Not one JSON-RPC 2.0 message (a batch, another JSON value, or not JSON).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a JSON-RPC 2.0 message")]
pub struct Invalid;

struct Parsed<'a> {
    kind: Kind,
    env: Envelope<'a>,
}

fn parse(msg: &[u8]) -> Result<Parsed<'_>, Invalid> {
    // serde_json does not check the UTF-8 of what it skips or keeps raw (found by
    // the stdio_routing fuzz target): a message is text first.
    std::str::from_utf8(msg).map_err(|_| Invalid)?;
    let env: Envelope = serde_json::from_slice(msg).map_err(|_| Invalid)?;
    if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Err(Invalid);
    }
    let method = match env.method {
        Some(m) => Some(serde_json::from_str::<String>(m.get()).map_err(|_| Invalid)?),
        None => None,
    };
    let kind = match (method, env.id) {
        (Some(method), Some(_)) => Kind::Request { method },
        (Some(method), None) => Kind::Notification { method },
        (None, Some(_)) if env.result.is_some() != env.error.is_some() => Kind::Response,
        _ => return Err(Invalid),
    };
    Ok(Parsed { kind, env })
}

/// What a message is, without routing it.
pub fn classify(msg: &[u8]) -> Result<Kind, Invalid> {
    parse(msg).map(|p| p.kind)
}

/// The id of a request (or answer), if it is one message that has one.
pub fn id(msg: &[u8]) -> Option<Box<RawValue>> {
    parse(msg).ok()?.env.id.map(ToOwned::to_owned)
}

/// The `result` of an answer; `None` for an error answer or anything else.
pub fn result(msg: &[u8]) -> Option<Box<RawValue>> {
    let p = parse(msg).ok()?;
    (p.kind == Kind::Response).then_some(p.env.result?.to_owned())
}

fn params<'a>(env: &Envelope<'a>) -> Params<'a> {
    // Positional (array) params carry none of these members.
    env.params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default()
}

/// Where `inner` (a slice of `outer`, as every borrowed `RawValue` is) lies in `outer`.
fn range(outer: &[u8], inner: &RawValue) -> Option<Range<usize>> {
    let start = (inner.get().as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start + inner.get().len();
    (end <= outer.len()).then_some(start..end)
}

/// An answer with another id (an MRTR retry's, for the request it continues).
pub fn reid(msg: &[u8], id: &RawValue) -> Option<Vec<u8>> {
    let p = parse(msg).ok()?;
    let r = range(msg, p.env.id?)?;
    Some(splice(msg, vec![(r, id.get().to_string())]))
}

/// `msg` with each range replaced by its text.
fn splice(msg: &[u8], mut edits: Vec<(Range<usize>, String)>) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(msg.len() + 16);
    let mut at = 0;
    for (r, text) in edits {
        out.extend_from_slice(&msg[at..r.start]);
        out.extend_from_slice(text.as_bytes());
        at = r.end;
    }
    out.extend_from_slice(&msg[at..]);
    out
}

/// A client's request waiting for the child's answer.
pub struct Pending<W> {
    pub session: Arc<str>,
    client_id: Box<RawValue>,
    /// The client's `_meta.progressToken`, if it sent one.
    token: Option<Box<RawValue>>,
    pub waiter: W,
    /// The client takes an event stream in answer: requests from the child may go there.
    pub streams: bool,
    /// A request during which a server may ask the client for input (tools/call,
    /// prompts/get, resources/read): the child's requests go to those first.
    asks: bool,
    /// `initialize` is never cancelled (MCP: lifecycle).
    initialize: bool,
}

/// What to do with a line from the child.
#[derive(Debug, PartialEq, Eq)]
pub enum FromChild<W> {
    /// The answer to a client's request, with the client's id back: its last message.
    Answer { waiter: W, message: Vec<u8> },
    /// Progress of a client's request, with the client's token back.
    Progress {
        waiter: W,
        child_id: u64,
        message: Vec<u8>,
    },
    /// For one session: a request from the child (`request`: it waits for that
    /// session's answer), or the child cancelling one it sent there.
    ToSession {
        session: Arc<str>,
        message: Vec<u8>,
        request: bool,
    },
    /// For every session of the process.
    Broadcast(Vec<u8>),
    /// Back to the child: the error answer to a request no session can take.
    Reply(Vec<u8>),
    /// Nothing to deliver: an answer or progress nobody waits for any more.
    Drop,
    /// Not JSON-RPC: the process cannot be trusted to speak MCP.
    Garbage,
}

/// The routing state of one process.
pub struct Routing<W> {
    next_id: u64,
    /// By child id; the last is the most recent.
    pending: BTreeMap<u64, Pending<W>>,
    /// The child's requests sent to a session (child id text → session).
    server_requests: HashMap<String, Arc<str>>,
    /// The session that sent the last message: requests from the child go there
    /// when no session has a request pending.
    last_active: Option<Arc<str>>,
}

impl<W> Default for Routing<W> {
    fn default() -> Self {
        Self {
            next_id: 1,
            pending: BTreeMap::new(),
            server_requests: HashMap::new(),
            last_active: None,
        }
    }
}

/// A client's request, as written for the child.
#[derive(Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub child_id: u64,
    pub message: Vec<u8>,
}

impl<W: Clone> Routing<W> {
    /// A client's request: registers what waits for its answer and rewrites its
    /// id (and progress token) for the child.
    pub fn request(
        &mut self,
        session: &Arc<str>,
        msg: &[u8],
        waiter: W,
        streams: bool,
    ) -> Result<Outgoing, Invalid> {
        let p = parse(msg)?;
        let (Kind::Request { method }, Some(id)) = (&p.kind, p.env.id) else {
            return Err(Invalid);
        };
        let child_id = self.next_id;
        self.next_id += 1;
        let mut edits = vec![(range(msg, id).ok_or(Invalid)?, child_id.to_string())];
        let token = params(&p.env).meta.and_then(|m| m.progress_token);
        if let Some(t) = token {
            edits.push((range(msg, t).ok_or(Invalid)?, child_id.to_string()));
        }
        let message = splice(msg, edits);
        self.pending.insert(
            child_id,
            Pending {
                session: session.clone(),
                client_id: id.to_owned(),
                token: token.map(ToOwned::to_owned),
                waiter,
                streams,
                asks: matches!(
                    method.as_str(),
                    "tools/call" | "prompts/get" | "resources/read"
                ),
                initialize: method == "initialize",
            },
        );
        self.last_active = Some(session.clone());
        Ok(Outgoing { child_id, message })
    }

    /// An MRTR retry continues the pending request `child_id`: its answer and
    /// progress now go out under the retry's id and progress token.
    pub fn rebind(&mut self, child_id: u64, retry: &[u8]) -> bool {
        let Ok(p) = parse(retry) else {
            return false;
        };
        let (Some(id), Some(pending)) = (p.env.id, self.pending.get_mut(&child_id)) else {
            return false;
        };
        pending.client_id = id.to_owned();
        pending.streams = true;
        if let Some(t) = params(&p.env).meta.and_then(|m| m.progress_token) {
            pending.token = Some(t.to_owned());
        }
        true
    }

    /// Whether requests from the child may travel on a pending request's answer
    /// (not while it waits, unread, for a retry).
    pub fn set_streams(&mut self, child_id: u64, streams: bool) {
        if let Some(p) = self.pending.get_mut(&child_id) {
            p.streams = streams;
        }
    }

    /// A client's notification, as written for the child; `None`: not for the
    /// child (a cancellation of a request that is not this session's, or done).
    pub fn notification(&mut self, session: &Arc<str>, msg: &[u8]) -> Option<Vec<u8>> {
        let p = parse(msg).ok()?;
        let Kind::Notification { method } = &p.kind else {
            return None;
        };
        self.last_active = Some(session.clone());
        if method != "notifications/cancelled" {
            return Some(msg.to_vec());
        }
        // The request id is the client's: it becomes the child's, and only for
        // this session's own requests.
        let id = params(&p.env).request_id?;
        let child_id = self
            .pending
            .iter()
            .find(|(_, q)| q.session == *session && q.client_id.get() == id.get() && !q.initialize)
            .map(|(k, _)| *k)?;
        self.pending.remove(&child_id);
        Some(splice(msg, vec![(range(msg, id)?, child_id.to_string())]))
    }

    /// A client's answer to a request from the child: passed on only if that
    /// request went to this session.
    pub fn response(&mut self, session: &Arc<str>, msg: &[u8]) -> Option<Vec<u8>> {
        let p = parse(msg).ok()?;
        if p.kind != Kind::Response {
            return None;
        }
        let id = p.env.id?.get();
        if self.server_requests.get(id) != Some(session) {
            return None;
        }
        self.server_requests.remove(id);
        self.last_active = Some(session.clone());
        Some(msg.to_vec())
    }

    /// The client of a pending request went away: it is forgotten, and the
    /// child is told (unless it is `initialize`).
    pub fn cancel(&mut self, child_id: u64, reason: &str) -> Option<Vec<u8>> {
        let p = self.pending.remove(&child_id)?;
        if p.initialize {
            return None;
        }
        let reason = serde_json::to_string(reason).unwrap_or_else(|_| "\"\"".into());
        Some(
            format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{child_id},"reason":{reason}}}}}"#
            )
            .into_bytes(),
        )
    }

    /// Routes one line from the child.
    pub fn from_child(&mut self, line: &[u8], sessions: &[Arc<str>]) -> FromChild<W> {
        let Ok(p) = parse(line) else {
            return FromChild::Garbage;
        };
        let Some(id) = p.env.id else {
            let Kind::Notification { method } = &p.kind else {
                return FromChild::Garbage;
            };
            return self.child_notification(line, &p.env, method);
        };
        match p.kind {
            Kind::Response => {
                let Some(pending) = id
                    .get()
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| self.pending.remove(&n))
                else {
                    return FromChild::Drop;
                };
                let Some(r) = range(line, id) else {
                    return FromChild::Garbage;
                };
                FromChild::Answer {
                    message: splice(line, vec![(r, pending.client_id.get().to_string())]),
                    waiter: pending.waiter,
                }
            }
            Kind::Request { .. } => {
                let target = self.request_target(sessions);
                match target {
                    Some(session) if self.server_requests.len() < MAX_SERVER_REQUESTS => {
                        self.server_requests
                            .insert(id.get().to_string(), session.clone());
                        FromChild::ToSession {
                            session,
                            message: line.to_vec(),
                            request: true,
                        }
                    }
                    _ => FromChild::Reply(
                        error_response(
                            Some(id),
                            INTERNAL_ERROR,
                            "no client session can answer this request",
                        )
                        .into_bytes(),
                    ),
                }
            }
            Kind::Notification { .. } => FromChild::Garbage,
        }
    }

    fn child_notification(
        &mut self,
        line: &[u8],
        env: &Envelope<'_>,
        method: &str,
    ) -> FromChild<W> {
        let params = params(env);
        match method {
            "notifications/progress" => {
                let found = params.progress_token.and_then(|t| {
                    let child_id = t.get().parse::<u64>().ok()?;
                    let p = self.pending.get(&child_id)?;
                    Some((
                        child_id,
                        p.token.as_ref()?.get().to_string(),
                        p.waiter.clone(),
                        range(line, t)?,
                    ))
                });
                match found {
                    Some((child_id, token, waiter, r)) => FromChild::Progress {
                        waiter,
                        child_id,
                        message: splice(line, vec![(r, token)]),
                    },
                    None => FromChild::Drop,
                }
            }
            // The child gives up on a request it sent: only that session hears of
            // it. Or (2026-07-28) it ends one of the client's, a listen stream:
            // the waiter goes, and with it the client's stream.
            "notifications/cancelled" => {
                let Some(id) = params.request_id else {
                    return FromChild::Drop;
                };
                if let Some(session) = self.server_requests.remove(id.get()) {
                    return FromChild::ToSession {
                        session,
                        message: line.to_vec(),
                        request: false,
                    };
                }
                if let Ok(child_id) = id.get().parse::<u64>() {
                    self.pending.remove(&child_id);
                }
                FromChild::Drop
            }
            // 2026-07-28: a subscription's notifications go to its `subscriptions/listen`.
            _ => match params.meta.and_then(|m| m.subscription_id).and_then(|t| {
                let child_id = t.get().parse::<u64>().ok()?;
                let p = self.pending.get(&child_id)?;
                Some((
                    child_id,
                    p.client_id.get().to_string(),
                    p.waiter.clone(),
                    range(line, t)?,
                ))
            }) {
                Some((child_id, id, waiter, r)) => FromChild::Progress {
                    waiter,
                    child_id,
                    message: splice(line, vec![(r, id)]),
                },
                None => FromChild::Broadcast(line.to_vec()),
            },
        }
    }

    /// Where a request from the child goes: the session with the most recent
    /// pending request (the child most likely asks on its behalf: sampling
    /// during a tool call), else the session heard from last, else any.
    fn request_target(&self, sessions: &[Arc<str>]) -> Option<Arc<str>> {
        self.pending
            .values()
            .next_back()
            .map(|p| &p.session)
            .or(self.last_active.as_ref())
            .filter(|s| sessions.contains(s))
            .or_else(|| sessions.first())
            .cloned()
    }

    /// A request from the child that could not be delivered to its session: it
    /// is forgotten, and this error answer goes back to the child.
    pub fn undeliverable(&mut self, message: &[u8]) -> Option<Vec<u8>> {
        let p = parse(message).ok()?;
        let id = p.env.id?;
        self.server_requests.remove(id.get())?;
        Some(
            error_response(
                Some(id),
                INTERNAL_ERROR,
                "the client is not reading its event stream",
            )
            .into_bytes(),
        )
    }

    /// The pending request of `session` whose answer a request from the child
    /// travels on: the most recent whose client takes an event stream, among
    /// those that may ask for input (tools/call, prompts/get, resources/read) first.
    pub fn stream_of(&self, session: &Arc<str>) -> Option<(u64, &W)> {
        let open = |p: &&Pending<W>| p.session == *session && p.streams;
        let mut candidates = self.pending.iter().rev().filter(|(_, p)| open(p));
        let first = candidates.clone().find(|(_, p)| p.asks);
        first
            .or_else(|| candidates.next())
            .map(|(k, p)| (*k, &p.waiter))
    }

    /// A session left the process: its pending requests are cancelled, and the
    /// child's requests to it answered with an error. Returns the messages for the child.
    pub fn end_session(&mut self, session: &Arc<str>) -> Vec<Vec<u8>> {
        let mine: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.session == *session)
            .map(|(k, _)| *k)
            .collect();
        let mut out: Vec<Vec<u8>> = mine
            .into_iter()
            .filter_map(|k| self.cancel(k, "the client session ended"))
            .collect();
        let orphaned: Vec<String> = self
            .server_requests
            .iter()
            .filter(|(_, s)| *s == session)
            .map(|(id, _)| id.clone())
            .collect();
        for id in orphaned {
            self.server_requests.remove(&id);
            if let Ok(raw) = serde_json::from_str::<&RawValue>(&id) {
                out.push(
                    error_response(Some(raw), INTERNAL_ERROR, "the client session ended")
                        .into_bytes(),
                );
            }
        }
        if self.last_active.as_ref() == Some(session) {
            self.last_active = None;
        }
        out
    }

    /// The process is gone: every pending request gets this error as its answer.
    pub fn close(&mut self, code: i64, message: &str) -> Vec<(W, Vec<u8>)> {
        self.server_requests.clear();
        std::mem::take(&mut self.pending)
            .into_values()
            .map(|p| {
                (
                    p.waiter,
                    error_response(Some(&p.client_id), code, message).into_bytes(),
                )
            })
            .collect()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn is_pending(&self, child_id: u64) -> bool {
        self.pending.contains_key(&child_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    fn text(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    #[test]
    fn two_sessions_with_the_same_ids_each_get_their_own_answer() {
        let mut r = Routing::default();
        let (a, b) = (s("a"), s("b"));
        let to_a = r
            .request(
                &a,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pid"}}"#,
                "wa",
                false,
            )
            .unwrap();
        let to_b = r
            .request(
                &b,
                br#"{"jsonrpc":"2.0", "id" : 1,"method":"tools/call","params":{"name":"pid"}}"#,
                "wb",
                false,
            )
            .unwrap();
        assert_eq!(
            text(&to_a.message),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pid"}}"#
        );
        assert_eq!(
            text(&to_b.message),
            r#"{"jsonrpc":"2.0", "id" : 2,"method":"tools/call","params":{"name":"pid"}}"#
        );
        // The child answers b first.
        let answer = r.from_child(
            br#"{"jsonrpc":"2.0","id":2,"result":{"pid":"b"}}"#,
            &[a.clone(), b.clone()],
        );
        assert_eq!(
            answer,
            FromChild::Answer {
                waiter: "wb",
                message: br#"{"jsonrpc":"2.0","id":1,"result":{"pid":"b"}}"#.to_vec()
            }
        );
        let answer = r.from_child(br#"{"id":1,"jsonrpc":"2.0","result":{}}"#, &[a.clone(), b]);
        assert!(matches!(answer, FromChild::Answer { waiter: "wa", .. }));
        // A second answer to the same id is nobody's.
        assert_eq!(
            r.from_child(br#"{"id":1,"jsonrpc":"2.0","result":{}}"#, &[a]),
            FromChild::Drop
        );
        assert!(!r.has_pending());
    }

    #[test]
    fn string_ids_come_back_as_the_client_wrote_them() {
        let mut r = Routing::default();
        let a = s("a");
        let out = r
            .request(
                &a,
                br#"{"jsonrpc":"2.0","id":"x\"1","method":"ping"}"#,
                7,
                true,
            )
            .unwrap();
        assert_eq!(
            text(&out.message),
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#
        );
        let FromChild::Answer { message, .. } =
            r.from_child(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, &[a])
        else {
            panic!()
        };
        assert_eq!(
            text(&message),
            r#"{"jsonrpc":"2.0","id":"x\"1","result":{}}"#
        );
    }

    #[test]
    fn progress_goes_to_the_request_that_asked_for_it_with_its_own_token() {
        let mut r = Routing::default();
        let (a, b) = (s("a"), s("b"));
        r.request(&a, br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":5}}}"#, "wa", true)
            .unwrap();
        let out = r
            .request(&b, br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"_meta":{"progressToken":"tok"},"name":"x"}}"#, "wb", true)
            .unwrap();
        assert_eq!(
            text(&out.message),
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"_meta":{"progressToken":2},"name":"x"}}"#
        );
        let sessions = [a, b];
        let p = r.from_child(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":2,"progress":1}}"#, &sessions);
        assert_eq!(
            p,
            FromChild::Progress {
                waiter: "wb",
                child_id: 2,
                message: br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok","progress":1}}"#.to_vec()
            }
        );
        // A token nobody holds (or a finished request's) goes nowhere.
        let p = r.from_child(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":9,"progress":1}}"#, &sessions);
        assert_eq!(p, FromChild::Drop);
    }

    #[test]
    fn a_subscriptions_notifications_go_to_its_listen_request_under_the_clients_id() {
        let mut r = Routing::default();
        let a = s("");
        r.request(
            &a,
            br#"{"jsonrpc":"2.0","id":"x","method":"tools/list"}"#,
            "other",
            true,
        )
        .unwrap();
        r.request(
            &a,
            br#"{"jsonrpc":"2.0","id":"listen-1","method":"subscriptions/listen","params":{}}"#,
            "listen",
            true,
        )
        .unwrap();
        let sessions = [a];
        let n = r.from_child(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":2}}}"#, &sessions);
        assert_eq!(
            n,
            FromChild::Progress {
                waiter: "listen",
                child_id: 2,
                message: br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"listen-1"}}}"#.to_vec()
            }
        );
        // Without a subscription (or with one nobody listens to): every session.
        let n = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":9}}}"#;
        assert_eq!(r.from_child(n, &sessions), FromChild::Broadcast(n.to_vec()));
    }

    #[test]
    fn the_childs_request_travels_on_a_call_that_may_ask_and_never_on_a_parked_one() {
        let mut r = Routing::default();
        let a = s("");
        r.request(
            &a,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b"}}"#,
            "call",
            true,
        )
        .unwrap();
        r.request(
            &a,
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            "list",
            true,
        )
        .unwrap();
        assert_eq!(
            r.stream_of(&a),
            Some((1, &"call")),
            "the call, though the list is newer"
        );
        r.request(
            &a,
            br#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p"}}"#,
            "parked",
            true,
        )
        .unwrap();
        assert_eq!(r.stream_of(&a), Some((3, &"parked")));
        r.set_streams(3, false);
        assert_eq!(r.stream_of(&a), Some((1, &"call")), "not the parked one");
        assert!(r.rebind(3, br#"{"jsonrpc":"2.0","id":9,"method":"prompts/get"}"#));
        assert_eq!(r.stream_of(&a), Some((3, &"parked")), "again once retried");
        r.set_streams(1, false);
        r.set_streams(3, false);
        assert_eq!(r.stream_of(&a), Some((2, &"list")), "else any that streams");
    }

    #[test]
    fn the_child_ending_a_clients_request_ends_its_wait() {
        let mut r = Routing::default();
        let a = s("");
        r.request(
            &a,
            br#"{"jsonrpc":"2.0","id":"l","method":"subscriptions/listen","params":{}}"#,
            "listen",
            true,
        )
        .unwrap();
        let sessions = [a];
        assert_eq!(
            r.from_child(
                br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
                &sessions
            ),
            FromChild::Drop
        );
        assert!(
            !r.is_pending(1),
            "its waiter is dropped: the client's stream ends"
        );
    }

    #[test]
    fn a_retry_continues_a_pending_request_under_its_own_id_and_token() {
        let mut r = Routing::default();
        let a = s("");
        r.request(&a, br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":"first"}}}"#, "w", true)
            .unwrap();
        assert!(r.rebind(1, br#"{"jsonrpc":"2.0","id":"retry","method":"tools/call","params":{"name":"x","_meta":{"progressToken":"second"}}}"#));
        assert!(
            !r.rebind(7, br#"{"jsonrpc":"2.0","id":2,"method":"tools/call"}"#),
            "not pending"
        );
        let sessions = [a];
        let p = r.from_child(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#, &sessions);
        assert!(
            matches!(p, FromChild::Progress { message, .. } if text(&message).contains(r#""progressToken":"second""#))
        );
        let answer = r.from_child(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, &sessions);
        assert_eq!(
            answer,
            FromChild::Answer {
                waiter: "w",
                message: br#"{"jsonrpc":"2.0","id":"retry","result":{}}"#.to_vec()
            }
        );
        let id = RawValue::from_string("3".into()).unwrap();
        assert_eq!(
            reid(br#"{"jsonrpc":"2.0", "id" :"old","result":{}}"#, &id).unwrap(),
            br#"{"jsonrpc":"2.0", "id" :3,"result":{}}"#.to_vec()
        );
        assert_eq!(reid(b"not json", &id), None);
    }

    #[test]
    fn a_request_from_the_child_goes_to_one_session_and_only_its_answer_goes_back() {
        let mut r: Routing<&str> = Routing::default();
        let (a, b) = (s("a"), s("b"));
        let sessions = [a.clone(), b.clone()];
        r.request(
            &b,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample"}}"#,
            "wb",
            true,
        )
        .unwrap();
        let sampling = br#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}"#;
        assert_eq!(
            r.from_child(sampling, &sessions),
            FromChild::ToSession {
                session: b.clone(),
                message: sampling.to_vec(),
                request: true
            },
            "the session with a request pending"
        );
        assert_eq!(r.stream_of(&b), Some((1, &"wb")));
        assert_eq!(r.stream_of(&a), None);
        let answer = br#"{"jsonrpc":"2.0","id":0,"result":{"content":{}}}"#;
        assert_eq!(
            r.response(&a, answer),
            None,
            "another session cannot answer it"
        );
        assert_eq!(r.response(&b, answer).as_deref(), Some(&answer[..]));
        assert_eq!(r.response(&b, answer), None, "answered once");
    }

    #[test]
    fn a_request_from_the_child_without_any_session_is_answered_with_an_error() {
        let mut r: Routing<()> = Routing::default();
        let out = r.from_child(br#"{"jsonrpc":"2.0","id":"r1","method":"roots/list"}"#, &[]);
        let FromChild::Reply(m) = out else {
            panic!("{out:?}")
        };
        assert!(
            text(&m).starts_with(r#"{"jsonrpc":"2.0","id":"r1","error":{"code":-32603"#),
            "{}",
            text(&m)
        );
    }

    #[test]
    fn other_notifications_go_to_every_session() {
        let mut r: Routing<()> = Routing::default();
        let n = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
        assert_eq!(r.from_child(n, &[s("a")]), FromChild::Broadcast(n.to_vec()));
    }

    #[test]
    fn a_client_cancels_only_its_own_requests_under_their_child_ids() {
        let mut r = Routing::default();
        let (a, b) = (s("a"), s("b"));
        r.request(
            &a,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            1,
            false,
        )
        .unwrap();
        r.request(
            &b,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            2,
            false,
        )
        .unwrap();
        let cancel =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#;
        assert_eq!(
            r.notification(&b, cancel)
                .map(|m| text(&m).to_string())
                .as_deref(),
            Some(
                r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}"#
            )
        );
        assert_eq!(r.notification(&b, cancel), None, "nothing left to cancel");
        assert!(r.is_pending(1));
        let other = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(r.notification(&a, other).as_deref(), Some(&other[..]));
    }

    #[test]
    fn a_client_that_went_away_cancels_its_request_but_never_initialize() {
        let mut r = Routing::default();
        let a = s("a");
        let init = r
            .request(
                &a,
                br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#,
                (),
                false,
            )
            .unwrap();
        let call = r
            .request(
                &a,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
                (),
                false,
            )
            .unwrap();
        assert_eq!(r.cancel(init.child_id, "gone"), None);
        let c = r.cancel(call.child_id, "gone").unwrap();
        assert_eq!(
            text(&c),
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"gone"}}"#
        );
        assert!(!r.has_pending());
    }

    #[test]
    fn an_ended_session_leaves_nothing_behind() {
        let mut r = Routing::default();
        let (a, b) = (s("a"), s("b"));
        r.request(
            &a,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            1,
            true,
        )
        .unwrap();
        r.request(
            &b,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            2,
            true,
        )
        .unwrap();
        let _ = r.from_child(
            br#"{"jsonrpc":"2.0","id":"s","method":"sampling/createMessage"}"#,
            &[a.clone(), b.clone()],
        );
        let to_child = r.end_session(&b);
        assert_eq!(to_child.len(), 2, "a cancellation and an error answer");
        assert!(text(&to_child[0]).contains(r#""requestId":2"#));
        assert!(text(&to_child[1]).starts_with(r#"{"jsonrpc":"2.0","id":"s","error""#));
        assert!(r.is_pending(1));
        assert!(!r.is_pending(2));
    }

    #[test]
    fn when_the_process_ends_every_waiting_client_gets_an_error_with_its_id() {
        let mut r = Routing::default();
        let a = s("a");
        r.request(
            &a,
            br#"{"jsonrpc":"2.0","id":"q","method":"tools/call"}"#,
            1,
            false,
        )
        .unwrap();
        let errors = r.close(-32603, "the MCP server exited");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            text(&errors[0].1),
            r#"{"jsonrpc":"2.0","id":"q","error":{"code":-32603,"message":"the MCP server exited"}}"#
        );
    }

    #[test]
    fn garbage_is_told_apart() {
        let mut r: Routing<()> = Routing::default();
        for line in [
            &b"Starting server..."[..],
            br#"{"id":1,"result":{}}"#,
            br#"[{"jsonrpc":"2.0","method":"x"}]"#,
            br#"{"jsonrpc":"2.0","id":1}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"id":2,"result":{}}"#,
            br#"{"jsonrpc":"2.0","method":7}"#,
            b"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":{\"n\xffe\":1}}",
        ] {
            assert_eq!(
                r.from_child(line, &[]),
                FromChild::Garbage,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            Ok(Kind::Request {
                method: "ping".into()
            })
        );
        assert_eq!(classify(b"[]"), Err(Invalid));
    }
}
