//! mcp-oauth-proxy: an OAuth 2.1 authorization server and reverse proxy that
//! puts per-user login in front of existing MCP servers.
//!
//! See `docs/ARCHITECTURE.md` for the request phases, the layers and where
//! each lives. The modules are layered (a module only uses those below it;
//! `tests/module_layers.rs` fails on a cycle):
//!
//! ```text
//! cli, server                  the binary's commands; listener, router, lifecycle
//! handlers                     HTTP handlers: OAuth endpoints, browser pages, the MCP pipeline, the admin API
//! state                        AppState: what the handlers share
//! admin                        the admin commands; the admin API's token and wire form
//! authority, cimd, federation, login, limit, mcp, proxy, stdio
//! oauth, store, config         pure OAuth rules; the store; the typed configuration
//! wire, tls, telemetry, paths, password, secret, clock    leaves
//! ```
//!
//! The public surface is what the binary, the integration tests and the fuzz
//! targets use: `cli`, `config` (loading), `server::serve` and `server::serve_on`
//! (in-process, with a `clock::ManualClock` in tests), and the pure parsers
//! (`mcp`, `proxy::h1`, `oauth`, `cimd::rules`, `stdio::framing`). Everything else is
//! `pub(crate)`.

pub(crate) mod admin;
pub(crate) mod authority;
pub mod cimd;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod federation;
pub(crate) mod handlers;
pub(crate) mod limit;
pub(crate) mod login;
pub mod mcp;
pub(crate) mod metrics;
pub mod oauth;
pub(crate) mod password;
pub(crate) mod paths;
pub mod proxy;
pub(crate) mod secret;
pub mod server;
pub(crate) mod state;
pub mod stdio;
pub(crate) mod store;
pub mod telemetry;
pub(crate) mod tls;
pub(crate) mod upstream_oauth;
pub mod wire;
