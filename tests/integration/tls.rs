//! TLS termination with a certificate generated for the test.

use crate::common::{Proxy, simple_config};

#[tokio::test]
async fn serves_http2_and_http1_over_tls() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_pem = cert.cert.pem();
    let key_pem = cert.signing_key.serialize_pem();
    let proxy = Proxy::start(|port, dir| {
        std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &key_pem).unwrap();
        let base = simple_config(port, dir, "", "http://127.0.0.1:9/mcp");
        base.replacen(
            "\nstate:",
            "\ntls:\n  cert: cert.pem\n  key: key.pem\nstate:",
            1,
        )
    })
    .await;
    let root = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();

    let h2 = reqwest::Client::builder()
        .add_root_certificate(root.clone())
        .build()
        .unwrap();
    let res = h2.get(proxy.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), reqwest::Version::HTTP_2, "ALPN offers h2");

    let h1 = reqwest::Client::builder()
        .add_root_certificate(root)
        .http1_only()
        .build()
        .unwrap();
    let res = h1.get(proxy.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), reqwest::Version::HTTP_11);

    // A client that does not trust the certificate fails the handshake; the proxy keeps serving.
    assert!(reqwest::get(proxy.url("/healthz")).await.is_err());
    assert_eq!(
        h1.get(proxy.url("/healthz")).send().await.unwrap().status(),
        200
    );
}
