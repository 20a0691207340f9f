//! One stdio MCP server process. It is started in a process group of its own
//! with exactly the configured environment (plus `PATH`, `HOME`, `LANG`), and
//! four tasks move its bytes:
//!
//! - stdin: lines from the clients, one JSON-RPC message each;
//! - stdout: lines to the clients, routed by [`Routing`];
//! - stderr: to the proxy's log ([`super::stderr`]);
//! - the supervisor: waits for the exit, runs the stop sequence (stdin closed,
//!   then SIGTERM, then SIGKILL to the group, [`STOP_GRACE`] apart), reaps the
//!   child, kills what is left in its group, and answers every waiting client.

use std::collections::{HashMap, VecDeque};
use std::process::{ExitStatus, Stdio as Piped};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rustix::process::{Pid, Signal, kill_process_group};
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{OnceCell, mpsc, watch};
use tokio::time::{Duration, Instant, timeout};

use super::StdioError;
use super::era::Era;
use super::framing::LineFramer;
use super::modern::{MAX_PARKED, MODERN_SESSION, Parked, modern_session};
use super::routing::{FromChild, Routing};
use crate::config::StdioServer;
use crate::mcp::jsonrpc::INTERNAL_ERROR;

/// Between closing stdin and SIGTERM, and between SIGTERM and SIGKILL.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(2);
/// The largest message in either direction (a line from the child, a client's POST body).
pub(super) const MAX_LINE: usize = crate::mcp::MAX_MCP_BODY;
/// Lines queued for the child's stdin.
const TO_CHILD: usize = 64;
/// Messages queued for one answer's or one GET stream's client.
pub(super) const TO_CLIENT: usize = 64;
/// Messages kept for a session without a GET stream open.
const BACKLOG: usize = 64;

/// What travels to the client waiting for one request's answer.
#[derive(Debug)]
pub(super) enum Out {
    /// Progress, or a request from the server that travels on this answer's stream.
    Event(Bytes),
    /// The answer itself: the last message.
    Answer(Bytes),
}

pub(super) type Waiter = mpsc::Sender<Out>;

/// Why a process is being stopped (said to clients still waiting, and logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The session ended (DELETE).
    SessionEnded,
    /// No traffic for the route's `idle_timeout`.
    Idle,
    /// The proxy is shutting down.
    Shutdown,
    /// A reload removed or changed the route.
    Reload,
    /// It wrote a line that is not JSON-RPC.
    Garbage,
    /// It wrote a line longer than the limit.
    TooLong,
    /// Its `initialize` failed or was abandoned.
    InitFailed,
    /// It closed its stdout: it is exiting (or would never answer again).
    Exiting,
}

impl Stop {
    fn says(self) -> &'static str {
        match self {
            Stop::SessionEnded => "the session ended",
            Stop::Idle => "the MCP server process was stopped after its idle timeout",
            Stop::Shutdown => "the proxy is shutting down",
            Stop::Reload => "the route was changed or removed by a reload",
            Stop::Garbage => {
                "the MCP server wrote a line that is not JSON-RPC: its session was ended"
            }
            Stop::TooLong => {
                "the MCP server wrote a line over the size limit: its session was ended"
            }
            Stop::InitFailed => "the MCP server did not initialize",
            Stop::Exiting => "the MCP server closed its stdout",
        }
    }
}

/// Where one session's messages from the server go: its GET stream, or a
/// short backlog until it opens one.
#[derive(Default)]
struct Outbox {
    stream: Option<mpsc::Sender<Bytes>>,
    backlog: VecDeque<Bytes>,
}

struct Shared {
    routing: Routing<Waiter>,
    sessions: HashMap<Arc<str>, Outbox>,
    /// `notifications/initialized` went to the child (once per process).
    initialized: bool,
    last_traffic: Instant,
    /// Set once the process is stopping or gone: no new requests.
    stopping: Option<Stop>,
    /// Why it ended, once it has been reaped.
    ended: Option<String>,
}

