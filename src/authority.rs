//! The authorization server's operations: they combine the pure rules of
//! `oauth/` with the store, the keys and the clock. HTTP stays in `handlers/`.

pub mod admin;
pub mod api_keys;
mod grants;
mod identities;
mod keys;
mod upstream_tokens;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::{Config, Route, Tokens};
use crate::login::{LoginUser, users};
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::client::{self, ClientRecord, RegistrationRequest};
use crate::oauth::jwt::{Claims, TokenError};
use crate::oauth::refresh::{
    self, Family, IdentityVerdict, IssuedAccess, IssuedRefresh, Presented,
};
use crate::oauth::{OAuthError, assertion, pkce, resource, scope, seal};
use crate::store::{Namespace, Records, Redis, StoreError};
use crate::telemetry::audit::{self, Event};

/// How long an authorization code can be exchanged.
const CODE_TTL: u64 = 60;
/// How long a used code is remembered, to detect replays.
const CODE_MEMORY: u64 = 600;
/// How long a registered client that never obtained a token is kept. One that
/// did is kept for the refresh TTL after each token it obtains ([`Authority::keep_client`]).
const UNUSED_CLIENT_TTL: u64 = 86_400;
/// Revoked, unexpired access tokens remembered at most (~80 B each). Past it the
/// token endpoint issues no new tokens for a while (`temporarily_unavailable`)
/// rather than forget a revocation: entries only come from tokens that were
/// issued, each a store commit, so only a sustained refresh-and-revoke loop
/// gets here.
const MAX_DENIED: usize = 500_000;
/// Verified access tokens kept in memory for the hot path.
const VERIFIED_CACHE_MAX: usize = 10_000;
const CACHE_KEY_LEN: usize = 32;

/// Whether two byte strings are equal, looking at every byte whatever the first
/// difference (no early exit: the time does not tell how much of a guess was right).
/// (`subtle`'s `ct_eq` costs ~4,000 instructions for a token, on every request.)
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The verified-token cache's key: the token's last bytes, which are its signature's.
/// Hashing them costs a fifth of hashing the whole token; a hit still needs the whole
/// token to match, and only tokens whose signature was checked are ever stored.
fn cache_key(token: &str) -> [u8; CACHE_KEY_LEN] {
    let b = token.as_bytes();
    let tail = &b[b.len().saturating_sub(CACHE_KEY_LEN)..];
    let mut key = [0u8; CACHE_KEY_LEN];
    key[..tail.len()].copy_from_slice(tail);
    key
}

/// An authorization code as stored (under the hash of the code).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CodeRecord {
    request: AuthorizationRequest,
    user: LoginUser,
    expires_at: u64,
    /// The family its exchange created; set on first use.
    used_by: Option<String>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    /// None for grants that have no refresh (client credentials, ID-JAG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    /// Who the tokens are for and their resource: for the audit log, not sent.
    #[serde(skip)]
    pub user: String,
    #[serde(skip)]
    pub resource: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The parameters of a token request that the grants read.
#[derive(Default)]
pub struct TokenParams<'a> {
    /// The client's address, for the audit log.
    pub peer: Option<std::net::IpAddr>,
    pub code: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
    /// At a refresh for a provider's user: what the provider said of them.
    pub identity: Option<IdentityVerdict>,
}

/// Why the stored keys and deny list cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no randomness to make a signing key")]
    NoRandomness,
    #[error("stored signing key is unusable: {0}")]
    UnusableKey(ring::error::KeyRejected),
    #[error("stored signing key is not base64url")]
    KeyEncoding,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn store_error(e: StoreError) -> OAuthError {
    if let StoreError::Unavailable(_) = e {
        tracing::warn!(error = %e, "store unavailable");
        return OAuthError::temporarily_unavailable(
            "the server's store does not answer; try again in a moment",
        );
    }
    tracing::error!(error = %e, "store failure");
    OAuthError::server_error("the server could not complete the request")
}

