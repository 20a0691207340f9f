//! stdio MCP servers behind a route: the proxy starts the configured command
//! and speaks newline-delimited JSON-RPC to it, while clients speak Streamable
//! HTTP to the proxy (the forward phase's other target, `handlers/mcp/forward.rs`).
//!
//! - [`framing`]: the child's stdout as lines (pure, fuzzed);
//! - [`routing`]: ids and progress tokens between sessions and the child (pure);
//! - [`sessions`]: one route's processes and sessions: share, start, refuse, stop (pure);
//! - `process`: one child: spawn, its four tasks, the stop sequence;
//! - `exchange`: HTTP requests in, JSON answers or event streams out;
//! - [`era`] and `modern`: clients of the 2026-07-28 revision (no sessions), also
//!   in front of a child that speaks only the `initialize` revisions;
//! - `stderr`: the child's stderr in the log, rate-limited.
//!
//! This module is the registry: every stdio route's table, the idle sweeper,
//! and what reloads and shutdown do to the processes.

pub mod era;
mod exchange;
pub mod framing;
mod modern;
mod process;
pub mod routing;
pub mod sessions;
mod stderr;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::value::RawValue;

use crate::config::{Config, Route, StdioServer, Upstream};
use crate::mcp::jsonrpc::{self, INTERNAL_ERROR, INVALID_REQUEST};
use crate::wire::{self, Body};

pub(crate) use exchange::{Accept, Exchange};
use process::{Process, Stop};
use sessions::{Open, Owner, Table};

/// How often idle processes are looked for.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Why a request to a stdio route got no answer from the child. Rendered as a
/// JSON-RPC error (with the request's id where there is one) in one place,
/// [`StdioError::into_response`].
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("Bad Request: Mcp-Session-Id header is required (send initialize first)")]
    NoSession { id: Option<Box<RawValue>> },
    /// Unknown, ended, or another user's or client's session.
    #[error("Session not found")]
    UnknownSession,
    #[error("Invalid Request: this session is already initialized")]
    AlreadyInitialized { id: Option<Box<RawValue>> },
    #[error("Invalid Request: one JSON-RPC 2.0 message per request on this route (no batches)")]
    NotOneMessage,
    #[error("Not Acceptable: the client must accept {0}")]
    NotAcceptable(&'static str),
    #[error("too many MCP server processes for this route (max_processes {max}); try again later")]
    Busy {
        max: usize,
        id: Option<Box<RawValue>>,
    },
    #[error("the MCP server could not be started")]
    Spawn { id: Option<Box<RawValue>> },
    /// The process ended (or was stopped) before it answered `initialize`.
    #[error("the MCP server did not initialize: {why}")]
    Ended {
        id: Option<Box<RawValue>>,
        why: String,
    },
    #[error("the MCP server did not answer in time")]
    Timeout { id: Option<Box<RawValue>> },
    #[error("the proxy is shutting down")]
    ShuttingDown { id: Option<Box<RawValue>> },
    /// A 2026-07-28 request whose protocol version is missing, mismatched or unsupported.
    #[error("{refusal}")]
    Version {
        id: Option<Box<RawValue>>,
        refusal: Box<era::Refusal>,
    },
    /// A 2026-07-28 request the process ended (or could not take) without an answer.
    #[error("the MCP server ended the request without answering")]
    Unanswered { id: Option<Box<RawValue>> },
    /// A GET or DELETE without a session from a 2026-07-28 client.
    #[error("Method Not Allowed: 2026-07-28 clients only POST")]
    NotAllowed,
}

