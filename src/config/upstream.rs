//! Where a route's MCP requests go: an HTTP upstream, or a stdio MCP server
//! that the proxy starts itself.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use crate::secret::Secret;

/// A route's `upstream`.
#[derive(Debug)]
pub enum Upstream {
    /// An MCP server reached over HTTP (Streamable HTTP or legacy HTTP+SSE).
    Http(Uri),
    /// An MCP server started by the proxy, speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio(Arc<StdioServer>),
}

impl Upstream {
    /// The URL of an HTTP upstream.
    pub fn http(&self) -> Option<&Uri> {
        match self {
            Upstream::Http(uri) => Some(uri),
            Upstream::Stdio(_) => None,
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Http(uri) => uri.fmt(f),
            // The arguments may carry secrets (`${…}`): only the program is shown.
            Upstream::Stdio(s) => write!(
                f,
                "stdio:{} ({} argument{}, one process per {})",
                s.program,
                s.args.len(),
                if s.args.len() == 1 { "" } else { "s" },
                s.per.as_str()
            ),
        }
    }
}

/// Who shares a stdio process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// One process per MCP session (the default).
    Session,
    /// One process per user, shared by that user's sessions.
    User,
}

impl Per {
    pub fn as_str(self) -> &'static str {
        match self {
            Per::Session => "session",
            Per::User => "user",
        }
    }
}

/// How to start a stdio MCP server, and how many may run.
pub struct StdioServer {
    pub program: String,
    pub args: Vec<String>,
    /// The child's whole environment besides `PATH`, `HOME` and `LANG` (which it
    /// inherits from the proxy unless set here). The values are secrets.
    pub env: Vec<(String, Secret)>,
    pub cwd: Option<PathBuf>,
    pub per: Per,
    /// A process that has had no message either way this long (and none pending) is stopped.
    pub idle_timeout: Duration,
    /// Processes of this route at most (stopping ones included).
    pub max_processes: usize,
}

impl StdioServer {
    /// Whether `other` starts the same program the same way (limits aside): a
    /// reload that changes this stops the running processes.
    pub fn same_launch(&self, other: &StdioServer) -> bool {
        self.program == other.program
            && self.args == other.args
            && self.env == other.env
            && self.cwd == other.cwd
            && self.per == other.per
    }
}

/// Arguments and environment values may hold secrets: neither is printed.
impl fmt::Debug for StdioServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("StdioServer")
            .field("program", &self.program)
            .field("args", &format_args!("[{} redacted]", self.args.len()))
            .field("env", &format_args!("{env:?} (values redacted)"))
            .field("cwd", &self.cwd)
            .field("per", &self.per)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_processes", &self.max_processes)
            .finish()
    }
}
