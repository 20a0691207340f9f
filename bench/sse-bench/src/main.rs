//! Idle event streams through the proxy: its resident memory per stream, and how long an
//! event takes from the upstream's write to the client.
//!
//!     sse-bench --port 18004 --url http://127.0.0.1:18003/bench/sse --token T \
//!               --streams 10000 --proto h1|h2 [--per-conn 250] [--pid PROXY_PID] [--samples 2000]
//!
//! One single-threaded process plays both ends, so both timestamps come from one clock:
//! - upstream: listens on --port; `GET /sse?id=N` gets `200 text/event-stream`, the
//!   comment `: open`, and then nothing (no keep-alives of its own);
//! - client: opens --streams streams to --url (the proxy route whose upstream is this
//!   process, or this process itself for a baseline without proxy). h1: one HTTP/1.1
//!   connection per stream; h2: HTTP/2 with prior knowledge, --per-conn streams each.
//!
//! Then: VmRSS of --pid before and after opening; --samples probes, one at a time and
//! 1 ms apart, each an event written on a random stream and timed until it arrives (the
//! process polls without sleeping while a probe is in flight, so the client's own wake-up
//! is not counted); finally one event written to every stream at once (fan-out).
//! Prints one JSON line.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    port: u16,
    url: String,
    token: String,
    streams: usize,
    proto: String,
    per_conn: usize,
    pid: Option<u32>,
    samples: usize,
    parallel: usize,
}

fn args() -> Args {
    let mut a = Args {
        port: 18004,
        url: String::new(),
        token: String::new(),
        streams: 10_000,
        proto: "h1".into(),
        per_conn: 250,
        pid: None,
        samples: 2000,
        parallel: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--port" => a.port = v.parse().expect("--port"),
            "--url" => a.url = v,
            "--token" => a.token = v,
            "--streams" => a.streams = v.parse().expect("--streams"),
            "--proto" => a.proto = v,
            "--per-conn" => a.per_conn = v.parse().expect("--per-conn"),
            "--pid" => a.pid = Some(v.parse().expect("--pid")),
            "--samples" => a.samples = v.parse().expect("--samples"),
            "--parallel" => a.parallel = v.parse().expect("--parallel"),
            _ => panic!("unknown option {k}"),
        }
    }
    a
}

/// What the client end has seen: when each probe arrived, fan-out arrivals, open streams.
#[derive(Default)]
struct Seen {
    probes: Mutex<HashMap<i64, Instant>>,
    broadcast: Mutex<Vec<Instant>>,
    opened: AtomicUsize,
}

impl Seen {
    /// Records every `"seq":N` in `buf` (N < 0: the fan-out event); returns how much of
    /// `buf` was consumed.
    fn scan(&self, buf: &[u8], now: Instant) -> usize {
        const MARK: &[u8] = b"\"seq\":";
        let mut consumed = 0;
        let mut i = 0;
        while let Some(pos) = find(&buf[i..], MARK) {
            let start = i + pos + MARK.len();
            let end = start
                + buf[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit() || **b == b'-')
                    .count();
            if end == buf.len() {
                break; // the number may continue in the next read
            }
            let seq: i64 = std::str::from_utf8(&buf[start..end])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(i64::MIN);
            if seq < 0 {
                self.broadcast.lock().unwrap().push(now);
            } else {
                self.probes.lock().unwrap().insert(seq, now);
            }
            i = end;
            consumed = end;
        }
        consumed
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Keeps reading a stream's bytes: marks it open at `: open`, records events.
fn on_bytes(seen: &Seen, buf: &mut Vec<u8>, open: &mut bool) {
    let now = Instant::now();
    if !*open && find(buf, b": open").is_some() {
        *open = true;
        seen.opened.fetch_add(1, Ordering::Relaxed);
    }
    let used = seen.scan(buf, now);
    buf.drain(..used.max(buf.len().saturating_sub(64)));
}

// ------------------------------------------------------------------ upstream end

type Streams = Arc<Mutex<HashMap<u64, OwnedWriteHalf>>>;

async fn serve_upstream(listener: TcpListener, streams: Streams) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let streams = streams.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let (mut rd, mut wr) = tcp.into_split();
            let mut head = Vec::new();
            let mut chunk = [0u8; 4096];
            while find(&head, b"\r\n\r\n").is_none() {
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head);
            let id = text
                .split_once("id=")
                .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u64>().ok());
            let Some(id) = id.filter(|_| text.starts_with("GET /sse")) else {
                let _ = wr
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    .await;
                return;
            };
            let open = b": open\n\n";
            let mut res = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
            res.extend_from_slice(&chunk_of(open));
            if wr.write_all(&res).await.is_err() {
                return;
            }
            streams.lock().unwrap().insert(id, wr);
            // Until the proxy closes it.
            while matches!(rd.read(&mut chunk).await, Ok(n) if n > 0) {}
            streams.lock().unwrap().remove(&id);
        });
    }
}

