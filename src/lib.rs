//! mcp-oauth-proxy: an OAuth 2.1 authorization server and reverse proxy that
//! puts per-user login in front of existing MCP servers.
//!
//! See `docs/ARCHITECTURE.md` for the request phases and where each lives.

pub mod authority;
pub mod cimd;
pub mod cli;
pub mod config;
pub mod login;
pub mod mcp;
pub mod oauth;
pub mod password;
pub mod paths;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod web;
