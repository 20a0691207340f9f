//! The command line: `serve`, `check-config`, `hash-password`, `admin`,
//! `completions`, and the hidden `manpage` (for packagers).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::authority::admin::{Action, Selector};
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
    /// List clients and grants, revoke grants, delete clients: on the running proxy
    /// (through `admin.listen`), or on its store when it is stopped.
    #[command(
        after_help = "The commands read the admin token from `admin.token_file` \
        (default: <state.dir>/admin-token): run them as the proxy's user or root.\n\
        Exit codes: 0 done, 64 bad config, 69 proxy or store unavailable, \
        77 admin token unreadable or refused, 1 anything else."
    )]
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Copy an embedded store (an old `state.dir`) into the Redis store the
    /// config names (`state.redis`); records already in Redis are kept.
    MigrateStore(MigrateArgs),
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    #[command(after_help = "Install, e.g.:\n  \
        mcp-oauth-proxy completions bash > /etc/bash_completion.d/mcp-oauth-proxy\n  \
        mcp-oauth-proxy completions zsh > /usr/local/share/zsh/site-functions/_mcp-oauth-proxy\n  \
        mcp-oauth-proxy completions fish > ~/.config/fish/completions/mcp-oauth-proxy.fish")]
    Completions {
        /// The shell to generate completions for.
        shell: Shell,
    },
    /// Print the man page (roff) to stdout, for packagers:
    /// `mcp-oauth-proxy manpage > mcp-oauth-proxy.1`.
    #[command(hide = true)]
    Manpage,
}

/// The shells `completions` supports.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl From<Shell> for clap_complete::Shell {
    fn from(shell: Shell) -> Self {
        match shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The `admin` commands.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// List the clients: registered ones, and metadata-document clients with live grants.
    Clients(AdminOptions),
    /// List the live grants (refresh-token families): user, client, route, scopes, times.
    Grants {
        #[command(flatten)]
        options: AdminOptions,
        /// Only this user's grants.
        #[arg(long)]
        user: Option<String>,
        /// Only this client's grants.
        #[arg(long)]
        client: Option<String>,
    },
    /// End grants: their refresh tokens stop working and the access tokens they
    /// issued are refused from the next request on.
    Revoke {
        #[command(flatten)]
        options: AdminOptions,
        #[command(flatten)]
        target: RevokeTarget,
    },
    /// API keys (`api_keys: {enabled: true}`): static bearer keys for scripts.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Delete a client's registration and revoke its grants.
    DeleteClient {
        #[command(flatten)]
        options: AdminOptions,
        /// The client's id (as `admin clients` lists it).
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        client_id: String,
    },
}

/// The `admin api-key` commands.
#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Create a key for a user on a route; it is printed once.
    Create {
        #[command(flatten)]
        options: AdminOptions,
        /// The user the key acts as (its name in the logs, the policy and `allow`).
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        user: String,
        /// The route (by name) the key works on.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        route: String,
        /// The scopes, comma-separated (default: the route's `default_scopes`).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// How long it works (e.g. 90d); without it, until revoked.
        #[arg(long, value_parser = parse_duration_arg)]
        expires: Option<u64>,
    },
    /// List the keys (never their secrets).
    List(AdminOptions),
    /// Revoke a key: refused from the next request on.
    Revoke {
        #[command(flatten)]
        options: AdminOptions,
        /// The key's id (as `admin api-key list` shows it).
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        id: String,
    },
}

fn parse_duration_arg(text: &str) -> Result<u64, String> {
    crate::config::parse_duration(text)
        .map(|d| d.as_secs())
        .map_err(|e| e.to_string())
}

