//! The byte-level pieces every log format shares: escaping, numbers, timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

/// A value as it is, but control characters, spaces and backslashes escaped, so
/// that a line stays one line and its fields stay apart.
pub(super) fn text(buf: &mut Vec<u8>, s: &str) {
    escape(buf, s, |b| *b > b' ' && *b != 0x7f && *b != b'\\');
}

/// `s` with every byte that is not `plain` written as `\xNN`.
pub(super) fn escape(buf: &mut Vec<u8>, s: &str, plain: impl Fn(&u8) -> bool + Copy) {
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
pub(super) fn number(buf: &mut Vec<u8>, mut n: u64, width: usize) {
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
pub(super) fn timestamp(buf: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    date_time(buf, since.as_secs());
    buf.push(b'.');
    number(buf, u64::from(since.subsec_micros()), 6);
    buf.push(b'Z');
}

/// `2026-11-26T12:24:02` (UTC) of Unix seconds.
fn date_time(buf: &mut Vec<u8>, secs: u64) {
    let (y, m, d) = civil_from_days(secs / 86_400);
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
}

/// RFC 3339 UTC to the second (`2026-11-26T12:24:02Z`) of Unix seconds: for people to read.
pub fn utc_seconds(secs: u64) -> String {
    let mut buf = Vec::with_capacity(20);
    date_time(&mut buf, secs);
    buf.push(b'Z');
    String::from_utf8_lossy(&buf).into_owned()
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub(super) fn civil_from_days(days: u64) -> (u64, u64, u64) {
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

/// `s` as a JSON string, quotes included: `"` and `\` escaped, control
/// characters as `\n`, `\r`, `\t` or `\u00XX` (and DEL as `\u007f`), so that a
/// value can neither end the line nor the string.
pub(super) fn json_string(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let plain = |b: &u8| *b >= b' ' && *b != 0x7f && *b != b'\\' && *b != b'"';
    let mut rest = s.as_bytes();
    while let Some(i) = rest.iter().position(|b| !plain(b)) {
        buf.extend_from_slice(&rest[..i]);
        match rest[i] {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b => buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
    buf.push(b'"');
}

/// `s` as a JSON string, or `null`.
pub(super) fn json_opt(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_string(buf, s),
        None => buf.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_stay_on_one_line() {
        let mut buf = Vec::new();
        text(&mut buf, "a b\nc\\d\u{7f}é");
        assert_eq!(buf, "a\\x20b\\x0ac\\x5cd\\x7fé".as_bytes());
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        let nasty = "a\"b\\c\nd\re\tf\u{1}g\u{7f}h é \u{2028}";
        let mut buf = Vec::new();
        json_string(&mut buf, nasty);
        let out = String::from_utf8(buf).unwrap();
        assert_eq!(
            out,
            "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh é \u{2028}\""
        );
        assert!(!out.bytes().any(|b| b < b' '));
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, nasty);
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
        assert_eq!(
            utc_seconds(20_783 * 86_400 + 44_642),
            "2026-11-26T12:24:02Z"
        );
        let mut buf = Vec::new();
        number(&mut buf, 7, 3);
        number(&mut buf, 12_345, 2);
        number(&mut buf, 0, 1);
        assert_eq!(buf, b"007123450");
    }
}
