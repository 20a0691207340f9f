//! The pages a person's browser visits: authorize, login, consent.

use std::collections::HashMap;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::config::{Config, Route};
use crate::login::flow::{
    self, AuthorizeInput, AuthorizeOutcome, ConsentInput, ConsentOutcome, LoginPost, LoginRefusal,
    PageError,
};
use crate::login::session::{self, CookieNames};
use crate::login::{LoginUser, pages, users};
use crate::metrics::LoginMethod;
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::client::ClientRecord;
use crate::oauth::form as forms;
use crate::oauth::redirect;
use crate::state::AppState;
use crate::telemetry::AccessInfo;
use crate::telemetry::audit::{self, Event};
use crate::wire::ConnInfo;
use crate::wire::{self, Body, MAX_FORM_BODY, full, read_body};

const CSP_LOGIN: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
// No form-action: Chromium applies it to the redirect that follows the consent
// POST, which goes to the client (often another origin or a custom scheme).
const CSP_CONSENT: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

const GET_OR_POST: &[Method] = &[Method::GET, Method::POST];
const POST: &[Method] = &[Method::POST];

pub(super) fn html(status: StatusCode, body: String, csp: &'static str) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// A page that only says something.
pub(super) fn page(status: StatusCode, title: &str, text: &str) -> Response<Body> {
    html(status, pages::message(title, text), CSP_LOGIN)
}

impl PageError {
    /// The one renderer of the browser flow's error pages.
    pub(super) fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut res = page(status, self.title(), &self.text());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let PageError::MethodNotAllowed(methods) = self {
            let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                res.headers_mut().insert(header::ALLOW, v);
            }
        }
        res
    }
}

pub(super) fn redirect_to(status: StatusCode, location: &str) -> Response<Body> {
    let Ok(location) = HeaderValue::from_str(location) else {
        return PageError::BadRedirect.into_response();
    };
    let mut res = Response::new(wire::empty());
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::LOCATION, location);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

pub(super) fn cookie_names(config: &Config) -> CookieNames {
    CookieNames {
        secure: config.public_url.is_https(),
    }
}

pub(super) fn with_cookie(mut res: Response<Body>, cookie: HeaderValue) -> Response<Body> {
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res
}

/// The session's user, as the config knows them now.
pub(super) fn session_user(
    state: &AppState,
    config: &Config,
    headers: &http::HeaderMap,
) -> Option<LoginUser> {
    let names = cookie_names(config);
    let value = session::cookie(headers, names.session())?;
    let user = session::verify_session(&state.authority.signer, value, state.authority.now())?;
    users::current(config, &user)
}

/// Whether the form's CSRF token matches this browser's cookie.
fn csrf_ok(
    state: &AppState,
    config: &Config,
    headers: &http::HeaderMap,
    form: &HashMap<String, String>,
) -> bool {
    session::csrf_ok(
        &state.authority.signer,
        headers,
        &cookie_names(config),
        form.get("csrf").map(String::as_str),
    )
}

/// Reads the parameters of a GET (query) or POST (form body) request.
pub(super) async fn params(
    req: Request<Incoming>,
) -> Result<(http::request::Parts, HashMap<String, String>), Response<Body>> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts.headers, body, MAX_FORM_BODY)
        .await
        .map_err(|e| e.into_response())?;
    let text = if parts.method == Method::POST {
        if !forms::is_form(&parts.headers) {
            return Err(PageError::NotAForm.into_response());
        }
        bytes.to_vec()
    } else {
        parts.uri.query().unwrap_or("").as_bytes().to_vec()
    };
    let map =
        forms::parse(&text).map_err(|e| PageError::BadParameters(e.description).into_response())?;
    Ok((parts, map))
}

/// The pages' 405 is a page, with `Allow`.
fn only(req: &Request<Incoming>, methods: &'static [Method]) -> Option<Response<Body>> {
    (!methods.contains(req.method())).then(|| PageError::MethodNotAllowed(methods).into_response())
}

