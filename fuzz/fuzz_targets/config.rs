//! Config loading on arbitrary text: never panics, and every error it reports
//! carries a line and column and says something.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mcp_oauth_proxy::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Relative file paths land in a directory that does not exist.
    let base = Path::new("/nonexistent/mcp-oauth-proxy-fuzz");
    let env = |name: &str| (name == "SET").then(|| "value".to_string());
    if let Err(errors) = Config::from_yaml(text, base, &env) {
        assert!(!errors.is_empty(), "refused without a reason");
        for e in &errors {
            assert!(
                e.line > 0 && e.column > 0,
                "error without a location: {e:?}"
            );
            assert!(
                !e.message.trim().is_empty(),
                "error without a message: {e:?}"
            );
        }
    }
});
