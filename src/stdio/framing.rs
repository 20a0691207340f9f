//! The stdio transport's framing: one JSON-RPC message per line, split out of
//! whatever chunks the child's stdout arrives in. Pure: no I/O.

use bytes::{Bytes, BytesMut};

/// A line longer than the framer's limit: the child's session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the MCP server wrote a line longer than {max} bytes")]
pub struct LineTooLong {
    pub max: usize,
}

/// Splits a byte stream into lines of at most `max` bytes. A line ends at `\n`;
/// a `\r` before it is dropped, and lines of only whitespace are skipped. The
/// partial line held between chunks never grows past `max` bytes (plus one chunk).
pub struct LineFramer {
    buf: BytesMut,
    /// How much of `buf` is known to hold no `\n`.
    scanned: usize,
    max: usize,
}

impl LineFramer {
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            scanned: 0,
            max,
        }
    }

    /// Takes the next chunk; returns the lines it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(at) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
            let end = self.scanned + at;
            let mut line = self.buf.split_to(end + 1);
            self.scanned = 0;
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(line.len() - 1);
            }
            if line.len() > self.max {
                return Err(LineTooLong { max: self.max });
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(line.freeze());
            }
        }
        self.scanned = self.buf.len();
        // One byte more than a line may hold: the `\r` of a `\r\n` still to come.
        if self.buf.len() > self.max + 1 {
            return Err(LineTooLong { max: self.max });
        }
        Ok(lines)
    }

    /// At the end of the stream: the last line if it had no newline.
    pub fn finish(&mut self) -> Result<Option<Bytes>, LineTooLong> {
        self.scanned = 0;
        let rest = self.buf.split().freeze();
        if rest.len() > self.max {
            return Err(LineTooLong { max: self.max });
        }
        Ok((!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(f: &mut LineFramer, chunk: &[u8]) -> Vec<String> {
        f.push(chunk)
            .unwrap()
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn lines_come_out_whole_whatever_the_chunks() {
        let mut f = LineFramer::new(100);
        assert!(lines(&mut f, b"{\"a\":").is_empty());
        assert_eq!(lines(&mut f, b"1}\n{\"b\""), ["{\"a\":1}"]);
        assert_eq!(lines(&mut f, b":2}\r\n\n  \n{}\n"), ["{\"b\":2}", "{}"]);
        assert_eq!(f.finish(), Ok(None));
    }

    #[test]
    fn an_unterminated_last_line_is_handed_out_at_the_end() {
        let mut f = LineFramer::new(100);
        assert!(lines(&mut f, b"{\"tail\":true}").is_empty());
        assert_eq!(
            f.finish().unwrap().as_deref(),
            Some(&b"{\"tail\":true}"[..])
        );
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_even_before_its_newline() {
        let mut f = LineFramer::new(8);
        assert_eq!(lines(&mut f, b"12345678\n"), ["12345678"]);
        assert_eq!(f.push(b"123456789\n"), Err(LineTooLong { max: 8 }));
        let mut f = LineFramer::new(8);
        assert!(f.push(b"12345").is_ok());
        assert_eq!(f.push(b"67890"), Err(LineTooLong { max: 8 }));
        let mut f = LineFramer::new(8);
        assert!(f.push(b"123456789").is_ok(), "a \\r may still come");
        assert_eq!(f.finish(), Err(LineTooLong { max: 8 }));
    }

    proptest! {
        /// However the input is cut, the same lines come out; none holds a newline
        /// or exceeds the limit.
        #[test]
        fn chunking_does_not_change_the_lines(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b' '), any::<u8>()], 0..200),
            cut in 0usize..200,
        ) {
            let cut = cut.min(input.len());
            let mut whole = LineFramer::new(32);
            let one = whole.push(&input).and_then(|mut l| {
                l.extend(whole.finish()?);
                Ok(l)
            });
            let mut split = LineFramer::new(32);
            let two = split.push(&input[..cut]).and_then(|mut l| {
                l.extend(split.push(&input[cut..])?);
                l.extend(split.finish()?);
                Ok(l)
            });
            prop_assert_eq!(&one, &two);
            for l in one.iter().flatten() {
                prop_assert!(!l.contains(&b'\n') && l.len() <= 32 && !l.is_empty());
            }
        }
    }
}