impl StdioError {
    /// The one place a stdio route's failure becomes a response.
    pub fn into_response(self) -> Response<Body> {
        let message = self.to_string();
        let data = match &self {
            StdioError::Version { refusal, .. } => refusal.data(),
            _ => None,
        };
        let (status, code, id) = match self {
            StdioError::NoSession { id } | StdioError::AlreadyInitialized { id } => {
                (StatusCode::BAD_REQUEST, INVALID_REQUEST, id)
            }
            StdioError::UnknownSession => (StatusCode::NOT_FOUND, -32001, None),
            StdioError::NotOneMessage => (StatusCode::BAD_REQUEST, INVALID_REQUEST, None),
            StdioError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, -32000, None),
            StdioError::Busy { id, .. } | StdioError::ShuttingDown { id } => {
                (StatusCode::SERVICE_UNAVAILABLE, -32000, id)
            }
            StdioError::Spawn { id }
            | StdioError::Ended { id, .. }
            | StdioError::Unanswered { id } => (StatusCode::BAD_GATEWAY, INTERNAL_ERROR, id),
            StdioError::Timeout { id } => (StatusCode::GATEWAY_TIMEOUT, INTERNAL_ERROR, id),
            StdioError::Version { id, refusal } => {
                let code = match *refusal {
                    era::Refusal::Mismatch(_) => jsonrpc::HEADER_MISMATCH,
                    era::Refusal::InvalidMeta(_) => jsonrpc::INVALID_PARAMS,
                    era::Refusal::Unsupported { .. } => era::UNSUPPORTED_PROTOCOL_VERSION,
                };
                (StatusCode::BAD_REQUEST, code, id)
            }
            StdioError::NotAllowed => (StatusCode::METHOD_NOT_ALLOWED, -32000, None),
        };
        let data = data.map(|d| d.to_string());
        let body = jsonrpc::error_response_with(id.as_deref(), code, &message, data.as_deref());
        let mut res = Response::new(wire::full(body));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::METHOD_NOT_ALLOWED {
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res
    }
}

/// Every stdio route's processes, for this proxy instance.
#[derive(Default)]
pub struct Stdio {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By route name.
    routes: Mutex<HashMap<String, Arc<RouteProcs>>>,
    next_id: AtomicU64,
    closing: AtomicBool,
    sweeper: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// One route's table, for the launch configuration it was made with.
struct RouteProcs {
    name: Arc<str>,
    server: Mutex<Arc<StdioServer>>,
    table: Mutex<Table<Arc<Process>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(s) = lock(&self.sweeper).take() {
            s.abort();
        }
    }
}

impl Stdio {
    /// The table of `route`, made (or remade, if its command changed) as needed.
    fn route(&self, route: &Route, server: &Arc<StdioServer>) -> Arc<RouteProcs> {
        let mut routes = lock(&self.inner.routes);
        if let Some(r) = routes.get(&route.name) {
            let mut current = lock(&r.server);
            if Arc::ptr_eq(&current, server) {
                return r.clone();
            }
            if current.same_launch(server) {
                // Limits may have changed with a reload: the newest apply.
                *current = server.clone();
                return r.clone();
            }
        }
        let fresh = Arc::new(RouteProcs {
            name: Arc::from(route.name.as_str()),
            server: Mutex::new(server.clone()),
            table: Mutex::new(Table::default()),
        });
        if let Some(old) = routes.insert(route.name.clone(), fresh.clone()) {
            old.stop_all(Stop::Reload);
        }
        fresh
    }

    /// After a reload: processes of routes that are gone, or whose command
    /// changed, are stopped; the others keep running.
    pub(crate) fn reconcile(&self, config: &Config) {
        let mut routes = lock(&self.inner.routes);
        routes.retain(|name, procs| {
            let keep = config.routes.iter().any(|r| {
                r.name == *name
                    && matches!(&r.upstream, Upstream::Stdio(s) if s.same_launch(&lock(&procs.server)))
            });
            if !keep {
                procs.stop_all(Stop::Reload);
            }
            keep
        });
    }

