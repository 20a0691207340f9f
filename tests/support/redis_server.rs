//! A `redis-server` of a test's own (Debian's package): on a free loopback
//! port, nothing saved to disk, killed when dropped. Used by the integration
//! suite and by the store's unit tests (included with `#[path]`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Extra arguments for `redis-server` (e.g. `--requirepass`).
    args: Vec<String>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Whether a server on `port` answers PING.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server started with these extra arguments.
    pub fn start_with(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
        let mut server = Self {
            child: None,
            port: free_port(),
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        server.restart();
        server
    }

    /// How many commands the server has run, `PING` and `INFO` not counted.
    pub fn commands(&self) -> u64 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("redis-server does not answer: {e}"));
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        s.write_all(b"INFO commandstats\r\n")
            .unwrap_or_else(|e| panic!("INFO: {e}"));
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        // A bulk string: `$<len>\r\n<len bytes>\r\n`.
        loop {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            let len = text
                .strip_prefix('$')
                .and_then(|t| t.split_once("\r\n"))
                .and_then(|(l, _)| l.parse::<usize>().ok());
            if len.is_some_and(|l| text.len() >= l + text.find("\r\n").unwrap_or(0) + 4) {
                break;
            }
        }
        text.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter(|l| !l.starts_with("ping:") && !l.starts_with("info:"))
            .filter_map(|l| {
                l.split_once("calls=")?
                    .1
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// Stops (`true`) or continues the server's process: a server that hangs.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().map(|c| c.id().to_string());
        let signal = if paused { "-STOP" } else { "-CONT" };
        let sent = Command::new("kill").arg(signal).args(pid).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {signal}");
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Saves the data (read again at [`RedisServer::restart`]), then kills the server.
    pub fn save_and_stop(&mut self) {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 5];
            let saved = s.write_all(b"SAVE\r\n").is_ok() && s.read_exact(&mut buf).is_ok();
            assert!(saved && &buf == b"+OK\r\n", "redis-server did not save");
        }
        self.stop();
    }

    /// Kills the server (its data is gone unless saved).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) on its port, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server must be installed (apt-get install redis-server): {e}")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // A server with a password answers PING with an error: listening is enough then.
        let needs_auth = self.args.iter().any(|a| a == "--requirepass");
        while !(answers(self.port)
            || needs_auth && TcpStream::connect(("127.0.0.1", self.port)).is_ok())
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
