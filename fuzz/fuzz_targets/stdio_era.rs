//! The 2026-07-28 bridge on arbitrary messages: the first half of the input is
//! a client's body (read, then rewritten for a legacy child), the second a
//! line from the child (its answer made modern, its request turned into an
//! input request, a notification for a listen stream). Nothing panics, and
//! every message the bridge writes is JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_oauth_proxy::stdio::era;
use serde_json::value::RawValue;

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
    let id = RawValue::from_string("7".into()).unwrap();
    let mirrors = era::Mirrors { method: true, name: true };
    if let Ok(Some(m)) = era::modern_request(Some("2026-07-28"), mirrors, client) {
        json(&era::probe(&m.meta));
        json(&era::initialize(&m.meta));
        if serde_json::from_slice::<Box<RawValue>>(client).is_ok() {
            json(&era::to_legacy(client));
        }
        if let Some(asked) = era::server_request(child) {
            if let Some(answer) = era::input_answer(&asked, &m.input_responses) {
                json(&answer);
            }
            json(&era::input_required(Some(&id), &asked, "state"));
        }
    }
    let _ = era::verdict(child);
    let _ = era::status_of(child);
    if serde_json::from_slice::<Box<RawValue>>(child).is_ok() {
        json(&era::to_modern_result(child, "tools/list"));
    }
    if let Ok(init) = serde_json::from_slice::<Box<RawValue>>(child) {
        json(&era::discover(Some(&id), &init));
        let f = era::listen_filter(client, &init);
        json(&era::acknowledged(&id, &f));
        if let Some(m) = era::for_listener(child, &f, &id) {
            json(&m);
        }
    }
});
