//! Property tests for the parsers that read what the network sends: whatever
//! the bytes and however they are split, they never panic and agree with
//! themselves. (The same parsers have cargo-fuzz targets in `fuzz/`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use http::Method;
use mcp_oauth_proxy::mcp::{filter, jsonrpc, sse};
use mcp_oauth_proxy::proxy::h1;
use proptest::prelude::*;

fn decode_all(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut d = sse::Decoder::default();
    let mut events = Vec::new();
    for c in chunks {
        events.extend(d.push(c).unwrap().into_iter().map(|b| b.to_vec()));
    }
    (events, d.finish().to_vec())
}

/// An event made of field lines with any of the three line endings.
fn event() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        "[a-z ]{0,12}".prop_map(|s| format!("data: {s}")),
        "[0-9]{1,4}".prop_map(|s| format!("id: {s}")),
        Just(": comment".to_string()),
        Just("event: message".to_string()),
    ];
    let eol = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    (proptest::collection::vec((line, eol.clone()), 1..5), eol).prop_map(|(lines, end)| {
        let mut out = String::new();
        for (l, e) in lines {
            out.push_str(&l);
            out.push_str(e);
        }
        out.push_str(end);
        out.into_bytes()
    })
}

proptest! {
    #[test]
    fn sse_events_do_not_depend_on_chunk_boundaries(events in proptest::collection::vec(event(), 1..6), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let stream: Vec<u8> = events.concat();
        let whole = decode_all(&[&stream]);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&stream[last..p]);
            last = p;
        }
        chunks.push(&stream[last..]);
        let split = decode_all(&chunks);
        prop_assert_eq!(&split, &whole);
        // Nothing is lost or invented: the events and the rest are the stream.
        let mut joined = whole.0.concat();
        joined.extend_from_slice(&whole.1);
        prop_assert_eq!(joined, stream);
    }

    #[test]
    fn sse_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (events, rest) = decode_all(&[&bytes]);
        for e in &events {
            let _ = sse::fields(e);
        }
        prop_assert_eq!(events.concat().len() + rest.len(), bytes.len());
    }

    #[test]
    fn jsonrpc_parse_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = jsonrpc::parse(&bytes);
    }

    #[test]
    fn filtered_lists_are_valid_json_holding_only_allowed_tools(names in proptest::collection::vec("[a-z_]{1,8}", 0..12), id in 0u32..1000) {
        let tools: Vec<serde_json::Value> = names.iter().map(|n| serde_json::json!({"name": n, "inputSchema": {"type": "object"}})).collect();
        let msg = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools, "nextCursor": "c"}}).to_string();
        let allows = |n: &str| n.starts_with('a');
        let out = match filter::filter(msg.as_bytes(), &allows) {
            filter::Filtered::Unchanged => msg.clone(),
            filter::Filtered::Rewritten(b) => String::from_utf8(b.to_vec()).unwrap(),
        };
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let kept: Vec<&str> = v["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        let want: Vec<&str> = names.iter().map(String::as_str).filter(|n| allows(n)).collect();
        prop_assert_eq!(kept, want);
        prop_assert_eq!(&v["result"]["nextCursor"], "c");
        prop_assert_eq!(v["id"].as_u64(), Some(u64::from(id)));
    }

    #[test]
    fn filter_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut with_tools = bytes.clone();
        with_tools.extend_from_slice(b"\"tools\"");
        for b in [&bytes, &with_tools] {
            if let filter::Filtered::Rewritten(out) = filter::filter(b, &|_| false) {
                prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
            }
        }
    }

    #[test]
    fn chunked_bodies_do_not_depend_on_read_boundaries(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
        ext in proptest::option::of("[a-z]{1,5}=[a-z0-9]{0,5}"),
        trailers in proptest::collection::vec("[a-z]{1,6}: [a-z]{0,6}", 0..3),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            let ext = ext.as_deref().map(|e| format!(";{e}")).unwrap_or_default();
            wire.extend_from_slice(format!("{:X}{ext}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n");
        for t in &trailers {
            wire.extend_from_slice(format!("{t}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\nNEXT");
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        at.sort_unstable();
        at.push(wire.len());
        let mut d = h1::Decoder::chunked();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut from = 0;
        for to in at {
            buf.extend_from_slice(&wire[from..to]);
            from = to;
            while let Some(data) = d.decode(&mut buf).unwrap() {
                prop_assert!(!data.is_empty());
                body.extend_from_slice(&data);
            }
        }
        prop_assert!(d.is_done());
        prop_assert_eq!(body, chunks.concat());
        prop_assert_eq!(&buf[..], b"NEXT");
    }

    #[test]
    fn response_reader_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(bytes.len() + 1);
        let mut buf = BytesMut::from(&bytes[..cut]);
        let mut head = h1::parse_response(&mut buf, &Method::GET);
        if let Ok(None) = head {
            buf.extend_from_slice(&bytes[cut..]);
            head = h1::parse_response(&mut buf, &Method::GET);
        }
        if let Ok(Some(mut head)) = head {
            let mut n = 0;
            while let Ok(Some(data)) = head.body.decode(&mut buf) {
                n += data.len();
                prop_assert!(n <= bytes.len());
            }
        }
    }
}
