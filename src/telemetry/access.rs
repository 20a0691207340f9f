//! The access log: one line per request, written by hand with one `write`
//! from a reused buffer (`tracing`'s formatter costs more than the rest of a
//! forwarded request), in the format of the other log lines (text or JSON).

use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, SystemTime};

use super::fmt::{json_opt, json_string, number, text, timestamp};

/// Facts a handler learned that belong in the access log line.
#[derive(Clone, Debug, Default)]
pub struct AccessInfo {
    pub route: Option<String>,
    pub user: Option<String>,
    pub client: Option<String>,
    /// The `upstream_auth` rule used (its `name` or index), when the route has rules.
    pub upstream_auth: Option<String>,
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
    /// The `upstream_auth` rule used; written only when there is one.
    pub upstream_auth: Option<&'a str>,
}

/// Writes the access line of a request to stderr with one `write`: text
/// (`<time>  INFO access: method=… path=… status=… latency_ms=… route=… user=…
/// client=… peer=…`) or, with `log.format: json`, one JSON object. The log
/// filter still decides (`MCP_OAUTH_PROXY_LOG=info,access=warn` turns it off).
pub fn access(line: &Access) {
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        if super::json() {
            format_json(buf, SystemTime::now(), line);
        } else {
            format_text(buf, SystemTime::now(), line);
        }
        let _ = std::io::stderr().lock().write_all(buf);
    });
}

fn latency_ms(buf: &mut Vec<u8>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    number(buf, micros / 1000, 1);
    buf.push(b'.');
    number(buf, micros % 1000, 3);
}

fn format_text(buf: &mut Vec<u8>, now: SystemTime, line: &Access) {
    timestamp(buf, now);
    buf.extend_from_slice(b"  INFO access: method=");
    text(buf, line.method);
    buf.extend_from_slice(b" path=");
    text(buf, line.path);
    buf.extend_from_slice(b" status=");
    number(buf, u64::from(line.status), 1);
    buf.extend_from_slice(b" latency_ms=");
    latency_ms(buf, line.latency);
    for (key, value) in [
        (&b" route="[..], line.route),
        (b" user=", line.user),
        (b" client=", line.client),
    ] {
        buf.extend_from_slice(key);
        text(buf, value.unwrap_or("-"));
    }
    if let Some(rule) = line.upstream_auth {
        buf.extend_from_slice(b" upstream_auth=");
        text(buf, rule);
    }
    buf.extend_from_slice(b" peer=");
    text(buf, line.peer);
    buf.push(b'\n');
}

fn format_json(buf: &mut Vec<u8>, now: SystemTime, line: &Access) {
    buf.extend_from_slice(b"{\"time\":\"");
    timestamp(buf, now);
    buf.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"access\",\"method\":");
    json_string(buf, line.method);
    buf.extend_from_slice(b",\"path\":");
    json_string(buf, line.path);
    buf.extend_from_slice(b",\"status\":");
    number(buf, u64::from(line.status), 1);
    buf.extend_from_slice(b",\"latency_ms\":");
    latency_ms(buf, line.latency);
    for (key, value) in [
        (&b",\"route\":"[..], line.route),
        (b",\"user\":", line.user),
        (b",\"client\":", line.client),
    ] {
        buf.extend_from_slice(key);
        json_opt(buf, value);
    }
    if let Some(rule) = line.upstream_auth {
        buf.extend_from_slice(b",\"upstream_auth\":");
        json_string(buf, rule);
    }
    buf.extend_from_slice(b",\"peer\":");
    json_string(buf, line.peer);
    buf.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn request<'a>(user: Option<&'a str>, path: &'a str) -> Access<'a> {
        Access {
            method: "POST",
            path,
            status: 200,
            latency: Duration::from_nanos(675_143),
            route: Some("notes"),
            user,
            client: None,
            peer: "::1",
            upstream_auth: None,
        }
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_795_695_842, 230_067_999)
    }

    #[test]
    fn lines_have_the_log_format() {
        let mut buf = Vec::new();
        format_text(&mut buf, at(), &request(Some("alice"), "/notes/mcp"));
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2026-11-26T12:24:02.230067Z  INFO access: method=POST path=/notes/mcp status=200 \
             latency_ms=0.675 route=notes user=alice client=- peer=::1\n"
        );
    }

    #[test]
    fn json_lines_are_one_object_with_every_field() {
        let mut buf = Vec::new();
        format_json(&mut buf, at(), &request(Some("alice"), "/notes/mcp"));
        let out = String::from_utf8(buf).unwrap();
        assert_eq!(
            out,
            "{\"time\":\"2026-11-26T12:24:02.230067Z\",\"level\":\"INFO\",\"target\":\"access\",\
             \"method\":\"POST\",\"path\":\"/notes/mcp\",\"status\":200,\"latency_ms\":0.675,\
             \"route\":\"notes\",\"user\":\"alice\",\"client\":null,\"peer\":\"::1\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["latency_ms"], 0.675);
        assert_eq!(v["status"], 200);
    }

    #[test]
    fn json_lines_cannot_be_forged_through_a_field() {
        let forged = "x\",\"user\":\"admin\"}\n{\"time\":\"\\";
        let mut buf = Vec::new();
        format_json(&mut buf, at(), &request(Some(forged), "/a\u{0}b\"c"));
        let out = String::from_utf8(buf).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["user"], forged);
        assert_eq!(v["path"], "/a\u{0}b\"c");
    }
}
