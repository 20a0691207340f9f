//! Logging setup, and the access log. Log lines name requests, routes, users
//! and clients; they never carry tokens, codes, passwords, cookies or upstream
//! credentials.

use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Logs to stderr at `info` unless `MCP_OAUTH_PROXY_LOG` (or `RUST_LOG`) says otherwise.
pub fn init() {
    let filter = EnvFilter::try_from_env("MCP_OAUTH_PROXY_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .fmt_fields(EscapedFields)
        .try_init();
}

/// Writes every log line's fields through the access log's escaper, so that no
/// value (a client id, a tool name, a username, an error's text: many come from
/// outside) can end a line or forge a field: `key=value` with control
/// characters, spaces and backslashes as `\xNN`; the message keeps its spaces.
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = EscapingVisitor(Vec::new());
        fields.record(&mut visitor);
        writer.write_str(&String::from_utf8_lossy(&visitor.0))
    }
}

struct EscapingVisitor(Vec<u8>);

impl EscapingVisitor {
    fn field(&mut self, field: &Field, value: &str) {
        if !self.0.is_empty() {
            self.0.push(b' ');
        }
        if field.name() == "message" {
            escape(&mut self.0, value, |b| {
                *b >= b' ' && *b != 0x7f && *b != b'\\'
            });
            return;
        }
        self.0.extend_from_slice(field.name().as_bytes());
        self.0.push(b'=');
        // A `Debug` string comes quoted with its own escapes: only its quotes go.
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if value
            .bytes()
            .all(|b| b > b' ' && b != 0x7f && b != b'\\' && b != b'"')
        {
            self.0.extend_from_slice(value.as_bytes());
        } else {
            // Quoted, so that spaces stay readable and cannot start a field of their own.
            self.0.push(b'"');
            escape(&mut self.0, value, |b| {
                *b >= b' ' && *b != 0x7f && *b != b'\\' && *b != b'"'
            });
            self.0.push(b'"');
        }
    }
}

impl Visit for EscapingVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.field(field, &format!("{value:?}"));
    }
}

/// Facts a handler learned that belong in the access log line.
#[derive(Clone, Debug, Default)]
pub struct AccessInfo {
    pub route: Option<String>,
    pub user: Option<String>,
    pub client: Option<String>,
}

/// One request, as the access log states it.
pub struct Access<'a> {
    pub method: &'a str,
    /// The path only: query strings carry codes and state that must not be logged.
    pub path: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub route: Option<&'a str>,
    pub user: Option<&'a str>,
    pub client: Option<&'a str>,
    pub peer: &'a str,
}

/// Writes the access line of a request to stderr, in the format of the other log
/// lines (`<time>  INFO access: method=… path=… status=… latency_ms=… route=… user=…
/// client=… peer=…`), with one `write`. It is formatted here rather than by
/// `tracing`'s formatter, which costs more than the rest of a forwarded request;
/// the log filter still decides (`MCP_OAUTH_PROXY_LOG=info,access=warn` turns it off).
pub fn access(line: &Access) {
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        format_access(buf, SystemTime::now(), line);
        let _ = std::io::stderr().lock().write_all(buf);
    });
}

fn format_access(buf: &mut Vec<u8>, now: SystemTime, line: &Access) {
    timestamp(buf, now);
    buf.extend_from_slice(b"  INFO access: method=");
    text(buf, line.method);
    buf.extend_from_slice(b" path=");
    text(buf, line.path);
    buf.extend_from_slice(b" status=");
    number(buf, u64::from(line.status), 1);
    buf.extend_from_slice(b" latency_ms=");
    let micros = u64::try_from(line.latency.as_micros()).unwrap_or(u64::MAX);
    number(buf, micros / 1000, 1);
    buf.push(b'.');
    number(buf, micros % 1000, 3);
    for (key, value) in [
        (&b" route="[..], line.route),
        (b" user=", line.user),
        (b" client=", line.client),
    ] {
        buf.extend_from_slice(key);
        text(buf, value.unwrap_or("-"));
    }
    buf.extend_from_slice(b" peer=");
    text(buf, line.peer);
    buf.push(b'\n');
}

/// A value as it is, but control characters, spaces and backslashes escaped, so
/// that a line stays one line and its fields stay apart.
fn text(buf: &mut Vec<u8>, s: &str) {
    escape(buf, s, |b| *b > b' ' && *b != 0x7f && *b != b'\\');
}

