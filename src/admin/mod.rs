//! The admin commands (`mcp-oauth-proxy admin clients|grants|revoke|delete-client`)
//! and what they share with the admin API of a running proxy.
//!
//! A command asks the running proxy through its admin listener (`admin.listen`,
//! [`remote`]), with the token of `admin.token_file` ([`token`]) in the wire form
//! of [`api`]. When nothing listens there (connection refused: the proxy is
//! stopped), or there is no `admin` section, it opens the store itself and acts
//! on it ([`direct`]); the embedded store is locked by a running proxy, which
//! the command then explains. Either way the action is
//! [`Authority::admin`](crate::authority::Authority::admin), which writes the
//! audit event; the answer is printed as a table or, with `--json`, as the API's JSON.

pub mod api;
mod direct;
mod remote;
mod render;
pub mod token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::authority::StateError;
use crate::authority::admin::{Action, AdminError};
use crate::config::Config;
use token::TokenFileError;

/// Exit code when the service or its store cannot be reached (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code when the admin token cannot be read or is refused (EX_NOPERM).
pub const EXIT_NO_PERMISSION: u8 = 77;

/// Why an admin command failed; the text is what the operator reads.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}; run the command as the proxy's user (or root)")]
    Token(#[from] TokenFileError),
    #[error(
        "the admin listener at {addr} refused the token in {}: is it the file the running proxy uses (it reads it at start and on SIGHUP)?",
        file.display()
    )]
    Unauthorized { addr: SocketAddr, file: PathBuf },
    #[error("cannot reach the admin listener at {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("the admin listener at {addr} answered {status}: {description}")]
    Refused {
        addr: SocketAddr,
        status: u16,
        description: String,
    },
    #[error(
        "the store {} is in use by another process, but nothing answers on admin.listen {addr}: is a proxy running with another config, or still starting?",
        path.display()
    )]
    InUseNoListener { path: PathBuf, addr: SocketAddr },
    #[error(
        "the store {} is in use by a running mcp-oauth-proxy. Admin commands reach a running proxy through its admin listener: set `admin.listen` in the config (e.g. 127.0.0.1:9464) and restart it",
        path.display()
    )]
    InUseNoAdmin { path: PathBuf },
    #[error(
        "there is no store at {}: has the proxy run with this config (state.dir)?",
        path.display()
    )]
    NoStore { path: PathBuf },
    #[error("admin commands support only the embedded store (`state.dir`)")]
    NotEmbedded,
    #[error("{0}")]
    Audit(String),
    #[error("cannot open the store: {0}")]
    State(#[from] StateError),
    #[error(transparent)]
    Action(#[from] AdminError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl CommandError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CommandError::Token(_) | CommandError::Unauthorized { .. } => {
                ExitCode::from(EXIT_NO_PERMISSION)
            }
            CommandError::Unreachable { .. }
            | CommandError::InUseNoListener { .. }
            | CommandError::InUseNoAdmin { .. } => ExitCode::from(EXIT_UNAVAILABLE),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Runs `action` on the running proxy, or on its store when it is stopped, and
/// prints the outcome (a table, or JSON with `json`).
pub fn run(config: &Config, action: &Action, json: bool) -> ExitCode {
    let outcome = ask(config, action);
    match outcome {
        Ok(outcome) => {
            let text = if json {
                render::json(&outcome)
            } else {
                render::table(&outcome)
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-oauth-proxy admin: {e}");
            e.exit_code()
        }
    }
}

fn ask(config: &Config, action: &Action) -> Result<crate::authority::admin::Outcome, CommandError> {
    let Some(admin) = &config.admin else {
        return direct::run(config, action, None);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    match runtime.block_on(remote::call(admin, action))? {
        Some(outcome) => Ok(outcome),
        None => {
            eprintln!(
                "(nothing listens on {}: the proxy is stopped; acting on its store)",
                admin.listen
            );
            direct::run(config, action, Some(admin.listen))
        }
    }
}
