//! Raw config → typed [`Config`]: every check that needs more than serde,
//! each problem reported with the YAML location of the value at fault.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Uri};
use serde_saphyr::Location;

use super::raw::{RawAdmin, RawConfig, RawRoute, S, Str};
use super::*;
use crate::paths;

const DEFAULT_STATE_DIR: &str = "/var/lib/mcp-oauth-proxy";
/// The admin API's token file in the state directory, unless `admin.token_file` names one.
const ADMIN_TOKEN_FILE: &str = "admin-token";
const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Durations above this are refused: they would overflow time arithmetic and mean nothing useful.
const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);
const MIN_KEY_ROTATION: Duration = Duration::from_secs(3600);

struct Checker<'a> {
    errors: Vec<ConfigError>,
    base: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Checker<'_> {
    fn error(&mut self, at: Location, key: &str, message: impl fmt::Display) {
        self.errors.push(ConfigError {
            line: at.line(),
            column: at.column(),
            message: format!("{key}: {message}"),
        });
    }

    /// The string with `${NAME}` replaced, or `None` after recording why not.
    fn text(&mut self, s: &Str, key: &str) -> Option<String> {
        match env::interpolate(&s.value, self.env) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(s.referenced, key, e);
                None
            }
        }
    }

    fn non_empty(&mut self, s: &Str, key: &str) -> Option<String> {
        let v = self.text(s, key)?;
        if v.trim().is_empty() {
            self.error(s.referenced, key, "must not be empty");
            return None;
        }
        Some(v)
    }

    fn duration(&mut self, s: Option<&Str>, key: &str, default: Duration) -> Duration {
        let Some(s) = s else { return default };
        let Some(v) = self.text(s, key) else {
            return default;
        };
        match duration::parse(&v) {
            Ok(d) if d > MAX_DURATION => {
                self.error(s.referenced, key, "must be at most 366d");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(s.referenced, key, e);
                default
            }
        }
    }

    fn path(&mut self, s: &Str, key: &str) -> Option<PathBuf> {
        let v = self.non_empty(s, key)?;
        Some(self.base.join(v))
    }

    fn existing_file(&mut self, s: &Str, key: &str) -> Option<PathBuf> {
        let p = self.path(s, key)?;
        if !p.is_file() {
            self.error(
                s.referenced,
                key,
                format!("file {} does not exist", p.display()),
            );
            return None;
        }
        Some(p)
    }

    /// A secret read from a file (e.g. systemd's `$CREDENTIALS_DIRECTORY`), without
    /// the spaces and newline around it; an empty file is an error.
    fn secret_file(&mut self, s: &Str, key: &str) -> Option<String> {
        let path = self.existing_file(s, key)?;
        match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            Ok(_) => {
                self.error(s.referenced, key, format!("{} is empty", path.display()));
                None
            }
            Err(e) => {
                self.error(
                    s.referenced,
                    key,
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    }

    /// An absolute http(s) URL; plain http only for a loopback host.
    fn url(&mut self, s: &Str, key: &str, https_unless_loopback: bool) -> Option<url::Url> {
        let v = self.non_empty(s, key)?;
        let parsed = match url::Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            Ok(_) => {
                self.error(
                    s.referenced,
                    key,
                    "must be an http:// or https:// URL with a host",
                );
                return None;
            }
            Err(e) => {
                self.error(s.referenced, key, format!("is not a valid URL ({e})"));
                return None;
            }
        };
        if https_unless_loopback && parsed.scheme() == "http" && !is_loopback(&parsed) {
            self.error(
                s.referenced,
                key,
                "must use https unless the host is loopback",
            );
            return None;
        }
        Some(parsed)
    }
}

pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