/// `s` with every byte that is not `plain` written as `\xNN`.
fn escape(buf: &mut Vec<u8>, s: &str, plain: impl Fn(&u8) -> bool + Copy) {
    let mut rest = s.as_bytes();
    if rest.iter().all(plain) {
        buf.extend_from_slice(rest);
        return;
    }
    while let Some(i) = rest.iter().position(|b| !plain(b)) {
        let b = rest[i];
        buf.extend_from_slice(&rest[..i]);
        buf.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]);
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `n` in decimal, zero-padded to at least `width` digits.
fn number(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 && digits.len() - i >= width {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// RFC 3339 UTC with microseconds, as `tracing_subscriber` writes it:
/// `2026-11-26T12:24:02.230067Z`.
fn timestamp(buf: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(days);
    let rem = secs % 86_400;
    number(buf, y, 4);
    buf.push(b'-');
    number(buf, m, 2);
    buf.push(b'-');
    number(buf, d, 2);
    buf.push(b'T');
    number(buf, rem / 3600, 2);
    buf.push(b':');
    number(buf, rem / 60 % 60, 2);
    buf.push(b':');
    number(buf, rem % 60, 2);
    buf.push(b'.');
    number(buf, u64::from(since.subsec_micros()), 6);
    buf.push(b'Z');
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_log_format() {
        let mut buf = Vec::new();
        let at = UNIX_EPOCH + Duration::new(1_795_695_842, 230_067_999);
        format_access(
            &mut buf,
            at,
            &Access {
                method: "POST",
                path: "/notes/mcp",
                status: 200,
                latency: Duration::from_nanos(675_143),
                route: Some("notes"),
                user: Some("alice"),
                client: None,
                peer: "::1",
            },
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2026-11-26T12:24:02.230067Z  INFO access: method=POST path=/notes/mcp status=200 \
             latency_ms=0.675 route=notes user=alice client=- peer=::1\n"
        );
    }

    #[test]
    fn log_lines_cannot_be_forged_through_any_field() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(sink.clone()))
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .finish();
        let forged = "c1\r\n2026-01-01T00:00:00Z  INFO audit: login succeeded user=admin";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "audit", client = %forged, tool = ?forged, "refused {}", "x\ny");
        });
        let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.contains(
                "refused x\\x0ay client=\"c1\\x0d\\x0a2026-01-01T00:00:00Z  INFO audit: login succeeded user=admin\" "
            ),
            "{out}"
        );
        assert!(out.contains(" tool=\"c1\\x5cr\\x5cn2026-"), "{out}");
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_values_stay_as_they_are_and_quotes_cannot_close_a_quoted_value() {
        let mut v = EscapingVisitor(Vec::new());
        let fields = tracing::field::FieldSet::new(
            &["route", "reason", "error"],
            tracing::callsite::Identifier(&CALLSITE),
        );
        let mut names = fields.iter();
        let (route, reason, error) = (
            names.next().unwrap(),
            names.next().unwrap(),
            names.next().unwrap(),
        );
        v.field(&route, "notes");
        v.field(&reason, "\"private or local address\"");
        v.field(&error, "a\" user=\"admin");
        assert_eq!(
            String::from_utf8(v.0).unwrap(),
            "route=notes reason=\"private or local address\" error=\"a\\x22 user=\\x22admin\""
        );
    }

    struct NoCallsite;
    static CALLSITE: NoCallsite = NoCallsite;
    impl tracing::callsite::Callsite for NoCallsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!()
        }
    }

    #[test]
    fn fields_stay_on_one_line() {
        let mut buf = Vec::new();
        text(&mut buf, "a b\nc\\d\u{7f}é");
        assert_eq!(buf, "a\\x20b\\x0ac\\x5cd\\x7fé".as_bytes());
    }

    #[test]
    fn dates_match_the_calendar() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (11_016, (2000, 2, 29)),
            (11_017, (2000, 3, 1)),
            (20_783, (2026, 11, 26)),
            (47_541, (2100, 3, 1)),
        ] {
            assert_eq!(civil_from_days(days), date, "day {days}");
        }
        let mut buf = Vec::new();
        number(&mut buf, 7, 3);
        number(&mut buf, 12_345, 2);
        number(&mut buf, 0, 1);
        assert_eq!(buf, b"007123450");
    }
}
