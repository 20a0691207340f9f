//! Signing in through an identity provider: `/oauth/login/<name>` sends the
//! browser to the provider, `/oauth/callback/<name>` takes its answer; and at
//! a refresh, a provider's user is confirmed with the provider again when due.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::browser::{cookie_names, params, redirect_to, signed_in, with_cookie};
use crate::config::{Config, IdentityProvider};
use crate::federation::attempt::ATTEMPT_TTL;
use crate::federation::{self, Attempt, Callback, IdentityRecord, Recheck, SignInError};
use crate::login::LoginUser;
use crate::login::flow::{self, PageError, TicketUse};
use crate::metrics::LoginMethod;
use crate::oauth::OAuthError;
use crate::oauth::refresh::IdentityVerdict;
use crate::oauth::seal;
use crate::state::AppState;
use crate::telemetry::audit::{self, Event};
use crate::wire::{Body, ConnInfo};

const GET: &[Method] = &[Method::GET];

/// The attempt cookie: `__Host-` over https, like the session's.
fn attempt_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-mcp_signin"
    } else {
        "mcp_signin"
    }
}

impl From<SignInError> for PageError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Cancelled(_) => PageError::SignInCancelled,
            SignInError::Invalid(_) => PageError::ProviderAnswerInvalid,
            SignInError::NotAllowed(why) => PageError::ProviderNotAllowed(why.to_string()),
            SignInError::Unavailable(_) => PageError::ProviderUnavailable,
        }
    }
}

fn provider<'c>(config: &'c Config, name: &str) -> Result<&'c IdentityProvider, PageError> {
    config.provider(name).ok_or(PageError::UnknownProvider)
}

/// `GET /oauth/login/<name>?next=…`: a new attempt, and off to the provider.
pub async fn start(
    state: &AppState,
    config: &Config,
    req: Request<Incoming>,
    name: &str,
) -> Response<Body> {
    if req.method() != Method::GET {
        return PageError::MethodNotAllowed(GET).into_response();
    }
    let (_, query) = match params(req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let provider = match provider(config, name) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let next = flow::next_after_login(query.get("next").map(String::as_str));
    let attempt = Attempt::new(&provider.name, next, state.authority.now());
    let url = match state
        .federation
        .authorization_url(config, provider, &attempt)
        .await
    {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(provider = %provider.name, error = %e, "cannot start a sign-in");
            return PageError::from(e).into_response();
        }
    };
    let cookie = attempt_cookie(cookie_names(config).secure);
    off_to(state, config, cookie, &attempt, &url)
}

/// The browser sent to an authorization server (`url`) with the attempt's
/// sealed cookie: a provider's sign-in here, an upstream's connect flow in `connect.rs`.
pub(super) fn off_to(
    state: &AppState,
    config: &Config,
    cookie_name: &str,
    attempt: &Attempt,
    url: &str,
) -> Response<Body> {
    let names = cookie_names(config);
    let cookie = names.set(
        cookie_name,
        &attempt.seal(&state.authority.signer),
        ATTEMPT_TTL,
    );
    with_cookie(redirect_to(StatusCode::FOUND, url), cookie)
}

