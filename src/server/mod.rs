//! The listener: TCP (and TLS) accept loop, HTTP/1.1 + HTTP/2 serving,
//! signals (reload on SIGHUP, drain on SIGTERM/SIGINT) and systemd readiness.
//! `serve` is the binary's (signals, systemd); `serve_on` runs the same accept
//! loop on a given listener, clock and shutdown future (tests).

mod admin;
mod conns;
pub mod router;
mod shared;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admin::token::{AdminToken, TokenFileError};
use crate::authority::{Authority, StateError};
use crate::clock::Clock;
use crate::config::{Config, StateBackend};
use crate::login::throttle::Throttle;
use crate::proxy::Upstream;
use crate::state::AppState;
use crate::store::{Embedded, Records, Redis};
use crate::tls;
use crate::wire::ConnInfo;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    AdminToken(#[from] TokenFileError),
    #[error("cannot start the revocation listener: {0}")]
    Listener(std::io::Error),
}

/// Serves until SIGTERM or SIGINT, then drains for the configured grace period;
/// SIGHUP reloads the config file.
pub async fn serve(config_path: PathBuf, config: Config) -> Result<(), ServeError> {
    let addr = config.listen;
    // The store and keys first: a state problem is reported before any port is bound.
    let admin = config.admin.clone();
    let server = Server::new(config, Clock::system())?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let admin = bind_admin(admin).await?;

    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;
    let signals = async {
        loop {
            tokio::select! {
                _ = sighup.recv() => {
                    // sd_notify(3): RELOADING=1 with MONOTONIC_USEC, then READY=1.
                    if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading, now]);
                    }
                    server.reload(&config_path);
                    notify_systemd(sd_notify::NotifyState::Ready);
                }
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        notify_systemd(sd_notify::NotifyState::Stopping);
    };
    notify_systemd(sd_notify::NotifyState::Ready);
    server.run(listener, admin, signals).await
}

/// Binds `admin.listen`, if configured.
async fn bind_admin(
    admin: Option<crate::config::Admin>,
) -> Result<Option<TcpListener>, ServeError> {
    let Some(admin) = admin else {
        return Ok(None);
    };
    let addr = admin.listen;
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves on `listener` with `config`, reading the time from `clock`, until
/// `shutdown` completes; then drains for the configured grace period. The config's
/// `listen` is not used (`admin.listen` is bound here), and nothing reloads the config
/// (`serve` does, on SIGHUP).
/// For a server inside another program, e.g. a test with a
/// [`ManualClock`](crate::clock::ManualClock). Needs a multi-threaded runtime: the
/// store runs under `block_in_place`.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let admin = config.admin.clone();
    let server = Server::new(config, clock)?;
    let admin = bind_admin(admin).await?;
    server.run(listener, admin, shutdown).await
}

/// Everything a listener serves with: the shared state and TLS.
struct Server {
    state: Arc<AppState>,
    /// The certificate a reload swaps (with `tls` configured).
    certs: Option<Arc<tls::ReloadableCert>>,
    acceptor: Option<TlsAcceptor>,
}

