//! Logging setup. Log lines name requests, routes, users and clients; they
//! never carry tokens, codes, passwords, cookies or upstream credentials.

use tracing_subscriber::EnvFilter;

/// Logs to stderr at `info` unless `MCP_OAUTH_PROXY_LOG` (or `RUST_LOG`) says otherwise.
pub fn init() {
    let filter = EnvFilter::try_from_env("MCP_OAUTH_PROXY_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
