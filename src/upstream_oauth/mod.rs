//! Upstreams protected by OAuth (`upstream_auth: {oauth: {...}}`): the proxy
//! is an OAuth client of the upstream's authorization server, and each user
//! connects their own account once (`handlers/connect.rs`). Their tokens are
//! kept sealed in the store per route and user (`authority/upstream_tokens.rs`),
//! cached in memory after first use (the MCP path does no store work once a
//! user's token is cached), refreshed a minute before they expire, and sent
//! upstream as `Authorization: Bearer`.
//!
//! `discovery` finds the authorization server (RFC 9728, RFC 8414) and
//! `tokens` reads token responses and decides when to refresh (both pure
//! where they can be); this module holds the per-route servers (discovered
//! metadata and the client the proxy is there, configured or registered with
//! RFC 7591) and the per-user tokens.

pub mod discovery;
pub mod tokens;

use std::sync::Arc;

use dashmap::DashMap;
use http::{HeaderValue, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::authority::Authority;
use crate::config::{Config, Route, UpstreamAuth, UpstreamOAuth};
use crate::federation::client::{Auth, ProviderHttp};
use crate::federation::{self, Attempt, Callback};
use crate::paths;
use crate::secret::Secret;
use discovery::ServerMetadata;
use tokens::{Freshness, UpstreamTokens};

/// Why there is no upstream token to send (or a connection failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamOAuthError {
    /// The user has not connected their account, or must do it again (the
    /// refresh was refused): they visit the connect page.
    #[error("the upstream account is not connected")]
    NotConnected,
    /// The upstream's authorization server could not be found or used.
    #[error("the upstream's authorization server: {0}")]
    Discovery(String),
    /// The authorization server refused (a code, a registration) or answered nonsense.
    #[error("the upstream's authorization server refused: {0}")]
    Refused(String),
    /// The authorization server is down or slow.
    #[error("the upstream's authorization server did not answer: {0}")]
    Unavailable(String),
    #[error("the store failed: {0}")]
    Store(String),
}

/// Where a user connects their account for `route`.
pub fn connect_url(config: &Config, route: &Route) -> String {
    format!(
        "{}{}{}",
        config.public_url.as_str().trim_end_matches('/'),
        paths::CONNECT_PREFIX,
        route.name
    )
}

/// Where the upstream's authorization server sends the browser back.
pub fn redirect_uri(config: &Config, route: &Route) -> String {
    format!(
        "{}{}",
        connect_url(config, route),
        paths::CONNECT_CALLBACK_SUFFIX
    )
}

/// The attempt's `provider` for a connection to `route`'s upstream; the
/// attempt's `next` is the user who started it.
pub fn attempt_name(route: &Route) -> String {
    format!("upstream:{}", route.name)
}

/// A user's upstream credential ready to send, and the tokens behind it.
pub struct Connected {
    pub auth: UpstreamAuth,
    tokens: UpstreamTokens,
}

/// A route's authorization server and the client the proxy is there.
struct Server {
    /// What it was found with: a reload that changes either finds it again.
    upstream: String,
    config: UpstreamOAuth,
    metadata: ServerMetadata,
    client_id: String,
    client_secret: Option<Secret>,
}

/// The proxy's registration at a route's authorization server, as stored.
#[derive(Serialize, Deserialize)]
struct Registration {
    issuer: String,
    redirect_uri: String,
    client_id: String,
    client_secret: Option<String>,
}

/// The upstream servers (per route) and users' tokens (per route and user).
pub struct UpstreamClients {
    http: ProviderHttp,
    servers: DashMap<String, Arc<Server>>,
    /// route → user → their credential.
    tokens: DashMap<String, DashMap<String, Arc<Connected>>>,
    /// One refresh at a time per route and user (refresh tokens may rotate).
    refreshing: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

fn token_key(route: &str, user: &str) -> String {
    format!("token\n{route}\n{user}")
}

fn client_key(route: &str) -> String {
    format!("client\n{route}")
}

fn store_error(e: impl std::fmt::Display) -> UpstreamOAuthError {
    UpstreamOAuthError::Store(e.to_string())
}

fn unavailable(e: federation::client::HttpError) -> UpstreamOAuthError {
    if e.is_unavailable() {
        UpstreamOAuthError::Unavailable(e.to_string())
    } else {
        UpstreamOAuthError::Refused(e.to_string())
    }
}

impl UpstreamClients {
    pub fn new() -> Result<Self, rustls::Error> {
        Ok(UpstreamClients {
            http: ProviderHttp::new()?,
            servers: DashMap::new(),
            tokens: DashMap::new(),
            refreshing: DashMap::new(),
        })
    }

