//! OAuth form / query-string parsing: never panics, accepts exactly the inputs
//! whose parameter names are all distinct, and what it accepts survives a
//! re-encode and re-parse unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
// `web::forms` before the refactor that moved it.
use mcp_oauth_proxy::oauth::form::parse;

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    let distinct = names.windows(2).all(|w| w[0] != w[1]);

    match parse(data) {
        Ok(map) => {
            assert!(distinct, "a repeated parameter was accepted");
            assert_eq!(map.len(), pairs.len());
            for (k, v) in &pairs {
                assert_eq!(map.get(k), Some(v));
            }
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &map {
                ser.append_pair(k, v);
            }
            let again = parse(ser.finish().as_bytes()).expect("re-encoded form refused");
            assert_eq!(again, map);
        }
        Err(_) => assert!(!distinct, "a form without repeated parameters was refused"),
    }
});
