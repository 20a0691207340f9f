//! The command line: check-config and hash-password.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{proxy_bin, root};

#[test]
fn check_config_reports_every_problem_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: \"127.0.0.1:8080\"\npublic_url: \"http://example.com\"\nroutes:\n  - name: a\n    path: /a/mcp\n    upstream: \"http://127.0.0.1:1/mcp\"\n    upstream_auth:\n      bearer: \"${SURELY_NOT_SET_VAR}\"\n",
    )
    .unwrap();
    let out = Command::new(proxy_bin())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:2:13: public_url"), "{stderr}");
    assert!(stderr.contains("bad.yaml:8:15: routes[0].upstream_auth.bearer: environment variable SURELY_NOT_SET_VAR is not set"), "{stderr}");
}

#[test]
fn serve_with_a_bad_config_exits_64_without_binding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "listen: \"127.0.0.1:1\"\nnonsense: true\n").unwrap();
    let out = Command::new(proxy_bin())
        .args(["serve", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `nonsense`"));
}

#[test]
fn hash_password_output_is_accepted_by_the_config() {
    let mut child = Command::new(proxy_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(!phc.contains("correct horse"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.yaml");
    std::fs::write(
        &path,
        format!("listen: \"127.0.0.1:8080\"\npublic_url: \"http://127.0.0.1:8080\"\nstate:\n  dir: {}\nusers:\n  - name: alice\n    password_hash: \"{phc}\"\nroutes:\n  - name: a\n    path: /a/mcp\n    upstream: \"http://127.0.0.1:1/mcp\"\n", dir.path().display()),
    )
    .unwrap();
    let out = Command::new(proxy_bin())
        .args(["check-config", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("route a: http://127.0.0.1:8080/a/mcp -> http://127.0.0.1:1/mcp"),
        "{stdout}"
    );
}

#[test]
fn the_example_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["mcp.example.com".to_string()]).unwrap();
    std::fs::write(dir.path().join("fullchain.pem"), cert.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("privkey.pem"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    // The example names the paths a packaged install uses; point them at files that exist here.
    let example = std::fs::read_to_string(root().join("config.example.yaml")).unwrap();
    let here = example
        .replace(
            "/etc/mcp-oauth-proxy/",
            &format!("{}/", dir.path().display()),
        )
        .replace(
            "/var/lib/mcp-oauth-proxy",
            &dir.path().join("state").display().to_string(),
        );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, here).unwrap();
    let out = Command::new(proxy_bin())
        .args(["check-config", "-c"])
        .arg(&path)
        .env("NOTES_MCP_TOKEN", "example-token")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_demo_config_validates_on_the_ports_demo_run_sets() {
    let out = Command::new(proxy_bin())
        .args(["check-config", "-c"])
        .arg(root().join("demo/config.yaml"))
        .env("DEMO_PORT", "9090")
        .env("DEMO_UPSTREAM_PORT", "4001")
        .env("DEMO_UPSTREAM_TOKEN", "t")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("127.0.0.1:9090"), "{stdout}");
    assert!(stdout.contains("127.0.0.1:4001"), "{stdout}");
}