impl Server {
    /// Opens the store, loads the keys and builds what the handlers share.
    fn new(config: Config, clock: Clock) -> Result<Self, ServeError> {
        let records = open_store(&config)?;
        let shared = records.0.redis();
        let authority = Authority::new(records, clock.clone(), &config.tokens)?;
        let certs = config
            .tls
            .as_ref()
            .map(|t| Arc::new(tls::ReloadableCert(ArcSwap::new(t.certified.clone()))));
        let acceptor = match &certs {
            Some(c) => Some(TlsAcceptor::from(Arc::new(tls::server_config(c.clone())?))),
            None => None,
        };
        let fetcher =
            crate::cimd::fetch::Fetcher::new(config.cimd.allow_private_networks, clock.clone())?;
        let federation = Arc::new(crate::federation::Federation::new(clock.clone())?);
        let metrics = match config.admin {
            Some(_) => crate::metrics::Metrics::on(),
            None => crate::metrics::Metrics::off(),
        };
        metrics.config_loaded(clock.unix());
        // After the store: its directory (the token file's default place) exists now.
        let admin_token = match &config.admin {
            Some(a) => Some(Arc::new(AdminToken::load_or_create(&a.token_file)?)),
            None => None,
        };
        let registrations =
            crate::limit::RateLimit::new(60, std::time::Duration::from_secs(3600), clock.clone());
        let state = Arc::new(AppState {
            admin_token: arc_swap::ArcSwapOption::new(admin_token),
            metrics,
            federation,
            upstream_oauth: crate::upstream_oauth::UpstreamClients::new()?,
            upstream: Upstream::new(clock.clone())?,
            fetcher,
            config: ArcSwap::from_pointee(config),
            authority,
            legacy: Arc::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(
                2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            throttle: match &shared {
                Some(r) => Throttle::Shared(r.clone()),
                None => Throttle::default(),
            },
            registrations: match &shared {
                Some(r) => registrations.shared(r.clone(), "registrations"),
                None => registrations,
            },
            used_tickets: match &shared {
                Some(r) => crate::login::flow::UsedTickets::shared(r.clone()),
                None => crate::login::flow::UsedTickets::default(),
            },
            mcp_sessions: match &shared {
                Some(r) => crate::mcp::sessions::Owners::shared(clock, r.clone()),
                None => crate::mcp::sessions::Owners::new(clock),
            },
            shared,
            stdio: crate::stdio::Stdio::default(),
        });
        Ok(Self {
            state,
            certs,
            acceptor,
        })
    }

    fn reload(&self, path: &Path) {
        crate::telemetry::audit::reopen(); // logrotate renamed it: a new file
        let ok = reload(path, &self.state, self.certs.as_deref());
        self.reload_admin_token();
        let now = self.state.authority.now();
        self.state.metrics.reload(ok, now);
    }

    /// Reads the admin token file again (a new token takes effect without a
    /// restart); an unusable file is logged and the old token stays.
    fn reload_admin_token(&self) {
        let Some(admin) = &self.state.config.load().admin else {
            return;
        };
        match AdminToken::load(&admin.token_file) {
            Ok(t) => self.state.admin_token.store(Some(Arc::new(t))),
            Err(e) => tracing::error!("{e}; the admin API keeps the token it had"),
        }
    }

    /// Accepts connections until `shutdown` completes, then drains them.
    async fn run(
        &self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let state = &self.state;
        state.federation.warm_up(&state.config.load());
        let _sweeper = spawn_sweeper(state.clone());
        let _shared = shared::keep_in_step(state)?;
        let _admin = admin.map(|l| AbortOnDrop(tokio::spawn(admin::run(l, state.clone()))));
        // Told to every connection at shutdown; the drain is over when all have dropped it.
        let (drain, _) = watch::channel(());
        let connections = Arc::new(tokio::sync::Semaphore::new(
            state.config.load().server.max_connections,
        ));
        let per_ip = conns::PerIp::default();
        let scheme = if self.acceptor.is_some() {
            "https"
        } else {
            "http"
        };
        match listener.local_addr() {
            Ok(local) => tracing::info!(listen = %local, scheme, "listening"),
            Err(_) => tracing::info!(scheme, "listening"),
        }

        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    let per_ip_cap = state.config.load().server.max_connections_per_ip;
                    let Some(ip_slot) = per_ip.try_acquire(peer.ip(), per_ip_cap) else {
                        tracing::warn!(peer = %peer, "connection limit per address reached: refused");
                        continue;
                    };
                    let Ok(permit) = connections.clone().try_acquire_owned() else {
                        tracing::warn!(peer = %peer, "connection limit reached: refused");
                        continue;
                    };
                    let conn = ConnInfo::new(peer, self.acceptor.is_some());
                    let _counted = state.metrics.connection_opened();
                    let slots = Slots { _total: permit, _per_ip: ip_slot, _counted };
                    spawn_connection(tcp, conn, self.acceptor.clone(), state.clone(), drain.subscribe(), slots);
                }
                () = &mut shutdown => break,
            }
        }

        drop(listener);
        let grace = state.config.load().server.shutdown_grace;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: draining connections"
        );
        let _ = drain.send(());
        tokio::select! {
            () = drain.closed() => tracing::info!("all connections drained"),
            _ = tokio::time::sleep(grace) => tracing::info!("grace period over: closing open streams"),
        }
        state.stdio.shutdown().await;
        Ok(())
    }
}

