//! The stdio line framer on arbitrary bytes cut at an arbitrary point: the same
//! lines come out however the input is cut, none holds a newline or is empty,
//! and none is longer than the limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_oauth_proxy::stdio::framing::LineFramer;

const MAX: usize = 64;

fn lines(chunks: &[&[u8]]) -> Result<Vec<bytes::Bytes>, ()> {
    let mut f = LineFramer::new(MAX);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(f.push(c).map_err(|_| ())?);
    }
    out.extend(f.finish().map_err(|_| ())?);
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let whole = lines(&[data]);
    let split = lines(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, split);
    for l in whole.iter().flatten() {
        assert!(!l.is_empty() && l.len() <= MAX && !l.contains(&b'\n'));
    }
});