pub(super) struct Process {
    pub id: u64,
    pub pid: u32,
    route: Arc<str>,
    to_child: mpsc::Sender<Vec<u8>>,
    shared: Mutex<Shared>,
    stop: watch::Sender<bool>,
    exited: watch::Receiver<bool>,
    reaped: AtomicBool,
    /// The child's `initialize` result: sessions after the first get it from here.
    pub init: OnceCell<Box<RawValue>>,
    /// For modern requests: whether the child speaks their revision.
    pub era: OnceCell<Era>,
    /// Requests waiting for a modern client's input (by `requestState`).
    parked: Mutex<HashMap<String, Box<Parked>>>,
    /// Modern clients' `subscriptions/listen` streams (a legacy child's notifications).
    listeners: Mutex<Vec<Listener>>,
}

/// One `subscriptions/listen` stream of a modern client.
pub(super) struct Listener {
    pub id: Box<RawValue>,
    pub filter: super::era::Filter,
    pub tx: mpsc::Sender<Bytes>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Before the first child starts: the proxy makes itself non-dumpable, so that
/// a child (same user) cannot read its memory or `/proc/<pid>/environ` (the
/// secrets of `EnvironmentFile=`), nor attach to it. No core dumps either: they
/// would hold the same secrets. A child's own dumpable flag is reset by `execve`.
fn hide_from_children() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rustix::process::{DumpableBehavior, set_dumpable_behavior};
        if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
            tracing::warn!(error = %e, "cannot hide the proxy's memory from stdio servers (PR_SET_DUMPABLE)");
        }
    });
}

fn kill_group(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        // ESRCH (nothing left in the group) is the usual outcome.
        let _ = kill_process_group(pid, signal);
    }
}

