//! The audit log: one JSON line per security event, to the file of
//! `audit.path` (append, mode 0600, reopened on SIGHUP for logrotate) or, with
//! no `audit` section, to the log stream with target `audit`. An event carries
//! names (user, client, route, tool, scope) and the peer address, never a
//! token, code, password or secret: there is no field that could hold one.

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::fmt::{json_opt, json_string, timestamp};

/// A security event. `user`, `client` and `route` are names; `ip` the peer.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    LoginSucceeded {
        user: &'a str,
        ip: IpAddr,
    },
    /// `user`: the name as typed (at most 64 characters).
    LoginFailed {
        user: &'a str,
        ip: IpAddr,
    },
    ConsentAllowed {
        user: &'a str,
        client: &'a str,
        route: &'a str,
        ip: IpAddr,
    },
    ConsentDenied {
        user: &'a str,
        client: &'a str,
        route: &'a str,
        ip: IpAddr,
    },
    /// An authorization code exchanged for tokens.
    TokenIssued {
        user: &'a str,
        client: &'a str,
        route: Option<&'a str>,
        ip: IpAddr,
    },
    TokenRefreshed {
        user: &'a str,
        client: &'a str,
        route: Option<&'a str>,
        ip: IpAddr,
    },
    /// A token revoked by its client (RFC 7009); `user` when the token was known.
    TokenRevoked {
        user: Option<&'a str>,
        client: &'a str,
        route: Option<&'a str>,
        ip: IpAddr,
    },
    /// A rotated refresh token (or a used authorization code) presented again
    /// after the grace window: the whole grant is revoked.
    ReuseDetected {
        user: &'a str,
        client: &'a str,
        route: Option<&'a str>,
        ip: Option<IpAddr>,
    },
    ClientRegistered {
        client: &'a str,
        ip: IpAddr,
    },
    /// A `tools/call` outside the token's scopes; `missing_scope` when one scope would allow it.
    ToolCallRefused {
        user: &'a str,
        client: &'a str,
        route: &'a str,
        tool: &'a str,
        missing_scope: Option<&'a str>,
        ip: IpAddr,
    },
    /// An MCP session (or legacy stream) of another user or client.
    SessionRefused {
        user: &'a str,
        client: &'a str,
        route: &'a str,
        ip: IpAddr,
    },
    /// Something an operator did through the admin API or the admin commands:
    /// `action` (`list_clients`, `list_grants`, `revoke`, `delete_client`) on
    /// `target` (kind and name: `("user", "alice")`), `grants` revoked; `ip`
    /// the admin's address (none when the command acted on the store directly).
    AdminAction {
        action: &'static str,
        target: Option<(&'static str, &'a str)>,
        user: Option<&'a str>,
        client: Option<&'a str>,
        grants: Option<usize>,
        ip: Option<IpAddr>,
    },
    /// The identity provider no longer confirms a person at a refresh: their grant ends.
    IdentityEnded {
        user: &'a str,
        client: &'a str,
        route: Option<&'a str>,
        ip: Option<IpAddr>,
    },
}

/// An event as flat fields, as both destinations write it.
#[derive(Default)]
struct Record<'a> {
    event: &'static str,
    message: &'static str,
    warn: bool,
    user: Option<&'a str>,
    client: Option<&'a str>,
    route: Option<&'a str>,
    tool: Option<&'a str>,
    missing_scope: Option<&'a str>,
    ip: Option<IpAddr>,
    admin: Option<AdminFields<'a>>,
}

/// What an `admin_action` line adds: `action`, `target` (`kind:name`), `grants`.
#[derive(Clone, Copy)]
struct AdminFields<'a> {
    action: &'static str,
    target: Option<(&'static str, &'a str)>,
    grants: Option<usize>,
}

impl AdminFields<'_> {
    fn target(&self) -> Option<String> {
        self.target.map(|(kind, name)| format!("{kind}:{name}"))
    }
}