fn chunk_of(data: &[u8]) -> Vec<u8> {
    let mut v = format!("{:x}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    v
}

/// Writes a whole small chunk without awaiting (the socket's buffer is empty when idle).
fn write_now(w: &OwnedWriteHalf, bytes: &[u8]) -> bool {
    matches!(w.try_write(bytes), Ok(n) if n == bytes.len())
}

// ------------------------------------------------------------------ client end

async fn open_h1(addr: String, path: String, auth: String, seen: Arc<Seen>) -> Result<(), BoxError> {
    let mut tcp = TcpStream::connect(&addr).await?;
    tcp.set_nodelay(true)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n{auth}\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    tokio::spawn(async move {
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 2048];
        let mut open = false;
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    if !open {
                        eprintln!("stream closed before it opened: {}", String::from_utf8_lossy(&buf));
                    }
                    return;
                }
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    on_bytes(&seen, &mut buf, &mut open);
                }
            }
        }
    });
    Ok(())
}

async fn open_h2(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    uri: String,
    token: &str,
    seen: Arc<Seen>,
) -> Result<(), BoxError> {
    let mut req = hyper::Request::get(uri).header("accept", "text/event-stream");
    if !token.is_empty() {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let res = sender.send_request(req.body(Empty::new())?).await?;
    if res.status() != 200 {
        return Err(format!("HTTP {}", res.status()).into());
    }
    let mut body = res.into_body();
    tokio::spawn(async move {
        let mut buf = Vec::with_capacity(512);
        let mut open = false;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
                on_bytes(&seen, &mut buf, &mut open);
            }
        }
    });
    Ok(())
}

fn rss_kb(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn pct(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let d = sorted[i.clamp(1, sorted.len()) - 1];
    Some((d.as_nanos() as f64 / 100.0).round() / 10.0) // µs with one decimal
}

fn json_num(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v}"))
}

