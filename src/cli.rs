//! The command line: `serve`, `check-config`, `hash-password`.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, StateBackend};

/// Exit code for a bad config file (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code for bad input data (EX_DATAERR).
pub const EXIT_DATA: u8 = 65;

#[derive(Parser, Debug)]
#[command(
    name = "mcp-oauth-proxy",
    version,
    about = "OAuth in front of MCP servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy.
    Serve(ConfigArg),
    /// Validate the config file and every file it references, then print the routes.
    CheckConfig(ConfigArg),
    /// Read a password from stdin and print an argon2id hash for `users[].password_hash`.
    HashPassword,
}

#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The YAML config file.
    #[arg(short, long, env = "MCP_OAUTH_PROXY_CONFIG")]
    pub config: PathBuf,
}

/// Loads the config or prints every problem with its line:column.
pub fn load_or_report(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} problem(s) in {}", errors.errors.len(), path.display());
        ExitCode::from(EXIT_CONFIG)
    })
}

pub fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match load_or_report(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!("{}: ok", path.display());
    println!("issuer: {}", config.public_url);
    println!(
        "listen: {} ({})",
        config.listen,
        if config.tls.is_some() {
            "https"
        } else {
            "http"
        }
    );
    match &config.state {
        StateBackend::Dir(d) => println!("state: dir {}", d.display()),
        StateBackend::Redis(_) => println!("state: redis"),
    }
    for r in &config.routes {
        let auth = r.upstream_auth.as_ref().map_or("none", |a| a.kind);
        println!(
            "route {}: {} -> {} ({}, upstream auth: {})",
            r.name,
            r.resource,
            r.upstream,
            r.transport.as_str(),
            auth
        );
        if let Some(scopes) = &r.scopes {
            for (name, patterns) in scopes {
                println!("  scope {name}: {}", patterns.join(", "));
            }
        }
    }
    ExitCode::SUCCESS
}

pub fn hash_password() -> ExitCode {
    let password = if std::io::stdin().is_terminal() {
        match rpassword::prompt_password("Password: ") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("cannot read password: {e}");
                return ExitCode::from(EXIT_DATA);
            }
        }
    } else {
        let mut buf = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut buf) {
            eprintln!("cannot read password from stdin: {e}");
            return ExitCode::from(EXIT_DATA);
        }
        let trimmed = buf.strip_suffix('\n').unwrap_or(&buf);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string()
    };
    if password.is_empty() {
        eprintln!("the password is empty");
        return ExitCode::from(EXIT_DATA);
    }
    match crate::password::hash(&password) {
        Ok(phc) => {
            println!("{phc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot hash password: {e}");
            ExitCode::FAILURE
        }
    }
}
