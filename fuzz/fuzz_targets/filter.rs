//! The tools/list filter: any rewrite it produces is valid JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_oauth_proxy::mcp::filter::{Filtered, filter};

fuzz_target!(|data: &[u8]| {
    if let Filtered::Rewritten(out) = filter(data, &|name| name.len() % 2 == 0) {
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    }
});
