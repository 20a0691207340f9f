//! Signals: SIGTERM drains, SIGHUP reloads.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::common::{NodeUpstream, Proxy, authed, simple_config, wait_for};

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let upstream = NodeUpstream::start(&[]);
    let mut proxy =
        Proxy::start(|port, dir| simple_config(port, dir, "", &upstream.url("/_sse"))).await;
    // A response that takes about 1.2 s to complete.
    let res = authed(&proxy)
        .await
        .get(proxy.url("/notes/mcp?count=4&interval_ms=300"))
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data:"));

    proxy.signal("TERM");
    // New connections are refused once the proxy stops accepting.
    let port = proxy.port;
    wait_for("listener to close", Duration::from_secs(5), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            .then_some(())
    })
    .await;

    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.expect("the in-flight stream completes"));
    }
    let events = String::from_utf8_lossy(&rest).matches("data:").count();
    assert_eq!(events, 3, "the remaining events arrived after SIGTERM");
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sigterm_closes_endless_streams_after_the_grace_period() {
    let upstream = NodeUpstream::start(&[]);
    let mut proxy = Proxy::start(|port, dir| {
        simple_config(port, dir, "", &upstream.url("/_sse"))
            .replace("shutdown_grace: 5s", "shutdown_grace: 1s")
    })
    .await;
    let res = authed(&proxy)
        .await
        .get(proxy.url("/notes/mcp?count=100000&interval_ms=100"))
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    stream.next().await.unwrap().unwrap();
    let started = Instant::now();
    proxy.signal("TERM");
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "exited before the grace period"
    );
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            break;
        }
    }
}

#[tokio::test]
async fn sighup_reloads_and_a_bad_file_keeps_the_old_config() {
    let upstream = NodeUpstream::start(&[]);
    let proxy =
        Proxy::start(|port, dir| simple_config(port, dir, "", &upstream.url("/_sse"))).await;
    assert_eq!(
        reqwest::get(proxy.url("/renamed/mcp"))
            .await
            .unwrap()
            .status(),
        404
    );

    let good = std::fs::read_to_string(&proxy.config_path).unwrap();
    std::fs::write(
        &proxy.config_path,
        good.replace("/notes/mcp", "/renamed/mcp"),
    )
    .unwrap();
    proxy.signal("HUP");
    let url = proxy.url("/renamed/mcp?count=1&interval_ms=1");
    wait_for("the new route", Duration::from_secs(10), || {
        let url = url.clone();
        // The new route exists (401: it wants a token for itself), the old one is gone.
        async move { (reqwest::get(url).await.ok()?.status() == 401).then_some(()) }
    })
    .await;

    std::fs::write(&proxy.config_path, "listen: [broken\n").unwrap();
    proxy.signal("HUP");
    wait_for(
        "the rejection log line",
        Duration::from_secs(10),
        || async { proxy.logs().contains("reload rejected").then_some(()) },
    )
    .await;
    let res = reqwest::get(proxy.url("/renamed/mcp")).await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("/.well-known/oauth-protected-resource/renamed/mcp"),
        "{challenge}"
    );
    assert_eq!(
        reqwest::get(proxy.url("/notes/mcp"))
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn systemd_is_told_ready_reloading_around_a_sighup_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let notify = socket_path.to_str().unwrap().to_string();
    let mut proxy = Proxy::start_with(
        |port, dir| simple_config(port, dir, "", "http://127.0.0.1:9/mcp"),
        &[("NOTIFY_SOCKET", &notify)],
    )
    .await;
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = socket
            .recv(&mut buf)
            .expect("no sd_notify message within 20s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(next().contains("READY=1"));

    proxy.signal("HUP");
    // Type=notify-reload and sd_notify(3): RELOADING=1 carries the monotonic
    // time in the same message; READY=1 follows once the reload is done.
    let reloading = next();
    let lines: Vec<&str> = reloading.lines().collect();
    assert!(lines.contains(&"RELOADING=1"), "{reloading}");
    let usec = lines
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec.parse::<u64>().unwrap() > 0, "{reloading}");
    assert!(next().contains("READY=1"));

    proxy.signal("TERM");
    assert!(next().contains("STOPPING=1"));
    assert!(proxy.wait_exit(Duration::from_secs(10)).await.success());
}
