//! The integration suite: one binary that starts the real `mcp-oauth-proxy`
//! on loopback ports in front of real upstream MCP servers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod api_keys;
mod audit;
mod cimd;
mod cli;
mod common;
mod dashboard;
mod forwarding;
mod hardening;
mod lifecycle;
mod machines;
mod metrics;
mod oauth;
mod oauth_client;
mod policy;
mod quirks;
#[path = "../support/redis_server.rs"]
mod redis_server;
mod security;
mod shared_store;
mod stdio;
mod tls;
mod upstream_auth;
mod upstream_pool;
