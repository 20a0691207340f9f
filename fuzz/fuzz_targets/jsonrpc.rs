//! The JSON-RPC envelope reader and the inspect phase on arbitrary bodies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_oauth_proxy::mcp::inspect::{MirrorHeaders, inspect};
use mcp_oauth_proxy::mcp::jsonrpc::parse;
use mcp_oauth_proxy::mcp::policy::ToolPolicy;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data);
    let scopes = vec![("r".to_string(), vec!["read_*".to_string()])];
    let policy = ToolPolicy::new(Some(&scopes), "r");
    let _ = inspect(data, &MirrorHeaders::default(), Some(&scopes), &policy, "r");
});