impl Process {
    /// Starts `server`'s command. `on_exit` runs once the child has been reaped.
    pub(super) fn spawn(
        id: u64,
        route: Arc<str>,
        server: &StdioServer,
        on_exit: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Arc<Process>> {
        hide_from_children();
        let mut cmd = Command::new(&server.program);
        cmd.args(&server.args).env_clear();
        for name in ["PATH", "HOME", "LANG"] {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        for (name, value) in &server.env {
            cmd.env(name, value.expose());
        }
        if let Some(dir) = &server.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(Piped::piped())
            .stdout(Piped::piped())
            .stderr(Piped::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("the child's pipes are missing"));
        };
        let (to_child, from_clients) = mpsc::channel(TO_CHILD);
        let (stop, stop_rx) = watch::channel(false);
        let (exited_tx, exited) = watch::channel(false);
        let process = Arc::new(Process {
            id,
            pid,
            route: route.clone(),
            to_child,
            shared: Mutex::new(Shared {
                routing: Routing::default(),
                sessions: HashMap::new(),
                initialized: false,
                last_traffic: Instant::now(),
                stopping: None,
                ended: None,
            }),
            stop,
            exited,
            reaped: AtomicBool::new(false),
            init: OnceCell::new(),
            era: OnceCell::new(),
            parked: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
        });
        tracing::info!(route = %route, pid, "stdio server started");
        tokio::spawn(write_stdin(stdin, from_clients, stop_rx.clone()));
        tokio::spawn(read_stdout(process.clone(), stdout));
        tokio::spawn(async move { super::stderr::log(&route, pid, stderr).await });
        tokio::spawn(supervise(
            process.clone(),
            child,
            stop_rx,
            exited_tx,
            on_exit,
        ));
        Ok(process)
    }

    /// Asks the process to stop (stdin closed, then signals); a no-op once stopping.
    pub(super) fn stop(&self, why: Stop) {
        {
            let mut s = lock(&self.shared);
            if s.stopping.is_some() {
                return;
            }
            s.stopping = Some(why);
        }
        if why != Stop::Exiting {
            tracing::info!(route = %self.route, pid = self.pid, reason = why.says(), "stopping stdio server");
        }
        let _ = self.stop.send(true);
    }

    /// Completes once the child has been reaped.
    pub(super) async fn exited(&self) {
        let mut rx = self.exited.clone();
        let _ = rx.wait_for(|e| *e).await;
    }

    /// When it last had traffic; `None` while a request waits for its answer.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        if lock(&self.listeners).iter().any(|l| !l.tx.is_closed()) {
            return None;
        }
        let s = lock(&self.shared);
        (!s.routing.has_pending()).then_some(s.last_traffic)
    }

    /// A listen stream starts; `None` if the process is stopping.
    pub(super) fn listen(&self, listener: Listener) -> Option<()> {
        if self.is_stopping() {
            return None;
        }
        let mut all = lock(&self.listeners);
        all.retain(|l| !l.tx.is_closed());
        all.push(listener);
        Some(())
    }

    /// A notification of the child for every listen stream that takes it.
    fn to_listeners(&self, message: &[u8]) {
        let mut all = lock(&self.listeners);
        all.retain(|l| {
            if let Some(m) = super::era::for_listener(message, &l.filter, &l.id) {
                // A stream too slow to take it misses it (notifications only say "look again").
                let _ = l.tx.try_send(Bytes::from(m));
            }
            !l.tx.is_closed()
        });
    }

    /// A session starts using the process.
    pub(super) fn attach(&self, session: &Arc<str>) {
        lock(&self.shared)
            .sessions
            .insert(session.clone(), Outbox::default());
    }

    /// A session stops using the process: its requests are cancelled, and the
    /// child's requests to it answered with errors.
    pub(super) fn detach(&self, session: &Arc<str>) {
        let to_child = {
            let mut s = lock(&self.shared);
            s.sessions.remove(session);
            s.routing.end_session(session)
        };
        for m in to_child {
            let _ = self.to_child.try_send(line(m));
        }
    }

    /// Sends a client's request; its answer (and progress) arrive on the
    /// receiver. The request is registered before it is sent, with its
    /// [`Waiting`] guard: a client gone even before the send cancels it.
    pub(super) async fn request(
        self: &Arc<Self>,
        session: &Arc<str>,
        msg: &[u8],
        streams: bool,
    ) -> Result<(Waiting, mpsc::Receiver<Out>), StdioError> {
        let (tx, rx) = mpsc::channel(TO_CLIENT);
        let out = {
            let mut s = lock(&self.shared);
            if s.stopping.is_some() || !s.sessions.contains_key(session) {
                return Err(StdioError::UnknownSession);
            }
            s.last_traffic = Instant::now();
            s.routing
                .request(session, msg, tx, streams)
                .map_err(|_| StdioError::NotOneMessage)?
        };
        let waiting = Waiting {
            process: self.clone(),
            child_id: out.child_id,
            done: false,
        };
        // If the child is gone by now, the supervisor answers the request with an error.
        let _ = self.to_child.send(line(out.message)).await;
        Ok((waiting, rx))
    }

    /// A client's notification (`notifications/initialized` goes to the child once).
    pub(super) async fn notify(
        &self,
        session: &Arc<str>,
        msg: &[u8],
        method: &str,
    ) -> Result<(), StdioError> {
        let out = {
            let mut s = lock(&self.shared);
            if s.stopping.is_some() || !s.sessions.contains_key(session) {
                return Err(StdioError::UnknownSession);
            }
            s.last_traffic = Instant::now();
            if method == "notifications/initialized" {
                if s.initialized {
                    return Ok(());
                }
                s.initialized = true;
            }
            s.routing.notification(session, msg)
        };
        if let Some(m) = out {
            self.to_child
                .send(line(m))
                .await
                .map_err(|_| StdioError::UnknownSession)?;
        }
        Ok(())
    }

    /// A client's answer to a request from the child.
    pub(super) async fn respond(&self, session: &Arc<str>, msg: &[u8]) -> Result<(), StdioError> {
        let out = {
            let mut s = lock(&self.shared);
            if s.stopping.is_some() || !s.sessions.contains_key(session) {
                return Err(StdioError::UnknownSession);
            }
            s.last_traffic = Instant::now();
            s.routing.response(session, msg)
        };
        if let Some(m) = out {
            self.to_child
                .send(line(m))
                .await
                .map_err(|_| StdioError::UnknownSession)?;
        }
        Ok(())
    }

    /// The route the process serves.
    pub(super) fn route(&self) -> &str {
        &self.route
    }

    /// An MRTR retry continues the pending request `child_id`.
    pub(super) fn rebind(&self, child_id: u64, retry: &[u8]) {
        let mut s = lock(&self.shared);
        s.last_traffic = Instant::now();
        s.routing.rebind(child_id, retry);
    }

    /// The proxy's own answer to a request the child sent to modern clients
    /// (queued behind what is waiting for the child's stdin, never dropped).
    pub(super) fn answer_child(&self, msg: &[u8]) {
        let session = modern_session();
        let out = lock(&self.shared).routing.response(&session, msg);
        if let Some(m) = out
            && let Err(mpsc::error::TrySendError::Full(l)) = self.to_child.try_send(line(m))
        {
            let to_child = self.to_child.clone();
            tokio::spawn(async move { to_child.send(l).await });
        }
    }

    /// Stopping or gone: no new session, request or stream.
    pub(super) fn is_stopping(&self) -> bool {
        lock(&self.shared).stopping.is_some()
    }

    /// Parks a request until the client's retry; `Err` gives it back when too many wait.
    pub(super) fn park(&self, state: String, parked: Box<Parked>) -> Result<(), Box<Parked>> {
        let mut all = lock(&self.parked);
        let mut s = lock(&self.shared);
        if all.len() >= MAX_PARKED || s.stopping.is_some() {
            return Err(parked);
        }
        // Nobody reads it until the retry: the child's requests go elsewhere.
        s.routing.set_streams(parked.waiting.child_id(), false);
        drop(s);
        all.insert(state, parked);
        Ok(())
    }

    /// The parked request named `state`, if `fits` it (it stays parked otherwise).
    pub(super) fn unpark(
        &self,
        state: &str,
        fits: impl Fn(&Parked) -> bool,
    ) -> Option<Box<Parked>> {
        let mut all = lock(&self.parked);
        if !all.get(state).is_some_and(|p| fits(p)) {
            return None;
        }
        all.remove(state)
    }

    /// Parked requests whose time is up: the child hears no, the requests are cancelled.
    pub(super) fn expire_parked(&self, now: Instant) {
        let expired: Vec<Box<Parked>> = lock(&self.parked)
            .extract_if(|_, p| p.until <= now)
            .map(|(_, p)| p)
            .collect();
        for p in expired {
            p.expire(self);
        }
    }

    /// The client of a pending request went away.
    pub(super) fn cancel(&self, child_id: u64) {
        let out = lock(&self.shared)
            .routing
            .cancel(child_id, "the client went away");
        if let Some(m) = out {
            let _ = self.to_child.try_send(line(m));
        }
    }

    /// Opens the session's GET stream (replacing an open one): what waited in
    /// the backlog comes first. `None` if the session is no longer on this process.
    pub(super) fn open_stream(&self, session: &Arc<str>) -> Option<mpsc::Receiver<Bytes>> {
        let mut s = lock(&self.shared);
        if s.stopping.is_some() {
            return None;
        }
        let outbox = s.sessions.get_mut(session)?;
        let (tx, rx) = mpsc::channel(TO_CLIENT);
        while let Some(m) = outbox.backlog.pop_front() {
            if let Err(e) = tx.try_send(m) {
                outbox.backlog.push_front(e.into_inner());
                break;
            }
        }
        outbox.stream = Some(tx);
        Some(rx)
    }

    /// Routes one line from the child; false if it is not JSON-RPC.
    fn dispatch(&self, msg: &[u8]) -> bool {
        let mut s = lock(&self.shared);
        s.last_traffic = Instant::now();
        let sessions: Vec<Arc<str>> = s.sessions.keys().cloned().collect();
        match s.routing.from_child(msg, &sessions) {
            FromChild::Answer { waiter, message } => {
                // Progress leaves room for it (see below): this cannot fail for want of space.
                let _ = waiter.try_send(Out::Answer(Bytes::from(message)));
            }
            FromChild::Progress {
                waiter, message, ..
            } => {
                if waiter.capacity() > 1 {
                    let _ = waiter.try_send(Out::Event(Bytes::from(message)));
                }
            }
            FromChild::ToSession {
                session,
                message,
                request,
            } => {
                if !deliver(&mut s, &session, Bytes::from(message.clone()), request)
                    && request
                    && let Some(reply) = s.routing.undeliverable(&message)
                {
                    let _ = self.to_child.try_send(line(reply));
                }
            }
            FromChild::Broadcast(message) => {
                self.to_listeners(&message);
                let message = Bytes::from(message);
                for session in sessions {
                    deliver(&mut s, &session, message.clone(), false);
                }
            }
            FromChild::Reply(message) => {
                let _ = self.to_child.try_send(line(message));
            }
            FromChild::Drop => {}
            FromChild::Garbage => return false,
        }
        true
    }

    /// After the child was reaped: every waiting client gets an error, every
    /// session's stream ends.
    fn finish(&self, status: &str) {
        let (waiting, why) = {
            let mut s = lock(&self.shared);
            s.sessions.clear();
            // Nothing new may attach to it from here on (park, listen, request).
            let stopped_by = s.stopping;
            s.stopping = Some(stopped_by.unwrap_or(Stop::Exiting));
            let why = match stopped_by {
                Some(why) if why != Stop::Exiting => why.says().to_string(),
                _ => format!("the MCP server process exited ({status}) before answering"),
            };
            s.ended = Some(why.clone());
            (s.routing.close(INTERNAL_ERROR, &why), why)
        };
        if !waiting.is_empty() {
            tracing::warn!(route = %self.route, pid = self.pid, requests = waiting.len(), reason = %why, "stdio server ended with requests waiting");
        }
        for (waiter, message) in waiting {
            let _ = waiter.try_send(Out::Answer(Bytes::from(message)));
        }
        // Their guards hold the process: dropped here, outside every lock.
        let parked = std::mem::take(&mut *lock(&self.parked));
        drop(parked);
        for l in std::mem::take(&mut *lock(&self.listeners)) {
            let _ = l.tx.try_send(Bytes::from(super::era::listen_closed(&l.id)));
        }
    }

    /// Why the process ended, once it has been reaped.
    pub(super) fn end_reason(&self) -> Option<String> {
        lock(&self.shared).ended.clone()
    }

    /// No session uses the process (any more).
    pub(super) fn sessionless(&self) -> bool {
        lock(&self.shared).sessions.is_empty()
    }
}

