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
    #[serde(default)]
    pub clients: Vec<S<RawMachineClient>>,
    pub api_keys: Option<RawApiKeys>,
    pub server: Option<RawServer>,
    pub cimd: Option<RawCimd>,
    pub log: Option<RawLog>,
    pub audit: Option<RawAudit>,
    pub admin: Option<S<RawAdmin>>,
    pub routes: S<Vec<S<RawRoute>>>,
}

/// The admin listener: metrics, readiness and the admin API, never on the public listener.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Str,
    /// The admin API's bearer token; default `<state.dir>/admin-token`.
    pub token_file: Option<Str>,
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
    pub access_ttl_by_client: Option<IndexMap<Str, Str>>,
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
    pub id_jag: Option<bool>,
}

/// `api_keys`: static keys an admin creates (off unless enabled).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    pub enabled: Option<bool>,
}

/// A machine client registered in the file (the `client_credentials` grant).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMachineClient {
    pub client_id: Str,
    pub name: Option<Str>,
    pub client_secret_hash: Option<Str>,
    pub jwks: Option<S<serde_json::Value>>,
    pub jwks_uri: Option<Str>,
    pub routes: S<Vec<Str>>,
    #[serde(default)]
    pub scopes: Vec<Str>,
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
    pub upstream: S<RawUpstream>,
    pub transport: Option<Str>,
    pub upstream_auth: Option<S<RawUpstreamAuthForm>>,
    pub identity_headers: Option<bool>,
    pub identity_token: Option<S<RawIdentityToken>>,
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
    /// A per-user token from the upstream's own authorization server.
    pub oauth: Option<S<RawUpstreamOAuth>>,
}

/// `upstream_auth: {oauth: {...}}`: the proxy is an OAuth client of the upstream's
/// authorization server, and each user connects their own account.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamOAuth {
    /// Else discovered from the upstream (RFC 9728).
    pub authorization_server: Option<Str>,
    /// Else registered dynamically (RFC 7591) when the server offers it.
    pub client_id: Option<Str>,
    pub client_secret: Option<Str>,
    pub client_secret_file: Option<Str>,
    #[serde(default)]
    pub scopes: Vec<Str>,
}

/// `upstream_auth`: one credential (a map), or rules (a list), first match wins.
pub enum RawUpstreamAuthForm {
    One(Box<RawUpstreamAuth>),
    Rules(Vec<S<RawCredentialRule>>),
}

impl<'de> Deserialize<'de> for RawUpstreamAuthForm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = RawUpstreamAuthForm;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a credential (bearer, bearer_file, header or oauth) or a list of rules",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                RawUpstreamAuth::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|one| RawUpstreamAuthForm::One(Box::new(one)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(RawUpstreamAuthForm::Rules)
            }
        }
        d.deserialize_any(Form)
    }
}

/// One rule of an `upstream_auth` list: `when` and a credential, or `default`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentialRule {
    pub name: Option<Str>,
    pub when: Option<S<RawWhen>>,
    pub default: Option<S<RawUpstreamAuth>>,
    pub bearer: Option<Str>,
    pub bearer_file: Option<Str>,
    pub header: Option<S<RawHeader>>,
}

/// When a credential rule applies: every key given must match (each by any of its values).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    #[serde(default)]
    pub users: Vec<Str>,
    #[serde(default)]
    pub groups: Vec<Str>,
    #[serde(default)]
    pub scopes: Vec<Str>,
}

/// `identity_token`: a short-lived JWT naming the caller, for the upstream.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityToken {
    pub header: Str,
}

#[derive(Clone, Deserialize)]
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

/// A route's `upstream`: a URL, or a stdio MCP server to start (`{command: [...], ...}`).
pub enum RawUpstream {
    Url(String),
    Command(Box<RawStdio>),
}

/// An MCP server the proxy starts and speaks to over stdin/stdout.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdio {
    pub command: S<Vec<Str>>,
    pub env: Option<S<IndexMap<Str, Str>>>,
    pub cwd: Option<Str>,
    pub per: Option<Str>,
    pub idle_timeout: Option<Str>,
    pub max_processes: Option<S<u64>>,
}

/// A string is a URL, a mapping a command. Read by hand rather than `untagged`:
/// serde's untagged enums buffer the value and lose every line:column inside it.
impl<'de> Deserialize<'de> for RawUpstream {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawUpstream;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL, or a mapping with `command`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawUpstream, E> {
                Ok(RawUpstream::Url(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawUpstream, A::Error> {
                RawStdio::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|s| RawUpstream::Command(Box::new(s)))
            }
        }
        d.deserialize_any(V)
    }
}