pub fn validate(
    raw: RawConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let mut c = Checker {
        errors: Vec::new(),
        base,
        env,
    };

    let listen = c.non_empty(&raw.listen, "listen").and_then(|v| {
        v.parse::<SocketAddr>()
            .map_err(|_| {
                c.error(
                    raw.listen.referenced,
                    "listen",
                    "must be a socket address such as 0.0.0.0:8443 or [::]:443",
                )
            })
            .ok()
    });

    let public_url = public_url(&mut c, &raw.public_url);

    let tls = raw.tls.as_ref().and_then(|t| {
        let cert = c.existing_file(&t.value.cert, "tls.cert")?;
        let key = c.existing_file(&t.value.key, "tls.key")?;
        match crate::tls::load_certified_key(&cert, &key) {
            Ok(certified) => Some(Tls {
                cert,
                key,
                certified,
            }),
            Err(e) => {
                c.error(t.referenced, "tls", e);
                None
            }
        }
    });

    let state = state(&mut c, raw.state.as_ref());
    let t = raw.tokens.as_ref();
    let tokens = Tokens {
        access_ttl: c.duration(
            t.and_then(|t| t.access_ttl.as_ref()),
            "tokens.access_ttl",
            Duration::from_secs(3600),
        ),
        refresh_ttl: c.duration(
            t.and_then(|t| t.refresh_ttl.as_ref()),
            "tokens.refresh_ttl",
            Duration::from_secs(30 * 86_400),
        ),
        refresh_grace: c.duration(
            t.and_then(|t| t.refresh_grace.as_ref()),
            "tokens.refresh_grace",
            Duration::from_secs(10),
        ),
        signing_key_rotation: signing_key_rotation(
            &mut c,
            t.and_then(|t| t.signing_key_rotation.as_ref()),
        ),
        longest_access_ttl: Duration::ZERO,
    };
    let mut access_ttl_by_client = Vec::new();
    for (client, ttl) in t
        .and_then(|t| t.access_ttl_by_client.as_ref())
        .into_iter()
        .flatten()
    {
        let key = "tokens.access_ttl_by_client";
        if let Some(id) = c.non_empty(client, key) {
            access_ttl_by_client.push((id, c.duration(Some(ttl), key, tokens.access_ttl)));
        }
    }
    let tokens = Tokens {
        longest_access_ttl: access_ttl_by_client
            .iter()
            .map(|(_, ttl)| *ttl)
            .fold(tokens.access_ttl, Duration::max),
        ..tokens
    };

    let users = users(&mut c, &raw.users);
    let identity_providers = providers::providers(&mut c, &raw.identity_providers);

    let server = server(&mut c, raw.server.as_ref());
    let log = log(&mut c, raw.log.as_ref());
    let audit = raw.audit.as_ref().and_then(|a| {
        Some(Audit {
            path: c.path(&a.path, "audit.path")?,
        })
    });
    let admin = raw
        .admin
        .as_ref()
        .and_then(|a| admin(&mut c, a, listen, state.as_ref()));

    let mut routes = Vec::new();
    if raw.routes.value.is_empty() {
        c.error(
            raw.routes.referenced,
            "routes",
            "at least one route is required",
        );
    }
    let mut names = HashSet::new();
    let mut route_paths = HashSet::new();
    for (i, r) in raw.routes.value.iter().enumerate() {
        let key = format!("routes[{i}]");
        if let Some(route) = route(
            &mut c,
            &key,
            r,
            public_url.as_ref(),
            &server,
            &users,
            &identity_providers,
        ) {
            if !names.insert(route.name.clone()) {
                c.error(
                    r.value.name.referenced,
                    &format!("{key}.name"),
                    format!("duplicate route name {:?}", route.name),
                );
            }
            if !route_paths.insert(route.path.clone()) {
                c.error(
                    r.value.path.referenced,
                    &format!("{key}.path"),
                    format!("duplicate route path {:?}", route.path),
                );
            }
            routes.push(Arc::new(route));
        }
    }

    let clients = machine_clients::machine_clients(&mut c, &raw.clients, &routes);

    match (listen, public_url, state, c.errors.is_empty()) {
        (Some(listen), Some(public_url), Some(state), true) => Ok(Config {
            listen,
            public_url,
            tls,
            state,
            tokens,
            users,
            identity_providers,
            clients,
            api_keys: raw
                .api_keys
                .as_ref()
                .and_then(|a| a.enabled)
                .unwrap_or(false),
            access_ttl_by_client,
            server,
            cimd: Cimd {
                enabled: raw.cimd.as_ref().and_then(|c| c.enabled).unwrap_or(true),
                allow_private_networks: raw
                    .cimd
                    .as_ref()
                    .and_then(|c| c.allow_private_networks)
                    .unwrap_or(false),
            },
            log,
            audit,
            admin,
            routes,
        }),
        _ => Err(c.errors),
    }
}

