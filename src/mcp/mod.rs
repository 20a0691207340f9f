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

/// The largest MCP message the proxy takes: a client's POST body, a line from a
/// stdio server. MCP messages can be larger than forms (tool arguments), but not unbounded.
pub const MAX_MCP_BODY: usize = 16 * 1024 * 1024;
