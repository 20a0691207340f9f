//! Configuration: the YAML file ([`raw`]) is validated ([`validate`]) into the
//! typed [`Config`] that the rest of the proxy reads. Errors carry line:column.

mod duration;
mod env;
mod raw;
mod upstream;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::secret::Secret;
pub use crate::telemetry::{LogFormat, LogSettings};

pub use duration::parse as parse_duration;
pub use upstream::{Per, StdioServer, Upstream};

/// The whole validated configuration. Cheap to share (`Arc<Config>`), swapped whole on reload.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: PublicUrl,
    pub tls: Option<Tls>,
    pub state: StateBackend,
    pub tokens: Tokens,
    /// `tokens.access_ttl_by_client`: a longer (or shorter) life for some clients' tokens.
    pub access_ttl_by_client: Vec<(String, Duration)>,
    pub users: Vec<User>,
    /// `identity_providers`: people may sign in through these (besides `users`).
    pub identity_providers: Vec<IdentityProvider>,
    /// `clients`: machine clients registered in the file (`client_credentials`).
    pub clients: Vec<MachineClient>,
    /// `api_keys.enabled`: keys from `admin api-key create` work as bearer tokens.
    pub api_keys: bool,
    pub server: ServerSettings,
    pub cimd: Cimd,
    /// `log:` format and filter; read once at start.
    pub log: LogSettings,
    /// `audit:`; without it, audit events go to the log with target `audit`.
    pub audit: Option<Audit>,
    /// The admin listener (`/metrics`, `/readyz`, `/admin/…`); `None`: none, and no metrics.
    pub admin: Option<Admin>,
    pub routes: Vec<Arc<Route>>,
}

/// The admin listener: a socket apart from `listen`, for operators only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub listen: SocketAddr,
    /// The file holding the admin API's bearer token (created at start if absent).
    pub token_file: PathBuf,
}

/// The audit log file: one JSON line per security event.
#[derive(Debug, Clone)]
pub struct Audit {
    pub path: PathBuf,
}

/// Client ID metadata documents: a `client_id` that is an https URL.
#[derive(Debug, Clone, Copy)]
pub struct Cimd {
    pub enabled: bool,
    /// Fetch documents from private and loopback addresses, over http too: test setups only.
    pub allow_private_networks: bool,
}

/// The origin clients see, without a trailing slash; also the OAuth issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    origin: String,
}

impl PublicUrl {
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https://")
    }

    /// The absolute URL of a path on this proxy.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)
    }
}

pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate chain and key, loaded and checked at validation.
    pub certified: Arc<rustls::sign::CertifiedKey>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub enum StateBackend {
    Dir(PathBuf),
    /// The URL (it may hold the password) and the password from `redis_password_file`.
    Redis {
        url: Secret,
        password: Option<Secret>,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Tokens {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_grace: Duration,
    /// How long a signing key signs access tokens before a new one takes over.
    pub signing_key_rotation: Duration,
    /// The longest access-token lifetime of any client (`access_ttl` or one of
    /// `access_ttl_by_client`): how long a retired signing key stays published.
    pub longest_access_ttl: Duration,
}

#[derive(Debug)]
pub struct User {
    pub name: String,
    pub password_hash: Secret,
    pub groups: Vec<String>,
}

/// An organisation's identity provider: the proxy is its relying party.
#[derive(Debug)]
pub struct IdentityProvider {
    /// `[a-z0-9-]+`: in URLs (`/oauth/login/<name>`, `/oauth/callback/<name>`) and
    /// as the prefix of its users' names (`<name>:<email or login>`).
    pub name: String,
    /// What the button says after "Sign in with".
    pub display_name: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Scopes asked of the provider.
    pub scopes: Vec<String>,
    /// A person is confirmed with the provider again at a refresh after this long.
    pub revalidate_after: Duration,
    /// Extra parameters for the provider's authorization request (e.g. Google's
    /// `access_type=offline`); never one the flow sets itself.
    pub authorize_params: Vec<(String, String)>,
    /// Its Identity Assertion JWT Authorization Grants (ID-JAG) are accepted at
    /// the token endpoint (enterprise-managed authorization).
    pub id_jag: bool,
    pub kind: ProviderKind,
}

/// A machine client from `clients:`: it gets access tokens for itself
/// (`client_credentials`), for the routes and scopes listed here only.
#[derive(Debug)]
pub struct MachineClient {
    pub client_id: String,
    /// What it is called in logs, tokens (`sub`) and policy: `service:<name>`.
    pub name: String,
    pub credential: MachineCredential,
    /// Route names.
    pub routes: Vec<String>,
    /// Scope names it may get (on any of its routes that defines them).
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum MachineCredential {
    /// An argon2 PHC string (`mcp-oauth-proxy hash-password`).
    SecretHash(Secret),
    /// `private_key_jwt` with these keys.
    Jwks(serde_json::Value),
    /// `private_key_jwt` with the keys at this URL.
    JwksUri(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenID Connect, configured by discovery from the issuer.
    Oidc {
        /// As configured, without a trailing slash; may contain `{tenantid}`.
        issuer: String,
        /// Lowercase; empty: any.
        allowed_email_domains: Vec<String>,
        groups_claim: Option<String>,
    },
    /// GitHub (or GitHub Enterprise Server): OAuth 2.0 and the REST API.
    GitHub {
        /// The REST API, without a trailing slash.
        api_url: String,
        /// Where `/login/oauth/authorize` and `/login/oauth/access_token` are.
        web_url: String,
        /// Organisation logins, lowercase; empty: any.
        allowed_organizations: Vec<String>,
    },
}

impl IdentityProvider {
    /// The redirect URI to register at the provider.
    pub fn redirect_uri(&self, public_url: &PublicUrl) -> String {
        public_url.join(&format!("{}{}", crate::paths::CALLBACK_PREFIX, self.name))
    }

    /// The name of this provider's user `id` (an email or a login).
    pub fn user_name(&self, id: &str) -> String {
        format!("{}:{id}", self.name)
    }
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub shutdown_grace: Duration,
    pub header_read_timeout: Duration,
    pub upstream_timeout: Duration,
    pub sse_keepalive: Duration,
    pub allowed_origins: Vec<String>,
    /// Open client connections at most; more are refused at accept.
    pub max_connections: usize,
    /// Open client connections from one address (IPv6: one /64) at most; more are
    /// refused at accept.
    pub max_connections_per_ip: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    StreamableHttp,
    Sse,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::StreamableHttp => "streamable-http",
            Transport::Sse => "sse",
        }
    }
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub path: String,
    /// `public_url + path`: the protected resource identifier and token audience.
    pub resource: String,
    pub upstream: Upstream,
    pub transport: Transport,
    /// The upstream's credential: none (empty), one for everybody (one rule
    /// without `when` or label), or rules, first match wins (`credential_for`).
    pub upstream_auth: Vec<CredentialRule>,
    /// `upstream_auth: {oauth: ...}`: each user's own token from the upstream's
    /// authorization server (then `upstream_auth` is empty).
    pub upstream_oauth: Option<UpstreamOAuth>,
    /// Every header name a rule sets: clients' own copies are dropped.
    pub credential_headers: Vec<HeaderName>,
    /// Send `X-Forwarded-User`, `-Email`, `-Groups`, `-Scopes`, `-Client-Id`.
    pub identity_headers: bool,
    /// Send a short-lived JWT naming the caller in this header.
    pub identity_token: Option<HeaderName>,
    pub allow: Option<Allow>,
    /// Scope name → tool-name patterns, in file order. `None`: every tool for every token.
    pub scopes: Option<Vec<(String, Vec<String>)>>,
    pub default_scopes: Vec<String>,
    pub timeout: Duration,
    /// This route's metrics, resolved on its first request.
    pub metrics: crate::metrics::RouteSlot,
}

/// A credential and when it applies.
#[derive(Debug, Clone)]
pub struct CredentialRule {
    /// `name:` or the rule's index, for the access log; `None` for the one-credential form.
    pub label: Option<String>,
    /// `None`: always (the default, or the one-credential form).
    pub when: Option<When>,
    pub auth: UpstreamAuth,
}

/// Every key given must match, each by any of its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct When {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
}

impl CredentialRule {
    /// Whether this rule applies to `user` with `groups` and the token's `scope`
    /// (space-separated).
    pub fn matches(&self, user: &str, groups: &[String], scope: &str) -> bool {
        let Some(w) = &self.when else {
            return true;
        };
        (w.users.is_empty() || w.users.iter().any(|u| u == user))
            && (w.groups.is_empty() || w.groups.iter().any(|g| groups.contains(g)))
            && (w.scopes.is_empty() || scope.split(' ').any(|s| w.scopes.iter().any(|x| x == s)))
    }
}

impl Route {
    /// The first rule that applies to the caller, if any.
    pub fn credential_for(
        &self,
        user: &str,
        groups: &[String],
        scope: &str,
    ) -> Option<&CredentialRule> {
        self.upstream_auth
            .iter()
            .find(|r| r.matches(user, groups, scope))
    }
}

/// The header the upstream expects; its value is marked sensitive so it never prints.
#[derive(Debug, Clone)]
pub struct UpstreamAuth {
    pub name: HeaderName,
    pub value: HeaderValue,
    /// Which form the config used, for `check-config` output.
    pub kind: &'static str,
}

/// The proxy as an OAuth client of an upstream's authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOAuth {
    /// The issuer; `None`: discovered from the upstream (RFC 9728).
    pub authorization_server: Option<String>,
    /// `None`: registered dynamically at the authorization server.
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Allow {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// One problem in the config file, with its YAML location when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Every problem found in one file.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if e.line > 0 {
                write!(
                    f,
                    "{}:{}:{}: {}",
                    self.file.display(),
                    e.line,
                    e.column,
                    e.message
                )?;
            } else {
                write!(f, "{}: {}", self.file.display(), e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads, parses and validates a config file, with `${NAME}` taken from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |message: String| ConfigErrors {
            file: path.to_path_buf(),
            errors: vec![ConfigError {
                line: 0,
                column: 0,
                message,
            }],
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read config file: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml(&text, base, &|name| std::env::var(name).ok()).map_err(|errors| {
            ConfigErrors {
                file: path.to_path_buf(),
                errors,
            }
        })
    }

    /// Parses and validates YAML text. Relative file paths are taken from `base`.
    pub fn from_yaml(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<ConfigError>> {
        let raw: raw::RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let message = strip_location_suffix(&e.without_snippet().to_string());
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .or_else(|| duplicate_key_location(text, &message))
                .unwrap_or((1, 1));
            vec![ConfigError {
                line,
                column,
                message,
            }]
        })?;
        validate::validate(raw, base, env)
    }

    /// The name of the route whose resource (token audience) this is.
    pub fn route_name(&self, resource: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|r| r.resource == resource)
            .map(|r| r.name.as_str())
    }

    pub fn route_by_path(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.path == path)
    }

    /// The machine client with this id.
    pub fn machine_client(&self, client_id: &str) -> Option<&MachineClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// The access-token lifetime for tokens of this client.
    pub fn access_ttl(&self, client_id: &str) -> Duration {
        self.access_ttl_by_client
            .iter()
            .find(|(c, _)| c == client_id)
            .map_or(self.tokens.access_ttl, |(_, ttl)| *ttl)
    }

    /// The identity provider with this name.
    pub fn provider(&self, name: &str) -> Option<&IdentityProvider> {
        self.identity_providers.iter().find(|p| p.name == name)
    }
}

/// serde reports a repeated key (`duplicate field `listen``) without a place:
/// the line of the key's second occurrence, if the text says where.
fn duplicate_key_location(text: &str, message: &str) -> Option<(u64, u64)> {
    let key = message
        .strip_prefix("duplicate field `")?
        .split('`')
        .next()?;
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let column = line.find(key)?;
            let rest = line[column + key.len()..].trim_start();
            let before = line[..column].trim_start_matches([' ', '-']);
            (rest.starts_with(':') && (before.is_empty() || before.ends_with(' ')))
                .then_some((i as u64 + 1, column as u64 + 1))
        })
        .nth(1)
}

/// serde-saphyr ends its messages with " at line L, column C"; the location is printed in front instead.
fn strip_location_suffix(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(", column ") => message[..i].to_string(),
        _ => message.to_string(),
    }
}