fn log(c: &mut Checker, raw: Option<&super::raw::RawLog>) -> LogSettings {
    let format = match raw.and_then(|l| l.format.as_ref()) {
        None => LogFormat::Text,
        Some(f) => match c.text(f, "log.format").as_deref() {
            Some("text") | None => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                c.error(
                    f.referenced,
                    "log.format",
                    format!("must be text or json, not {other:?}"),
                );
                LogFormat::Text
            }
        },
    };
    let filter = raw.and_then(|l| l.filter.as_ref()).and_then(|f| {
        let v = c.non_empty(f, "log.filter")?;
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&v) {
            c.error(
                f.referenced,
                "log.filter",
                format!("is not a valid filter ({e})"),
            );
            return None;
        }
        Some(v)
    });
    LogSettings { format, filter }
}

/// `admin.listen`: a socket address, not the public one; `admin.token_file`:
/// a path, by default `admin-token` in the state directory.
fn admin(
    c: &mut Checker,
    raw: &S<RawAdmin>,
    public: Option<SocketAddr>,
    state: Option<&StateBackend>,
) -> Option<Admin> {
    let l = &raw.value.listen;
    let listen = c.non_empty(l, "admin.listen")?;
    let Ok(listen) = listen.parse::<SocketAddr>() else {
        c.error(
            l.referenced,
            "admin.listen",
            "must be a socket address such as 127.0.0.1:9464",
        );
        return None;
    };
    let shared = public.is_some_and(|p| {
        p.port() == listen.port()
            && (p.ip() == listen.ip() || p.ip().is_unspecified() || listen.ip().is_unspecified())
    });
    if shared && listen.port() != 0 {
        c.error(
            l.referenced,
            "admin.listen",
            "must not be the public `listen` address: metrics are for operators only",
        );
        return None;
    }
    let token_file = match (&raw.value.token_file, state) {
        (Some(f), _) => c.path(f, "admin.token_file")?,
        (None, Some(StateBackend::Dir(dir))) => dir.join(ADMIN_TOKEN_FILE),
        // No state directory: beside the config file (several instances sharing
        // one config then share the token too).
        (None, Some(StateBackend::Redis { .. })) => c.base.join(ADMIN_TOKEN_FILE),
        // The state's own problem is reported already.
        (None, None) => return None,
    };
    Some(Admin { listen, token_file })
}

fn public_url(c: &mut Checker, s: &Str) -> Option<PublicUrl> {
    let url = c.url(s, "public_url", true)?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        c.error(
            s.referenced,
            "public_url",
            "must be an origin such as https://mcp.example.com (no path, query or fragment)",
        );
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        c.error(s.referenced, "public_url", "must not contain credentials");
        return None;
    }
    Some(PublicUrl {
        origin: url.as_str().trim_end_matches('/').to_string(),
    })
}

/// `tokens.signing_key_rotation`: how long a signing key signs; at least
/// [`MIN_KEY_ROTATION`], so that every instance sees a new key before it signs.
fn signing_key_rotation(c: &mut Checker, s: Option<&Str>) -> Duration {
    let default = Duration::from_secs(30 * 86_400);
    let d = c.duration(s, "tokens.signing_key_rotation", default);
    match s {
        Some(s) if d < MIN_KEY_ROTATION => {
            c.error(
                s.referenced,
                "tokens.signing_key_rotation",
                "must be at least 1h",
            );
            default
        }
        _ => d,
    }
}

