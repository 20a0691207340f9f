//! Starting real processes (the proxy, node upstreams), or the proxy inside the
//! test process on a manual clock, and waiting on conditions.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_oauth_proxy::clock::ManualClock;
use mcp_oauth_proxy::server::{ServeError, serve_on};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn proxy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-oauth-proxy")
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process killed when the test ends, however it ends.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The recording MCP server of `tests/node/upstream.mjs`.
pub struct NodeUpstream {
    _child: Guard,
    pub port: u16,
}

impl NodeUpstream {
    pub fn start(args: &[&str]) -> Self {
        let dir = root().join("tests/node");
        assert!(
            dir.join("node_modules").is_dir(),
            "tests/node/node_modules is missing: run `npm ci --prefix tests/node` (./test.sh does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("upstream.mjs"))
            .args(["--port", "0", "--exit-with-stdin"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node must be installed");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("upstream port line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let port = v["port"].as_u64().expect("port") as u16;
        Self {
            _child: Guard(child),
            port,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the upstream received so far.
    pub async fn requests(&self) -> Vec<serde_json::Value> {
        reqwest::get(self.url("/_requests"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A running `mcp-oauth-proxy serve`, with its stderr captured; or the proxy
/// served inside the test process ([`Proxy::start_in_process`]).
pub struct Proxy {
    pub child: Option<Child>,
    in_process: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    logs: Arc<Mutex<String>>,
    scheme: &'static str,
    env: Vec<(String, String)>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(server) = self.in_process.take() {
            server.abort();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Proxy {
    /// Starts the proxy with the config that `config(port, dir)` writes, on a free loopback port.
    pub async fn start(config: impl Fn(u16, &Path) -> String) -> Self {
        Self::start_with(config, &[]).await
    }

    pub async fn start_with(config: impl Fn(u16, &Path) -> String, env: &[(&str, &str)]) -> Self {
        let mut dir = tempfile::tempdir().unwrap();
        for _attempt in 0..5 {
            let port = free_port();
            let text = config(port, dir.path());
            let scheme = if text.contains("\ntls:") {
                "https"
            } else {
                "http"
            };
            let config_path = dir.path().join("config.yaml");
            std::fs::write(&config_path, text).unwrap();
            let mut proxy = Proxy {
                child: None,
                in_process: None,
                port,
                config_path,
                dir,
                logs: Arc::new(Mutex::new(String::new())),
                scheme,
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            proxy.spawn();
            if proxy.wait_ready().await {
                return proxy;
            }
            assert!(
                proxy.logs().contains("cannot listen"),
                "proxy did not start:\n{}",
                proxy.logs()
            );
            dir = proxy.take_dir();
        }
        panic!("no free port after 5 attempts");
    }

    /// The proxy served by `server::serve_on` inside this process, on a manual clock
    /// that stands still until the test advances it: for tests that would otherwise
    /// sleep until something expires. Its logs are not captured, and it cannot be
    /// signalled or restarted. The test needs `#[tokio::test(flavor = "multi_thread")]`:
    /// the store runs under `block_in_place`.
    pub async fn start_in_process(config: impl Fn(u16, &Path) -> String) -> (Self, ManualClock) {
        let dir = tempfile::tempdir().unwrap();
        // Bound here and handed over: no other process can take the port in between.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let text = config(port, dir.path());
        let scheme = if text.contains("\ntls:") {
            "https"
        } else {
            "http"
        };
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, text).unwrap();
        let loaded = mcp_oauth_proxy::config::Config::load(&config_path)
            .unwrap_or_else(|e| panic!("bad test config: {e}"));
        let clock = ManualClock::starting_now();
        let server = tokio::spawn(serve_on(
            listener,
            loaded,
            clock.clock(),
            std::future::pending(),
        ));
        let proxy = Proxy {
            child: None,
            in_process: Some(server),
            port,
            dir,
            config_path,
            logs: Arc::default(),
            scheme,
            env: Vec::new(),
        };
        let health = proxy.url("/healthz");
        wait_for("the in-process proxy", Duration::from_secs(10), || {
            if let Some(server) = &proxy.in_process {
                assert!(!server.is_finished(), "the in-process proxy stopped");
            }
            let health = health.clone();
            async move {
                let client = reqwest::Client::builder()
                    .danger_accept_invalid_certs(true)
                    .build()
                    .ok()?;
                let res = client.get(health).send().await.ok()?;
                (res.status() == 200).then_some(())
            }
        })
        .await;
        (proxy, clock)
    }

    fn spawn(&mut self) {
        let mut child = Command::new(proxy_bin())
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("MCP_OAUTH_PROXY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let sink = self.logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("proxy: {line}");
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        self.child = Some(child);
    }

    /// SIGTERM, wait for exit, start again with the same config, port and state.
    pub async fn restart(&mut self) {
        self.signal("TERM");
        assert!(self.wait_exit(Duration::from_secs(10)).await.success());
        self.start_again().await;
    }

    /// Starts the proxy that exited again, with the same config, port and state.
    pub async fn start_again(&mut self) {
        self.logs.lock().unwrap().clear();
        self.spawn();
        assert!(self.wait_ready().await, "restart failed:\n{}", self.logs());
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Waits until the proxy logs that it listens, or exits.
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.logs().contains("listening") {
                return true;
            }
            if let Some(child) = self.child.as_mut()
                && child.try_wait().unwrap().is_some()
            {
                // Let the reader thread take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("proxy not ready after 20s:\n{}", self.logs());
    }

    pub fn base(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the proxy to exit and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        wait_for("proxy exit", timeout, || {
            let s = child.try_wait().unwrap();
            async move { s }
        })
        .await
    }
}

/// The config shared by most tests: one route in front of `upstream_url`.
pub fn simple_config(port: u16, dir: &Path, route_extra: &str, upstream_url: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:{port}"
public_url: "http://127.0.0.1:{port}"
state:
  dir: {state}
server:
  shutdown_grace: 5s
  header_read_timeout: 2s
users:
  - name: alice
    password_hash: "{hash}"
    groups: [staff]
  - name: bob
    password_hash: "{hash}"
routes:
  - name: notes
    path: /notes/mcp
    upstream: "{upstream_url}"
{route_extra}"#,
        state = dir.join("state").display(),
        hash = crate::oauth_client::PASSWORD_HASH,
    )
}

/// `config` with an admin listener (metrics, readiness, admin API) on `port` of loopback.
pub fn with_admin(config: &str, port: u16) -> String {
    let admin = format!("admin:\n  listen: \"127.0.0.1:{port}\"\n");
    config.replacen("routes:\n", &format!("{admin}routes:\n"), 1)
}

/// The address of the proxy's admin listener (from its config).
pub fn admin_addr(proxy: &Proxy) -> std::net::SocketAddr {
    let text = std::fs::read_to_string(&proxy.config_path).unwrap();
    text.lines()
        .skip_while(|l| *l != "admin:")
        .find_map(|l| l.trim().strip_prefix("listen: "))
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap()
}

/// A URL on the proxy's admin listener.
pub fn admin_url(proxy: &Proxy, path: &str) -> String {
    format!("http://{}{path}", admin_addr(proxy))
}

/// What `mcp-oauth-proxy admin <args> --config <the proxy's config>` did.
pub struct AdminRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs an admin command against the proxy's config (the proxy may be running or stopped).
pub fn admin_command(proxy: &Proxy, args: &[&str]) -> AdminRun {
    let out = Command::new(proxy_bin())
        .arg("admin")
        .args(args)
        .arg("--config")
        .arg(&proxy.config_path)
        .env("MCP_OAUTH_PROXY_LOG", "info")
        .output()
        .unwrap();
    AdminRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub const MCP_ACCEPT: &str = "application/json, text/event-stream";

pub fn initialize_body() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "integration-test", "version": "0"}
        }
    })
}

/// A client that sends a valid access token for the `notes` route (got through the real flow).
pub async fn authed(proxy: &Proxy) -> reqwest::Client {
    let t = crate::oauth_client::tokens(proxy, &[]).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", t.access).parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}
