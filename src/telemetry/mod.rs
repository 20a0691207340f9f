//! Logging setup, and the access log. Log lines name requests, routes, users
//! and clients; they never carry tokens, codes, passwords, cookies or upstream
//! credentials.

mod access;
pub mod audit;
mod fmt;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub use access::{Access, AccessInfo, access};
pub use fmt::utc_seconds;
use fmt::{escape, json_string, timestamp};

/// How log lines are written: `log.format` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `<time>  LEVEL target: message key=value …`
    #[default]
    Text,
    /// One JSON object per line: `time`, `level`, `target`, `message` and the fields.
    Json,
}

/// The `log:` section of the config.
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info,mcp_oauth_proxy=debug`; `None`: `info`.
    /// `MCP_OAUTH_PROXY_LOG` (or `RUST_LOG`) overrides it.
    pub filter: Option<String>,
}

static JSON: AtomicBool = AtomicBool::new(false);

fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Logs to stderr in `log.format`, filtered by `MCP_OAUTH_PROXY_LOG` (or
/// `RUST_LOG`), else `log.filter`, else `info`; opens the audit file when one
/// is configured (else audit events go to the log with target `audit`).
pub fn init(log: &LogSettings, audit_path: Option<&Path>) -> Result<(), String> {
    if let Some(path) = audit_path {
        audit::open(path)
            .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))?;
    }
    let filter = EnvFilter::try_from_env("MCP_OAUTH_PROXY_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| {
            EnvFilter::try_new(log.filter.as_deref().unwrap_or("info"))
                .unwrap_or_else(|_| EnvFilter::new("info"))
        });
    JSON.store(log.format == LogFormat::Json, Ordering::Relaxed);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .fmt_fields(EscapedFields);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
    };
    Ok(())
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

/// The JSON log format: one object per line, `time`, `level`, `target`,
/// `message` and each field (numbers and booleans as such, the rest as
/// strings), every string escaped so that no value can end the line.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut buf = Vec::with_capacity(256);
        json_event(&mut buf, SystemTime::now(), event);
        writer.write_str(&String::from_utf8_lossy(&buf))
    }
}

fn json_event(buf: &mut Vec<u8>, now: SystemTime, event: &tracing::Event<'_>) {
    let meta = event.metadata();
    buf.extend_from_slice(b"{\"time\":\"");
    timestamp(buf, now);
    buf.extend_from_slice(b"\",\"level\":\"");
    buf.extend_from_slice(meta.level().as_str().as_bytes());
    buf.extend_from_slice(b"\",\"target\":");
    json_string(buf, meta.target());
    event.record(&mut JsonVisitor(buf));
    buf.extend_from_slice(b"}\n");
}

struct JsonVisitor<'a>(&'a mut Vec<u8>);

impl JsonVisitor<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(b',');
        json_string(self.0, field.name());
        self.0.push(b':');
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        json_string(self.0, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.0.extend_from_slice(value.to_string().as_bytes());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.0.extend_from_slice(value.to_string().as_bytes());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.key(field);
        json_string(self.0, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A log writer that collects what it is given (the audit tests use it too).
    pub(super) struct Sink(pub(super) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

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
    fn json_log_lines_parse_and_keep_every_field_apart() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(sink.clone()))
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .event_format(JsonLines)
            .finish();
        let forged = "c1\"}\n{\"level\":\"INFO\",\"message\":\"login succeeded\u{1}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "audit", client = %forged, tool = ?forged, n = 3u64, ok = true, "refused {}", "x\ny");
        });
        let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "audit");
        assert_eq!(v["message"], "refused x\ny");
        assert_eq!(v["client"], forged);
        assert_eq!(v["tool"], format!("{forged:?}"));
        assert_eq!(v["n"], 3);
        assert_eq!(v["ok"], true);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