pub struct Authority {
    clock: Clock,
    records: Records,
    /// The signing keys, reloaded (and rotated) at the sweep. See [`keys`].
    keys: ArcSwap<keys::Keys>,
    pub signer: seal::Signer,
    /// Revoked access tokens (jti → exp), until they expire; at most `max_denied`.
    denied: DashMap<String, u64>,
    max_denied: usize,
    /// Verified access tokens (expired ones too, until the sweep): the hot path
    /// skips the signature check for these. See [`cache_key`].
    verified: DashMap<[u8; CACHE_KEY_LEN], (Box<str>, Arc<Claims>)>,
    max_verified: usize,
    /// Client assertions seen, so that none is accepted twice (bounded); in
    /// Redis instead when the store is shared.
    assertions: Mutex<assertion::Seen>,
    /// API keys by id, loaded at start and at each sweep (`api_keys.rs`): the
    /// hot path never reads the store for one.
    api_keys: DashMap<String, crate::oauth::api_key::ApiKeyRecord>,
    /// Grants (user, resource) revoked since `upstream_tokens::take_ended_grants`
    /// last looked: their upstream OAuth tokens are deleted then.
    ended_grants: upstream_tokens::EndedGrants,
    /// The shared store's server, when there is one.
    shared: Option<Redis>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("keys", &self.keys.load())
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads (or creates on first start) the signing and HMAC keys from the
    /// store, rotating the signing keys if they are due.
    pub fn new(records: Records, clock: Clock, tokens: &Tokens) -> Result<Self, StateError> {
        let keys = keys::Keys::refresh(&records, tokens, clock.unix())?;
        let hmac = records.key_material("hmac-sha256", seal::random_token(32).into_bytes())?;
        let api_keys = api_keys::load(&records, clock.unix())?;
        let denied = DashMap::new();
        for a in records.all::<IssuedAccess>(Namespace::Denied, clock.unix())? {
            denied.insert(a.jti, a.exp);
        }
        let shared = records.0.redis();
        Ok(Self {
            clock,
            records,
            keys: ArcSwap::from_pointee(keys),
            signer: seal::Signer::new(&hmac),
            denied,
            max_denied: MAX_DENIED,
            verified: DashMap::new(),
            max_verified: VERIFIED_CACHE_MAX,
            assertions: Mutex::default(),
            api_keys,
            ended_grants: upstream_tokens::EndedGrants::default(),
            shared,
        })
    }

    /// Wall time in Unix seconds, from the injected clock.
    pub fn now(&self) -> u64 {
        self.clock.unix()
    }

