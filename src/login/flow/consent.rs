//! `/oauth/consent`: the signed-in user's answer to a consent page.

use super::{PageError, TicketUse, UsedTickets, back_to_client};
use crate::config::Config;
use crate::login::LoginUser;
use crate::login::session;
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::seal::Signer;

/// What a posted consent form brings.
pub struct ConsentInput<'a> {
    /// Whether the form's CSRF token matches this browser's cookie.
    pub csrf_ok: bool,
    /// The signed ticket of the consent page.
    pub ticket: Option<&'a str>,
    /// The button pressed: `allow` or `deny`.
    pub decision: Option<&'a str>,
    /// Who is signed in on this browser, as the config knows them now.
    pub user: Option<&'a LoginUser>,
    pub config: &'a Config,
    pub signer: &'a Signer,
    pub now: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConsentOutcome<'a> {
    /// Mint a code for the request and send it to the client (`back_to_client`).
    Allow {
        request: AuthorizationRequest,
        user: &'a LoginUser,
    },
    /// Send `access_denied` to the client, at `url`.
    Deny {
        request: AuthorizationRequest,
        user: &'a LoginUser,
        url: String,
    },
    Refuse(PageError),
}

pub fn consent<'a>(input: &ConsentInput<'a>, used: &UsedTickets) -> ConsentOutcome<'a> {
    if !input.csrf_ok {
        return ConsentOutcome::Refuse(PageError::FormExpired);
    }
    let Some(ticket) = input
        .ticket
        .and_then(|t| session::verify_ticket(input.signer, t, input.now))
    else {
        return ConsentOutcome::Refuse(PageError::TicketExpired);
    };
    let Some(user) = input.user.filter(|u| u.name == ticket.user) else {
        return ConsentOutcome::Refuse(PageError::NotSignedIn);
    };
    let allow = match input.decision {
        Some("allow") => true,
        Some("deny") => false,
        _ => return ConsentOutcome::Refuse(PageError::NoDecision),
    };
    match used.first_use(&ticket, input.now) {
        TicketUse::First => {}
        TicketUse::Again => return ConsentOutcome::Refuse(PageError::AlreadyAnswered),
        TicketUse::Full => return ConsentOutcome::Refuse(PageError::Busy),
        TicketUse::Unavailable => return ConsentOutcome::Refuse(PageError::Unavailable),
    }
    let request = ticket.request;
    if !allow {
        let answer = [
            ("error", "access_denied"),
            ("error_description", "the user denied the request"),
        ];
        let issuer = input.config.public_url.as_str();
        let url = back_to_client(
            &request.redirect_uri,
            &answer,
            request.state.as_deref(),
            issuer,
        );
        return ConsentOutcome::Deny { request, user, url };
    }
    let allowed = input
        .config
        .routes
        .iter()
        .find(|r| r.name == request.route)
        .is_some_and(|r| user.allowed_on(r));
    if !allowed {
        return ConsentOutcome::Refuse(PageError::NoLongerAllowed);
    }
    ConsentOutcome::Allow { request, user }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::flow::testing::{alice, bob, client, config, query_of, request_params};
    use crate::login::session::TICKET_TTL;
    use crate::oauth::authorize::validate;

    const NOW: u64 = 1_000_000;

    struct Page {
        config: Config,
        signer: Signer,
        request: AuthorizationRequest,
        /// The ticket of a consent page shown to alice at `NOW`.
        ticket: String,
    }

    fn page() -> Page {
        let config = config();
        let c = client();
        let request = validate(&request_params(&c, &[]), Some(&c), &config).unwrap();
        let signer = Signer::new(b"test key");
        let ticket = session::issue_ticket(&signer, &request, "alice", NOW);
        Page {
            config,
            signer,
            request,
            ticket,
        }
    }

    impl Page {
        /// The form posted back at `now` by `user` with `decision`.
        fn post<'a>(
            &'a self,
            user: Option<&'a LoginUser>,
            decision: Option<&'a str>,
            now: u64,
        ) -> ConsentInput<'a> {
            ConsentInput {
                csrf_ok: true,
                ticket: Some(&self.ticket),
                decision,
                user,
                config: &self.config,
                signer: &self.signer,
                now,
            }
        }
    }

    fn refusal(outcome: ConsentOutcome) -> PageError {
        match outcome {
            ConsentOutcome::Refuse(e) => e,
            other => panic!("expected a page, got {other:?}"),
        }
    }

    #[test]
    fn allow_asks_for_a_code_for_the_request_of_the_page() {
        let (page, alice) = (page(), alice());
        let outcome = consent(
            &page.post(Some(&alice), Some("allow"), NOW + 5),
            &UsedTickets::default(),
        );
        assert_eq!(
            outcome,
            ConsentOutcome::Allow {
                request: page.request.clone(),
                user: &alice
            }
        );
    }

    #[test]
    fn deny_sends_access_denied_with_state_and_iss_to_the_client() {
        let (page, alice) = (page(), alice());
        let ConsentOutcome::Deny { request, user, url } = consent(
            &page.post(Some(&alice), Some("deny"), NOW + 5),
            &UsedTickets::default(),
        ) else {
            panic!("expected a denial");
        };
        assert_eq!((&request, user), (&page.request, &alice));
        assert!(url.starts_with("http://127.0.0.1:55555/callback?"), "{url}");
        let q = query_of(&url);
        assert_eq!(q["error"], "access_denied");
        assert_eq!(q["error_description"], "the user denied the request");
        assert_eq!(q["state"], "st");
        assert_eq!(q["iss"], "https://proxy.example");
        assert!(!q.contains_key("code"));
    }

    #[test]
    fn a_form_without_a_decision_is_a_400_and_can_still_be_answered() {
        let (page, alice) = (page(), alice());
        let used = UsedTickets::default();
        for decision in [None, Some(""), Some("maybe")] {
            let e = refusal(consent(&page.post(Some(&alice), decision, NOW), &used));
            assert_eq!(e, PageError::NoDecision);
            assert_eq!((e.status().as_u16(), e.title()), (400, "Bad request"));
            assert_eq!(e.text(), "Choose Allow or Deny.");
        }
        assert!(matches!(
            consent(&page.post(Some(&alice), Some("allow"), NOW), &used),
            ConsentOutcome::Allow { .. }
        ));
    }

    #[test]
    fn a_form_whose_csrf_token_does_not_match_is_a_403() {
        let (page, alice) = (page(), alice());
        let input = ConsentInput {
            csrf_ok: false,
            ..page.post(Some(&alice), Some("allow"), NOW)
        };
        let used = UsedTickets::default();
        let e = refusal(consent(&input, &used));
        assert_eq!(e, PageError::FormExpired);
        assert_eq!((e.status().as_u16(), e.title()), (403, "This page expired"));
        assert!(
            matches!(
                consent(&page.post(Some(&alice), Some("allow"), NOW), &used),
                ConsentOutcome::Allow { .. }
            ),
            "the page can still be answered"
        );
    }

    #[test]
    fn an_expired_ticket_is_a_400() {
        let (page, alice) = (page(), alice());
        let expiry = NOW + TICKET_TTL;
        assert!(matches!(
            consent(
                &page.post(Some(&alice), Some("deny"), expiry - 1),
                &UsedTickets::default()
            ),
            ConsentOutcome::Deny { .. }
        ));
        let e = refusal(consent(
            &page.post(Some(&alice), Some("allow"), expiry),
            &UsedTickets::default(),
        ));
        assert_eq!(e, PageError::TicketExpired);
        assert_eq!((e.status().as_u16(), e.title()), (400, "This page expired"));
        assert_eq!(e.text(), "Go back to your application and connect again.");
    }

    #[test]
    fn a_forged_or_missing_ticket_is_a_400() {
        let (page, alice) = (page(), alice());
        let other_key = Signer::new(b"another key");
        let forged = session::issue_ticket(&other_key, &page.request, "alice", NOW);
        for ticket in [Some(forged.as_str()), Some("garbage"), None] {
            let input = ConsentInput {
                ticket,
                ..page.post(Some(&alice), Some("allow"), NOW)
            };
            assert_eq!(
                refusal(consent(&input, &UsedTickets::default())),
                PageError::TicketExpired
            );
        }
    }

    #[test]
    fn a_ticket_for_another_user_is_a_403() {
        let (page, bob) = (page(), bob());
        let e = refusal(consent(
            &page.post(Some(&bob), Some("allow"), NOW),
            &UsedTickets::default(),
        ));
        assert_eq!(e, PageError::NotSignedIn);
        assert_eq!((e.status().as_u16(), e.title()), (403, "Not signed in"));
    }

    #[test]
    fn nobody_signed_in_is_a_403() {
        let page = page();
        let e = refusal(consent(
            &page.post(None, Some("allow"), NOW),
            &UsedTickets::default(),
        ));
        assert_eq!(e, PageError::NotSignedIn);
    }

    #[test]
    fn a_consent_page_is_answered_once() {
        let (page, alice) = (page(), alice());
        let used = UsedTickets::default();
        assert!(matches!(
            consent(&page.post(Some(&alice), Some("deny"), NOW), &used),
            ConsentOutcome::Deny { .. }
        ));
        for decision in ["allow", "deny"] {
            let e = refusal(consent(
                &page.post(Some(&alice), Some(decision), NOW + 1),
                &used,
            ));
            assert_eq!(e, PageError::AlreadyAnswered, "{decision} after deny");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn a_user_no_longer_allowed_on_the_route_is_a_403() {
        let page = page();
        // alice lost her group since the page was shown.
        let alice_now = LoginUser {
            groups: vec![],
            ..alice()
        };
        let e = refusal(consent(
            &page.post(Some(&alice_now), Some("allow"), NOW),
            &UsedTickets::default(),
        ));
        assert_eq!(e, PageError::NoLongerAllowed);
        assert_eq!(
            (e.status().as_u16(), e.title()),
            (403, "Access not allowed")
        );
        // Denying is still possible.
        assert!(matches!(
            consent(
                &page.post(Some(&alice_now), Some("deny"), NOW),
                &UsedTickets::default()
            ),
            ConsentOutcome::Deny { .. }
        ));
    }
}