impl<'a> Event<'a> {
    fn record(self) -> Record<'a> {
        use Event::*;
        let named = |event, message| Record {
            event,
            message,
            ..Record::default()
        };
        match self {
            LoginSucceeded { user, ip } => Record {
                user: Some(user),
                ip: Some(ip),
                ..named("login_succeeded", "login succeeded")
            },
            LoginFailed { user, ip } => Record {
                user: Some(user),
                ip: Some(ip),
                ..named("login_failed", "login failed")
            },
            ConsentAllowed {
                user,
                client,
                route,
                ip,
            } => Record {
                user: Some(user),
                client: Some(client),
                route: Some(route),
                ip: Some(ip),
                ..named("consent_allowed", "consent given")
            },
            ConsentDenied {
                user,
                client,
                route,
                ip,
            } => Record {
                user: Some(user),
                client: Some(client),
                route: Some(route),
                ip: Some(ip),
                ..named("consent_denied", "consent denied")
            },
            TokenIssued {
                user,
                client,
                route,
                ip,
            } => Record {
                user: Some(user),
                client: Some(client),
                route,
                ip: Some(ip),
                ..named("token_issued", "tokens issued")
            },
            TokenRefreshed {
                user,
                client,
                route,
                ip,
            } => Record {
                user: Some(user),
                client: Some(client),
                route,
                ip: Some(ip),
                ..named("token_refreshed", "tokens refreshed")
            },
            TokenRevoked {
                user,
                client,
                route,
                ip,
            } => Record {
                user,
                client: Some(client),
                route,
                ip: Some(ip),
                ..named("token_revoked", "token revoked")
            },
            ReuseDetected {
                user,
                client,
                route,
                ip,
            } => Record {
                user: Some(user),
                client: Some(client),
                route,
                ip,
                warn: true,
                ..named(
                    "reuse_detected",
                    "used token presented again: its grant is revoked",
                )
            },
            ClientRegistered { client, ip } => Record {
                client: Some(client),
                ip: Some(ip),
                ..named("client_registered", "client registered")
            },
            ToolCallRefused {
                user,
                client,
                route,
                tool,
                missing_scope,
                ip,
            } => Record {
                user: Some(user),
                client: Some(client),
                route: Some(route),
                tool: Some(tool),
                missing_scope,
                ip: Some(ip),
                warn: true,
                ..named("tool_call_refused", "tool call refused")
            },
            SessionRefused {
                user,
                client,
                route,
                ip,
            } => Record {
                user: Some(user),
                client: Some(client),
                route: Some(route),
                ip: Some(ip),
                warn: true,
                ..named("session_refused", "another user's MCP session refused")
            },
            IdentityEnded {
                user,
                client,
                route,
                ip,
            } => Record {
                user: Some(user),
                client: Some(client),
                route,
                ip,
                warn: true,
                ..named(
                    "identity_ended",
                    "the identity provider no longer confirms the person; grant revoked",
                )
            },
            AdminAction {
                action,
                target,
                user,
                client,
                grants,
                ip,
            } => Record {
                user,
                client,
                ip,
                admin: Some(AdminFields {
                    action,
                    target,
                    grants,
                }),
                ..named("admin_action", "admin action")
            },
        }
    }
}