/// `GET /oauth/callback/<name>?code=…&state=…`: the provider's answer.
pub async fn callback(
    state: &AppState,
    config: &Config,
    req: Request<Incoming>,
    conn: ConnInfo,
    name: &str,
) -> Response<Body> {
    if req.method() != Method::GET {
        return PageError::MethodNotAllowed(GET).into_response();
    }
    let (parts, query) = match params(req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let names = cookie_names(config);
    let cookie_name = attempt_cookie(names.secure);
    // The attempt ends here, whatever happens next.
    let clear = names.set(cookie_name, "", 0);
    let result = finish(
        state,
        config,
        &parts.headers,
        &query,
        conn,
        name,
        cookie_name,
    )
    .await;
    let res = match result {
        Ok((user, next)) => signed_in(state, config, user, &next),
        Err(e) => e.into_response(),
    };
    with_cookie(res, clear)
}

async fn finish(
    state: &AppState,
    config: &Config,
    headers: &http::HeaderMap,
    query: &std::collections::HashMap<String, String>,
    conn: ConnInfo,
    name: &str,
    cookie_name: &str,
) -> Result<(LoginUser, String), PageError> {
    let provider = provider(config, name)?;
    let get = |k: &str| query.get(k).map(String::as_str);
    let now = state.authority.now();
    let cookie = crate::login::session::cookie(headers, cookie_name);
    let attempt = Attempt::open(&state.authority.signer, cookie, name, get("state"), now)
        .ok_or(PageError::SignInExpired)?;
    // Each attempt counts once: a replayed callback (same state, same cookie) is refused.
    let first_use = tokio::task::block_in_place(|| {
        state
            .used_tickets
            .first_use_of(&seal::hash(&attempt.state), attempt.exp, now)
    });
    match first_use {
        TicketUse::First => {}
        TicketUse::Again => return Err(PageError::SignInExpired),
        TicketUse::Full => return Err(PageError::Busy),
        TicketUse::Unavailable => return Err(PageError::Unavailable),
    }
    let failed = |e: SignInError| {
        tracing::warn!(provider = %provider.name, error = %e, "sign-in through an identity provider failed");
        state.metrics.login(LoginMethod::Provider, false);
        audit::event(Event::LoginFailed {
            user: &provider.user_name(""),
            ip: conn.peer.ip(),
        });
        PageError::from(e)
    };
    if let Some(error) = get("error") {
        let shown: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        return Err(failed(SignInError::Cancelled(shown)));
    }
    let code = get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| PageError::BadParameters("The identity provider sent no code.".into()))?;
    let redirect_uri = provider.redirect_uri(&config.public_url);
    let callback = Callback {
        code,
        iss: get("iss"),
        redirect_uri: &redirect_uri,
        attempt: &attempt,
    };
    let signed = state
        .federation
        .finish(provider, &callback)
        .await
        .map_err(failed)?;
    let user = LoginUser {
        name: provider.user_name(&signed.person.id),
        groups: signed.person.groups.clone(),
    };
    let record = IdentityRecord {
        provider: provider.name.clone(),
        subject: signed.person.subject,
        groups: signed.person.groups,
        confirmed_at: now,
        token: signed
            .token
            .as_ref()
            .and_then(|t| federation::seal_token(&state.authority.signer, &user.name, t)),
    };
    tokio::task::block_in_place(|| {
        state.authority.remember_identity(
            &user.name,
            &record,
            identity_until(config, provider, now),
        )
    })
    .map_err(PageError::ServerError)?;
    state.metrics.login(LoginMethod::Provider, true);
    audit::event(Event::LoginSucceeded {
        user: &user.name,
        ip: conn.peer.ip(),
    });
    Ok((user, attempt.next))
}

/// How long a provider's user is kept after a confirmation: as long as a
/// refresh token issued now lives, plus the time until it must be confirmed again.
fn identity_until(config: &Config, provider: &IdentityProvider, now: u64) -> u64 {
    now + config.tokens.refresh_ttl.as_secs() + provider.revalidate_after.as_secs()
}

/// Before a refresh: for a provider's user whose confirmation is due, ask the
/// provider. `None` for anyone else (a local user, a token that will not rotate).
pub async fn recheck(
    state: &AppState,
    config: &Config,
    refresh_token: Option<&str>,
) -> Result<Option<IdentityVerdict>, OAuthError> {
    let Some(token) = refresh_token else {
        return Ok(None);
    };
    let authority = &state.authority;
    let grace = config.tokens.refresh_grace.as_secs();
    let family = tokio::task::block_in_place(|| authority.family_to_rotate(token, grace))?;
    let Some(user) = family.map(|f| f.user) else {
        return Ok(None);
    };
    let Some(provider) = user
        .split_once(':')
        .and_then(|(name, _)| config.provider(name))
    else {
        return Ok(None);
    };
    let Some(record) = tokio::task::block_in_place(|| authority.identity(&user))? else {
        tracing::info!(user = %user, "no confirmation of this provider's user is kept; the grant ends");
        return Ok(Some(IdentityVerdict::Refused));
    };
    let now = authority.now();
    if record.recheck(now, provider.revalidate_after) == Recheck::NotDue {
        return Ok(Some(IdentityVerdict::Confirmed {
            groups: record.groups,
        }));
    }
    let sealed = record.token.as_deref();
    let provider_token = sealed.and_then(|s| federation::open_token(&authority.signer, &user, s));
    match state
        .federation
        .revalidate(provider, &record, provider_token.as_ref())
        .await
    {
        Ok(signed) if provider.user_name(&signed.person.id) == user => {
            let confirmed = IdentityRecord {
                confirmed_at: now,
                groups: signed.person.groups,
                token: signed
                    .token
                    .as_ref()
                    .and_then(|t| federation::seal_token(&authority.signer, &user, t)),
                ..record
            };
            tokio::task::block_in_place(|| {
                authority.remember_identity(
                    &user,
                    &confirmed,
                    identity_until(config, provider, now),
                )
            })?;
            tracing::info!(user = %user, provider = %provider.name, "identity confirmed again");
            Ok(Some(IdentityVerdict::Confirmed {
                groups: confirmed.groups,
            }))
        }
        Ok(_) => {
            tracing::info!(user = %user, "the provider now names this person differently; the grant ends");
            Ok(Some(IdentityVerdict::Refused))
        }
        Err(SignInError::Unavailable(why)) if record.may_wait(now, provider.revalidate_after) => {
            tracing::warn!(user = %user, provider = %provider.name, error = %why, "identity provider unavailable; the last confirmation stands for now");
            Ok(Some(IdentityVerdict::Confirmed {
                groups: record.groups,
            }))
        }
        Err(SignInError::Unavailable(why)) => {
            tracing::warn!(user = %user, provider = %provider.name, error = %why, "identity provider unavailable for too long; refresh refused for now");
            Err(OAuthError::temporarily_unavailable(
                "the identity provider cannot confirm the user right now; try again later",
            ))
        }
        Err(e) => {
            tracing::info!(user = %user, provider = %provider.name, error = %e, "the identity provider no longer confirms this person");
            Ok(Some(IdentityVerdict::Refused))
        }
    }
}

