//! `/oauth/authorize`: validate the request, make sure someone is signed in
//! and allowed, then ask them.

use std::collections::HashMap;

use super::{PageError, back_to_client};
use crate::config::{Config, Route};
use crate::login::LoginUser;
use crate::oauth::authorize::{AuthorizationRequest, AuthorizeError, validate};
use crate::oauth::client::ClientRecord;
use crate::paths;

/// What an authorization request brings.
pub struct AuthorizeInput<'a> {
    /// Its parameters (query or form).
    pub params: &'a HashMap<String, String>,
    /// The client `client_id` names, if it is known (registered, or its
    /// metadata document fetched).
    pub client: Option<&'a ClientRecord>,
    /// Who is signed in on this browser, as the config knows them now.
    pub user: Option<&'a LoginUser>,
    pub config: &'a Config,
    /// Whether this user allowed this client (id) before. Asked only for an
    /// invalid request that might go back to the client.
    pub consented: &'a dyn Fn(&LoginUser, &str) -> bool,
}

#[derive(Debug)]
pub enum AuthorizeOutcome<'a> {
    /// Ask the user to allow or deny this request.
    ShowConsent {
        request: AuthorizationRequest,
        client: &'a ClientRecord,
        route: &'a Route,
        user: &'a LoginUser,
    },
    /// Nobody signed in: the login page, which comes back to `next` (this request).
    RedirectToLogin {
        next: String,
    },
    /// An invalid request, told to the client at its redirect URI.
    ErrorRedirect {
        url: String,
    },
    Refuse(PageError),
}

pub fn authorize<'a>(input: &AuthorizeInput<'a>) -> AuthorizeOutcome<'a> {
    let request = match validate(input.params, input.client, input.config) {
        Ok(r) => r,
        Err(AuthorizeError::Page(text)) => {
            return AuthorizeOutcome::Refuse(PageError::InvalidLink(text));
        }
        Err(AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
        }) => {
            if !may_redirect_errors(input) {
                return AuthorizeOutcome::Refuse(PageError::InvalidRequest(error));
            }
            let answer = [
                ("error", error.code.as_str()),
                ("error_description", error.description.as_str()),
            ];
            let issuer = input.config.public_url.as_str();
            let url = back_to_client(&redirect_uri, &answer, state.as_deref(), issuer);
            return AuthorizeOutcome::ErrorRedirect { url };
        }
    };
    // `validate` accepts no request without its client.
    let Some(client) = input.client else {
        return AuthorizeOutcome::Refuse(PageError::InvalidLink("Unknown client.".into()));
    };
    let Some(user) = input.user else {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(input.params.iter())
            .finish();
        let next = format!("{}?{query}", paths::AUTHORIZE);
        return AuthorizeOutcome::RedirectToLogin { next };
    };
    let Some(route) = input.config.routes.iter().find(|r| r.name == request.route) else {
        return AuthorizeOutcome::Refuse(PageError::UnknownRoute);
    };
    if !user.allowed_on(route) {
        return AuthorizeOutcome::Refuse(PageError::NotAllowed {
            user: user.name.clone(),
            route: route.name.clone(),
        });
    }
    AuthorizeOutcome::ShowConsent {
        request,
        client,
        route,
        user,
    }
}

/// Whether an invalid request's error may be sent to the client's redirect
/// URI. Anyone can register a client with any redirect URI, and a signed-in
/// person can be sent any link: unless this person allowed this client
/// before, an error redirect would make this origin an open redirector
/// (RFC 9700 §4.11.2), so the error is shown instead.
fn may_redirect_errors(input: &AuthorizeInput) -> bool {
    match (input.user, input.client) {
        (Some(user), Some(client)) => (input.consented)(user, &client.client_id),
        _ => false,
    }
}