/// Polls (without parking the thread) until `done` or `limit`; the runtime polls its I/O
/// driver with a zero timeout between yields.
async fn spin_until(limit: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() && start.elapsed() < limit {
        tokio::task::yield_now().await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let a = args();
    let url: hyper::Uri = a.url.parse()?;
    let addr = url.authority().ok_or("--url needs a host")?.to_string();
    let path = url.path().to_string();

    let streams: Streams = Arc::default();
    let listener = TcpListener::bind(("127.0.0.1", a.port)).await?;
    tokio::spawn(serve_upstream(listener, streams.clone()));
    let seen = Arc::new(Seen::default());

    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kb(a.pid);
    let started = Instant::now();
    let auth = if a.token.is_empty() {
        String::new()
    } else {
        format!("authorization: Bearer {}\r\n", a.token)
    };
    if a.proto == "h2" {
        let mut id = 0;
        while id < a.streams {
            let tcp = TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let (mut sender, conn) = hyper::client::conn::http2::Builder::new(
                hyper_util::rt::TokioExecutor::new(),
            )
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await?;
            tokio::spawn(conn);
            let end = (id + a.per_conn).min(a.streams);
            let mut pending = Vec::new();
            for n in id..end {
                let uri = format!("http://{addr}{path}?id={n}");
                let mut s = sender.clone();
                let (token, seen) = (a.token.clone(), seen.clone());
                pending.push(tokio::spawn(async move { open_h2(&mut s, uri, &token, seen).await }));
            }
            for p in pending {
                p.await??;
            }
            sender.ready().await?;
            id = end;
        }
    } else {
        let mut id = 0;
        while id < a.streams {
            let end = (id + a.parallel).min(a.streams);
            let mut pending = Vec::new();
            for n in id..end {
                let (addr, auth, seen) = (addr.clone(), auth.clone(), seen.clone());
                let path = format!("{path}?id={n}");
                pending.push(tokio::spawn(open_h1(addr, path, auth, seen)));
            }
            for p in pending {
                p.await??;
            }
            id = end;
        }
    }
    // Every stream has its `: open` comment (the upstream answered through the proxy).
    let want = a.streams;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.opened.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_s = started.elapsed().as_secs_f64();
    let opened = seen.opened.load(Ordering::Relaxed);
    let upstream_open = streams.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kb(a.pid);

    // Probes: one event at a time on a random stream.
    let ids: Vec<u64> = streams.lock().unwrap().keys().copied().collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut latencies = Vec::with_capacity(a.samples);
    for seq in 0..a.samples as i64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let id = ids[(rng % ids.len() as u64) as usize];
        let event = chunk_of(format!("event: probe\ndata: {{\"seq\":{seq}}}\n\n").as_bytes());
        let t0 = Instant::now();
        let written = streams.lock().unwrap().get(&id).is_some_and(|w| write_now(w, &event));
        if !written {
            continue;
        }
        spin_until(Duration::from_secs(1), || seen.probes.lock().unwrap().contains_key(&seq)).await;
        if let Some(t1) = seen.probes.lock().unwrap().get(&seq) {
            latencies.push(t1.duration_since(t0));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    latencies.sort();

    // Fan-out: one event on every stream.
    let event = chunk_of(b"event: broadcast\ndata: {\"seq\":-1}\n\n");
    let t0 = Instant::now();
    let written = streams.lock().unwrap().values().filter(|w| write_now(w, &event)).count();
    let write_all = t0.elapsed();
    spin_until(Duration::from_secs(15), || seen.broadcast.lock().unwrap().len() >= written).await;
    let mut fanout: Vec<Duration> = seen.broadcast.lock().unwrap().iter().map(|t| t.duration_since(t0)).collect();
    fanout.sort();
    let rss_end = rss_kb(a.pid);

    let per_stream = match (rss_before, rss_after) {
        (Some(b), Some(a2)) => format!("{:.2}", (a2 as f64 - b as f64) / a.streams as f64),
        _ => "null".into(),
    };
    let opt = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
    let line = format!(
        concat!(
            "{{\"proto\":\"{}\",\"streams\":{},\"opened\":{},\"upstream_open\":{},\"url\":\"{}\",",
            "\"open_s\":{:.2},\"rss_before_kb\":{},\"rss_after_kb\":{},\"rss_per_stream_kb\":{},",
            "\"probe\":{{\"sent\":{},\"received\":{},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{}}},",
            "\"broadcast\":{{\"written\":{},\"received\":{},\"upstream_write_all_us\":{},\"p50_us\":{},\"p99_us\":{},\"last_us\":{}}},",
            "\"rss_end_kb\":{}}}"
        ),
        a.proto, a.streams, opened, upstream_open, a.url,
        open_s, opt(rss_before), opt(rss_after), per_stream,
        a.samples, latencies.len(), json_num(pct(&latencies, 50.0)), json_num(pct(&latencies, 90.0)),
        json_num(pct(&latencies, 99.0)), json_num(pct(&latencies, 100.0)),
        written, fanout.len(), write_all.as_micros(), json_num(pct(&fanout, 50.0)),
        json_num(pct(&fanout, 99.0)), json_num(pct(&fanout, 100.0)),
        opt(rss_end),
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    std::process::exit(0);
}
