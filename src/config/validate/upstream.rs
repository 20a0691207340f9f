//! A route's `upstream`: an http(s) URL, or a stdio MCP server to start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_saphyr::Spanned;

use super::super::raw::{RawRoute, RawStdio, RawUpstream};
use super::*;

/// Processes per stdio route unless `max_processes` says otherwise.
const DEFAULT_MAX_PROCESSES: u64 = 50;
const MAX_MAX_PROCESSES: u64 = 100_000;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

pub(super) fn upstream(c: &mut Checker, key: &str, raw: &S<RawUpstream>) -> Option<Upstream> {
    match &raw.value {
        RawUpstream::Url(url) => {
            let s: Str = Spanned::new(url.clone(), raw.referenced, raw.defined);
            let u = c.url(&s, key, false)?;
            match u.as_str().parse::<Uri>() {
                Ok(uri) => Some(Upstream::Http(uri)),
                Err(e) => {
                    c.error(raw.referenced, key, e);
                    None
                }
            }
        }
        RawUpstream::Command(stdio) => self::stdio(c, key, stdio).map(Upstream::Stdio),
    }
}

/// The keys of a route that mean nothing for a stdio upstream.
pub(super) fn stdio_route_keys(c: &mut Checker, key: &str, r: &RawRoute) {
    if let Some(t) = &r.transport
        && c.text(t, &format!("{key}.transport")).as_deref() == Some("sse")
    {
        c.error(
            t.referenced,
            &format!("{key}.transport"),
            "a stdio upstream is served as Streamable HTTP: `sse` applies only to URLs",
        );
    }
    if let Some(a) = &r.upstream_auth {
        c.error(
            a.referenced,
            &format!("{key}.upstream_auth"),
            "a stdio upstream takes its credentials from `upstream.env`, not `upstream_auth`",
        );
    }
}

fn stdio(c: &mut Checker, key: &str, raw: &RawStdio) -> Option<Arc<StdioServer>> {
    let ckey = format!("{key}.command");
    let mut words = Vec::new();
    for w in &raw.command.value {
        words.push(c.text(w, &ckey)?);
    }
    let Some((program, args)) = words.split_first() else {
        c.error(
            raw.command.referenced,
            &ckey,
            "must name the program to start, e.g. [\"npx\", \"-y\", \"@modelcontextprotocol/server-everything\", \"stdio\"]",
        );
        return None;
    };
    if program.is_empty() || words.iter().any(|w| w.contains('\0')) {
        c.error(
            raw.command.referenced,
            &ckey,
            "the program must not be empty, and no word may contain a NUL byte",
        );
        return None;
    }

    let mut env: Vec<(String, Secret)> = Vec::new();
    if let Some(e) = &raw.env {
        let ekey = format!("{key}.env");
        for (name, value) in &e.value {
            let Some(n) = c.text(name, &ekey) else {
                continue;
            };
            let valid = n.bytes().enumerate().all(|(i, b)| {
                b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
            });
            if n.is_empty() || !valid {
                c.error(
                    name.referenced,
                    &ekey,
                    format!("{n:?} is not a valid environment variable name"),
                );
                continue;
            }
            let vkey = format!("{ekey}.{n}");
            let Some(v) = c.text(value, &vkey) else {
                continue;
            };
            if v.contains('\0') {
                c.error(value.referenced, &vkey, "must not contain a NUL byte");
                continue;
            }
            env.push((n, Secret::new(v)));
        }
    }

    let cwd = raw.cwd.as_ref().and_then(|d| {
        let dir = c.path(d, &format!("{key}.cwd"))?;
        if !dir.is_dir() {
            c.error(
                d.referenced,
                &format!("{key}.cwd"),
                format!("{} is not a directory", dir.display()),
            );
            return None;
        }
        Some(dir)
    });

    // The program as the child's PATH finds it (the proxy's own PATH unless `env` sets one).
    let search_path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.expose().to_string())
        .or_else(|| (c.env)("PATH"));
    let program = match resolve_program(program, c.base, search_path.as_deref()) {
        Ok(p) => p,
        Err(why) => {
            c.error(raw.command.referenced, &ckey, why);
            return None;
        }
    };

    let per = match &raw.per {
        None => Per::Session,
        Some(p) => match c.text(p, &format!("{key}.per")).as_deref() {
            Some("session") => Per::Session,
            Some("user") => Per::User,
            Some(other) => {
                c.error(
                    p.referenced,
                    &format!("{key}.per"),
                    format!("must be `session` or `user`, not {other:?}"),
                );
                Per::Session
            }
            None => Per::Session,
        },
    };
    let ikey = format!("{key}.idle_timeout");
    let idle_timeout = c.duration(raw.idle_timeout.as_ref(), &ikey, DEFAULT_IDLE_TIMEOUT);
    if idle_timeout.is_zero()
        && let Some(i) = &raw.idle_timeout
    {
        c.error(i.referenced, &ikey, "must be more than zero");
    }
    let max_processes = match &raw.max_processes {
        None => DEFAULT_MAX_PROCESSES,
        Some(m) if (1..=MAX_MAX_PROCESSES).contains(&m.value) => m.value,
        Some(m) => {
            c.error(
                m.referenced,
                &format!("{key}.max_processes"),
                format!("must be between 1 and {MAX_MAX_PROCESSES}"),
            );
            DEFAULT_MAX_PROCESSES
        }
    };
    Some(Arc::new(StdioServer {
        program,
        args: args.to_vec(),
        env,
        cwd,
        per,
        idle_timeout,
        max_processes: max_processes as usize,
    }))
}