/// The JWT bearer grant with an ID-JAG (enterprise-managed authorization):
/// the person the organisation's provider vouches for, the route the grant is
/// for, and the scopes it allows there. Refusals are `invalid_grant` (RFC 7523
/// §3.1), `invalid_target` for a resource that is not ours, `invalid_scope`.
pub async fn id_jag_grant(
    state: &AppState,
    config: &Config,
    client_id: &str,
    assertion: Option<&str>,
    requested_scope: Option<&str>,
) -> Result<(LoginUser, String, Vec<String>), OAuthError> {
    let assertion =
        assertion.ok_or_else(|| OAuthError::invalid_request("assertion is required"))?;
    let refused = |why: &str| OAuthError::invalid_grant(format!("the assertion is refused: {why}"));
    let iss = crate::oauth::assertion::issuer(assertion)
        .ok_or_else(|| refused("it is not a JWT with an issuer"))?;
    let provider = config
        .identity_providers
        .iter()
        .find(|p| match &p.kind {
            crate::config::ProviderKind::Oidc { issuer, .. } => {
                issuer.trim_end_matches('/') == iss.trim_end_matches('/')
            }
            crate::config::ProviderKind::GitHub { .. } => false,
        })
        .ok_or_else(|| refused("its issuer is not a configured identity provider"))?;
    if !provider.id_jag {
        return Err(refused(&format!(
            "identity provider {} is not trusted for identity assertions (id_jag)",
            provider.name
        )));
    }
    let (typ, claims, issuer) = match state.federation.verify_assertion(provider, assertion).await {
        Ok(v) => v,
        Err(SignInError::Unavailable(why)) => {
            tracing::warn!(provider = %provider.name, error = %why, "cannot check an identity assertion");
            return Err(OAuthError::temporarily_unavailable(
                "the identity provider's keys cannot be fetched right now",
            ));
        }
        Err(e) => return Err(refused(&e.to_string())),
    };
    let now = state.authority.now();
    let expected = federation::id_jag::Expected {
        issuer: &issuer,
        audience: config.public_url.as_str(),
        client_id,
        now,
    };
    let grant = federation::id_jag::check(typ.as_deref(), &claims, &expected)
        .map_err(|e| refused(&e.to_string()))?;
    let route = crate::oauth::resource::canonical(&grant.resource)
        .and_then(|r| config.routes.iter().find(|x| x.resource == r))
        .ok_or_else(|| OAuthError::invalid_target("the assertion's resource is not served here"))?;
    state
        .authority
        .first_use_of_assertion(&format!("id-jag:{}", provider.name), &grant.jti, grant.exp)
        .map_err(|e| refused(&e.to_string()))?;
    // The provider speaks for the person here: an email without `email_verified` counts as verified.
    let mut claims = claims;
    claims
        .entry("email_verified")
        .or_insert(serde_json::Value::Bool(true));
    let crate::config::ProviderKind::Oidc {
        allowed_email_domains,
        groups_claim,
        ..
    } = &provider.kind
    else {
        return Err(refused("not an OpenID provider"));
    };
    let person = federation::person::from_claims(
        &claims,
        &grant.subject,
        allowed_email_domains,
        groups_claim.as_deref(),
    )
    .map_err(|e| refused(&e.to_string()))?;
    let user = LoginUser {
        name: provider.user_name(&person.id),
        groups: person.groups,
    };
    if !user.allowed_on(route) {
        return Err(refused(&format!(
            "{} is not allowed on {}",
            user.name, route.name
        )));
    }
    let scopes = id_jag_scopes(route, grant.scope.as_deref(), requested_scope)?;
    Ok((user, route.resource.clone(), scopes))
}

/// An ID-JAG's scopes: its `scope` claim (the organisation's decision) within
/// what the route defines (its defaults when the claim is absent), narrowed by
/// the token request's `scope`.
fn id_jag_scopes(
    route: &crate::config::Route,
    granted: Option<&str>,
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    use crate::oauth::scope;
    let Some(defined) = route.scopes.as_deref() else {
        return Ok(Vec::new());
    };
    let allowed = match granted {
        None => scope::grant(&[], Some(defined), &route.default_scopes),
        Some(g) => {
            let claimed = scope::parse(Some(g));
            defined
                .iter()
                .map(|(n, _)| n)
                .filter(|n| claimed.contains(n))
                .cloned()
                .collect()
        }
    };
    if allowed.is_empty() {
        return Err(OAuthError::invalid_scope(
            "the assertion allows no scope of this resource",
        ));
    }
    Ok(scope::narrow(&allowed, requested))
}
