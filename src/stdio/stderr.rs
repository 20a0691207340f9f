//! A child's stderr in the proxy's log: line by line, each line cut at
//! [`MAX_LINE`] bytes, at most [`BURST`] lines at once and [`PER_SECOND`] on
//! average per process; lines over that are counted and the count logged.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

const MAX_LINE: usize = 4096;
const BURST: f64 = 50.0;
const PER_SECOND: f64 = 10.0;

/// Splits stderr bytes into lines, cutting long ones (the rest of such a line is skipped).
#[derive(Default)]
pub(super) struct Lines {
    partial: Vec<u8>,
    /// The current line was cut: skip to its end.
    skipping: bool,
}

impl Lines {
    /// The lines `chunk` completes.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            let (text, ends) = match piece.strip_suffix(b"\n") {
                Some(t) => (t, true),
                None => (piece, false),
            };
            if !self.skipping {
                let room = MAX_LINE - self.partial.len();
                if text.len() > room {
                    self.partial.extend_from_slice(&text[..room]);
                    out.push(self.take(true));
                    self.skipping = true;
                } else {
                    self.partial.extend_from_slice(text);
                }
            }
            if ends {
                if self.skipping {
                    self.skipping = false;
                } else {
                    out.push(self.take(false));
                }
            }
        }
        out
    }

    /// The unfinished last line, at the end of the stream.
    pub(super) fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty() && !self.skipping).then(|| self.take(false))
    }

    fn take(&mut self, cut: bool) -> String {
        let bytes = std::mem::take(&mut self.partial);
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_end_matches('\r');
        if cut {
            format!("{text}…")
        } else {
            text.to_string()
        }
    }
}

/// A token bucket: `allow` says whether a line may be logged now.
pub(super) struct RateLimit {
    tokens: f64,
    at: Instant,
    /// Lines refused since the last one logged.
    pub dropped: u64,
}

impl RateLimit {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            tokens: BURST,
            at: now,
            dropped: 0,
        }
    }

    pub(super) fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * PER_SECOND).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

/// Logs `stderr` until it ends, tagged with the route and the process id.
pub(super) async fn log(route: &str, pid: u32, mut stderr: impl AsyncRead + Unpin) {
    let mut lines = Lines::default();
    let mut limit = RateLimit::new(Instant::now());
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for line in lines.push(&buf[..n]) {
            emit(route, pid, &mut limit, &line);
        }
    }
    if let Some(line) = lines.finish() {
        emit(route, pid, &mut limit, &line);
    }
    if limit.dropped > 0 {
        tracing::info!(
            route,
            pid,
            dropped = limit.dropped,
            "stdio server stderr: lines dropped (rate limit)"
        );
    }
}

fn emit(route: &str, pid: u32, limit: &mut RateLimit, line: &str) {
    if !limit.allow(Instant::now()) {
        return;
    }
    if limit.dropped > 0 {
        tracing::info!(
            route,
            pid,
            dropped = limit.dropped,
            "stdio server stderr: lines dropped (rate limit)"
        );
        limit.dropped = 0;
    }
    tracing::info!(route, pid, "stdio server stderr: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Duration;

    #[test]
    fn lines_are_split_and_long_ones_cut() {
        let mut l = Lines::default();
        assert_eq!(l.push(b"one\r\ntw"), ["one"]);
        assert_eq!(l.push(b"o\n\nthree"), ["two", ""]);
        assert_eq!(l.finish().as_deref(), Some("three"));
        let long = vec![b'x'; MAX_LINE + 10];
        let out = l.push(&long);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), MAX_LINE + "…".len());
        assert_eq!(
            l.push(b"yyy\nnext\n"),
            ["next"],
            "the rest of the cut line is skipped"
        );
    }

    #[test]
    fn a_burst_is_logged_then_lines_are_dropped_until_the_bucket_refills() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(t0);
        let allowed = (0..100).filter(|_| r.allow(t0)).count();
        assert_eq!(allowed, BURST as usize);
        assert_eq!(r.dropped, 100 - BURST as u64);
        assert!(r.allow(t0 + Duration::from_millis(150)), "1.5 tokens back");
        assert!(!r.allow(t0 + Duration::from_millis(150)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| r.allow(later)).count(), BURST as usize);
    }
}