/// Opens the configured store.
pub(crate) fn open_store(config: &Config) -> Result<Records, StateError> {
    match &config.state {
        StateBackend::Dir(dir) => Ok(Records(Arc::new(Embedded::open(dir)?))),
        StateBackend::Redis { url, password } => Ok(Records(Arc::new(Redis::open(
            url.expose(),
            password.as_ref().map(|p| p.expose()),
        )?))),
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Forgets expired codes, tokens and deny-list entries and rotates the signing
/// keys every few minutes (and whenever a manual clock moves), until dropped.
fn spawn_sweeper(state: Arc<AppState>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
        let mut advances = state.authority.clock().advances();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = advances.next() => {}
            }
            let s = state.clone();
            let now = s.authority.now();
            s.used_tickets.sweep(now);
            s.mcp_sessions.sweep();
            s.upstream.sweep();
            s.upstream_oauth.sweep(&s.authority, &s.config.load());
            let tokens = s.config.load().tokens;
            let _ = tokio::task::spawn_blocking(move || s.authority.sweep(&tokens)).await;
        }
    }))
}

/// The places a connection takes, in total and from its address; given back when dropped.
struct Slots {
    _total: tokio::sync::OwnedSemaphorePermit,
    _per_ip: conns::IpSlot,
    /// The open-connections gauge (metrics on).
    _counted: Option<crate::metrics::Open>,
}

/// Completes when the server shuts down (or has stopped).
async fn shutdown_signal(mut drain: watch::Receiver<()>) {
    let _ = drain.changed().await;
}

fn spawn_connection(
    tcp: tokio::net::TcpStream,
    conn: ConnInfo,
    acceptor: Option<TlsAcceptor>,
    state: Arc<AppState>,
    watcher: watch::Receiver<()>,
    slots: Slots,
) {
    let settings = state.config.load().server.clone();
    let deadline = tokio::time::Instant::now() + settings.header_read_timeout;
    tokio::spawn(async move {
        let _slots = slots;
        // `watcher` lives as long as this task (the drain at shutdown waits for it);
        // the connection gets a copy to learn of the shutdown.
        let shutdown = watcher.clone();
        match acceptor {
            None => match detect_plain(&tcp, deadline).await {
                Some(proto) => serve_io(tcp, proto, conn, state, &settings, shutdown).await,
                None => tracing::debug!(peer = %conn.peer, "no request before the header timeout"),
            },
            // Boxed: a TLS connection's futures are several times the size of a plain
            // one's, and inline every connection's task would be allocated at that size.
            Some(acceptor) => {
                Box::pin(serve_tls(
                    tcp, acceptor, deadline, conn, state, &settings, shutdown,
                ))
                .await
            }
        }
    });
}