    /// Stops every process and waits until each has been reaped (stdin closed,
    /// SIGTERM, SIGKILL: at most twice `process::STOP_GRACE` each, all at once).
    pub(crate) async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        let all: Vec<Arc<Process>> = lock(&self.inner.routes)
            .values()
            .flat_map(|r| lock(&r.table).all().into_iter().map(|(_, p)| p))
            .collect();
        if all.is_empty() {
            return;
        }
        tracing::info!(processes = all.len(), "stopping stdio servers");
        for p in &all {
            p.stop(Stop::Shutdown);
        }
        futures_util::future::join_all(all.iter().map(|p| p.exited())).await;
    }

    fn ensure_sweeper(&self) {
        let mut sweeper = lock(&self.inner.sweeper);
        if sweeper.is_some() {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        *sweeper = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let routes: Vec<Arc<RouteProcs>> = lock(&inner.routes).values().cloned().collect();
                for r in routes {
                    r.stop_idle();
                }
            }
        }));
    }
}

/// What a process is opened for.
#[derive(Clone, Copy)]
enum Slot<'a> {
    /// A new session of this owner (`initialize`).
    Session(&'a Owner),
    /// Modern requests with this key ([`sessions::modern_key`]).
    Modern(&'a str),
}

impl RouteProcs {
    /// Where a new session (or modern request) goes: a running process, or a
    /// new one. `Ok((process, true))`: started for it.
    fn open(
        self: &Arc<Self>,
        stdio: &Stdio,
        slot: Slot<'_>,
        id: Option<&RawValue>,
    ) -> Result<(Arc<Process>, bool), StdioError> {
        let server = lock(&self.server).clone();
        let mut table = lock(&self.table);
        let open = match slot {
            Slot::Session(owner) => table.open(server.per, &owner.user, server.max_processes),
            Slot::Modern(key) => table.open_modern(key, server.max_processes),
        };
        match open {
            // Dying (crashed, garbage, failed to start) but not reaped yet: not joined.
            Open::Join(p) if p.is_stopping() => {
                table.stop(p.id);
                drop(table);
                self.open(stdio, slot, id)
            }
            Open::Join(p) => Ok((p, false)),
            Open::Full => {
                tracing::warn!(route = %self.name, max_processes = server.max_processes, "stdio route at max_processes: session refused");
                Err(StdioError::Busy {
                    max: server.max_processes,
                    id: id.map(ToOwned::to_owned),
                })
            }
            Open::Start if stdio.inner.closing.load(Ordering::SeqCst) => {
                Err(StdioError::ShuttingDown {
                    id: id.map(ToOwned::to_owned),
                })
            }
            Open::Start => {
                let pid = stdio.inner.next_id.fetch_add(1, Ordering::Relaxed);
                let weak = Arc::downgrade(self);
                let on_exit = move || {
                    if let Some(r) = weak.upgrade() {
                        lock(&r.table).exited(pid);
                    }
                };
                let process = Process::spawn(pid, self.name.clone(), &server, on_exit).map_err(|e| {
                    tracing::warn!(route = %self.name, program = %server.program, error = %e, "cannot start the stdio server");
                    StdioError::Spawn {
                        id: id.map(ToOwned::to_owned),
                    }
                })?;
                match slot {
                    Slot::Session(owner) => {
                        table.started(pid, process.clone(), server.per, &owner.user);
                    }
                    Slot::Modern(key) => {
                        process.attach(&modern::modern_session());
                        table.started_modern(pid, process.clone(), key);
                    }
                }
                drop(table);
                stdio.ensure_sweeper();
                Ok((process, true))
            }
        }
    }

    fn stop_idle(&self) {
        let idle_timeout = lock(&self.server).idle_timeout;
        let now = tokio::time::Instant::now();
        let all = lock(&self.table).all();
        for (_, p) in all {
            p.expire_parked(now);
        }
        let stopped: Vec<Arc<Process>> = {
            let mut table = lock(&self.table);
            let idle = table.idle(now, idle_timeout, |p| p.idle_since());
            idle.into_iter().filter_map(|id| table.stop(id)).collect()
        };
        for p in stopped {
            p.stop(Stop::Idle);
        }
    }

    fn stop_all(&self, why: Stop) {
        let all = lock(&self.table).all();
        for (id, p) in all {
            lock(&self.table).stop(id);
            p.stop(why);
        }
    }
}