impl Record<'_> {
    /// `{"time":…,"event":…,"user":…,"client":…,"route":…,"ip":…}` (null when
    /// unknown), plus `tool` and `missing_scope` for a refused tool call.
    fn json_line(&self, buf: &mut Vec<u8>, now: SystemTime) {
        buf.extend_from_slice(b"{\"time\":\"");
        timestamp(buf, now);
        buf.extend_from_slice(b"\",\"event\":");
        json_string(buf, self.event);
        for (key, value) in [
            (&b",\"user\":"[..], self.user),
            (b",\"client\":", self.client),
            (b",\"route\":", self.route),
        ] {
            buf.extend_from_slice(key);
            json_opt(buf, value);
        }
        buf.extend_from_slice(b",\"ip\":");
        json_opt(buf, self.ip.map(|ip| ip.to_string()).as_deref());
        if let Some(tool) = self.tool {
            buf.extend_from_slice(b",\"tool\":");
            json_string(buf, tool);
            buf.extend_from_slice(b",\"missing_scope\":");
            json_opt(buf, self.missing_scope);
        }
        if let Some(admin) = &self.admin {
            buf.extend_from_slice(b",\"action\":");
            json_string(buf, admin.action);
            buf.extend_from_slice(b",\"target\":");
            json_opt(buf, admin.target().as_deref());
            buf.extend_from_slice(b",\"grants\":");
            match admin.grants {
                Some(n) => buf.extend_from_slice(n.to_string().as_bytes()),
                None => buf.extend_from_slice(b"null"),
            }
        }
        buf.extend_from_slice(b"}\n");
    }

    fn to_log(&self) {
        let ip = self.ip.map(tracing::field::display);
        let (event, user, client, route, tool, missing_scope) = (
            self.event,
            self.user,
            self.client,
            self.route,
            self.tool,
            // A refused tool no scope would allow: `missing_scope=-`, as the log always said.
            self.missing_scope.or(self.tool.map(|_| "-")),
        );
        let action = self.admin.map(|a| a.action);
        let target = self.admin.and_then(|a| a.target());
        let grants = self.admin.and_then(|a| a.grants);
        if self.warn {
            tracing::warn!(target: "audit", event, user, client, route, tool, missing_scope, ip, action, target, grants, "{}", self.message);
        } else {
            tracing::info!(target: "audit", event, user, client, route, tool, missing_scope, ip, action, target, grants, "{}", self.message);
        }
    }
}

/// An open audit file and where it lives.
struct AuditFile {
    path: PathBuf,
    file: File,
}

impl AuditFile {
    fn open(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(AuditFile {
            path: path.to_path_buf(),
            file,
        })
    }
}

/// The destination: a file, or (`None`) the log stream.
struct AuditLog(Mutex<Option<AuditFile>>);

impl AuditLog {
    fn write(&self, event: Event<'_>, now: SystemTime) {
        let record = event.record();
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(out) = guard.as_mut() else {
            drop(guard);
            record.to_log();
            return;
        };
        let mut line = Vec::with_capacity(256);
        record.json_line(&mut line, now);
        // One `write` of a whole line to a file opened for appending.
        if let Err(e) = out.file.write_all(&line) {
            let path = out.path.display().to_string();
            drop(guard);
            tracing::error!(error = %e, path, "cannot write to the audit log");
            record.to_log();
        }
    }

    fn reopen(&self) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(out) = guard.as_mut() else { return };
        match AuditFile::open(&out.path) {
            Ok(new) => *out = new,
            Err(e) => {
                let path = out.path.display().to_string();
                drop(guard);
                tracing::error!(error = %e, path, "cannot reopen the audit log: still writing to the old file");
            }
        }
    }
}

static LOG: AuditLog = AuditLog(Mutex::new(None));

/// Records a security event.
pub fn event(event: Event<'_>) {
    LOG.write(event, SystemTime::now());
}

