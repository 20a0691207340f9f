//! Server-sent events (WHATWG HTML §9.2) as a pure, incremental decoder: bytes
//! in, whole events out, each with its exact bytes so it can be forwarded
//! untouched. Lines end with CRLF, LF or CR; an empty line ends an event.

use bytes::{Bytes, BytesMut};

/// Splits a byte stream into raw events.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
    /// Where scanning for line ends resumes.
    scanned: usize,
    /// Where the current line starts.
    line_start: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TooLarge;

impl Decoder {
    /// The largest event held while waiting for its end.
    pub const MAX_EVENT: usize = 32 * 1024 * 1024;

    /// Adds bytes; returns the events they complete, each ending with its blank line.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, TooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut i = self.scanned;
        while i < self.buf.len() {
            let end = match self.buf[i] {
                b'\n' => i + 1,
                b'\r' if i + 1 < self.buf.len() => {
                    if self.buf[i + 1] == b'\n' {
                        i + 2
                    } else {
                        i + 1
                    }
                }
                // A CR as the last byte: it may be half of a CRLF; wait for more.
                b'\r' => break,
                _ => {
                    i += 1;
                    continue;
                }
            };
            if i == self.line_start {
                // An empty line: the event ends here.
                events.push(self.buf.split_to(end).freeze());
                i = 0;
                self.line_start = 0;
            } else {
                i = end;
                self.line_start = end;
            }
        }
        self.scanned = i;
        if self.buf.len() > Self::MAX_EVENT {
            return Err(TooLarge);
        }
        Ok(events)
    }

    /// Whether no partial event is held (a keep-alive comment may be sent now).
    pub fn at_boundary(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes of an unfinished event when the stream ends.
    pub fn finish(&mut self) -> Bytes {
        self.scanned = 0;
        self.line_start = 0;
        self.buf.split().freeze()
    }
}

/// The fields of one event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub event: Option<String>,
    /// The `data` lines joined with `\n`; `None` when the event has none.
    pub data: Option<String>,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

/// Parses the lines of one raw event.
pub fn fields(raw: &[u8]) -> Fields {
    let text = String::from_utf8_lossy(raw);
    let mut f = Fields::default();
    let mut data: Vec<&str> = Vec::new();
    for line in lines(&text) {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match name {
            "event" => f.event = Some(value.to_string()),
            "data" => data.push(value),
            "id" if !value.contains('\0') => f.id = Some(value.to_string()),
            "retry" => f.retry = value.parse().ok().or(f.retry),
            _ => {}
        }
    }
    if !data.is_empty() {
        f.data = Some(data.join("\n"));
    }
    f
}

/// Lines split at CRLF, LF or CR.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\r', '\n']) {
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
            Some(i) => {
                let line = &rest[..i];
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
                Some(line)
            }
        }
    })
}

/// One event carrying `data` (each line of it a `data:` line), with an optional type and id.
pub fn encode(event: Option<&str>, id: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(e) = event {
        out.push_str("event: ");
        out.push_str(e);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b": comment\r\nid: 1\r\nevent: message\r\ndata: {\"a\":1}\r\n\r\ndata: line1\ndata: line2\nretry: 500\n\ndata:x\r\rid: 3\n\n";

    fn all_events(chunks: &[&[u8]]) -> Vec<Bytes> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(d.push(c).unwrap());
        }
        assert!(d.at_boundary(), "nothing left over");
        out
    }

    #[test]
    fn events_with_every_line_ending() {
        let events = all_events(&[STREAM]);
        assert_eq!(events.len(), 4);
        assert_eq!(events.concat(), STREAM, "bytes are kept exactly");
        let f = fields(&events[0]);
        assert_eq!(
            (f.id.as_deref(), f.event.as_deref(), f.data.as_deref()),
            (Some("1"), Some("message"), Some("{\"a\":1}"))
        );
        let f = fields(&events[1]);
        assert_eq!(
            (f.data.as_deref(), f.retry),
            (Some("line1\nline2"), Some(500))
        );
        assert_eq!(
            fields(&events[2]).data.as_deref(),
            Some("x"),
            "CR CR ends an event"
        );
        assert_eq!(fields(&events[3]).id.as_deref(), Some("3"));
    }

    #[test]
    fn splitting_at_every_byte_boundary_gives_the_same_events() {
        let whole = all_events(&[STREAM]);
        for cut in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(cut);
            assert_eq!(all_events(&[a, b]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(all_events(&bytes), whole, "one byte at a time");
    }

    #[test]
    fn a_trailing_cr_waits_for_the_next_chunk() {
        let mut d = Decoder::default();
        assert!(d.push(b"data: a\r\n\r").unwrap().is_empty());
        let e = d.push(b"\ndata: b\n\n").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(&e[0][..], b"data: a\r\n\r\n");
    }

    #[test]
    fn comments_only_and_unfinished_events() {
        let mut d = Decoder::default();
        let e = d.push(b":\n\ndata: partial").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(fields(&e[0]), Fields::default());
        assert!(!d.at_boundary());
        assert_eq!(&d.finish()[..], b"data: partial");
        assert!(d.at_boundary());
    }

    #[test]
    fn encode_round_trips() {
        let raw = encode(Some("endpoint"), Some("7"), "/a\nb");
        let f = fields(&raw);
        assert_eq!(
            (f.event.as_deref(), f.id.as_deref(), f.data.as_deref()),
            (Some("endpoint"), Some("7"), Some("/a\nb"))
        );
    }
}
