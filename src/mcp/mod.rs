//! What makes the proxy MCP-aware: reading JSON-RPC envelopes, the tool
//! policy, filtering tool lists in JSON and SSE bodies, legacy HTTP+SSE.

pub mod filter;
pub mod inspect;
pub mod jsonrpc;
pub mod legacy;
pub mod policy;
pub mod sessions;
pub mod sse;
pub mod stream;