/// The login page's address, coming back to `next` after login.
pub fn login_url(next: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    format!("{}?{query}", paths::LOGIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::flow::testing::{
        alice, bob, client, config, query_of, request_params, without,
    };
    use crate::oauth::ErrorCode;

    fn outcome<'a>(
        params: &'a HashMap<String, String>,
        client: Option<&'a ClientRecord>,
        user: Option<&'a LoginUser>,
        config: &'a Config,
    ) -> AuthorizeOutcome<'a> {
        authorize(&AuthorizeInput {
            params,
            client,
            user,
            config,
            consented: &|_, _| true,
        })
    }

    #[test]
    fn a_valid_request_from_an_allowed_user_shows_the_consent_page() {
        let (cfg, c, alice) = (config(), client(), alice());
        let params = request_params(&c, &[("scope", "notes:write")]);
        let AuthorizeOutcome::ShowConsent {
            request,
            client,
            route,
            user,
        } = outcome(&params, Some(&c), Some(&alice), &cfg)
        else {
            panic!("expected the consent page");
        };
        assert_eq!(request.client_id, c.client_id);
        assert_eq!(request.scopes, ["notes:write"]);
        assert_eq!(request.state.as_deref(), Some("st"));
        assert_eq!(client.client_id, c.client_id);
        assert_eq!(route.name, "notes");
        assert_eq!(user, &alice);
    }

    #[test]
    fn an_unknown_client_gets_a_page() {
        let (cfg, c, alice) = (config(), client(), alice());
        let params = request_params(&c, &[]);
        let AuthorizeOutcome::Refuse(e) = outcome(&params, None, Some(&alice), &cfg) else {
            panic!("expected a page");
        };
        assert_eq!(e.status(), 400);
        assert_eq!(e.title(), "This sign-in link is not valid");
        assert!(e.text().contains("not registered"), "{}", e.text());
    }

    #[test]
    fn a_request_naming_no_client_gets_a_page() {
        let (cfg, c) = (config(), client());
        let params = without(request_params(&c, &[]), "client_id");
        let AuthorizeOutcome::Refuse(e) = outcome(&params, None, None, &cfg) else {
            panic!("expected a page");
        };
        assert!(e.text().contains("client_id is missing"), "{}", e.text());
    }

    #[test]
    fn a_redirect_uri_the_client_did_not_register_gets_a_page_even_when_signed_in() {
        let (cfg, c, alice) = (config(), client(), alice());
        let params = request_params(&c, &[("redirect_uri", "https://evil.example/cb")]);
        let AuthorizeOutcome::Refuse(e) = outcome(&params, Some(&c), Some(&alice), &cfg) else {
            panic!("expected a page, never a redirect to an unregistered URI");
        };
        assert_eq!(e.status(), 400);
        assert!(e.text().contains("redirect URI"), "{}", e.text());
    }

    #[test]
    fn an_invalid_request_with_nobody_signed_in_gets_a_page_not_a_redirect() {
        let (cfg, c) = (config(), client());
        let params = request_params(&c, &[("code_challenge_method", "plain")]);
        let AuthorizeOutcome::Refuse(e) = outcome(&params, Some(&c), None, &cfg) else {
            panic!("expected a page: no open redirector (RFC 9700 §4.11.2)");
        };
        assert_eq!(e.status(), 400);
        assert_eq!(e.title(), "This sign-in link is not valid");
        assert!(e.text().starts_with("invalid_request: "), "{}", e.text());
    }

    #[test]
    fn an_invalid_request_of_a_signed_in_user_who_never_allowed_the_client_gets_a_page() {
        let (cfg, c, alice) = (config(), client(), alice());
        let params = request_params(&c, &[("response_type", "x")]);
        let asked = std::cell::RefCell::new(Vec::new());
        let consented = |user: &LoginUser, client_id: &str| {
            asked
                .borrow_mut()
                .push((user.name.clone(), client_id.to_string()));
            false
        };
        let input = AuthorizeInput {
            params: &params,
            client: Some(&c),
            user: Some(&alice),
            config: &cfg,
            consented: &consented,
        };
        let AuthorizeOutcome::Refuse(e) = authorize(&input) else {
            panic!("expected a page: no open redirector for a client alice never allowed");
        };
        assert_eq!(e.status(), 400);
        assert!(
            e.text().starts_with("unsupported_response_type: "),
            "{}",
            e.text()
        );
        assert_eq!(
            *asked.borrow(),
            [("alice".to_string(), c.client_id.clone())]
        );
    }

    #[test]
    fn a_valid_request_does_not_look_up_consent() {
        let (cfg, c, alice) = (config(), client(), alice());
        let params = request_params(&c, &[]);
        let input = AuthorizeInput {
            params: &params,
            client: Some(&c),
            user: Some(&alice),
            config: &cfg,
            consented: &|_, _| panic!("consent looked up on the way to the consent page"),
        };
        assert!(matches!(
            authorize(&input),
            AuthorizeOutcome::ShowConsent { .. }
        ));
    }

    #[test]
    fn an_invalid_request_of_a_signed_in_user_who_allowed_the_client_goes_back_to_it_with_iss_and_state()
     {
        let (cfg, c, alice) = (config(), client(), alice());
        let params = request_params(&c, &[("response_type", "token")]);
        let AuthorizeOutcome::ErrorRedirect { url } =
            outcome(&params, Some(&c), Some(&alice), &cfg)
        else {
            panic!("expected an error redirect");
        };
        assert!(url.starts_with("http://127.0.0.1:55555/callback?"), "{url}");
        let q = query_of(&url);
        assert_eq!(q["error"], ErrorCode::UnsupportedResponseType.as_str());
        assert_eq!(q["state"], "st");
        assert_eq!(q["iss"], "https://proxy.example");
        assert!(!q.contains_key("code"));
    }

    #[test]
    fn an_error_redirect_without_state_sends_none() {
        let (cfg, c, alice) = (config(), client(), alice());
        let params = without(
            request_params(&c, &[("code_challenge_method", "plain")]),
            "state",
        );
        let AuthorizeOutcome::ErrorRedirect { url } =
            outcome(&params, Some(&c), Some(&alice), &cfg)
        else {
            panic!("expected an error redirect");
        };
        let q = query_of(&url);
        assert_eq!(q["error"], "invalid_request");
        assert!(!q.contains_key("state"));
    }

    #[test]
    fn nobody_signed_in_goes_to_login_and_comes_back_to_the_same_request() {
        let (cfg, c) = (config(), client());
        let params = request_params(&c, &[]);
        let AuthorizeOutcome::RedirectToLogin { next } = outcome(&params, Some(&c), None, &cfg)
        else {
            panic!("expected the login page");
        };
        let (path, _) = next.split_once('?').unwrap();
        assert_eq!(path, paths::AUTHORIZE);
        let back: HashMap<String, String> = query_of(&next);
        assert_eq!(back, params);
        let login = login_url(&next);
        assert!(
            login.starts_with(&format!("{}?next=", paths::LOGIN)),
            "{login}"
        );
        assert_eq!(query_of(&login)["next"], next);
    }

    #[test]
    fn a_user_the_route_does_not_allow_gets_a_403_page() {
        let (cfg, c, bob) = (config(), client(), bob());
        let params = request_params(&c, &[]);
        let AuthorizeOutcome::Refuse(e) = outcome(&params, Some(&c), Some(&bob), &cfg) else {
            panic!("expected a page");
        };
        assert_eq!(
            e,
            PageError::NotAllowed {
                user: "bob".into(),
                route: "notes".into()
            }
        );
        assert_eq!(e.status(), 403);
        assert_eq!(e.title(), "Access not allowed");
        assert_eq!(
            e.text(),
            "Your account bob is not allowed to use notes. Ask the administrator to add you."
        );
    }

    #[test]
    fn a_route_without_allow_asks_every_signed_in_user() {
        let (cfg, c, bob) = (config(), client(), bob());
        let params = request_params(&c, &[("resource", "https://proxy.example/open/mcp")]);
        assert!(matches!(
            outcome(&params, Some(&c), Some(&bob), &cfg),
            AuthorizeOutcome::ShowConsent { route, .. } if route.name == "open"
        ));
    }
}