/// From now on, events go to this file (created with mode 0600, appended to).
pub fn open(path: &Path) -> std::io::Result<()> {
    let file = AuditFile::open(path)?;
    *LOG.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

/// Opens the audit file's path again (after logrotate renamed it); on failure
/// the old file stays. Nothing to do without an audit file.
pub fn reopen() {
    LOG.reopen();
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn ip() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn events_are_json_lines_with_the_schema_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog(Mutex::new(Some(AuditFile::open(&path).unwrap())));
        log.write(
            Event::LoginFailed {
                user: "mallory",
                ip: ip(),
            },
            SystemTime::now(),
        );
        log.write(
            Event::ToolCallRefused {
                user: "alice",
                client: "c1",
                route: "notes",
                tool: "write_note",
                missing_scope: Some("notes:write"),
                ip: ip(),
            },
            SystemTime::now(),
        );
        let v = lines(&path);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["event"], "login_failed");
        assert_eq!(v[0]["user"], "mallory");
        assert_eq!(v[0]["ip"], "192.0.2.7");
        assert_eq!(v[0]["client"], serde_json::Value::Null);
        assert!(v[0].get("tool").is_none());
        assert!(v[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v[1]["event"], "tool_call_refused");
        assert_eq!(v[1]["route"], "notes");
        assert_eq!(v[1]["tool"], "write_note");
        assert_eq!(v[1]["missing_scope"], "notes:write");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_admin_action_names_what_was_done_to_what() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog(Mutex::new(Some(AuditFile::open(&path).unwrap())));
        log.write(
            Event::AdminAction {
                action: "revoke",
                target: Some(("user", "alice")),
                user: Some("alice"),
                client: None,
                grants: Some(2),
                ip: Some(ip()),
            },
            SystemTime::now(),
        );
        log.write(
            Event::AdminAction {
                action: "list_clients",
                target: None,
                user: None,
                client: None,
                grants: None,
                ip: None,
            },
            SystemTime::now(),
        );
        let v = lines(&path);
        assert_eq!(v[0]["event"], "admin_action");
        assert_eq!(v[0]["action"], "revoke");
        assert_eq!(v[0]["target"], "user:alice");
        assert_eq!(v[0]["user"], "alice");
        assert_eq!(v[0]["grants"], 2);
        assert_eq!(v[0]["ip"], "192.0.2.7");
        assert_eq!(v[1]["action"], "list_clients");
        assert_eq!(v[1]["target"], serde_json::Value::Null);
        assert_eq!(v[1]["grants"], serde_json::Value::Null);
        assert_eq!(v[1]["ip"], serde_json::Value::Null);
        assert!(v[1].get("tool").is_none());
    }

    #[test]
    fn a_name_with_quotes_or_newlines_cannot_forge_an_audit_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog(Mutex::new(Some(AuditFile::open(&path).unwrap())));
        let forged = "x\",\"event\":\"login_succeeded\"}\n{\"user\":\"admin\u{7}";
        log.write(
            Event::LoginFailed {
                user: forged,
                ip: ip(),
            },
            SystemTime::now(),
        );
        let v = lines(&path);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["event"], "login_failed");
        assert_eq!(v[0]["user"], forged);
    }

    #[test]
    fn reopening_writes_to_a_new_file_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog(Mutex::new(Some(AuditFile::open(&path).unwrap())));
        let ok = Event::LoginSucceeded {
            user: "alice",
            ip: ip(),
        };
        log.write(ok, SystemTime::now());
        std::fs::rename(&path, dir.path().join("audit.jsonl.1")).unwrap();
        log.write(ok, SystemTime::now());
        log.reopen();
        log.write(ok, SystemTime::now());
        assert_eq!(lines(&dir.path().join("audit.jsonl.1")).len(), 2);
        assert_eq!(lines(&path).len(), 1);
    }

    #[test]
    fn without_a_file_events_go_to_the_log_with_target_audit() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || super::super::tests::Sink(sink.clone()))
            .with_ansi(false)
            .fmt_fields(super::super::EscapedFields)
            .finish();
        let log = AuditLog(Mutex::new(None));
        tracing::subscriber::with_default(subscriber, || {
            log.write(
                Event::SessionRefused {
                    user: "bob",
                    client: "c2",
                    route: "notes",
                    ip: ip(),
                },
                SystemTime::now(),
            );
        });
        let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(
            out.contains(
                " WARN audit: another user's MCP session refused event=session_refused user=bob client=c2 route=notes ip=192.0.2.7\n"
            ),
            "{out}"
        );
    }
}