/// What every `admin` command takes.
#[derive(Args, Debug)]
pub struct AdminOptions {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the admin API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Which grants `admin revoke` ends: exactly one of these.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct RevokeTarget {
    /// Every grant of this user.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub user: Option<String>,
    /// Every grant of this client.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub client: Option<String>,
    /// One grant, by its id (as `admin grants` lists it).
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub grant: Option<String>,
}

impl AdminCommand {
    /// The command's options and the action it asks for.
    pub fn into_action(self) -> (AdminOptions, Action) {
        match self {
            AdminCommand::Clients(options) => (options, Action::Clients),
            AdminCommand::Grants {
                options,
                user,
                client,
            } => (options, Action::Grants { user, client }),
            AdminCommand::Revoke { options, target } => {
                let selector = match (target.user, target.client, target.grant) {
                    (Some(u), _, _) => Selector::User(u),
                    (_, Some(c), _) => Selector::Client(c),
                    // clap requires exactly one of the three.
                    (_, _, g) => Selector::Grant(g.unwrap_or_default()),
                };
                (options, Action::Revoke(selector))
            }
            AdminCommand::DeleteClient { options, client_id } => {
                (options, Action::DeleteClient(client_id))
            }
            AdminCommand::ApiKey(ApiKeyCommand::Create {
                options,
                user,
                route,
                scopes,
                expires,
            }) => (
                options,
                Action::CreateApiKey {
                    user,
                    route,
                    scopes: scopes.into_iter().filter(|s| !s.is_empty()).collect(),
                    expires_in: expires,
                },
            ),
            AdminCommand::ApiKey(ApiKeyCommand::List(options)) => (options, Action::ApiKeys),
            AdminCommand::ApiKey(ApiKeyCommand::Revoke { options, id }) => {
                (options, Action::RevokeApiKey(id))
            }
        }
    }
}

/// Runs an `admin` command: loads the config, then asks the proxy (or its store).
pub fn admin(command: AdminCommand) -> ExitCode {
    let (options, action) = command.into_action();
    let config = match load_or_report(&options.config.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::admin::run(&config, &action, options.json)
}

#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The YAML config file.
    #[arg(short, long, env = "MCP_OAUTH_PROXY_CONFIG")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The embedded store's directory (the `state.dir` used so far).
    #[arg(long)]
    pub from: PathBuf,
}

/// `migrate-store`: copies every live record of the embedded store in `--from`
/// into the configured Redis, and prints what it copied.
pub fn migrate_store(args: &MigrateArgs) -> ExitCode {
    let config = match load_or_report(&args.config.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !matches!(config.state, StateBackend::Redis { .. }) {
        eprintln!("the config's `state` is not `redis`: nothing to copy into");
        return ExitCode::from(EXIT_CONFIG);
    }
    if !args.from.join("state.redb").is_file() {
        eprintln!(
            "{} holds no embedded store (state.redb)",
            args.from.display()
        );
        return ExitCode::from(EXIT_DATA);
    }
    let copied = crate::server::open_store(&config)
        .map_err(|e| e.to_string())
        .and_then(|to| to.0.redis().ok_or_else(|| "not a redis store".to_string()))
        .and_then(|to| {
            let from = crate::store::Embedded::open(&args.from).map_err(|e| e.to_string())?;
            let now = crate::clock::Clock::system().unix();
            crate::store::migrate::copy(&from, &to, now).map_err(|e| e.to_string())
        });
    match copied {
        Ok(copied) => {
            for c in &copied {
                println!(
                    "{}: {} copied, {} already in redis (kept)",
                    c.ns.name(),
                    c.copied,
                    c.present
                );
            }
            if copied
                .iter()
                .any(|c| c.ns == crate::store::Namespace::Keys && c.present > 0)
            {
                println!(
                    "note: redis had keys already (an instance started on it before the copy): \
                     tokens signed with the embedded store's keys may not verify"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate-store failed: {e}");
            ExitCode::FAILURE
        }
    }
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
        StateBackend::Redis { .. } => println!("state: redis"),
    }
    for p in &config.identity_providers {
        let kind = match p.kind {
            crate::config::ProviderKind::Oidc { .. } => "openid",
            crate::config::ProviderKind::GitHub { .. } => "github",
        };
        println!(
            "identity provider {} ({kind}): redirect URI to register: {}",
            p.name,
            p.redirect_uri(&config.public_url)
        );
    }
    for r in &config.routes {
        let auth = match r.upstream_auth.as_slice() {
            [] if r.upstream_oauth.is_some() => "oauth, per user".to_string(),
            [] => "none".to_string(),
            [one] if one.label.is_none() => one.auth.kind.to_string(),
            rules => format!("{} rules", rules.len()),
        };
        println!(
            "route {}: {} -> {} ({}, upstream auth: {})",
            r.name,
            r.resource,
            r.upstream,
            r.transport.as_str(),
            auth
        );
        if r.upstream_oauth.is_some() {
            println!(
                "  connect page: {}; redirect URI to register at the upstream: {}",
                crate::upstream_oauth::connect_url(&config, r),
                crate::upstream_oauth::redirect_uri(&config, r)
            );
        }
        if let Some(scopes) = &r.scopes {
            for (name, patterns) in scopes {
                println!("  scope {name}: {}", patterns.join(", "));
            }
        }
    }
    ExitCode::SUCCESS
}

/// Writes the completion script for `shell`, generated from the clap definition.
pub fn completions(shell: Shell, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    // clap_complete offers hidden commands too: complete a copy without them.
    let full = Cli::command();
    let name = full.get_name().to_string();
    let mut cmd = clap::Command::new("mcp-oauth-proxy")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    // clap_complete panics on a write error; generate into memory, then write.
    let mut script = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(shell),
        &mut cmd,
        name,
        &mut script,
    );
    out.write_all(&script)
}

/// Writes the man page (roff), generated from the clap definition: one page,
/// with a COMMANDS section giving each command's synopsis, description and options.
pub fn manpage(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let full_name = format!("{} {}", cmd.get_name(), sub.get_name());
        writeln!(out, ".SS \"{full_name}\"")?;
        // The subcommand's own sections as paragraphs, without their `.SH`
        // headings (and the string definitions the title already made).
        let sub_man = clap_mangen::Man::new(sub.clone().bin_name(full_name));
        let mut synopsis = Vec::new();
        sub_man.render_synopsis_section(&mut synopsis)?;
        let mut description = Vec::new();
        sub_man.render_description_section(&mut description)?;
        let mut options = Vec::new();
        sub_man.render_options_section(&mut options)?;
        for section in [synopsis, description, options] {
            writeln!(out, ".PP")?;
            for line in String::from_utf8_lossy(&section).lines() {
                if !line.starts_with(".SH") && !line.contains(".ds Aq") {
                    writeln!(out, "{line}")?;
                }
            }
        }
    }
    man.render_version_section(out)
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
