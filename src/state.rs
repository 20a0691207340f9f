//! What every request handler shares: the live config, the authorization
//! server, the upstream client and the per-instance tables.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::authority::Authority;
use crate::config::Config;
use crate::login::throttle::Throttle;
use crate::proxy::Upstream;

/// What every request handler shares.
pub struct AppState {
    pub config: ArcSwap<Config>,
    pub upstream: Upstream,
    pub authority: Authority,
    /// Login failures per user name and address (shared when the store is).
    pub throttle: Throttle,
    /// Open legacy HTTP+SSE streams, by the session id the proxy gave the client.
    pub legacy: Arc<crate::mcp::legacy::Sessions>,
    /// Password checks running at once (argon2 is memory- and CPU-heavy).
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// Consent tickets already answered (id → expiry).
    pub used_tickets: crate::login::flow::UsedTickets,
    /// Streamable HTTP sessions (`Mcp-Session-Id`) and who opened them.
    pub mcp_sessions: crate::mcp::sessions::Owners,
    /// Fetches client ID metadata documents.
    pub fetcher: crate::cimd::fetch::Fetcher,
    /// Dynamic registrations per client IP.
    pub registrations: crate::limit::RateLimit,
    /// Prometheus metrics; off without `admin`.
    pub metrics: crate::metrics::Metrics,
    /// Identity providers' discovery documents, key sets and connections.
    pub federation: Arc<crate::federation::Federation>,
    /// The admin API's token (`admin.token_file`), read at start and on SIGHUP; none without `admin`.
    pub admin_token: arc_swap::ArcSwapOption<crate::admin::token::AdminToken>,
    /// The processes of stdio routes.
    pub stdio: crate::stdio::Stdio,
    /// Upstreams protected by OAuth: their servers and users' tokens.
    pub upstream_oauth: crate::upstream_oauth::UpstreamClients,
    /// The Redis server of a shared store (several instances), if configured.
    pub shared: Option<crate::store::Redis>,
}