    /// The clock the authority reads (the sweeper also wakes when a manual one moves).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The public keys that verify access tokens: the signing key, the next one
    /// (published ahead) and the ones replaced while their tokens may live.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.load().jwks()
    }

    pub fn register(&self, req: RegistrationRequest) -> Result<serde_json::Value, OAuthError> {
        let t = self.now();
        let (record, secret) = client::register(req, t)?;
        // Anyone may register: a client that never gets a token is forgotten after a day.
        self.records
            .put(
                Namespace::Clients,
                &record.client_id,
                &record,
                t + UNUSED_CLIENT_TTL,
            )
            .map_err(store_error)?;
        Ok(client::registration_response(&record, secret.as_deref()))
    }

    pub fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, OAuthError> {
        self.records
            .get(Namespace::Clients, client_id, self.now())
            .map_err(store_error)
    }

    /// Records a client assertion's `jti` until it expires; refused if it was
    /// seen before (a replay) or the memory of assertions is full.
    pub fn first_use_of_assertion(
        &self,
        client_id: &str,
        jti: &str,
        exp: u64,
    ) -> Result<(), assertion::SeenError> {
        let now = self.now();
        let Some(redis) = &self.shared else {
            return self.seen_assertions().first_use(client_id, jti, exp, now);
        };
        let id = URL_SAFE_NO_PAD.encode(assertion::Seen::id(client_id, jti));
        match redis.first_use("assertion", &id, exp, now) {
            Ok(true) => Ok(()),
            Ok(false) => Err(assertion::SeenError::Replayed),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a client assertion");
                Err(assertion::SeenError::Unavailable)
            }
        }
    }

    fn seen_assertions(&self) -> std::sync::MutexGuard<'_, assertion::Seen> {
        // Nothing panics while holding it: a poisoned lock is still consistent.
        self.assertions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues a single-use authorization code for a consented request, and
    /// remembers for the refresh TTL that this user allowed this client.
    pub fn create_code(
        &self,
        config: &Config,
        request: &AuthorizationRequest,
        user: &LoginUser,
    ) -> Result<String, OAuthError> {
        let code = seal::random_token(32);
        let t = self.now();
        let record = CodeRecord {
            request: request.clone(),
            user: user.clone(),
            expires_at: t + CODE_TTL,
            used_by: None,
        };
        self.records
            .put(
                Namespace::Codes,
                &seal::hash(&code),
                &record,
                t + CODE_MEMORY,
            )
            .map_err(store_error)?;
        let consent_until = t + config.tokens.refresh_ttl.as_secs();
        self.records
            .put(
                Namespace::Consents,
                &self.consent_key(&user.name, &request.client_id),
                &(),
                consent_until,
            )
            .map_err(store_error)?;
        Ok(code)
    }

    /// Whether this user allowed this client within the refresh TTL. A store
    /// failure answers no.
    pub fn has_consented(&self, user: &str, client_id: &str) -> bool {
        self.records
            .get::<()>(
                Namespace::Consents,
                &self.consent_key(user, client_id),
                self.now(),
            )
            .map_err(store_error)
            .is_ok_and(|found| found.is_some())
    }

    /// Where a consent is stored: a MAC of user and client, so that the store
    /// does not list who uses what.
    fn consent_key(&self, user: &str, client_id: &str) -> String {
        let data = format!("{}:{user}{client_id}", user.len());
        self.signer.mac("consent", data.as_bytes())
    }

    fn mint_access(
        &self,
        config: &Config,
        user: &LoginUser,
        client_id: &str,
        resource: &str,
        scopes: &[String],
        t: u64,
    ) -> (String, IssuedAccess) {
        let claims = Claims {
            iss: config.public_url.as_str().to_string(),
            sub: user.name.clone(),
            aud: resource.to_string(),
            client_id: client_id.to_string(),
            scope: scope::join(scopes),
            exp: t + config.access_ttl(client_id).as_secs(),
            iat: t,
            jti: seal::random_token(16),
            groups: user.groups.clone(),
        };
        let token = self.keys.load().sign(&claims);
        (
            token,
            IssuedAccess {
                jti: claims.jti,
                exp: claims.exp,
            },
        )
    }

    fn new_refresh(&self, config: &Config, family: &str, t: u64) -> (String, IssuedRefresh) {
        let token = format!("{family}.{}", seal::random_token(32));
        let issued = IssuedRefresh {
            hash: seal::hash(&token),
            expires_at: t + config.tokens.refresh_ttl.as_secs(),
            rotated_at: None,
            answer: None,
        };
        (token, issued)
    }

    /// The `authorization_code` grant.
    /// New access tokens only while a revocation of each could be remembered.
    fn room_for_tokens(&self) -> Result<(), OAuthError> {
        if self.denied.len() >= self.max_denied {
            self.denied.retain(|_, exp| *exp > self.clock.unix());
            if self.denied.len() >= self.max_denied {
                tracing::warn!("the revoked-token list is full: no new tokens for now");
                return Err(OAuthError::temporarily_unavailable(
                    "too many revoked tokens are still live; try again later",
                ));
            }
        }
        Ok(())
    }

    pub fn exchange_code(
        &self,
        config: &Config,
        client: &ClientRecord,
        p: &TokenParams,
    ) -> Result<TokenResponse, OAuthError> {
        self.room_for_tokens()?;
        let code = p
            .code
            .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let t = self.now();
        let family_id = seal::random_token(16);
        enum Outcome {
            Fresh(Box<CodeRecord>),
            Replayed(String, String),
            Refused(OAuthError),
        }
        let outcome = self
            .records
            .update::<CodeRecord, Outcome>(Namespace::Codes, &seal::hash(code), t, |record| {
                let Some(mut record) = record else {
                    return (
                        None,
                        Outcome::Refused(OAuthError::invalid_grant(
                            "the authorization code is invalid",
                        )),
                    );
                };
                if let Some(family) = &record.used_by {
                    return (
                        None,
                        Outcome::Replayed(family.clone(), record.user.name.clone()),
                    );
                }
                if let Err(e) = check_code(&record, client, p, t) {
                    return (None, Outcome::Refused(e));
                }
                record.used_by = Some(family_id.clone());
                let keep_until = t + CODE_MEMORY;
                (
                    Some((record.clone(), keep_until)),
                    Outcome::Fresh(Box::new(record)),
                )
            })
            .map_err(store_error)?;
        let record = match outcome {
            Outcome::Fresh(r) => r,
            Outcome::Refused(e) => return Err(e),
            Outcome::Replayed(family, user) => {
                self.revoke_family(&family, true)?;
                audit::event(Event::ReuseDetected {
                    user: &user,
                    client: &client.client_id,
                    route: None,
                    ip: p.peer,
                });
                return Err(OAuthError::invalid_grant(
                    "the authorization code was already used",
                ));
            }
        };
        self.keep_client(config, &client.client_id, t)?;
        let req = &record.request;
        let (access, issued_access) = self.mint_access(
            config,
            &record.user,
            &client.client_id,
            &req.resource,
            &req.scopes,
            t,
        );
        let (refresh, issued_refresh) = self.new_refresh(config, &family_id, t);
        let family = Family {
            id: family_id.clone(),
            client_id: client.client_id.clone(),
            user: record.user.name.clone(),
            groups: record.user.groups.clone(),
            resource: req.resource.clone(),
            scope: req.scopes.clone(),
            created_at: t,
            revoked: false,
            tokens: vec![issued_refresh],
            access: vec![issued_access],
        };
        // A replay that raced ahead of us left a revoked tombstone: then nothing is issued.
        let stored =
            self.records
                .update::<Family, bool>(Namespace::Families, &family_id, t, |existing| {
                    match existing {
                        Some(_) => (None, false),
                        None => {
                            let exp = family.expires_at();
                            (Some((family.clone(), exp)), true)
                        }
                    }
                })
                .map_err(store_error)?;
        if !stored {
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used",
            ));
        }
        Ok(TokenResponse {
            access_token: access,
            token_type: "Bearer".into(),
            expires_in: config.access_ttl(&client.client_id).as_secs(),
            refresh_token: Some(refresh),
            scope: scope::join(&req.scopes),
            user: record.user.name.clone(),
            resource: req.resource.clone(),
        })
    }

    /// The `refresh_token` grant: rotation, the grace window, reuse detection.
    pub fn refresh(
        &self,
        config: &Config,
        client: &ClientRecord,
        p: &TokenParams,
    ) -> Result<TokenResponse, OAuthError> {
        self.room_for_tokens()?;
        let token = p
            .refresh_token
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        let invalid =
            || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
        let family_id = refresh::family_id(token).ok_or_else(invalid)?;
        let hash = seal::hash(token);
        let t = self.now();
        let grace = config.tokens.refresh_grace.as_secs();
        let requested_resource =
            match p.resource {
                Some(r) => Some(resource::canonical(r).ok_or_else(|| {
                    OAuthError::invalid_target("resource must be an absolute URL")
                })?),
                None => None,
            };
        let mut denied = Vec::new();
        let mut reused = None;
        let mut ended = None;
        let result = self
            .records
            .update::<Family, Result<TokenResponse, OAuthError>>(
                Namespace::Families,
                family_id,
                t,
                |family| {
                    // A shared store may run this again on a newer record: only the last run counts.
                    denied.clear();
                    reused = None;
                    ended = None;
                    let Some(mut f) = family else {
                        return (None, Err(invalid()));
                    };
                    if f.client_id != client.client_id {
                        return (None, Err(invalid()));
                    }
                    match f.check(&hash, t, grace) {
                        Presented::Rotate => {}
                        Presented::Replay(sealed) => {
                            let answer = seal::open(token, &f.id, sealed).and_then(|plain| {
                                let mut r = serde_json::from_slice::<TokenResponse>(&plain).ok()?;
                                r.user = f.user.clone();
                                r.resource = f.resource.clone();
                                Some(r)
                            });
                            return (None, answer.ok_or_else(invalid));
                        }
                        Presented::Reused => {
                            denied = f.revoke();
                            reused = Some((f.user.clone(), f.resource.clone()));
                            let exp = f.expires_at();
                            return (
                                Some((f, exp)),
                                Err(OAuthError::invalid_grant(
                                    "the refresh token was already used; the grant is revoked",
                                )),
                            );
                        }
                        Presented::Expired | Presented::Revoked | Presented::Unknown => {
                            return (None, Err(invalid()));
                        }
                    }
                    if requested_resource
                        .as_ref()
                        .is_some_and(|r| *r != f.resource)
                    {
                        return (
                            None,
                            Err(OAuthError::invalid_target(
                                "the refresh token was not issued for this resource",
                            )),
                        );
                    }
                    match &p.identity {
                        Some(IdentityVerdict::Refused) => {
                            denied = f.revoke();
                            ended = Some((f.user.clone(), f.resource.clone()));
                            let exp = f.expires_at();
                            return (
                                Some((f, exp)),
                                Err(OAuthError::invalid_grant(
                                    "the identity provider no longer confirms this person; sign in again",
                                )),
                            );
                        }
                        Some(IdentityVerdict::Confirmed { groups }) => f.groups = groups.clone(),
                        None => {}
                    }
                    // The user must still exist and be allowed on the route. A config change
                    // can undo this, so the family is refused, not revoked.
                    let route = config.routes.iter().find(|r| r.resource == f.resource);
                    let user = users::current(
                        config,
                        &LoginUser {
                            name: f.user.clone(),
                            groups: f.groups.clone(),
                        },
                    );
                    let still_allowed =
                        matches!((route, &user), (Some(r), Some(u)) if u.allowed_on(r));
                    if !still_allowed {
                        let refused = Err(OAuthError::invalid_grant(
                            "the user is no longer allowed on this resource",
                        ));
                        // Groups the identity provider just confirmed no longer admit the
                        // person: that is the organisation's decision, and the grant ends.
                        if matches!(p.identity, Some(IdentityVerdict::Confirmed { .. })) {
                            denied = f.revoke();
                            ended = Some((f.user.clone(), f.resource.clone()));
                            let exp = f.expires_at();
                            return (Some((f, exp)), refused);
                        }
                        return (None, refused);
                    }
                    let scopes = scope::narrow(&f.scope, p.scope);
                    let (access, issued_access) =
                        self.mint_access(config, &LoginUser { name: f.user.clone(), groups: f.groups.clone() }, &f.client_id, &f.resource, &scopes, t);
                    let (new_refresh, issued_refresh) = self.new_refresh(config, &f.id, t);
                    let response = TokenResponse {
                        access_token: access,
                        token_type: "Bearer".into(),
                        expires_in: config.access_ttl(&f.client_id).as_secs(),
                        refresh_token: Some(new_refresh),
                        scope: scope::join(&scopes),
                        user: f.user.clone(),
                        resource: f.resource.clone(),
                    };
                    let sealed = serde_json::to_vec(&response)
                        .ok()
                        .and_then(|plain| seal::seal(token, &f.id, &plain))
                        .unwrap_or_default();
                    f.rotate(&hash, sealed, issued_refresh, issued_access, t, grace);
                    let exp = f.expires_at();
                    (Some((f, exp)), Ok(response))
                },
            )
            .map_err(store_error)?;
        self.deny(denied);
        if let Some((user, resource)) = reused {
            self.ended_grants.push(&user, &resource);
            audit::event(Event::ReuseDetected {
                user: &user,
                client: &client.client_id,
                route: config.route_name(&resource),
                ip: p.peer,
            });
        }
        if let Some((user, resource)) = ended {
            self.ended_grants.push(&user, &resource);
            audit::event(Event::IdentityEnded {
                user: &user,
                client: &client.client_id,
                route: config.route_name(&resource),
                ip: p.peer,
            });
        }
        if result.is_err() {
            tracing::info!(client = %client.client_id, "refresh refused");
        } else {
            self.keep_client(config, &client.client_id, t)?;
        }
        result
    }

    /// A registered client that obtains a token is kept as long as the refresh
    /// token it gets can be used: its record expires `refresh_ttl` after its
    /// newest token. (A client from a metadata document has no record: nothing to do.)
    fn keep_client(&self, config: &Config, client_id: &str, t: u64) -> Result<(), OAuthError> {
        let until = t + config.tokens.refresh_ttl.as_secs();
        self.records
            .update::<ClientRecord, ()>(Namespace::Clients, client_id, t, |record| {
                (record.map(|r| (r, until)), ())
            })
            .map_err(store_error)
    }

    /// Revokes a family (by id). `tombstone`: create a revoked record if none exists yet.
    fn revoke_family(&self, family_id: &str, tombstone: bool) -> Result<(), OAuthError> {
        let t = self.now();
        let denied = self
            .records
            .update::<Family, Vec<IssuedAccess>>(Namespace::Families, family_id, t, |family| {
                match family {
                    Some(mut f) => {
                        let denied = f.revoke();
                        self.ended_grants.push(&f.user, &f.resource);
                        let exp = f.expires_at().max(t + 60);
                        (Some((f, exp)), denied)
                    }
                    None if tombstone => {
                        let f = Family {
                            id: family_id.to_string(),
                            client_id: String::new(),
                            user: String::new(),
                            groups: Vec::new(),
                            resource: String::new(),
                            scope: Vec::new(),
                            created_at: t,
                            revoked: true,
                            tokens: Vec::new(),
                            access: Vec::new(),
                        };
                        (Some((f, t + CODE_MEMORY)), Vec::new())
                    }
                    None => (None, Vec::new()),
                }
            })
            .map_err(store_error)?;
        self.deny(denied);
        Ok(())
    }

    /// Refuses these access tokens until they expire, across restarts (and on
    /// every instance: a shared store announces them).
    fn deny(&self, tokens: Vec<IssuedAccess>) {
        for a in tokens {
            if let Err(e) = self.records.put(Namespace::Denied, &a.jti, &a, a.exp) {
                tracing::error!(error = %e, "cannot persist a revoked access token");
            }
            self.denied_elsewhere(&a.jti, a.exp);
        }
    }

    /// A revocation (made here or by another instance): the token is refused
    /// from now on, and no longer served from the verified-token cache.
    pub fn denied_elsewhere(&self, jti: &str, exp: u64) {
        self.verified.retain(|_, (_, c)| c.jti != jti);
        self.denied.insert(jti.to_string(), exp);
    }

    /// Reads the revocations in the store and applies those this instance
    /// missed (a shared store's announcements are lost while an instance is
    /// not listening); returns how many were new.
    pub fn resync_revocations(&self) -> Result<usize, StoreError> {
        let t = self.now();
        let stored = self.records.all::<IssuedAccess>(Namespace::Denied, t)?;
        let mut new = 0;
        for a in stored {
            if !self.denied.contains_key(&a.jti) {
                self.denied_elsewhere(&a.jti, a.exp);
                new += 1;
            }
        }
        Ok(new)
    }

    /// RFC 7009: revokes a refresh token (its whole family) or an access token
    /// of this client. Unknown tokens are not an error. Returns the token's
    /// user and resource when it was one of this client's.
    pub fn revoke(
        &self,
        client: &ClientRecord,
        token: &str,
    ) -> Result<Option<(String, String)>, OAuthError> {
        if let Some(family_id) = refresh::family_id(token)
            && let Some(f) = self
                .records
                .get::<Family>(Namespace::Families, family_id, self.now())
                .map_err(store_error)?
        {
            let hash = seal::hash(token);
            if f.client_id == client.client_id && f.tokens.iter().any(|t| t.hash == hash) {
                self.revoke_family(family_id, false)?;
                return Ok(Some((f.user, f.resource)));
            }
            return Ok(None);
        }
        if let Ok(claims) = self.keys.load().verify_signature(token)
            && claims.client_id == client.client_id
        {
            let revoked = IssuedAccess {
                jti: claims.jti,
                exp: claims.exp,
            };
            // Stored (and announced to the other instances) before the answer:
            // if the store fails, the client is told to try again.
            self.records
                .put(Namespace::Denied, &revoked.jti, &revoked, revoked.exp)
                .map_err(store_error)?;
            self.denied_elsewhere(&revoked.jti, revoked.exp);
            return Ok(Some((claims.sub, claims.aud)));
        }
        Ok(None)
    }

    /// The hot path: a bearer token presented to a route. A token seen before
    /// costs a map lookup, not a signature check.
    pub fn verify_access(
        &self,
        config: &Config,
        route: &Route,
        token: &str,
    ) -> Result<Arc<Claims>, TokenError> {
        if config.api_keys && token.starts_with(crate::oauth::api_key::PREFIX) {
            return self.verify_api_key(route, token);
        }
        let t = self.now();
        let key = cache_key(token);
        let cached = self
            .verified
            .get(&key)
            .filter(|e| same_bytes(e.0.as_bytes(), token.as_bytes()))
            .map(|e| e.1.clone());
        let claims = match cached {
            Some(c) => c,
            None => {
                let c = Arc::new(self.keys.load().verify_signature(token)?);
                // Expired tokens are kept too: clients retry with them, and each retry
                // would cost a signature check. `check` refuses them below.
                if c.iss == config.public_url.as_str() {
                    if self.verified.len() >= self.max_verified {
                        self.verified.retain(|_, (_, c)| c.exp > t);
                        if self.verified.len() >= self.max_verified {
                            self.verified.clear();
                        }
                    }
                    self.verified.insert(key, (token.into(), c.clone()));
                }
                c
            }
        };
        claims.check(config.public_url.as_str(), &route.resource, t)?;
        if !self.denied.is_empty() && self.denied.contains_key(&claims.jti) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Rotates the signing keys when due (and loads what other instances
    /// rotated); forgets expired store records, cached tokens and deny-list entries.
    pub fn sweep(&self, tokens: &Tokens) {
        let t = self.now();
        match keys::Keys::refresh(&self.records, tokens, t) {
            Ok(k) => self.keys.store(Arc::new(k)),
            Err(e) => tracing::error!(error = %e, "cannot rotate the signing keys"),
        }
        self.denied.retain(|_, exp| *exp > t);
        self.reload_api_keys(t);
        self.seen_assertions().forget_expired(t);
        self.verified.retain(|_, (_, c)| c.exp > t);
        match self.records.sweep(t) {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "store sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "store sweep failed"),
        }
    }
}

/// The bindings of a code: client, redirect URI, expiry, PKCE, resource.
fn check_code(
    record: &CodeRecord,
    client: &ClientRecord,
    p: &TokenParams,
    t: u64,
) -> Result<(), OAuthError> {
    let req = &record.request;
    if req.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if t >= record.expires_at {
        return Err(OAuthError::invalid_grant(
            "the authorization code has expired",
        ));
    }
    match p.redirect_uri {
        Some(r) if r != req.redirect_uri => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        None if req.redirect_uri_sent => {
            return Err(OAuthError::invalid_request(
                "redirect_uri is required: the authorization request had one",
            ));
        }
        _ => {}
    }
    pkce::verify(p.code_verifier, &req.code_challenge)?;
    if let Some(r) = p.resource
        && resource::canonical(r).as_deref() != Some(req.resource.as_str())
    {
        return Err(OAuthError::invalid_target(
            "resource does not match the authorization request",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
