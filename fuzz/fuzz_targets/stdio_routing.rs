//! Id routing between sessions and a stdio child on arbitrary messages: the
//! first half of the input is a client's request, the second a line from the
//! child. Nothing panics, and every message routing rewrites is still JSON.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mcp_oauth_proxy::stdio::routing::{FromChild, Routing};

/// JSON by its syntax (a number too large for an f64 is still JSON, passed as it came).
fn json(m: &[u8]) {
    assert!(
        serde_json::from_slice::<Box<serde_json::value::RawValue>>(m).is_ok(),
        "{}",
        String::from_utf8_lossy(m)
    );
}

fuzz_target!(|data: &[u8]| {
    let half = data.len() / 2;
    let (client, child) = data.split_at(half);
    let session: Arc<str> = Arc::from("s");
    let mut r: Routing<u8> = Routing::default();
    if let Ok(out) = r.request(&session, client, 1, true) {
        json(&out.message);
    }
    if let Some(m) = r.notification(&session, client) {
        json(&m);
    }
    match r.from_child(child, &[session.clone()]) {
        FromChild::Answer { message, .. } | FromChild::Progress { message, .. } => json(&message),
        FromChild::ToSession { message, .. } | FromChild::Broadcast(message) | FromChild::Reply(message) => {
            json(&message)
        }
        FromChild::Drop | FromChild::Garbage => {}
    }
    if let Some(m) = r.response(&session, client) {
        json(&m);
    }
    for (_, m) in r.close(-32603, "gone") {
        json(&m);
    }
});