fn state(c: &mut Checker, raw: Option<&S<super::raw::RawState>>) -> Option<StateBackend> {
    let Some(s) = raw else {
        let dir = std::env::var_os("STATE_DIRECTORY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        return Some(StateBackend::Dir(dir));
    };
    if let (Some(f), None) = (&s.value.redis_password_file, &s.value.redis) {
        c.error(
            f.referenced,
            "state.redis_password_file",
            "is for `state.redis`, which is not set",
        );
        return None;
    }
    match (&s.value.dir, &s.value.redis) {
        (Some(_), Some(_)) => {
            c.error(
                s.referenced,
                "state",
                "set either `dir` or `redis`, not both",
            );
            None
        }
        (Some(d), None) => {
            let dir = c.path(d, "state.dir")?;
            if dir.exists() && !dir.is_dir() {
                c.error(
                    d.referenced,
                    "state.dir",
                    format!("{} is not a directory", dir.display()),
                );
                return None;
            }
            Some(StateBackend::Dir(dir))
        }
        (None, Some(r)) => {
            let url = c.non_empty(r, "state.redis")?;
            // The URL may hold the password: no message repeats it.
            let parsed = url::Url::parse(&url).ok().filter(|u| {
                matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix")
                    && redis::IntoConnectionInfo::into_connection_info(url.as_str()).is_ok()
            });
            let Some(parsed) = parsed else {
                c.error(
                    r.referenced,
                    "state.redis",
                    "must be a redis:// or rediss:// URL: redis://[:password@]host:port/db",
                );
                return None;
            };
            let password = match &s.value.redis_password_file {
                Some(f) if parsed.password().is_some() => {
                    c.error(
                        f.referenced,
                        "state.redis_password_file",
                        "the URL has a password already: set one or the other",
                    );
                    return None;
                }
                Some(f) => Some(Secret::new(c.secret_file(f, "state.redis_password_file")?)),
                None => None,
            };
            Some(StateBackend::Redis {
                url: Secret::new(url),
                password,
            })
        }
        (None, None) => {
            c.error(s.referenced, "state", "set `dir` or `redis`");
            None
        }
    }
}

fn users(c: &mut Checker, raw: &[S<super::raw::RawUser>]) -> Vec<User> {
    let mut users = Vec::new();
    let mut seen = HashSet::new();
    for (i, u) in raw.iter().enumerate() {
        let key = format!("users[{i}]");
        let Some(name) = c.non_empty(&u.value.name, &format!("{key}.name")) else {
            continue;
        };
        if !seen.insert(name.clone()) {
            c.error(
                u.value.name.referenced,
                &format!("{key}.name"),
                format!("duplicate user {name:?}"),
            );
        }
        if name.contains(':') {
            // `:` separates an identity provider's name from its users' ids.
            c.error(
                u.value.name.referenced,
                &format!("{key}.name"),
                "must not contain `:` (reserved for identity providers' users)",
            );
        }
        let Some(hash) = c.non_empty(&u.value.password_hash, &format!("{key}.password_hash"))
        else {
            continue;
        };
        match argon2::PasswordHash::new(&hash) {
            Ok(h) if h.algorithm.as_str().starts_with("argon2") => {}
            _ => {
                c.error(
                    u.value.password_hash.referenced,
                    &format!("{key}.password_hash"),
                    "must be an argon2 PHC string (make one with `mcp-oauth-proxy hash-password`)",
                );
                continue;
            }
        }
        let groups = u
            .value
            .groups
            .iter()
            .filter_map(|g| c.non_empty(g, &format!("{key}.groups")))
            .collect();
        users.push(User {
            name,
            password_hash: Secret::new(hash),
            groups,
        });
    }
    users
}

fn server(c: &mut Checker, raw: Option<&super::raw::RawServer>) -> ServerSettings {
    let d = |s| Duration::from_secs(s);
    let Some(s) = raw else {
        return ServerSettings {
            shutdown_grace: d(10),
            header_read_timeout: d(10),
            upstream_timeout: d(120),
            sse_keepalive: d(15),
            allowed_origins: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: default_per_ip(DEFAULT_MAX_CONNECTIONS),
        };
    };
    let max_connections = connection_count(
        c,
        s.max_connections.as_ref(),
        "server.max_connections",
        DEFAULT_MAX_CONNECTIONS,
    );
    let max_connections_per_ip = connection_count(
        c,
        s.max_connections_per_ip.as_ref(),
        "server.max_connections_per_ip",
        default_per_ip(max_connections),
    );
    let mut allowed_origins = Vec::new();
    for o in &s.allowed_origins {
        if let Some(u) = c.url(o, "server.allowed_origins", false) {
            allowed_origins.push(u.origin().ascii_serialization());
        }
    }
    let keepalive = c.duration(s.sse_keepalive.as_ref(), "server.sse_keepalive", d(15));
    if keepalive.is_zero()
        && let Some(k) = &s.sse_keepalive
    {
        c.error(
            k.referenced,
            "server.sse_keepalive",
            "must be more than zero",
        );
    }
    ServerSettings {
        shutdown_grace: c.duration(s.shutdown_grace.as_ref(), "server.shutdown_grace", d(10)),
        header_read_timeout: c.duration(
            s.header_read_timeout.as_ref(),
            "server.header_read_timeout",
            d(10),
        ),
        upstream_timeout: c.duration(
            s.upstream_timeout.as_ref(),
            "server.upstream_timeout",
            d(120),
        ),
        sse_keepalive: keepalive,
        allowed_origins,
        max_connections,
        max_connections_per_ip,
    }
}

/// A configured number of connections (1 to 1,000,000), or `default`.
fn connection_count(c: &mut Checker, raw: Option<&S<u64>>, key: &str, default: usize) -> usize {
    match raw {
        None => default,
        Some(m) if (1..=1_000_000).contains(&m.value) => m.value as usize,
        Some(m) => {
            c.error(m.referenced, key, "must be between 1 and 1000000");
            default
        }
    }
}

/// `server.max_connections_per_ip` when not set: a quarter of `max_connections`,
/// at most 256 (so one host cannot take them all), at least 1.
fn default_per_ip(max_connections: usize) -> usize {
    (max_connections / 4).clamp(1, 256)
}

/// RFC 6749 §3.3 scope-token characters.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn route(
    c: &mut Checker,
    key: &str,
    raw: &S<RawRoute>,
    public_url: Option<&PublicUrl>,
    server: &ServerSettings,
    users: &[User],
    providers: &[IdentityProvider],
) -> Option<Route> {
    let r = &raw.value;
    let name = c.non_empty(&r.name, &format!("{key}.name"))?;
    if !name
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
    {
        c.error(
            r.name.referenced,
            &format!("{key}.name"),
            "may contain only letters, digits, `-`, `_` and `.`",
        );
    }

    let path = c.non_empty(&r.path, &format!("{key}.path"))?;
    let path_ok = path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    if !path_ok {
        c.error(
            r.path.referenced,
            &format!("{key}.path"),
            "must start with `/`, not end with `/`, and use only letters, digits and `/-._~`",
        );
    } else if paths::is_reserved(&path) {
        c.error(
            r.path.referenced,
            &format!("{key}.path"),
            format!("{path} is reserved for the proxy's own endpoints"),
        );
    }

    let upstream = upstream::upstream(c, &format!("{key}.upstream"), &r.upstream);

    let transport = match &r.transport {
        None => Transport::StreamableHttp,
        Some(t) => match c.text(t, &format!("{key}.transport")).as_deref() {
            Some("streamable-http") => Transport::StreamableHttp,
            Some("sse") => Transport::Sse,
            Some(_) => {
                c.error(
                    t.referenced,
                    &format!("{key}.transport"),
                    "must be `streamable-http` or `sse`",
                );
                Transport::StreamableHttp
            }
            None => Transport::StreamableHttp,
        },
    };

    if let Some(Upstream::Stdio(_)) = &upstream {
        upstream::stdio_route_keys(c, key, r);
    }

    let allow = r.allow.as_ref().map(|a| {
        let users_key = format!("{key}.allow.users");
        let mut allow = Allow::default();
        for u in &a.value.users {
            let Some(name) = c.non_empty(u, &users_key) else {
                continue;
            };
            let known = match name.split_once(':') {
                Some((provider, _)) => providers.iter().any(|p| p.name == provider),
                None => users.iter().any(|x| x.name == name),
            };
            if !known {
                c.error(
                    u.referenced,
                    &users_key,
                    format!(
                        "no user named {name:?} in `users`, and no identity provider for it \
                         (a provider's users are `<provider>:<email or login>`)"
                    ),
                );
            }
            allow.users.push(name);
        }
        for g in &a.value.groups {
            if let Some(g) = c.non_empty(g, &format!("{key}.allow.groups")) {
                allow.groups.push(g);
            }
        }
        allow
    });

    let scopes = r.scopes.as_ref().map(|s| {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        if s.value.is_empty() {
            c.error(
                s.referenced,
                &format!("{key}.scopes"),
                "must name at least one scope (omit `scopes` to allow every tool)",
            );
        }
        for (scope, patterns) in &s.value {
            let scope_key = format!("{key}.scopes");
            let Some(name) = c.non_empty(scope, &scope_key) else {
                continue;
            };
            if !is_scope_token(&name) {
                c.error(
                    scope.referenced,
                    &scope_key,
                    format!(
                        "{name:?} is not a valid scope name (no spaces, quotes or backslashes)"
                    ),
                );
            }
            let mut pats = Vec::new();
            for p in &patterns.value {
                if let Some(p) = c.non_empty(p, &format!("{scope_key}.{name}")) {
                    pats.push(p);
                }
            }
            if pats.is_empty() {
                c.error(
                    patterns.referenced,
                    &format!("{scope_key}.{name}"),
                    "must list at least one tool pattern",
                );
            }
            out.push((name, pats));
        }
        out
    });

    let mut default_scopes = Vec::new();
    if let Some(d) = &r.default_scopes {
        let dkey = format!("{key}.default_scopes");
        for s in &d.value {
            let Some(v) = c.non_empty(s, &dkey) else {
                continue;
            };
            match &scopes {
                Some(defined) if defined.iter().any(|(n, _)| *n == v) => default_scopes.push(v),
                Some(_) => c.error(
                    s.referenced,
                    &dkey,
                    format!("{v:?} is not one of this route's scopes"),
                ),
                None => c.error(s.referenced, &dkey, "needs `scopes` on the route"),
            }
        }
    }

    let timeout = c.duration(
        r.timeout.as_ref(),
        &format!("{key}.timeout"),
        server.upstream_timeout,
    );

    let upstream_auth = match &r.upstream_auth {
        None => Vec::new(),
        Some(a) => upstream_auth::rules(
            c,
            &format!("{key}.upstream_auth"),
            a,
            &upstream_auth::Reach {
                users,
                providers,
                allow: allow.as_ref(),
                scopes: scopes.as_deref(),
            },
        ),
    };
    let upstream_oauth = r
        .upstream_auth
        .as_ref()
        .and_then(|a| upstream_auth::oauth(c, &format!("{key}.upstream_auth"), a));
    let mut credential_headers = upstream_auth::header_names(&upstream_auth);
    if upstream_oauth.is_some() {
        credential_headers.push(http::header::AUTHORIZATION);
    }
    let identity_token = r.identity_token.as_ref().and_then(|t| {
        let hkey = format!("{key}.identity_token.header");
        let name = c.non_empty(&t.value.header, &hkey)?;
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h)
                if !crate::wire::is_hop_by_hop(&h)
                    && h != http::header::HOST
                    && h != http::header::AUTHORIZATION =>
            {
                Some(h)
            }
            _ => {
                c.error(
                    t.value.header.referenced,
                    &hkey,
                    format!("{name:?} cannot carry the identity token"),
                );
                None
            }
        }
    });

    credential_headers.extend(identity_token.clone());

    Some(Route {
        resource: public_url.map(|u| u.join(&path)).unwrap_or_default(),
        metrics: crate::metrics::RouteSlot::new(&name),
        name,
        path,
        upstream: upstream?,
        transport,
        upstream_auth,
        upstream_oauth,
        credential_headers,
        identity_headers: r.identity_headers.unwrap_or(false),
        identity_token,
        allow,
        scopes,
        default_scopes,
        timeout,
    })
}

mod machine_clients;
mod providers;
#[cfg(test)]
mod tests;
mod upstream;
mod upstream_auth;