async fn serve_tls(
    tcp: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    deadline: tokio::time::Instant,
    conn: ConnInfo,
    state: Arc<AppState>,
    settings: &crate::config::ServerSettings,
    watcher: watch::Receiver<()>,
) {
    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let proto = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                Proto::Http2
            } else {
                Proto::Http1
            };
            serve_io(tls, proto, conn, state, settings, watcher).await
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed")
        }
        Err(_) => tracing::debug!(peer = %conn.peer, "TLS handshake timed out"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Http1,
    Http2,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/1.1 or HTTP/2 with prior knowledge, from the first bytes; `None` if the
/// peer sends nothing (or only part of the HTTP/2 preface) before `deadline`.
async fn detect_plain(
    tcp: &tokio::net::TcpStream,
    deadline: tokio::time::Instant,
) -> Option<Proto> {
    let mut buf = [0u8; 24];
    loop {
        let n = tokio::time::timeout_at(deadline, tcp.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if !H2_PREFACE.starts_with(&buf[..n]) {
            return Some(Proto::Http1);
        }
        if n == H2_PREFACE.len() {
            return Some(Proto::Http2);
        }
        // Part of the preface so far: peek would return at once, so wait a little.
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn serve_io<I>(
    io: I,
    proto: Proto,
    conn: ConnInfo,
    state: Arc<AppState>,
    settings: &crate::config::ServerSettings,
    watcher: watch::Receiver<()>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let result = match proto {
        Proto::Http1 => {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(router::handle(&state, req, conn).await) }
            });
            // The header timeout also covers idle keep-alive connections.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(settings.header_read_timeout)
                .max_header_size(64 * 1024)
                .max_buf_size(64 * 1024)
                .serve_connection(io, service);
            conns::UntilClosed::new(connection, shutdown_signal(watcher)).await
        }
        Proto::Http2 => {
            // hyper closes no HTTP/2 connection for idleness, and one whose peer answers
            // pings would stay forever: it is closed once it has had no stream for the
            // header timeout (the HTTP/1.1 keep-alive limit too). A response body still
            // being sent (an SSE stream) keeps its stream open.
            let streams = conns::Streams::default();
            let service = {
                let streams = streams.clone();
                service_fn(move |req| {
                    let stream = streams.open();
                    let state = state.clone();
                    async move {
                        let res = router::handle(&state, req, conn).await;
                        Ok::<_, std::convert::Infallible>(
                            res.map(|body| crate::wire::Holding::new(body, stream)),
                        )
                    }
                })
            };
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(64 * 1024)
                .max_concurrent_streams(256)
                .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
                .keep_alive_timeout(std::time::Duration::from_secs(20))
                .serve_connection(io, service);
            let idle = settings.header_read_timeout;
            let stop = async move {
                tokio::select! {
                    () = shutdown_signal(watcher) => {}
                    () = streams.idle(idle) => tracing::debug!(peer = %conn.peer, "idle HTTP/2 connection closed"),
                }
            };
            // Boxed (HTTP/2 connections are fewer, and their state is larger): the HTTP/1.1
            // connections' futures need not be as large.
            Box::pin(conns::UntilClosed::new(connection, stop)).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
    }
}

/// Re-reads the config file; a bad file is logged and the running config stays
/// (false).
fn reload(path: &std::path::Path, state: &AppState, certs: Option<&tls::ReloadableCert>) -> bool {
    match Config::load(path) {
        Ok(new) => {
            let old = state.config.load();
            if new.listen != old.listen {
                tracing::warn!("`listen` changed: takes effect only after a restart");
            }
            if new.admin != old.admin {
                tracing::warn!("`admin` changed: takes effect only after a restart");
            }
            match (certs, &new.tls) {
                (Some(c), Some(t)) => c.0.store(t.certified.clone()),
                (None, None) => {}
                _ => tracing::warn!("adding or removing `tls` takes effect only after a restart"),
            }
            state.config.store(Arc::new(new));
            state.stdio.reconcile(&state.config.load());
            tracing::info!("configuration reloaded");
            true
        }
        Err(errors) => {
            for line in errors.to_string().lines() {
                tracing::error!("reload rejected: {line}");
            }
            false
        }
    }
}

fn notify_systemd(state: sd_notify::NotifyState) {
    // Without NOTIFY_SOCKET (not under systemd) this does nothing.
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}
