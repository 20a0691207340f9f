//! The SSE decoder on arbitrary bytes split at an arbitrary point.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_oauth_proxy::mcp::sse::{Decoder, fields};

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut d = Decoder::default();
    let mut total = 0;
    for chunk in [&data[..cut], &data[cut..]] {
        if let Ok(events) = d.push(chunk) {
            for e in events {
                total += e.len();
                let _ = fields(&e);
            }
        }
    }
    total += d.finish().len();
    assert_eq!(total, data.len());
});
