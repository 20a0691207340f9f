//! Connection-specific header names.

use http::HeaderName;

/// RFC 9110 §7.6.1 connection-specific headers, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    // By length first: this runs for every header of every request and response.
    let name = name.as_str();
    match name.len() {
        2 | 7 | 10 | 17 | 18 | 19 => HOP_BY_HOP.contains(&name),
        _ => false,
    }
}
