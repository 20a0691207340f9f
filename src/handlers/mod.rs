//! The HTTP handlers: each translates a request into calls of the
//! authorization server, the login flow or the MCP pipeline, and renders the
//! outcome.

pub mod admin;
pub mod browser;
pub mod clients;
pub mod connect;
pub mod federated;
pub mod mcp;
pub mod oauth_api;