impl Drop for Process {
    /// A process dropped before it was reaped (the runtime shut down under it):
    /// its group is killed. Once reaped, its id may belong to another process.
    fn drop(&mut self) {
        if !self.reaped.load(Ordering::Acquire) {
            kill_group(self.pid, Signal::KILL);
        }
    }
}

/// A request waiting for its answer: if its client goes away first (this is
/// dropped before [`Waiting::finish`]), the child is told (`notifications/cancelled`).
pub(super) struct Waiting {
    process: Arc<Process>,
    child_id: u64,
    done: bool,
}

impl Waiting {
    /// The answer arrived (or the request is over): nothing to cancel.
    pub(super) fn finish(&mut self) {
        self.done = true;
    }

    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    pub(super) fn child_id(&self) -> u64 {
        self.child_id
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.done {
            self.process.cancel(self.child_id);
        }
    }
}

/// A message as a line for the child: JSON-RPC text without raw newlines (they
/// can only be whitespace between JSON tokens) plus `\n`.
fn line(mut message: Vec<u8>) -> Vec<u8> {
    for b in &mut message {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    message.push(b'\n');
    message
}

/// Puts a message on the session's GET stream, or on the event stream of one
/// of its pending requests (requests only), or in its backlog. False if it had
/// to be dropped.
fn deliver(s: &mut Shared, session: &Arc<str>, message: Bytes, request: bool) -> bool {
    let Some(outbox) = s.sessions.get_mut(session) else {
        return false;
    };
    let closed = match &outbox.stream {
        Some(stream) => match stream.try_send(message.clone()) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
        },
        None => false,
    };
    if closed {
        outbox.stream = None;
    }
    if request
        && let Some((_, waiter)) = s.routing.stream_of(session)
        && waiter.capacity() > 1
        && waiter.try_send(Out::Event(message.clone())).is_ok()
    {
        return true;
    }
    let Some(outbox) = s.sessions.get_mut(session) else {
        return false;
    };
    // Modern requests have no stream to come back for: nothing waits.
    if &**session != MODERN_SESSION && outbox.backlog.len() < BACKLOG {
        outbox.backlog.push_back(message);
        return true;
    }
    false
}

