//! The upstream response reader on arbitrary bytes: the head, then the body as
//! its framing says, fed in two pieces split where the input says.
#![no_main]
use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use mcp_oauth_proxy::proxy::h1::parse_response;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let mut buf = BytesMut::from(&rest[..cut]);
    let mut fed = cut;
    let head = loop {
        match parse_response(&mut buf, &Method::POST) {
            Ok(Some(head)) => break head,
            Ok(None) if fed < rest.len() => {
                buf.extend_from_slice(&rest[fed..]);
                fed = rest.len();
            }
            _ => return,
        }
    };
    let mut body = head.body;
    let mut total = 0usize;
    loop {
        match body.decode(&mut buf) {
            Ok(Some(data)) => {
                assert!(!data.is_empty());
                total += data.len();
                assert!(total <= rest.len());
            }
            Ok(None) if fed < rest.len() => {
                buf.extend_from_slice(&rest[fed..]);
                fed = rest.len();
            }
            _ => break,
        }
    }
});
