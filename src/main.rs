use std::process::ExitCode;

use clap::Parser;
use mcp_oauth_proxy::cli::{self, Cli, Command};
use mcp_oauth_proxy::{server, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(arg) => cli::check_config(&arg.config),
        Command::HashPassword => cli::hash_password(),
        Command::Admin { command } => cli::admin(command),
        Command::MigrateStore(args) => cli::migrate_store(&args),
        Command::Completions { shell } => match cli::completions(shell, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write the completions: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Manpage => match cli::manpage(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write the man page: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(arg) => {
            // Fail fast: a bad config exits 64 before any port is bound.
            let config = match cli::load_or_report(&arg.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let audit = config.audit.as_ref().map(|a| a.path.as_path());
            if let Err(e) = telemetry::init(&config.log, audit) {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(server::serve(arg.config, config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
