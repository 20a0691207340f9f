//! The config file as written: serde structs that refuse unknown keys and keep
//! the YAML location of every value that validation may complain about.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;
pub type Str = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Str,
    pub public_url: Str,
    pub tls: Option<S<RawTls>>,
    pub state: Option<S<RawState>>,
    pub tokens: Option<RawTokens>,
    #[serde(default)]
    pub users: Vec<S<RawUser>>,
    #[serde(default)]
    pub identity_providers: Vec<S<RawIdentityProvider>>,
    pub server: Option<RawServer>,
    pub cimd: Option<RawCimd>,
    pub log: Option<RawLog>,
    pub audit: Option<RawAudit>,
    pub admin: Option<S<RawAdmin>>,
    pub routes: S<Vec<S<RawRoute>>>,
}

/// The admin listener: metrics and readiness, never on the public listener.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Str,
}

/// Log format and filter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<Str>,
    pub filter: Option<Str>,
}

/// Where audit events go.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub path: Str,
}

/// Client ID metadata documents.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCimd {
    pub enabled: Option<bool>,
    pub allow_private_networks: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Str,
    pub key: Str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub dir: Option<Str>,
    pub redis: Option<Str>,
    pub redis_password_file: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    pub access_ttl: Option<Str>,
    pub refresh_ttl: Option<Str>,
    pub refresh_grace: Option<Str>,
    pub signing_key_rotation: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: Str,
    pub password_hash: Str,
    #[serde(default)]
    pub groups: Vec<Str>,
}

/// One identity provider people may sign in with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityProvider {
    pub name: Str,
    #[serde(rename = "type")]
    pub kind: Option<Str>,
    pub display_name: Option<Str>,
    pub issuer: Option<Str>,
    pub client_id: Str,
    pub client_secret: Option<Str>,
    pub client_secret_file: Option<Str>,
    pub scopes: Option<S<Vec<Str>>>,
    #[serde(default)]
    pub allowed_email_domains: Vec<Str>,
    pub groups_claim: Option<Str>,
    pub revalidate_after: Option<Str>,
    pub authorize_params: Option<S<IndexMap<Str, Str>>>,
    pub api_url: Option<Str>,
    #[serde(default)]
    pub allowed_organizations: Vec<Str>,
}

/// Tuning knobs with safe defaults; not in the minimal example.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub shutdown_grace: Option<Str>,
    pub header_read_timeout: Option<Str>,
    pub upstream_timeout: Option<Str>,
    pub sse_keepalive: Option<Str>,
    #[serde(default)]
    pub allowed_origins: Vec<Str>,
    pub max_connections: Option<S<u64>>,
    pub max_connections_per_ip: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Str,
    pub path: Str,
    pub upstream: Str,
    pub transport: Option<Str>,
    pub upstream_auth: Option<S<RawUpstreamAuth>>,
    pub allow: Option<S<RawAllow>>,
    pub scopes: Option<S<IndexMap<Str, S<Vec<Str>>>>>,
    pub default_scopes: Option<S<Vec<Str>>>,
    pub timeout: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamAuth {
    pub bearer: Option<Str>,
    pub bearer_file: Option<Str>,
    pub header: Option<S<RawHeader>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    pub name: Str,
    pub value: Str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    #[serde(default)]
    pub users: Vec<Str>,
    #[serde(default)]
    pub groups: Vec<Str>,
}
