//! Connecting a user's account at an upstream protected by OAuth:
//! `GET /oauth/connect/<route>` (signed-in users; others sign in first) sends
//! the browser to the upstream's authorization server with PKCE, and
//! `/oauth/connect/<route>/callback` exchanges its code and keeps the tokens
//! (`upstream_oauth`). The attempt (state, verifier, the user) lives in a
//! sealed cookie, as a sign-in at an identity provider does.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use url::form_urlencoded;

use super::browser::{cookie_names, page, params, redirect_to, session_user, with_cookie};
use crate::config::{Config, Route};
use crate::federation::{Attempt, Callback};
use crate::login::LoginUser;
use crate::login::flow::{PageError, TicketUse};
use crate::oauth::seal;
use crate::paths;
use crate::state::AppState;
use crate::telemetry::AccessInfo;
use crate::upstream_oauth::{self, UpstreamOAuthError};
use crate::wire::Body;

const GET: &[Method] = &[Method::GET];

fn attempt_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-mcp_connect"
    } else {
        "mcp_connect"
    }
}

impl From<UpstreamOAuthError> for PageError {
    fn from(e: UpstreamOAuthError) -> Self {
        let (status, text) = match &e {
            UpstreamOAuthError::NotConnected => (
                StatusCode::BAD_GATEWAY,
                "The upstream did not give access. Try again.",
            ),
            UpstreamOAuthError::Unavailable(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "The upstream's sign-in service did not answer. Try again in a moment.",
            ),
            UpstreamOAuthError::Refused(_) => (
                StatusCode::BAD_GATEWAY,
                "The upstream's sign-in service refused. Try again; if it keeps failing, tell the administrator.",
            ),
            UpstreamOAuthError::Discovery(_) | UpstreamOAuthError::Store(_) => (
                StatusCode::BAD_GATEWAY,
                "Connecting is not possible at the moment; the administrator can see why in the log.",
            ),
        };
        PageError::ConnectFailed(status, text.into())
    }
}

/// `/oauth/connect/<route>` or `/oauth/connect/<route>/callback`.
pub async fn handle(
    state: &AppState,
    config: &Config,
    req: Request<Incoming>,
    rest: &str,
) -> Response<Body> {
    if req.method() != Method::GET {
        return PageError::MethodNotAllowed(GET).into_response();
    }
    let (name, is_callback) = match rest.strip_suffix(paths::CONNECT_CALLBACK_SUFFIX) {
        Some(name) => (name, true),
        None => (rest, false),
    };
    let Some(route) = config
        .routes
        .iter()
        .find(|r| r.name == name && r.upstream_oauth.is_some())
    else {
        return PageError::UnknownRoute.into_response();
    };
    let (parts, query) = match params(req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let user = session_user(state, config, &parts.headers);
    let mut res = if is_callback {
        callback(state, config, route, user.as_ref(), &parts.headers, &query).await
    } else {
        start(state, config, route, user.as_ref()).await
    };
    res.extensions_mut().insert(AccessInfo {
        route: Some(route.name.clone()),
        user: user.map(|u| u.name),
        ..Default::default()
    });
    res
}

async fn start(
    state: &AppState,
    config: &Config,
    route: &Route,
    user: Option<&LoginUser>,
) -> Response<Body> {
    let Some(user) = user else {
        // Sign in first, then back here.
        let next = format!("{}{}", paths::CONNECT_PREFIX, route.name);
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &next)
            .finish();
        return redirect_to(StatusCode::SEE_OTHER, &format!("{}?{query}", paths::LOGIN));
    };
    if !user.allowed_on(route) {
        return PageError::NotAllowed {
            user: user.name.clone(),
            route: route.name.clone(),
        }
        .into_response();
    }
    let attempt = Attempt::new(
        &upstream_oauth::attempt_name(route),
        &user.name,
        state.authority.now(),
    );
    let url = match state
        .upstream_oauth
        .authorization_url(&state.authority, config, route, &attempt)
        .await
    {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(route = %route.name, error = %e, "cannot start connecting an upstream account");
            return PageError::from(e).into_response();
        }
    };
    let cookie = attempt_cookie(cookie_names(config).secure);
    super::federated::off_to(state, config, cookie, &attempt, &url)
}

async fn callback(
    state: &AppState,
    config: &Config,
    route: &Route,
    user: Option<&LoginUser>,
    headers: &http::HeaderMap,
    query: &std::collections::HashMap<String, String>,
) -> Response<Body> {
    let names = cookie_names(config);
    let cookie_name = attempt_cookie(names.secure);
    // The attempt ends here, whatever happens next.
    let clear = names.set(cookie_name, "", 0);
    let res = match finish(state, config, route, user, headers, query, cookie_name).await {
        Ok(()) => page(
            StatusCode::OK,
            "Connected",
            &format!(
                "Your account for {} is connected. You can close this page and use the tools again.",
                route.name
            ),
        ),
        Err(e) => e.into_response(),
    };
    with_cookie(res, clear)
}

async fn finish(
    state: &AppState,
    config: &Config,
    route: &Route,
    user: Option<&LoginUser>,
    headers: &http::HeaderMap,
    query: &std::collections::HashMap<String, String>,
    cookie_name: &str,
) -> Result<(), PageError> {
    let get = |k: &str| query.get(k).map(String::as_str);
    let now = state.authority.now();
    let cookie = crate::login::session::cookie(headers, cookie_name);
    let attempt = Attempt::open(
        &state.authority.signer,
        cookie,
        &upstream_oauth::attempt_name(route),
        get("state"),
        now,
    )
    .ok_or(PageError::SignInExpired)?;
    // The browser that started it, still signed in as the same person.
    let user = user
        .filter(|u| u.name == attempt.next)
        .ok_or(PageError::NotSignedIn)?;
    match state
        .used_tickets
        .first_use_of(&seal::hash(&attempt.state), attempt.exp, now)
    {
        TicketUse::First => {}
        TicketUse::Again => return Err(PageError::SignInExpired),
        TicketUse::Full => return Err(PageError::Busy),
        TicketUse::Unavailable => return Err(PageError::Unavailable),
    }
    if get("error").is_some() {
        return Err(PageError::ConnectFailed(
            StatusCode::FORBIDDEN,
            format!(
                "The account for {} was not connected. Open this page again to retry.",
                route.name
            ),
        ));
    }
    let code = get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| PageError::BadParameters("The authorization server sent no code.".into()))?;
    let redirect_uri = upstream_oauth::redirect_uri(config, route);
    let answer = Callback {
        code,
        iss: get("iss"),
        redirect_uri: &redirect_uri,
        attempt: &attempt,
    };
    state
        .upstream_oauth
        .finish(&state.authority, config, route, &user.name, &answer)
        .await
        .map_err(|e| {
            tracing::warn!(route = %route.name, error = %e, "connecting an upstream account failed");
            PageError::from(e)
        })?;
    tracing::info!(route = %route.name, user = %user.name, "upstream account connected");
    Ok(())
}