/// Completes once a stop has been asked for.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn write_stdin(
    mut stdin: ChildStdin,
    mut lines: mpsc::Receiver<Vec<u8>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            written = async {
                let l = lines.recv().await?;
                stdin.write_all(&l).await.ok()?;
                stdin.flush().await.ok()
            } => if written.is_none() { break },
        }
    }
    // Dropping stdin closes it: the first step of the stop sequence.
}

async fn read_stdout(process: Arc<Process>, mut stdout: ChildStdout) {
    let mut framer = LineFramer::new(MAX_LINE);
    let mut buf = vec![0u8; 64 * 1024];
    let garbage = loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => {
                break match framer.finish() {
                    Ok(Some(last)) if !process.dispatch(&last) => Some(Stop::Garbage),
                    Ok(_) => None,
                    Err(_) => Some(Stop::TooLong),
                };
            }
            Ok(n) => n,
        };
        match framer.push(&buf[..n]) {
            Ok(lines) => {
                if let Some(bad) = lines.iter().find(|l| !process.dispatch(l)) {
                    tracing::warn!(route = %process.route, pid = process.pid, bytes = bad.len(), "stdio server wrote a line that is not JSON-RPC: stopping it");
                    break Some(Stop::Garbage);
                }
            }
            Err(e) => {
                tracing::warn!(route = %process.route, pid = process.pid, error = %e, "stopping stdio server");
                break Some(Stop::TooLong);
            }
        }
    };
    // Stdout closed (the child is exiting, or closed it and would hang): stop it.
    process.stop(garbage.unwrap_or(Stop::Exiting));
}