/// `GET|POST /oauth/authorize`: validate, make sure someone is logged in, ask for consent.
pub async fn authorize(
    state: &AppState,
    config: &Config,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    if let Some(res) = only(&req, GET_OR_POST) {
        return res;
    }
    let (parts, params) = match params(req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let client = match params.get("client_id").filter(|c| !c.is_empty()) {
        Some(id) => match super::clients::resolve(state, config, id, conn.peer.ip()).await {
            Ok(c) => c,
            // A metadata document that cannot be used, or a store failure: say so, redirect nowhere.
            Err(e) => return PageError::ClientUnusable(e).into_response(),
        },
        None => None,
    };
    let user = session_user(state, config, &parts.headers);
    let consented = |user: &LoginUser, client_id: &str| {
        tokio::task::block_in_place(|| state.authority.has_consented(&user.name, client_id))
    };
    let input = AuthorizeInput {
        params: &params,
        client: client.as_ref(),
        user: user.as_ref(),
        config,
        consented: &consented,
    };
    match flow::authorize(&input) {
        AuthorizeOutcome::ShowConsent {
            request,
            client,
            route,
            user,
        } => consent_page(state, config, &parts.headers, &request, client, route, user),
        AuthorizeOutcome::RedirectToLogin { next } => {
            redirect_to(StatusCode::FOUND, &flow::login_url(&next))
        }
        AuthorizeOutcome::ErrorRedirect { url } => redirect_to(StatusCode::FOUND, &url),
        AuthorizeOutcome::Refuse(e) => e.into_response(),
    }
}

/// The consent page for `request`, with its ticket and the CSRF token.
fn consent_page(
    state: &AppState,
    config: &Config,
    headers: &http::HeaderMap,
    request: &AuthorizationRequest,
    client: &ClientRecord,
    route: &Route,
    user: &LoginUser,
) -> Response<Body> {
    let names = cookie_names(config);
    let (nonce, new_nonce) = session::csrf_nonce(headers, &names);
    let csrf = session::csrf_token(&state.authority.signer, &nonce);
    let ticket = session::issue_ticket(
        &state.authority.signer,
        request,
        &user.name,
        state.authority.now(),
    );
    let scopes: Vec<(&str, &[String])> = request
        .scopes
        .iter()
        .filter_map(|s| {
            route
                .scopes
                .iter()
                .flatten()
                .find(|(n, _)| n == s)
                .map(|(n, tools)| (n.as_str(), tools.as_slice()))
        })
        .collect();
    let redirect_host = redirect::display_host(&request.redirect_uri);
    let connect = route
        .upstream_oauth
        .as_ref()
        .filter(|_| {
            !state
                .upstream_oauth
                .is_connected(&state.authority, &route.name, &user.name)
        })
        .map(|_| crate::upstream_oauth::connect_url(config, route));
    let page = pages::consent(&pages::Consent {
        connect: connect.as_deref(),
        client_name: client.client_name.as_deref(),
        client_id: &client.client_id,
        redirect_host: &redirect_host,
        route_name: &route.name,
        resource: &route.resource,
        user: &user.name,
        scopes,
        ticket: &ticket,
        csrf: &csrf,
    });
    let mut res = html(StatusCode::OK, page, CSP_CONSENT);
    if new_nonce {
        res = with_cookie(res, names.set(names.csrf(), &nonce, session::SESSION_TTL));
    }
    res.extensions_mut().insert(AccessInfo {
        route: Some(route.name.clone()),
        user: Some(user.name.clone()),
        client: Some(client.client_id.clone()),
        ..Default::default()
    });
    res
}

fn login_form(
    state: &AppState,
    config: &Config,
    headers: &http::HeaderMap,
    status: StatusCode,
    next: &str,
    username: &str,
    msg: Option<&str>,
) -> Response<Body> {
    let names = cookie_names(config);
    let (nonce, new_nonce) = session::csrf_nonce(headers, &names);
    let csrf = session::csrf_token(&state.authority.signer, &nonce);
    let providers: Vec<(&str, &str)> = config
        .identity_providers
        .iter()
        .map(|p| (p.name.as_str(), p.display_name.as_str()))
        .collect();
    let local = !config.users.is_empty() || providers.is_empty();
    let page = pages::login(&csrf, next, username, msg, &providers, local);
    // After signing in for an upstream's connect page, the redirects go on to the
    // upstream's authorization server: Chromium applies `form-action` to them.
    let csp = if next.starts_with(crate::paths::CONNECT_PREFIX) {
        CSP_CONSENT
    } else {
        CSP_LOGIN
    };
    let res = html(status, page, csp);
    if new_nonce {
        with_cookie(res, names.set(names.csrf(), &nonce, session::SESSION_TTL))
    } else {
        res
    }
}

/// `GET|POST /oauth/login`.
pub async fn login(
    state: &AppState,
    config: &Config,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    if let Some(res) = only(&req, GET_OR_POST) {
        return res;
    }
    let is_post = req.method() == Method::POST;
    let (parts, form) = match params(req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let next = flow::next_after_login(form.get("next").map(String::as_str));
    if !is_post {
        return login_form(
            state,
            config,
            &parts.headers,
            StatusCode::OK,
            next,
            "",
            None,
        );
    }
    let post = LoginPost::read(&form, csrf_ok(state, config, &parts.headers, &form));
    let refused = |refusal: LoginRefusal| {
        if matches!(refusal, LoginRefusal::Throttled { .. }) {
            state.metrics.throttled(crate::metrics::Throttled::Login);
        }
        let mut res = login_form(
            state,
            config,
            &parts.headers,
            refusal.status(),
            next,
            post.username_to_show(),
            Some(&refusal.message()),
        );
        if let Some(seconds) = refusal.retry_after() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        res
    };
    let ip = conn.peer.ip();
    // Each check costs 19 MiB and a core for a moment: a few at a time. The
    // attempt holds its slot until it is finished.
    let take_slot = || state.password_checks.clone().try_acquire_owned().ok();
    // The throttle's counts may be in the shared store.
    let started = tokio::task::block_in_place(|| {
        flow::login(&post, ip, &state.throttle, state.authority.now(), take_slot)
    });
    let attempt = match started {
        Ok(a) => a,
        Err(refusal) => return refused(refusal),
    };
    let checked = users::check(config, attempt.username, attempt.password).await;
    let shown: String = attempt.username.chars().take(64).collect();
    let finished = tokio::task::block_in_place(|| attempt.finish(checked, &state.throttle));
    let user = match finished {
        Ok(user) => user,
        Err(refusal) => {
            state.metrics.login(LoginMethod::Local, false);
            audit::event(Event::LoginFailed { user: &shown, ip });
            return refused(refusal);
        }
    };
    state.metrics.login(LoginMethod::Local, true);
    audit::event(Event::LoginSucceeded {
        user: &user.name,
        ip,
    });
    signed_in(state, config, user, next)
}

/// After a login: the session cookie, and on to `next` (the authorization
/// request) or a page saying who is signed in.
pub(super) fn signed_in(
    state: &AppState,
    config: &Config,
    user: LoginUser,
    next: &str,
) -> Response<Body> {
    let names = cookie_names(config);
    let cookie = names.set(
        names.session(),
        &session::issue_session(&state.authority.signer, &user, state.authority.now()),
        session::SESSION_TTL,
    );
    let mut res = if next.is_empty() {
        page(
            StatusCode::OK,
            "Signed in",
            &format!(
                "You are signed in as {}. You can close this page.",
                user.name
            ),
        )
    } else {
        redirect_to(StatusCode::SEE_OTHER, next)
    };
    res = with_cookie(res, cookie);
    res.extensions_mut().insert(AccessInfo {
        user: Some(user.name),
        ..Default::default()
    });
    res
}

/// `POST /oauth/consent`: the person's decision.
pub async fn consent(
    state: &AppState,
    config: &Config,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    if let Some(res) = only(&req, POST) {
        return res;
    }
    let (parts, form) = match params(req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let user = session_user(state, config, &parts.headers);
    let input = ConsentInput {
        csrf_ok: csrf_ok(state, config, &parts.headers, &form),
        ticket: form.get("ticket").map(String::as_str),
        decision: form.get("decision").map(String::as_str),
        user: user.as_ref(),
        config,
        signer: &state.authority.signer,
        now: state.authority.now(),
    };
    let outcome = tokio::task::block_in_place(|| flow::consent(&input, &state.used_tickets));
    let (request, user, url) = match outcome {
        ConsentOutcome::Allow { request, user } => {
            let created =
                tokio::task::block_in_place(|| state.authority.create_code(config, &request, user));
            let code = match created {
                Ok(c) => c,
                Err(e) => return PageError::ServerError(e).into_response(),
            };
            audit::event(Event::ConsentAllowed {
                user: &user.name,
                client: &request.client_id,
                route: &request.route,
                ip: conn.peer.ip(),
            });
            let url = flow::back_to_client(
                &request.redirect_uri,
                &[("code", &code)],
                request.state.as_deref(),
                config.public_url.as_str(),
            );
            (request, user, url)
        }
        ConsentOutcome::Deny { request, user, url } => {
            audit::event(Event::ConsentDenied {
                user: &user.name,
                client: &request.client_id,
                route: &request.route,
                ip: conn.peer.ip(),
            });
            (request, user, url)
        }
        ConsentOutcome::Refuse(e) => return e.into_response(),
    };
    let mut res = redirect_to(StatusCode::SEE_OTHER, &url);
    res.extensions_mut().insert(AccessInfo {
        route: Some(request.route),
        user: Some(user.name.clone()),
        client: Some(request.client_id),
        ..Default::default()
    });
    res
}
