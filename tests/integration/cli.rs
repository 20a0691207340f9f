//! The command line: check-config, hash-password, completions and the man page.

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

fn completions(shell: &str) -> String {
    let out = Command::new(proxy_bin())
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{shell}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn names_the_visible_subcommands(script: &str) {
    for sub in ["serve", "check-config", "hash-password", "completions"] {
        assert!(script.contains(sub), "no {sub} in:\n{script}");
    }
    assert!(
        !script.contains("manpage"),
        "the hidden manpage command is offered"
    );
}

#[test]
fn bash_completions_are_a_bash_completion_script_naming_the_subcommands() {
    let script = completions("bash");
    assert!(script.contains("complete -F"), "{script}");
    assert!(script.contains("mcp-oauth-proxy"), "{script}");
    names_the_visible_subcommands(&script);
}

#[test]
fn the_bash_completion_script_loads_in_bash_and_completes_the_binary() {
    let mut child = Command::new("bash")
        .args(["-c", "source /dev/stdin && complete -p mcp-oauth-proxy"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(completions("bash").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let registered = String::from_utf8_lossy(&out.stdout);
    assert!(
        registered.contains("-F _mcp__oauth__proxy mcp-oauth-proxy"),
        "{registered}"
    );
}

#[test]
fn zsh_completions_are_a_zsh_completion_script_naming_the_subcommands() {
    let script = completions("zsh");
    assert!(script.starts_with("#compdef mcp-oauth-proxy"), "{script}");
    names_the_visible_subcommands(&script);
}

#[test]
fn fish_completions_are_a_fish_completion_script_naming_the_subcommands() {
    let script = completions("fish");
    assert!(script.contains("complete -c mcp-oauth-proxy"), "{script}");
    names_the_visible_subcommands(&script);
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error_listing_the_shells() {
    let out = Command::new(proxy_bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
    assert!(
        stderr.contains("[possible values: bash, zsh, fish]"),
        "{stderr}"
    );
}

#[test]
fn the_man_page_is_roff_naming_every_command_and_its_options() {
    let out = Command::new(proxy_bin()).arg("manpage").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    let th = page
        .lines()
        .position(|l| l.starts_with(".TH mcp-oauth-proxy 1"));
    let first_section = page.lines().position(|l| l.starts_with(".SH"));
    assert!(
        th.is_some() && th < first_section,
        "no .TH header first:\n{page}"
    );
    assert!(page.contains(".SH NAME"), "{page}");
    for sub in ["serve", "check-config", "hash-password", "completions"] {
        assert!(
            page.contains(&format!(".SS \"mcp-oauth-proxy {sub}\"")),
            "no {sub} section in:\n{page}"
        );
    }
    assert!(page.contains(r"\fB\-\-config\fR"), "{page}");
    assert!(!page.contains(".SS \"mcp-oauth-proxy manpage\""), "{page}");
}

#[test]
fn the_manpage_command_is_hidden_from_help() {
    let out = Command::new(proxy_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("completions"), "{help}");
    assert!(!help.contains("manpage"), "{help}");
}
