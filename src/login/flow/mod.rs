//! The browser flow's decisions (authorize, login, consent) as functions of
//! what the request said, who is signed in and the time. No I/O: the handlers
//! (`handlers/browser.rs`) read the request, call these, do what the outcome
//! asks (check a password, mint a code) and render it.

mod authorize;
mod consent;
mod login;
#[cfg(test)]
mod testing;
mod tickets;

use std::borrow::Cow;

use http::{Method, StatusCode};

pub use authorize::{AuthorizeInput, AuthorizeOutcome, authorize, login_url};
pub use consent::{ConsentInput, ConsentOutcome, consent};
pub use login::{LoginPost, LoginRefusal, login, next_after_login};
pub use tickets::{TicketUse, UsedTickets};

use crate::oauth::ErrorCode;
use crate::oauth::authorize::redirect_url;
use crate::oauth::error::OAuthError;

/// Every error page of the browser flow. Rendered in one place,
/// `PageError::into_response` in `handlers/browser.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    /// The page was asked for with another method; these are the ones it takes.
    MethodNotAllowed(&'static [Method]),
    /// A POST that is not a web form.
    NotAForm,
    /// Parameters that cannot be read (bad encoding, one given twice).
    BadParameters(String),
    /// An address to redirect to that cannot be a `Location`.
    BadRedirect,
    /// The client's metadata document cannot be used, or the store failed.
    ClientUnusable(OAuthError),
    /// The client or its redirect URI cannot be trusted: the reason.
    InvalidLink(String),
    /// An invalid request whose error may not go to the redirect URI (no open
    /// redirector): the error, shown here.
    InvalidRequest(OAuthError),
    /// The request names a route that is not configured.
    UnknownRoute,
    /// The route's `allow` does not name this user.
    NotAllowed { user: String, route: String },
    /// The route's `allow` no longer names this user (when they answer the consent page).
    NoLongerAllowed,
    /// The consent form's CSRF token does not match this browser's cookie.
    FormExpired,
    /// The consent ticket is forged or expired.
    TicketExpired,
    /// No session, or one for another user than the consent page's.
    NotSignedIn,
    /// This consent page was already answered.
    AlreadyAnswered,
    /// The consent form came with neither Allow nor Deny.
    NoDecision,
    /// Minting the code failed.
    ServerError(OAuthError),
    /// A bounded table is full for the moment (too many consents at once).
    Busy,
    /// The shared store does not answer for the moment.
    Unavailable,
    /// No identity provider of that name is configured.
    UnknownProvider,
    /// A provider's callback without this browser's sign-in attempt, with
    /// another attempt's `state`, expired, or replayed.
    SignInExpired,
    /// The provider sent the person back with an error (they said no).
    SignInCancelled,
    /// The provider's answer was refused (ID token, `iss`, a refused code).
    ProviderAnswerInvalid,
    /// The provider knows the person, but they may not sign in here: why.
    ProviderNotAllowed(String),
    /// The provider is down or slow.
    ProviderUnavailable,
    /// Connecting an account at an upstream's authorization server failed: what
    /// the person may do about it.
    ConnectFailed(StatusCode, String),
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            PageError::NotAForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PageError::ClientUnusable(e) | PageError::ServerError(e)
                if e.code == ErrorCode::TemporarilyUnavailable =>
            {
                StatusCode::SERVICE_UNAVAILABLE
            }
            PageError::ClientUnusable(e) if e.code == ErrorCode::ServerError => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            PageError::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PageError::Busy | PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            PageError::UnknownProvider => StatusCode::NOT_FOUND,
            PageError::SignInCancelled | PageError::ProviderNotAllowed(_) => StatusCode::FORBIDDEN,
            PageError::ProviderAnswerInvalid => StatusCode::BAD_GATEWAY,
            PageError::ProviderUnavailable => StatusCode::GATEWAY_TIMEOUT,
            PageError::ConnectFailed(status, _) => *status,
            PageError::NotAllowed { .. }
            | PageError::NoLongerAllowed
            | PageError::FormExpired
            | PageError::NotSignedIn => StatusCode::FORBIDDEN,
            PageError::BadParameters(_)
            | PageError::BadRedirect
            | PageError::ClientUnusable(_)
            | PageError::InvalidLink(_)
            | PageError::InvalidRequest(_)
            | PageError::UnknownRoute
            | PageError::TicketExpired
            | PageError::AlreadyAnswered
            | PageError::SignInExpired
            | PageError::NoDecision => StatusCode::BAD_REQUEST,
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            PageError::ClientUnusable(e) | PageError::ServerError(e)
                if e.code == ErrorCode::TemporarilyUnavailable =>
            {
                "Temporarily unavailable"
            }
            PageError::Unavailable => "Temporarily unavailable",
            PageError::MethodNotAllowed(_) => "Method not allowed",
            PageError::NotAForm | PageError::BadParameters(_) | PageError::NoDecision => {
                "Bad request"
            }
            PageError::BadRedirect => "Bad redirect",
            PageError::ClientUnusable(_) => "This application cannot sign in here",
            PageError::InvalidLink(_) | PageError::InvalidRequest(_) => {
                "This sign-in link is not valid"
            }
            PageError::UnknownRoute => "Unknown server",
            PageError::NotAllowed { .. }
            | PageError::NoLongerAllowed
            | PageError::ProviderNotAllowed(_) => "Access not allowed",
            PageError::UnknownProvider => "Unknown identity provider",
            PageError::SignInExpired => "This sign-in expired",
            PageError::SignInCancelled => "Sign-in was cancelled",
            PageError::ProviderAnswerInvalid => "The identity provider's answer was not valid",
            PageError::ProviderUnavailable => "The identity provider did not answer",
            PageError::FormExpired | PageError::TicketExpired => "This page expired",
            PageError::NotSignedIn => "Not signed in",
            PageError::AlreadyAnswered => "Already answered",
            PageError::ServerError(_) => "Something went wrong",
            PageError::Busy => "Busy",
            PageError::ConnectFailed(..) => "Not connected",
        }
    }

    pub fn text(&self) -> Cow<'_, str> {
        match self {
            PageError::MethodNotAllowed(_) => {
                "This page does not accept that kind of request.".into()
            }
            PageError::NotAForm => "This form must be sent as a web form.".into(),
            PageError::BadParameters(text) | PageError::InvalidLink(text) => text.into(),
            PageError::BadRedirect => "The redirect address is not valid.".into(),
            PageError::ClientUnusable(e) | PageError::ServerError(e) => {
                e.description.as_str().into()
            }
            PageError::InvalidRequest(e) => {
                format!("{}: {}", e.code.as_str(), e.description).into()
            }
            PageError::UnknownRoute => "This MCP server is not configured.".into(),
            PageError::NotAllowed { user, route } => format!(
                "Your account {user} is not allowed to use {route}. Ask the administrator to add you."
            )
            .into(),
            PageError::NoLongerAllowed => {
                "Your account is not allowed to use this MCP server.".into()
            }
            PageError::FormExpired | PageError::TicketExpired => {
                "Go back to your application and connect again.".into()
            }
            PageError::NotSignedIn => {
                "Your session ended. Go back to your application and connect again.".into()
            }
            PageError::AlreadyAnswered => {
                "This request was already answered. Go back to your application.".into()
            }
            PageError::Busy => "The server is busy. Try again in a moment.".into(),
            PageError::Unavailable => {
                "The server cannot complete sign-ins at the moment. Try again in a moment.".into()
            }
            PageError::NoDecision => "Choose Allow or Deny.".into(),
            PageError::UnknownProvider => "This way of signing in is not configured.".into(),
            PageError::SignInExpired => {
                "Go back to your application and connect again.".into()
            }
            PageError::SignInCancelled => {
                "The identity provider did not sign you in. Go back to your application to try again."
                    .into()
            }
            PageError::ProviderAnswerInvalid => {
                "Signing in could not be completed. Try again; if it keeps failing, tell the administrator."
                    .into()
            }
            PageError::ProviderNotAllowed(why) => why.into(),
            PageError::ProviderUnavailable => {
                "Signing in could not be completed. Try again in a moment.".into()
            }
            PageError::ConnectFailed(_, text) => text.into(),
        }
    }
}