    /// The hot path: the user's cached credential for `route` while it is fresh.
    fn cached(&self, route: &str, user: &str, now: u64) -> Option<Arc<Connected>> {
        let c = self.tokens.get(route)?.get(user)?.clone();
        (c.tokens.freshness(now) == Freshness::Fresh).then_some(c)
    }

    /// Whether the user has tokens for `route` (cached or stored; a store read:
    /// for pages, not the MCP path).
    pub fn is_connected(&self, authority: &Authority, route: &str, user: &str) -> bool {
        if self.tokens.get(route).is_some_and(|u| u.contains_key(user)) {
            return true;
        }
        matches!(
            tokio::task::block_in_place(|| authority.upstream_secret(&token_key(route, user))),
            Ok(Some(_))
        )
    }

    /// The user's credential for `route`: cached, or loaded from the store,
    /// refreshed when due. `NotConnected` when there is none (or the refresh
    /// was refused).
    pub async fn credential(
        &self,
        authority: &Authority,
        config: &Config,
        route: &Route,
        user: &str,
    ) -> Result<Arc<Connected>, UpstreamOAuthError> {
        self.sweep(authority, config);
        if let Some(c) = self.cached(&route.name, user, authority.now()) {
            return Ok(c);
        }
        let lock = self
            .refreshing
            .entry(token_key(&route.name, user))
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        // Another request may have refreshed them meanwhile.
        if let Some(c) = self.cached(&route.name, user, authority.now()) {
            return Ok(c);
        }
        let key = token_key(&route.name, user);
        let stored = tokio::task::block_in_place(|| authority.upstream_secret(&key))
            .map_err(store_error)?
            .and_then(|s| serde_json::from_str::<UpstreamTokens>(s.expose()).ok())
            .ok_or(UpstreamOAuthError::NotConnected)?;
        let tokens = match stored.freshness(authority.now()) {
            Freshness::Fresh => stored,
            Freshness::Expired => return Err(self.disconnect(authority, route, user)),
            Freshness::Refresh => match self.refresh(authority, config, route, &stored).await {
                Ok(t) => {
                    self.keep(authority, route, user, &t)?;
                    t
                }
                Err(UpstreamOAuthError::Refused(why)) => {
                    tracing::info!(route = %route.name, user, reason = %why, "upstream refresh refused: the user connects again");
                    return Err(self.disconnect(authority, route, user));
                }
                Err(e) => return Err(e),
            },
        };
        self.cache(route, user, tokens)
    }