async fn supervise(
    process: Arc<Process>,
    mut child: Child,
    mut stop: watch::Receiver<bool>,
    exited: watch::Sender<bool>,
    on_exit: impl FnOnce(),
) {
    let status = tokio::select! {
        status = child.wait() => status,
        () = stopped(&mut stop) => stop_sequence(&mut child, process.pid).await,
    };
    process.reaped.store(true, Ordering::Release);
    // Whatever it started in its group goes with it.
    kill_group(process.pid, Signal::KILL);
    let described = describe(&status);
    let requested = lock(&process.shared).stopping;
    match requested {
        Some(why) if !matches!(why, Stop::Garbage | Stop::TooLong | Stop::Exiting) => {
            tracing::info!(route = %process.route, pid = process.pid, status = %described, "stdio server exited")
        }
        _ => {
            tracing::warn!(route = %process.route, pid = process.pid, status = %described, "stdio server exited unexpectedly")
        }
    }
    process.finish(&described);
    on_exit();
    let _ = exited.send(true);
}

/// Stdin is closed (the writer stopped on the same signal); then SIGTERM, then
/// SIGKILL to the whole group, each after [`STOP_GRACE`].
async fn stop_sequence(child: &mut Child, pid: u32) -> std::io::Result<ExitStatus> {
    if let Ok(status) = timeout(STOP_GRACE, child.wait()).await {
        return status;
    }
    kill_group(pid, Signal::TERM);
    if let Ok(status) = timeout(STOP_GRACE, child.wait()).await {
        return status;
    }
    kill_group(pid, Signal::KILL);
    child.wait().await
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => "ended".to_string(),
        },
        Err(e) => format!("could not be waited for: {e}"),
    }
}