/// Where the browser goes back to the client: its redirect URI with the
/// answer (`code`, or `error` and `error_description`), `state` if the client
/// sent one, and `iss` (RFC 9207).
pub fn back_to_client(
    redirect_uri: &str,
    answer: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut params = answer.to_vec();
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    redirect_url(redirect_uri, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_page_has_its_status_title_and_text() {
        let oauth = |code| OAuthError::new(code, "why");
        let cases = [
            (
                PageError::MethodNotAllowed(&[Method::POST]),
                405,
                "Method not allowed",
                "This page does not accept that kind of request.",
            ),
            (
                PageError::NotAForm,
                415,
                "Bad request",
                "This form must be sent as a web form.",
            ),
            (
                PageError::BadParameters("parameter \"a\" appears more than once".into()),
                400,
                "Bad request",
                "parameter \"a\" appears more than once",
            ),
            (
                PageError::BadRedirect,
                400,
                "Bad redirect",
                "The redirect address is not valid.",
            ),
            (
                PageError::ClientUnusable(oauth(ErrorCode::InvalidClient)),
                400,
                "This application cannot sign in here",
                "why",
            ),
            (
                PageError::ClientUnusable(oauth(ErrorCode::ServerError)),
                500,
                "This application cannot sign in here",
                "why",
            ),
            (
                PageError::InvalidLink("Unknown client.".into()),
                400,
                "This sign-in link is not valid",
                "Unknown client.",
            ),
            (
                PageError::InvalidRequest(oauth(ErrorCode::InvalidScope)),
                400,
                "This sign-in link is not valid",
                "invalid_scope: why",
            ),
            (
                PageError::UnknownRoute,
                400,
                "Unknown server",
                "This MCP server is not configured.",
            ),
            (
                PageError::NotAllowed {
                    user: "bob".into(),
                    route: "notes".into(),
                },
                403,
                "Access not allowed",
                "Your account bob is not allowed to use notes. Ask the administrator to add you.",
            ),
            (
                PageError::NoLongerAllowed,
                403,
                "Access not allowed",
                "Your account is not allowed to use this MCP server.",
            ),
            (
                PageError::FormExpired,
                403,
                "This page expired",
                "Go back to your application and connect again.",
            ),
            (
                PageError::TicketExpired,
                400,
                "This page expired",
                "Go back to your application and connect again.",
            ),
            (
                PageError::NotSignedIn,
                403,
                "Not signed in",
                "Your session ended. Go back to your application and connect again.",
            ),
            (
                PageError::AlreadyAnswered,
                400,
                "Already answered",
                "This request was already answered. Go back to your application.",
            ),
            (
                PageError::NoDecision,
                400,
                "Bad request",
                "Choose Allow or Deny.",
            ),
            (
                PageError::UnknownProvider,
                404,
                "Unknown identity provider",
                "This way of signing in is not configured.",
            ),
            (
                PageError::SignInExpired,
                400,
                "This sign-in expired",
                "Go back to your application and connect again.",
            ),
            (
                PageError::SignInCancelled,
                403,
                "Sign-in was cancelled",
                "The identity provider did not sign you in. Go back to your application to try again.",
            ),
            (
                PageError::ProviderAnswerInvalid,
                502,
                "The identity provider's answer was not valid",
                "Signing in could not be completed. Try again; if it keeps failing, tell the administrator.",
            ),
            (
                PageError::ProviderNotAllowed("Accounts of x.org may not sign in here.".into()),
                403,
                "Access not allowed",
                "Accounts of x.org may not sign in here.",
            ),
            (
                PageError::ProviderUnavailable,
                504,
                "The identity provider did not answer",
                "Signing in could not be completed. Try again in a moment.",
            ),
            (
                PageError::ServerError(oauth(ErrorCode::ServerError)),
                500,
                "Something went wrong",
                "why",
            ),
        ];
        for (error, status, title, text) in cases {
            assert_eq!(
                (error.status().as_u16(), error.title(), &*error.text()),
                (status, title, text),
                "{error:?}"
            );
        }
    }

    #[test]
    fn the_way_back_to_the_client_carries_the_answer_state_and_iss() {
        let url = back_to_client(
            "http://127.0.0.1:5555/cb?app=1",
            &[("code", "c&d")],
            Some("s t"),
            "https://proxy.example",
        );
        assert_eq!(
            url,
            "http://127.0.0.1:5555/cb?app=1&code=c%26d&state=s+t&iss=https%3A%2F%2Fproxy.example"
        );
        let url = back_to_client("app:/cb", &[("error", "access_denied")], None, "https://p");
        assert_eq!(url, "app:/cb?error=access_denied&iss=https%3A%2F%2Fp");
    }
}