    fn cache(
        &self,
        route: &Route,
        user: &str,
        tokens: UpstreamTokens,
    ) -> Result<Arc<Connected>, UpstreamOAuthError> {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", tokens.access_token)).map_err(|_| {
                UpstreamOAuthError::Refused("an access token unfit for a header".into())
            })?;
        value.set_sensitive(true);
        let connected = Arc::new(Connected {
            auth: UpstreamAuth {
                name: header::AUTHORIZATION,
                value,
                kind: "oauth",
            },
            tokens,
        });
        self.tokens
            .entry(route.name.clone())
            .or_default()
            .insert(user.to_string(), connected.clone());
        Ok(connected)
    }

    fn keep(
        &self,
        authority: &Authority,
        route: &Route,
        user: &str,
        tokens: &UpstreamTokens,
    ) -> Result<(), UpstreamOAuthError> {
        let json = Secret::new(serde_json::to_string(tokens).map_err(store_error)?);
        tokio::task::block_in_place(|| {
            authority.keep_upstream_secret(
                &token_key(&route.name, user),
                &json,
                tokens.keep_until(),
            )
        })
        .map_err(store_error)
    }

    /// Forgets the user's tokens for `route` (memory and store); `NotConnected`.
    fn disconnect(&self, authority: &Authority, route: &Route, user: &str) -> UpstreamOAuthError {
        if let Err(e) = self.forget(authority, &route.name, user) {
            return e;
        }
        UpstreamOAuthError::NotConnected
    }

    fn forget(
        &self,
        authority: &Authority,
        route: &str,
        user: &str,
    ) -> Result<(), UpstreamOAuthError> {
        if let Some(users) = self.tokens.get(route) {
            users.remove(user);
        }
        tokio::task::block_in_place(|| authority.forget_upstream_secret(&token_key(route, user)))
            .map_err(store_error)
    }

    /// Forgets the user's tokens for `route`: the upstream refused them (401),
    /// or the user's grant for the route was revoked. They connect again.
    pub fn forget_for(&self, authority: &Authority, route: &Route, user: &str) {
        if let Err(e) = self.forget(authority, &route.name, user) {
            tracing::error!(route = %route.name, error = %e, "cannot delete upstream tokens");
        }
    }

    /// Deletes the upstream tokens of grants revoked since the last look (on
    /// the MCP path before a cache lookup, and in the sweeper): usually nothing
    /// to do but one atomic load.
    pub fn sweep(&self, authority: &Authority, config: &Config) {
        for (user, resource) in authority.take_ended_grants() {
            self.grant_ended(authority, config, &user, &resource);
        }
    }

    /// A grant of `user` for `resource` was revoked: their upstream tokens for
    /// that route go with it.
    pub fn grant_ended(&self, authority: &Authority, config: &Config, user: &str, resource: &str) {
        if let Some(route) = config
            .routes
            .iter()
            .find(|r| r.resource == resource && r.upstream_oauth.is_some())
        {
            self.forget_for(authority, route, user);
        }
    }

    /// Deletes every upstream token of `user` (e.g. `admin revoke --user`).
    pub fn forget_user(&self, authority: &Authority, config: &Config, user: &str) {
        for route in config.routes.iter().filter(|r| r.upstream_oauth.is_some()) {
            if let Err(e) = self.forget(authority, &route.name, user) {
                tracing::error!(route = %route.name, error = %e, "cannot delete upstream tokens");
            }
        }
    }

    async fn refresh(
        &self,
        authority: &Authority,
        config: &Config,
        route: &Route,
        stored: &UpstreamTokens,
    ) -> Result<UpstreamTokens, UpstreamOAuthError> {
        let refresh_token = stored
            .refresh_token
            .as_deref()
            .ok_or(UpstreamOAuthError::NotConnected)?;
        let server = self.server(authority, config, route).await?;
        let resource = route.upstream.to_string();
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("resource", resource.as_str()),
        ];
        self.token_request(authority, &server, &mut form, Some(refresh_token))
            .await
    }

    /// A token request with the proxy's client authentication.
    async fn token_request<'a>(
        &self,
        authority: &Authority,
        server: &'a Server,
        form: &mut Vec<(&'a str, &'a str)>,
        previous_refresh: Option<&str>,
    ) -> Result<UpstreamTokens, UpstreamOAuthError> {
        let auth = match &server.client_secret {
            Some(secret) if server.metadata.basic_auth => Auth::Basic {
                id: &server.client_id,
                secret: secret.expose(),
            },
            Some(secret) => {
                form.push(("client_id", &server.client_id));
                form.push(("client_secret", secret.expose()));
                Auth::None
            }
            None => {
                form.push(("client_id", &server.client_id));
                Auth::None
            }
        };
        let answer = within_budget(self.http.post_form(
            &server.metadata.token_endpoint,
            auth,
            form,
        ))
        .await?
        .map_err(unavailable)?;
        if !answer.status.is_success() {
            let error = answer
                .body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("");
            let shown: String = error
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect();
            return Err(if answer.status.is_server_error() {
                UpstreamOAuthError::Unavailable(format!(
                    "token endpoint answered {}",
                    answer.status
                ))
            } else {
                UpstreamOAuthError::Refused(format!("{} {shown}", answer.status))
            });
        }
        UpstreamTokens::from_response(&answer.body, authority.now(), previous_refresh)
    }

    /// The route's authorization server and the proxy's client there: found
    /// once (and again after a reload changes the route's upstream or `oauth`).
    async fn server(
        &self,
        authority: &Authority,
        config: &Config,
        route: &Route,
    ) -> Result<Arc<Server>, UpstreamOAuthError> {
        let oauth = route
            .upstream_oauth
            .as_ref()
            .ok_or_else(|| UpstreamOAuthError::Discovery("the route has no `oauth`".into()))?;
        let upstream = route.upstream.to_string();
        if let Some(s) = self.servers.get(&route.name)
            && s.upstream == upstream
            && s.config == *oauth
        {
            return Ok(s.clone());
        }
        let found = within_budget(async {
            let url = url::Url::parse(&upstream)
                .map_err(|e| UpstreamOAuthError::Discovery(e.to_string()))?;
            let issuer =
                discovery::issuer_of(&self.http, &url, oauth.authorization_server.as_deref())
                    .await?;
            let metadata = discovery::metadata(&self.http, &issuer).await?;
            let (client_id, client_secret) = match &oauth.client_id {
                Some(id) => (id.clone(), oauth.client_secret.clone()),
                None => {
                    self.registration(authority, config, route, &metadata)
                        .await?
                }
            };
            Ok(Server {
                upstream: upstream.clone(),
                config: oauth.clone(),
                metadata,
                client_id,
                client_secret,
            })
        })
        .await??;
        let server = Arc::new(found);
        self.servers.insert(route.name.clone(), server.clone());
        Ok(server)
    }

    /// The proxy's registration at the server (RFC 7591): the stored one if it
    /// is for this server and redirect URI, else a new one, stored.
    async fn registration(
        &self,
        authority: &Authority,
        config: &Config,
        route: &Route,
        metadata: &ServerMetadata,
    ) -> Result<(String, Option<Secret>), UpstreamOAuthError> {
        let redirect_uri = redirect_uri(config, route);
        let key = client_key(&route.name);
        let stored = tokio::task::block_in_place(|| authority.upstream_secret(&key))
            .map_err(store_error)?
            .and_then(|s| serde_json::from_str::<Registration>(s.expose()).ok());
        if let Some(r) = stored
            && r.issuer == metadata.issuer
            && r.redirect_uri == redirect_uri
        {
            return Ok((r.client_id, r.client_secret.map(Secret::new)));
        }
        let endpoint = metadata.registration_endpoint.as_deref().ok_or_else(|| {
            UpstreamOAuthError::Discovery(format!(
                "{} offers no dynamic registration: configure `client_id` (and its secret)",
                metadata.issuer
            ))
        })?;
        let request = json!({
            "client_name": "mcp-oauth-proxy",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": if metadata.basic_auth {
                "client_secret_basic"
            } else {
                "client_secret_post"
            },
            "application_type": "web",
        });
        let answer = self
            .http
            .post_json(endpoint, &request)
            .await
            .map_err(unavailable)?;
        let client_id = answer
            .body
            .get("client_id")
            .and_then(Value::as_str)
            .filter(|_| answer.status.is_success())
            .ok_or_else(|| {
                UpstreamOAuthError::Refused(format!("registration answered {}", answer.status))
            })?;
        let client_secret = answer
            .body
            .get("client_secret")
            .and_then(Value::as_str)
            .map(str::to_string);
        let record = Registration {
            issuer: metadata.issuer.clone(),
            redirect_uri,
            client_id: client_id.to_string(),
            client_secret: client_secret.clone(),
        };
        let json = Secret::new(serde_json::to_string(&record).map_err(store_error)?);
        tokio::task::block_in_place(|| authority.keep_upstream_secret(&key, &json, 0))
            .map_err(store_error)?;
        tracing::info!(route = %route.name, issuer = %metadata.issuer, "registered at the upstream's authorization server");
        Ok((record.client_id, client_secret.map(Secret::new)))
    }

    /// Where to send the browser to connect `route`'s upstream account.
    pub async fn authorization_url(
        &self,
        authority: &Authority,
        config: &Config,
        route: &Route,
        attempt: &Attempt,
    ) -> Result<String, UpstreamOAuthError> {
        let server = self.server(authority, config, route).await?;
        let scopes = server.config.scopes.join(" ");
        let mut url = url::Url::parse(&server.metadata.authorization_endpoint)
            .map_err(|e| UpstreamOAuthError::Discovery(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &server.client_id)
                .append_pair("redirect_uri", &redirect_uri(config, route))
                .append_pair("state", &attempt.state)
                .append_pair("code_challenge", &attempt.challenge())
                .append_pair("code_challenge_method", "S256")
                .append_pair("resource", &route.upstream.to_string());
            if !scopes.is_empty() {
                q.append_pair("scope", &scopes);
            }
        }
        Ok(url.into())
    }

    /// The authorization server's answer: the code exchanged and the user's
    /// tokens kept (store and cache).
    pub async fn finish(
        &self,
        authority: &Authority,
        config: &Config,
        route: &Route,
        user: &str,
        callback: &Callback<'_>,
    ) -> Result<(), UpstreamOAuthError> {
        let server = self.server(authority, config, route).await?;
        // RFC 9207: when the server says who answered, it must be this one.
        if let Some(iss) = callback.iss
            && iss.trim_end_matches('/') != server.metadata.issuer.trim_end_matches('/')
        {
            return Err(UpstreamOAuthError::Refused(
                "the answer came from another authorization server".into(),
            ));
        }
        let resource = route.upstream.to_string();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", callback.code),
            ("redirect_uri", callback.redirect_uri),
            ("code_verifier", callback.attempt.verifier.as_str()),
            ("resource", resource.as_str()),
        ];
        let tokens = self
            .token_request(authority, &server, &mut form, None)
            .await?;
        self.keep(authority, route, user, &tokens)?;
        self.cache(route, user, tokens)?;
        Ok(())
    }
}

async fn within_budget<T>(f: impl Future<Output = T>) -> Result<T, UpstreamOAuthError> {
    tokio::time::timeout(federation::BUDGET, f)
        .await
        .map_err(|_| {
            UpstreamOAuthError::Unavailable(format!(
                "no answer within {} seconds",
                federation::BUDGET.as_secs()
            ))
        })
}