/// A program with a `/` is a file (relative to the config file's directory); a
/// bare name is looked up in `search_path` now, so that a typo is a config error
/// rather than a failed session.
fn resolve_program(
    program: &str,
    base: &Path,
    search_path: Option<&str>,
) -> Result<String, String> {
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = base.join(program);
        if !executable(&p) {
            return Err(format!("{} is not an executable file", p.display()));
        }
        return Ok(p.display().to_string());
    }
    let found = search_path
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .any(|d| executable(&Path::new(d).join(program)));
    if found {
        Ok(program.to_string())
    } else {
        Err(format!(
            "{program:?} is not an executable in PATH (the proxy's PATH, or `env.PATH`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError, Per, Upstream};

    const HEAD: &str = "listen: \"127.0.0.1:8080\"\npublic_url: \"http://127.0.0.1:8080\"\nstate:\n  dir: /tmp\nroutes:\n  - name: everything\n    path: /everything/mcp\n";

    fn env(name: &str) -> Option<String> {
        match name {
            "API_KEY" => Some("sk-secret-123".into()),
            "PATH" => Some("/nonexistent:/bin:/usr/bin".into()),
            _ => None,
        }
    }

    fn load(route_rest: &str) -> Result<Config, Vec<ConfigError>> {
        let yaml = format!("{HEAD}{route_rest}");
        Config::from_yaml(&yaml, Path::new(env!("CARGO_MANIFEST_DIR")), &env)
    }

    fn one_error(route_rest: &str) -> ConfigError {
        match load(route_rest) {
            Ok(_) => panic!("should be refused:\n{route_rest}"),
            Err(mut e) => {
                assert_eq!(e.len(), 1, "{e:?}");
                e.remove(0)
            }
        }
    }

    #[test]
    fn a_stdio_upstream_is_read_with_its_defaults_and_secrets_stay_hidden() {
        let c = load(
            "    upstream:\n      command: [\"sh\", \"-c\", \"exec cat --token=${API_KEY}\"]\n      env: {API_KEY: \"${API_KEY}\", MODE: test}\n      cwd: src\n      per: user\n      idle_timeout: 90s\n      max_processes: 3\n",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let Upstream::Stdio(s) = &c.routes[0].upstream else {
            panic!("not stdio")
        };
        assert_eq!(s.program, "sh");
        assert_eq!(s.args[1], "exec cat --token=sk-secret-123");
        assert_eq!(s.env[0].0, "API_KEY");
        assert_eq!(s.env[0].1.expose(), "sk-secret-123");
        assert_eq!(s.per, Per::User);
        assert_eq!(s.idle_timeout.as_secs(), 90);
        assert_eq!(s.max_processes, 3);
        assert!(s.cwd.as_ref().is_some_and(|d| d.ends_with("src")));
        let shown = format!("{c:?} {}", c.routes[0].upstream);
        assert!(!shown.contains("sk-secret-123"), "{shown}");
        assert!(
            shown.contains("stdio:sh (2 arguments, one process per user)"),
            "{shown}"
        );

        let c =
            load("    upstream:\n      command: [/bin/sh]\n").unwrap_or_else(|e| panic!("{e:?}"));
        let Upstream::Stdio(s) = &c.routes[0].upstream else {
            panic!("not stdio")
        };
        assert_eq!(
            (s.per, s.max_processes, s.idle_timeout.as_secs()),
            (Per::Session, 50, 600)
        );
        assert!(s.env.is_empty() && s.cwd.is_none());
    }

    #[test]
    fn each_stdio_problem_is_reported_where_it_is() {
        let cases: &[(&str, u64, u64, &str)] = &[
            (
                "    upstream:\n      command: []\n",
                9,
                16,
                "must name the program",
            ),
            (
                "    upstream:\n      command: [no-such-program-xyz]\n",
                9,
                16,
                "not an executable in PATH",
            ),
            (
                "    upstream:\n      command: [./no/such/file]\n",
                9,
                16,
                "is not an executable file",
            ),
            (
                "    upstream:\n      command: [sh]\n      pre: user\n",
                10,
                7,
                "unknown field",
            ),
            (
                "    upstream:\n      command: [sh]\n      per: everyone\n",
                10,
                12,
                "`session` or `user`",
            ),
            (
                "    upstream:\n      command: [sh]\n      max_processes: 0\n",
                10,
                22,
                "between 1 and",
            ),
            (
                "    upstream:\n      command: [sh]\n      idle_timeout: 0s\n",
                10,
                21,
                "more than zero",
            ),
            (
                "    upstream:\n      command: [sh]\n      env: {\"BAD-NAME\": x}\n",
                10,
                13,
                "not a valid environment variable name",
            ),
            (
                "    upstream:\n      command: [sh]\n      env: {TOKEN: \"${MISSING}\"}\n",
                10,
                20,
                "MISSING",
            ),
            (
                "    upstream:\n      command: [sh]\n      cwd: /no/such/dir\n",
                10,
                12,
                "not a directory",
            ),
            (
                "    upstream:\n      command: [sh]\n    transport: sse\n",
                10,
                16,
                "`sse` applies only to URLs",
            ),
            (
                "    upstream:\n      command: [sh]\n    upstream_auth:\n      bearer: x\n",
                11,
                7,
                "`upstream.env`",
            ),
            (
                "    upstream: [sh]\n",
                8,
                5,
                "a URL, or a mapping with `command`",
            ),
        ];
        for (rest, line, column, needle) in cases {
            let e = one_error(rest);
            assert!(e.message.contains(needle), "{rest}: {e:?}");
            assert_eq!((e.line, e.column), (*line, *column), "{rest}: {e:?}");
        }
    }

    #[test]
    fn a_url_upstream_is_still_a_url() {
        let c = load("    upstream: \"http://127.0.0.1:3001/mcp\"\n")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            c.routes[0]
                .upstream
                .http()
                .map(ToString::to_string)
                .as_deref(),
            Some("http://127.0.0.1:3001/mcp")
        );
        let e = one_error("    upstream: \"ftp://x\"\n");
        assert_eq!((e.line, e.column), (8, 15), "{e:?}");
    }
}
