//! The client ID metadata document rules on an arbitrary `client_id` and body
//! (`client_id`, a NUL byte, then the document): never panics, and a document
//! that is accepted describes exactly the client it was fetched for.
#![no_main]
use libfuzzer_sys::fuzz_target;
// `oauth::cimd` before the refactor that moved it.
use mcp_oauth_proxy::cimd::rules::parse_document;

const NOW: u64 = 1_750_000_000;

fuzz_target!(|data: &[u8]| {
    let (client_id, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"https://client.example/meta.json"[..], data),
    };
    let Ok(client_id) = std::str::from_utf8(client_id) else {
        return;
    };
    let Ok(client) = parse_document(client_id, body, NOW) else {
        return;
    };
    assert_eq!(client.client_id, client_id);
    assert_eq!(client.issued_at, NOW);
    assert!(
        client.secret_hash.is_none(),
        "a document client has no secret"
    );
    assert!(!client.redirect_uris.is_empty());
    // Lossy: serde_json skips the members it ignores without checking their
    // strings are UTF-8, so an accepted body need not be valid UTF-8 JSON.
    let doc: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(body)).expect("accepted body is JSON");
    assert_eq!(doc["client_id"].as_str(), Some(client_id));
    assert_eq!(
        doc["redirect_uris"],
        serde_json::json!(client.redirect_uris),
        "redirect_uris are taken as written"
    );
    let auth = format!("{:?}", client.auth_method);
    assert!(auth == "None" || auth == "PrivateKeyJwt", "{auth}");
    if auth == "PrivateKeyJwt" {
        assert!(client.jwks.is_some() || client.jwks_uri.is_some());
    }
    if let Some(uri) = &client.jwks_uri {
        assert!(uri.starts_with("https://") || uri.starts_with("http://"));
    }
});
